"""Alignment without features: the leg's silhouette and shading, coarse to fine.

Smooth real skin (young, hairless, evenly lit) gives SIFT few features, yet a leg photo
always shows the leg's outline and the shading of its curvature. When the features are
too few to agree on a homography, :func:`silhouette_homography` aligns what every leg
photo has: the two photos' skin masks, as signed distances to their outlines (a smooth
basin ECC can descend from far away), together with the low-passed neutral optical
density (shading, exposure-free once each is normalised on its skin). It starts from the
masks' moments (centroid and size) and a few rotations, and keeps the best-correlated.

It only proposes a homography; the usual refinement and checks (correlation of the skin
texture, overlap, plausibility) still decide, so a different leg is still refused.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .features import PhotoFeatures, grid_matrix

__all__ = ["DENSE_SIDE", "silhouette_homography"]

#: Long side (px) of the grid the silhouettes are aligned on.
DENSE_SIDE = 256
#: Rotations (degrees) tried from the moments' start.
_ROTATIONS = (-20.0, -10.0, 0.0, 10.0, 20.0)
#: Signed distances are clipped at this share of the long side (the basin's width).
_SDT_CLIP = 0.08
#: Smallest correlation of the structure images for a proposal.
_MIN_CORR = 0.5


def _structure(f: PhotoFeatures, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Structure image (signed outline distance + shading), the skin, and refine-grid
    px -> this grid, on a grid of long side ``side``."""
    h, w = f.skin.shape
    s = min(1.0, side / max(h, w))
    size = (max(8, round(w * s)), max(8, round(h * s)))
    skin = cv2.resize(f.skin.astype(np.uint8), size, interpolation=cv2.INTER_AREA) > 0
    u8 = skin.astype(np.uint8)
    clip = _SDT_CLIP * max(size)
    inside = cv2.distanceTransform(u8, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - u8, cv2.DIST_L2, 5)
    sdt = np.clip(inside - outside, -clip, clip) / clip
    odn = cv2.resize(f.odn, size, interpolation=cv2.INTER_AREA)
    odn = cv2.GaussianBlur(odn, (0, 0), 2.0)
    vals = odn[skin]
    if vals.size > 50:
        med = float(np.median(vals))
        mad = 1.4826 * float(np.median(np.abs(vals - med))) + 1e-3
        shade = np.where(skin, np.clip((odn - med) / (3.0 * mad), -1.0, 1.0), 0.0)
    else:
        shade = np.zeros_like(sdt)
    out = (sdt + 0.5 * shade).astype(np.float32)
    return out, skin, grid_matrix(f.skin.shape, (size[1], size[0]))


def _moments(mask: np.ndarray) -> tuple[np.ndarray, float] | None:
    m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    if m["m00"] < 50:
        return None
    return np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]]), float(m["m00"])


def _ecc(
    tb: np.ndarray, fi: np.ndarray, warp: np.ndarray, motion: int, iters: int
) -> tuple[float, np.ndarray] | None:
    try:
        cc, out = cv2.findTransformECC(
            tb,
            fi,
            warp.astype(np.float32),
            motion,
            (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iters, 1e-5),
            np.ones(tb.shape, np.uint8),
            5,
        )
    except cv2.error:
        return None
    return float(cc), np.asarray(out, np.float64)


def silhouette_homography(baseline: PhotoFeatures, followup: PhotoFeatures) -> np.ndarray | None:
    """A homography (follow-up photo px -> baseline photo px) from silhouette and shading.

    Parameters
    ----------
    baseline, followup : PhotoFeatures
        The two photos' working images (their ``skin`` and ``odn`` on the refine grid).

    Returns
    -------
    ndarray, shape (3, 3), float64, or None
        None when either photo shows too little skin or no start converges to a
        correlation of at least ``_MIN_CORR``.
    """
    tb, sb, mb = _structure(baseline, DENSE_SIDE)
    fi, sf, mf = _structure(followup, DENSE_SIDE)
    mom_b, mom_f = _moments(sb), _moments(sf)
    if mom_b is None or mom_f is None:
        return None
    (cb, ab), (cf, af) = mom_b, mom_f
    scale = math.sqrt(ab / af)
    best: tuple[float, np.ndarray] | None = None
    for deg in _ROTATIONS:
        t = math.radians(deg)
        rot = scale * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        # Baseline grid -> follow-up grid (what ECC's warp maps): the inverse of
        # "follow-up centroid to baseline centroid, scaled and turned".
        fwd = np.eye(3)
        fwd[:2, :2] = rot
        fwd[:2, 2] = cb - rot @ cf
        warp = np.linalg.inv(fwd)
        res = _ecc(tb, fi, warp[:2], cv2.MOTION_AFFINE, 60)
        if res is None:
            continue
        cc, w2 = res
        if best is None or cc > best[0]:
            best = (cc, np.vstack([w2, [0.0, 0.0, 1.0]]))
    if best is None or best[0] < _MIN_CORR:
        return None
    res = _ecc(tb, fi, best[1], cv2.MOTION_HOMOGRAPHY, 60)
    warp = best[1] if res is None or res[0] < best[0] else res[1]
    # ECC's warp maps baseline grid px to follow-up grid px.
    h_grid = np.linalg.inv(warp)
    h_ref = np.linalg.inv(mb) @ h_grid @ mf
    h_full = np.linalg.inv(baseline.to_ref) @ h_ref @ followup.to_ref
    return np.asarray(h_full / h_full[2, 2], np.float64)
