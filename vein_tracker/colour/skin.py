"""The leg (skin) mask and the vein-like pixels of a photo, from colour alone.

Skin is found as a colour cluster of *this* leg under *this* light (CIELAB), so white
balance and skin tone need no fixed thresholds; vein-like pixels are an optical-density
excess pointing towards blood. Neither segments veins (:mod:`vein_tracker.segmentation`).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..checks import check_mask
from ..io import Photo, as_rgb
from ..morphology import components, fill_holes
from ..optics import DEEP_VEIN_OD, HAEMOGLOBIN_OD, MELANIN_OD, NEUTRAL_OD

__all__ = ["skin_mask", "vein_like_mask", "vein_score", "vein_like_from_score"]

#: Long side (px) at which the skin mask is computed; the result is upsampled.
_MASK_SIDE = 480


def skin_mask(photo: Photo | np.ndarray) -> np.ndarray:
    """Pixels of the leg (skin), as opposed to backdrop, clothing or floor.

    Skin colours are a narrow family of red-orange hues in CIELAB. Pixels of that
    family are taken as seeds; their robust mean and spread in (L*, a*, b*)
    define a colour model of *this* leg under *this* light, so white balance and
    skin tone do not need fixed thresholds. The pixels close to the model are then
    cleaned with morphology, and the largest connected component with its holes
    filled (veins, moles, hair) is returned.

    Parameters
    ----------
    photo : Photo or ndarray, shape (H, W, 3), dtype uint8
        RGB photo.

    Returns
    -------
    ndarray, shape (H, W), dtype bool
        True on the leg. All False when no skin-coloured region is found.
    """
    rgb = as_rgb(photo)
    h, w = rgb.shape[:2]
    s = min(1.0, _MASK_SIDE / max(h, w))
    small = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else rgb
    small_mask = _skin_mask_small(small)
    if s >= 1:
        return small_mask
    up = cv2.resize(small_mask.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.asarray(up >= 128)


def _skin_mask_small(rgb: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(rgb.astype(np.float32) * (1.0 / 255.0), cv2.COLOR_RGB2Lab)
    lab = cv2.GaussianBlur(lab, (0, 0), 1.5)
    big_l, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    hue = np.degrees(np.arctan2(b, a))
    chroma = np.hypot(a, b)
    seeds = (big_l > 20) & (big_l < 97) & (hue > 10) & (hue < 80) & (chroma > 8) & (chroma < 70)
    if seeds.sum() < 0.01 * seeds.size:
        return np.zeros(rgb.shape[:2], dtype=bool)
    feats = np.stack([big_l * 0.5, a, b], axis=-1)
    x = feats[seeds]
    centre = np.median(x, axis=0)
    # Robust spread: median absolute deviation, floored so a uniform phantom still works.
    spread = np.maximum(1.4826 * np.median(np.abs(x - centre), axis=0), np.array([3.0, 2.0, 2.0]))
    # Re-estimate from the core of the seeds (drops a skin-like backdrop minority).
    core = np.all(np.abs(x - centre) < 2.5 * spread, axis=1)
    if core.sum() > 100:
        centre = np.median(x[core], axis=0)
        spread = np.maximum(
            1.4826 * np.median(np.abs(x[core] - centre), axis=0), np.array([3.0, 2.0, 2.0])
        )
    # Skin under one light is a tight colour cluster; a wide spread is not a leg.
    if spread[1] > 6.0 or spread[2] > 6.0:
        return np.zeros(rgb.shape[:2], dtype=bool)
    z = (feats - centre) / spread
    d2 = np.einsum("...k,...k->...", z, z)
    cand = d2 < 16.0  # 4 robust sigmas
    k = max(3, round(0.01 * max(rgb.shape[:2])) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    cand_u8 = cv2.morphologyEx(cand.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    cand_u8 = cv2.morphologyEx(cand_u8, cv2.MORPH_CLOSE, kernel)
    cc = components(cand_u8)
    n, lab_cc = cc.n, cc.labels
    if n <= 1:
        return np.zeros(rgb.shape[:2], dtype=bool)
    largest = 1 + int(np.argmax(cc.areas[1:]))
    if cc.areas[largest] < 0.02 * cand.size:
        return np.zeros(rgb.shape[:2], dtype=bool)
    leg = lab_cc == largest
    # Veins, moles and hair inside the leg are leg too.
    leg = fill_holes(leg)
    return leg


def _chroma_basis() -> tuple[np.ndarray, np.ndarray]:
    """Unit OD directions seen only by blood (orthogonal to neutral and melanin)."""
    q, _ = np.linalg.qr(np.stack([NEUTRAL_OD, MELANIN_OD], axis=1).astype(np.float64))
    out = []
    for v in (HAEMOGLOBIN_OD, DEEP_VEIN_OD):
        r = v.astype(np.float64) - q @ (q.T @ v.astype(np.float64))
        out.append((r / np.linalg.norm(r)).astype(np.float32))
    return out[0], out[1]


def vein_like_mask(
    od: np.ndarray, *, sigma_px: float = 6.0, k: float = 3.0, mask: np.ndarray | None = None
) -> np.ndarray:
    """Pixels whose OD excess over the local skin points towards blood.

    The excess (OD minus its Gaussian local mean) is projected on the parts of the
    haemoglobin and deep-vein directions orthogonal to melanin and the neutral
    axis, so freckles, moles, hair and shading do not respond.

    Parameters
    ----------
    od : ndarray, shape (H, W, 3), dtype float32
        Optical density of a photo (any resolution).
    sigma_px : float
        Scale of the local skin background, in pixels of ``od``.
    k : float
        Threshold in robust standard deviations of the score on skin.
    mask : ndarray, shape (H, W), dtype bool, optional
        Skin pixels; the result is restricted to them, away from their outline
        (where backdrop colour would read as blood).

    Returns
    -------
    ndarray, shape (H, W), dtype bool
    """
    if od.ndim != 3 or od.shape[2] != 3:
        raise ValueError(f"od must be (H, W, 3), got shape {od.shape}")
    m = None if mask is None else check_mask(mask, shape=od.shape[:2], name="mask")
    return vein_like_from_score(vein_score(od, sigma_px), sigma_px, k, m)


def vein_score(od: np.ndarray, sigma_px: float) -> np.ndarray:
    """:func:`vein_like_mask`'s score: the OD excess over the local mean (Gaussian
    ``sigma_px``) projected towards blood, (H, W) float32."""
    hb, dv = _chroma_basis()
    hp = od - cv2.GaussianBlur(od, (0, 0), sigma_px)
    return np.asarray(np.maximum(hp @ hb, hp @ dv))


def vein_like_from_score(
    score: np.ndarray, sigma_px: float, k: float, m: np.ndarray | None
) -> np.ndarray:
    """:func:`vein_like_mask` from a :func:`vein_score` already computed."""
    if m is not None:
        r = max(1, round(2 * sigma_px))
        kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
        m = cv2.erode(m.astype(np.uint8), kernel) > 0
        vals = score[::2, ::2][m[::2, ::2]]
    else:
        vals = score[::2, ::2].ravel()
    if vals.size < 50:
        return np.zeros(score.shape[:2], dtype=bool)
    med = float(np.median(vals))
    mad = float(np.median(np.abs(vals - med))) * 1.4826 + 1e-6
    out = score > med + k * mad
    return np.asarray(out & m) if m is not None else np.asarray(out)
