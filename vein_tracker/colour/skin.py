"""The leg (skin) mask and the vein-like pixels of a photo, from colour alone.

Skin is found relative to the scene's light (:mod:`vein_tracker.skin`), so white
balance, casts and skin tone need no fixed thresholds; vein-like pixels are an
optical-density excess pointing towards blood. Neither segments veins
(:mod:`vein_tracker.segmentation`).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..checks import check_mask
from ..io import Photo
from ..optics import DEEP_VEIN_OD, HAEMOGLOBIN_OD, MELANIN_OD, NEUTRAL_OD

__all__ = ["skin_interior", "skin_mask", "vein_like_mask", "vein_score", "vein_like_from_score"]


def skin_mask(photo: Photo | np.ndarray) -> np.ndarray:
    """Pixels of skin (every leg in view), as opposed to backdrop, clothing or floor.

    :func:`vein_tracker.skin.find_skin`'s mask: skin found relative to the scene's light
    (a colour cast moves every surface alike in optical density), every region above a
    leg's size kept, holes (veins, moles, hair) filled.

    Parameters
    ----------
    photo : Photo or ndarray, shape (H, W, 3), dtype uint8
        RGB photo.

    Returns
    -------
    ndarray, shape (H, W), dtype bool
        True on skin. All False when no surface of the scene can be skin.
    """
    from ..skin import find_skin

    return skin_interior(find_skin(photo).mask)


def skin_interior(mask: np.ndarray) -> np.ndarray:
    """A skin mask less its outline band (:data:`_OUTLINE_FRACTION` of the long side).

    The outline's own pixels mix skin with the scene (optics, JPEG, resampling): they
    are left out, so what is fitted on "skin" (alignment, colour) is skin only.
    """
    k = 2 * max(1, round(_OUTLINE_FRACTION * max(mask.shape))) + 1
    return np.asarray(
        cv2.erode(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
    )


#: Width of the outline band left out of the skin, as a share of the long side (about
#: 1 mm in a 200 mm field).
_OUTLINE_FRACTION = 0.005


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
