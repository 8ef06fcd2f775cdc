"""Skin optics shared by the generator and the analysis: sRGB linearisation and optical density.

OD = -ln(linear reflectance) per channel. In OD, absorbers add, and exposure or
white-balance changes become per-channel offsets. This module holds pure
conversions and the absorber colour directions; it must not segment or register.
"""

from __future__ import annotations

import numpy as np

#: Smallest linear reflectance used in OD, so black pixels stay finite (OD ≤ ~6.9).
OD_EPS = 1e-3

#: Unit absorber directions in (R, G, B) optical density. Derived from the physics in
#: DOMAIN.md: haemoglobin absorbs G/B strongly, deep venous blood mostly R (blue is
#: scattered back), melanin falls from B to R, hair is nearly neutral.
HAEMOGLOBIN_OD = np.array([0.18, 0.80, 0.57], dtype=np.float32)
DEEP_VEIN_OD = np.array([0.78, 0.55, 0.30], dtype=np.float32)
MELANIN_OD = np.array([0.38, 0.55, 0.74], dtype=np.float32)
NEUTRAL_OD = np.array([1.0, 1.0, 1.0], dtype=np.float32) / np.sqrt(3.0)
for _v in (HAEMOGLOBIN_OD, DEEP_VEIN_OD, MELANIN_OD):
    _v /= np.linalg.norm(_v)


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)


_LIN_LUT = _srgb_to_linear(np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)
_OD_LUT = (-np.log(np.maximum(_LIN_LUT.astype(np.float64), OD_EPS))).astype(np.float32)


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """Linear reflectance of sRGB pixels.

    Parameters
    ----------
    rgb : ndarray, dtype uint8 (looked up) or float in [0, 1]

    Returns
    -------
    ndarray, float32, same shape, in [0, 1]
    """
    if rgb.dtype == np.uint8:
        return _LIN_LUT[rgb]
    return _srgb_to_linear(np.asarray(rgb, dtype=np.float32)).astype(np.float32)


def linear_to_srgb_u8(lin: np.ndarray) -> np.ndarray:
    """Encode linear reflectance (float, any range) as sRGB uint8 (clipped)."""
    return np.round(_linear_to_srgb(np.asarray(lin, dtype=np.float32)) * 255.0).astype(np.uint8)


def optical_density(rgb: np.ndarray) -> np.ndarray:
    """Per-channel optical density ``-ln(linear reflectance)``.

    Parameters
    ----------
    rgb : ndarray, shape (..., 3), dtype uint8 (table lookup, fast) or float in [0, 1]

    Returns
    -------
    ndarray, float32, same shape; 0 for white, ≈ 6.9 for black.
    """
    if rgb.dtype == np.uint8:
        return _OD_LUT[rgb]
    lin = srgb_to_linear(rgb)
    return (-np.log(np.maximum(lin, OD_EPS))).astype(np.float32)


def od_to_srgb_u8(od: np.ndarray) -> np.ndarray:
    """Inverse of :func:`optical_density`: OD (float) to sRGB uint8."""
    return linear_to_srgb_u8(np.exp(-np.asarray(od, dtype=np.float32)))
