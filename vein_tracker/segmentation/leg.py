"""The leg skin the segmentation searches: every skin region
:func:`vein_tracker.skin.find_skin` finds, less its outline band and a calibration card,
at the segmentation's levels (:func:`leg_mask`). The outlines inside that skin, where one
surface lies over another, are :mod:`.occlusion`'s.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..checks import check_mask, check_px_per_mm
from ..io import Photo, as_rgb
from ..skin import SkinMap, find_skin
from .levels import _levels, _resize, estimate_px_per_mm
from .params import _OUTLINE_MM


def _coarse_leg(
    small: np.ndarray,
    coarse_size: tuple[int, int],
    ppm_work: float,
    exclude: np.ndarray | None = None,
    found: SkinMap | None = None,
) -> tuple[np.ndarray, SkinMap]:
    """Every skin region found on the working-level photo (:func:`skin.find_skin`, or
    ``found`` on the photo), less ``exclude`` (a calibration card: its edge is an outline
    too), at the coarse level, as uint8 0/255, and the finding itself."""
    if found is None:
        found = find_skin(small, px_per_mm=ppm_work)
        skin = found.mask
    else:
        skin = _resize(found.mask.astype(np.uint8) * 255, small.shape[1::-1]) >= 128
    if exclude is not None:
        skin = skin & ~(_resize(exclude.astype(np.uint8) * 255, small.shape[1::-1]) >= 128)
    # The outline's own pixels mix skin with the scene (optics, JPEG): not leg.
    k = 2 * max(1, int(round(_OUTLINE_MM * ppm_work))) + 1
    u8 = cv2.erode(
        skin.astype(np.uint8) * 255, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    )
    return np.asarray(_resize(u8, coarse_size, cv2.INTER_AREA) >= 128, np.uint8) * 255, found


def _leg_full(leg_work: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The working-level leg brought to the photo's ``size`` (w, h), as segment reports it."""
    return np.asarray(_resize(leg_work.astype(np.uint8), size, cv2.INTER_NEAREST), dtype=bool)


def leg_mask(
    photo: Photo | np.ndarray,
    *,
    px_per_mm: float | None = None,
    exclude: np.ndarray | None = None,
    skin: SkinMap | None = None,
) -> np.ndarray:
    """The leg skin :func:`~vein_tracker.segmentation.segment` finds on a photo when given no
    ``leg_mask``.

    The same mask as ``segment(photo, px_per_mm=px_per_mm).leg_mask``, without finding
    the veins: for a caller that segments a processed copy of the photo (say, blurred)
    on the leg of the photo as taken. ``exclude`` (H, W) bool is left out, as
    :func:`~vein_tracker.segmentation.segment` leaves out a calibration card it finds.
    ``skin``, the photo's :func:`~vein_tracker.skin.find_skin` when the caller has it,
    is used instead of finding the skin again.

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    rgb = as_rgb(photo)
    h, w = rgb.shape[:2]
    ppm = float(px_per_mm) if px_per_mm is not None else estimate_px_per_mm(rgb)
    check_px_per_mm(ppm)
    work_size, ppm_work, _, coarse_size, _ = _levels((h, w), ppm)
    if exclude is not None:
        exclude = check_mask(exclude, shape=(h, w), name="exclude")
    if skin is not None:
        check_mask(skin.mask, shape=(h, w), name="skin.mask")
    leg_u8, _ = _coarse_leg(_resize(rgb, work_size), coarse_size, ppm_work, exclude, skin)
    return _leg_full(_resize(leg_u8, work_size, cv2.INTER_LINEAR) >= 128, (w, h))
