"""The segmentation's resolution levels, and the scale of a photo whose scale is unknown.

A photo is reduced to the working level L0 (at most :data:`~.params.WORK_PX_PER_MM`),
the half level L1 (spider ridges, reticular footprints, colour tests) and the coarse
level L2 (the skin background and the leg). Sizes are ``(w, h)``, as OpenCV takes them.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..checks import PX_PER_MM_RANGE
from ..io import Photo, as_rgb
from ..scale import estimate_scale
from .params import _BG_PX_PER_MM, _HALF_PX_PER_MM, WORK_PX_PER_MM


def estimate_px_per_mm(image: Photo | np.ndarray) -> float:
    """Scale of a photo whose scale is unknown (:func:`vein_tracker.scale.estimate_scale`).

    From the width of a leg whose two outlines are in the frame (adult lower legs are
    about 100 mm wide), else from the frame size: clinic photos of one treatment area
    frame about :data:`~vein_tracker.segmentation.ASSUMED_FIELD_MM` of leg along the long
    side, so a 2000 × 1500 close-up is about 10 px/mm. Either way an estimate (see
    ``Scale.low``/``high``).

    Parameters
    ----------
    image : Photo or ndarray, shape (H, W, 3), uint8

    Returns
    -------
    float
        Pixels per millimetre, within :data:`vein_tracker.checks.PX_PER_MM_RANGE`.
    """
    lo, hi = PX_PER_MM_RANGE
    return float(np.clip(estimate_scale(as_rgb(image)).px_per_mm, lo, hi))


def _resize(img: np.ndarray, size: tuple[int, int], interp: int = cv2.INTER_AREA) -> np.ndarray:
    """Resize to ``size`` = (w, h), returning the input itself when already that size."""
    if (img.shape[1], img.shape[0]) == size:
        return img
    return cv2.resize(img, size, interpolation=interp)


#: A reduction within this fraction of a whole factor (1, 1/2, 1/3, ...) is made that
#: factor. A scale is never known to better than a few per cent, so resampling by 2 %
#: gains nothing: it only blurs the finest veins, where a whole factor is exact (and
#: OpenCV's fast path).
_WHOLE_FACTOR_TOL = 0.05


def _whole_factor(factor: float) -> float:
    """``factor`` (in (0, 1]), or the whole reduction ``1/k`` it is within
    :data:`_WHOLE_FACTOR_TOL` of."""
    k = max(1, round(1.0 / factor))
    return 1.0 / k if abs(factor * k - 1.0) <= _WHOLE_FACTOR_TOL else factor


def _level_size(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    """``(w, h)`` of ``shape`` reduced by ``factor`` (a near-whole reduction made whole)."""
    f = _whole_factor(factor)
    return (max(8, round(shape[1] * f)), max(8, round(shape[0] * f)))


def _levels(
    shape: tuple[int, int], ppm: float
) -> tuple[tuple[int, int], float, tuple[int, int], tuple[int, int], float]:
    """Work size and scale, half size, coarse size and scale of a photo of ``shape``."""
    h, w = shape
    work_size = _level_size((h, w), min(1.0, WORK_PX_PER_MM / ppm))
    ppm_work = ppm * work_size[0] / w
    work_shape = (work_size[1], work_size[0])
    half_size = _level_size(work_shape, min(1.0, _HALF_PX_PER_MM / ppm_work))
    coarse_size = _level_size(work_shape, min(1.0, _BG_PX_PER_MM / ppm_work))
    ppm_coarse = ppm_work * coarse_size[0] / work_size[0]
    return work_size, ppm_work, half_size, coarse_size, ppm_coarse
