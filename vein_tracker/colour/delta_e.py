"""Colour differences: CIE L*a*b* of sRGB pixels and CIEDE2000, as scikit-image computes them.

:func:`srgb_u8_to_lab` and :func:`ciede2000` give ``skimage.color.rgb2lab`` and
``skimage.color.deltaE_ciede2000``'s results (``tests/test_morphology.py`` checks them
against the library). They are written out here because every comparison reads a colour
difference (its capture warning), and importing ``skimage.color`` loads ``scipy.linalg``
and, through SciPy's array-API layer, most of NumPy's optional submodules (measured: 0.46 s
of CPU time per ``vein-tracker analyze`` run, which takes 2.5 s of CPU in all).
"""

from __future__ import annotations

import numpy as np

from ..checks import check_mask
from ..io import as_rgb
from ..optics import _srgb_to_linear

__all__ = ["DELTA_E_SAMPLES", "ciede2000", "delta_e2000", "srgb_u8_to_lab"]

#: Pixels sampled (regularly) for a mean ΔE2000.
DELTA_E_SAMPLES = 50_000

# sRGB -> XYZ matrix and D65 (2 degree observer) white of scikit-image's ``rgb2lab``.
_XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])


#: Linear value of each sRGB code in float64 (the formula ``skimage.color.rgb2xyz`` uses).
_LIN64_LUT = _srgb_to_linear(np.arange(256, dtype=np.float64) / 255.0)


def srgb_u8_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65, 2 degree observer) of sRGB uint8 colours.

    The formula of ``skimage.color.rgb2lab`` (sRGB gamma, its XYZ matrix, CIE
    L*a*b* with the linear segment below 0.008856), in float64.

    Parameters
    ----------
    rgb : ndarray, shape (..., 3), dtype uint8

    Returns
    -------
    ndarray, shape (..., 3), dtype float64
    """
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim < 1 or a.shape[-1] != 3:
        raise ValueError(f"rgb must be uint8 with 3 channels last, got {a.dtype} {a.shape}")
    xyz = _LIN64_LUT[a] @ _XYZ_FROM_RGB.T
    f = xyz / _D65_WHITE
    hi = f > 0.008856
    f[hi] = np.cbrt(f[hi])
    f[~hi] = 7.787 * f[~hi] + 16.0 / 116.0
    x, y, z = f[..., 0], f[..., 1], f[..., 2]
    return np.stack([116.0 * y - 16.0, 500.0 * (x - y), 200.0 * (y - z)], axis=-1)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1), as ``skimage.color.deltaE_ciede2000``.

    Parameters
    ----------
    lab1, lab2 : ndarray, shape (..., 3), float
        Reference and compared colours, CIE L*a*b*.

    Returns
    -------
    ndarray, shape (...), dtype float64
    """
    p = np.asarray(lab1, dtype=np.float64)
    q = np.asarray(lab2, dtype=np.float64)
    if p.shape != q.shape or p.ndim < 1 or p.shape[-1] != 3:
        raise ValueError(f"lab1 and lab2 must share a (..., 3) shape, got {p.shape}, {q.shape}")
    l1, a1, b1 = p[..., 0], p[..., 1], p[..., 2]
    l2, a2, b2 = q[..., 0], q[..., 1], q[..., 2]
    # a* stretched by the mean chroma, then polar (hue in [0, 2 pi)).
    cbar = 0.5 * (np.hypot(a1, b1) + np.hypot(a2, b2))
    c7 = cbar**7
    scale = 1 + 0.5 * (1 - np.sqrt(c7 / (c7 + 25**7)))
    c1, h1 = _polar_2pi(a1 * scale, b1)
    c2, h2 = _polar_2pi(a2 * scale, b2)

    lbar = 0.5 * (l1 + l2)
    tmp = (lbar - 50) ** 2
    l_term = (l2 - l1) / (1 + 0.015 * tmp / np.sqrt(20 + tmp))

    cbar = 0.5 * (c1 + c2)
    c_term = (c2 - c1) / (1 + 0.045 * cbar)

    h_diff = h2 - h1
    h_sum = h1 + h2
    cc = c1 * c2
    dh = h_diff.copy()
    dh[h_diff > np.pi] -= 2 * np.pi
    dh[h_diff < -np.pi] += 2 * np.pi
    dh[cc == 0.0] = 0.0
    dh_term = 2 * np.sqrt(cc) * np.sin(dh / 2)

    hbar = h_sum.copy()
    wrap = (cc != 0.0) & (np.abs(h_diff) > np.pi)
    hbar[wrap & (h_sum < 2 * np.pi)] += 2 * np.pi
    hbar[wrap & (h_sum >= 2 * np.pi)] -= 2 * np.pi
    hbar[cc == 0.0] *= 2
    hbar *= 0.5
    t = (
        1
        - 0.17 * np.cos(hbar - np.deg2rad(30))
        + 0.24 * np.cos(2 * hbar)
        + 0.32 * np.cos(3 * hbar + np.deg2rad(6))
        - 0.20 * np.cos(4 * hbar - np.deg2rad(63))
    )
    h_term = dh_term / (1 + 0.015 * cbar * t)

    c7 = cbar**7
    rc = 2 * np.sqrt(c7 / (c7 + 25**7))
    dtheta = np.deg2rad(30) * np.exp(-(((np.rad2deg(hbar) - 275) / 25) ** 2))
    r_term = -np.sin(2 * dtheta) * rc * c_term * h_term

    de2 = l_term**2
    de2 += c_term**2
    de2 += h_term**2
    de2 += r_term
    return np.asarray(np.sqrt(np.maximum(de2, 0)))


def _polar_2pi(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, t = np.hypot(x, y), np.arctan2(y, x)
    t += np.where(t < 0.0, 2 * np.pi, 0)
    return r, t


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
    return float(np.mean(ciede2000(srgb_u8_to_lab(ref_px), srgb_u8_to_lab(img_px))))
