"""Colour differences: the mean CIEDE2000 difference of two photos over a mask.

CIE L*a*b* and CIEDE2000 are scikit-image's (``skimage.color.rgb2lab``, D65 and the 2
degree observer, and ``skimage.color.deltaE_ciede2000``), imported inside
:func:`delta_e_pixels`: importing ``skimage.color`` loads SciPy, a slow import that only
an analysis needs.
"""

from __future__ import annotations

import numpy as np

from ..checks import check_mask
from ..io import as_rgb

__all__ = ["DELTA_E_SAMPLES", "delta_e2000"]

#: Pixels sampled (regularly) for a mean ΔE2000.
DELTA_E_SAMPLES = 50_000


def delta_e2000(
    reference: np.ndarray, image: np.ndarray, *, mask: np.ndarray | None = None
) -> float:
    """Mean CIEDE2000 difference between two RGB images over ``mask``.

    Parameters
    ----------
    reference, image : ndarray, shape (H, W, 3), dtype uint8
    mask : ndarray, shape (H, W), dtype bool, optional

    Returns
    -------
    float
        Mean ΔE2000 (NaN when the mask is empty). At most ``DELTA_E_SAMPLES`` pixels
        are used (a regular sub-sample).
    """
    ref = as_rgb(reference)
    img = as_rgb(image)
    if ref.shape != img.shape:
        raise ValueError(f"image shape {img.shape} must equal reference shape {ref.shape}")
    idx = delta_e_index(mask, (int(ref.shape[0]), int(ref.shape[1])))
    return mean_delta_e(ref.reshape(-1, 3)[idx], img.reshape(-1, 3)[idx])


def delta_e_index(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """The flat indices :func:`delta_e2000` reads: a regular sub-sample of ``mask``."""
    m = np.ones(shape, bool) if mask is None else check_mask(mask, shape=shape, name="mask")
    idx = np.flatnonzero(m)
    return idx[:: max(1, idx.size // DELTA_E_SAMPLES)]


def mean_delta_e(ref_px: np.ndarray, img_px: np.ndarray) -> float:
    """Mean CIEDE2000 difference of two (N, 3) uint8 sRGB pixel lists; NaN when empty."""
    if ref_px.shape[0] == 0:
        return float("nan")
    return float(np.mean(delta_e_pixels(ref_px, img_px)))


def delta_e_pixels(ref_px: np.ndarray, img_px: np.ndarray) -> np.ndarray:
    """(N,) CIEDE2000 difference of each pair of two (N, 3) sRGB pixel lists (uint8, or
    float in [0, 1])."""
    from skimage.color import deltaE_ciede2000, rgb2lab  # lazy: a slow import (SciPy)

    out: np.ndarray = deltaE_ciede2000(rgb2lab(ref_px), rgb2lab(img_px))
    return out
