"""Registration's working images and features: each photo's skin, its vein-free matching
channel and its SIFT features, and the coarse homography they agree on.

Both photos are reduced to a refine grid (long side ``REFINE_SIDE``) and a match grid
(``MATCH_SIDE``) and projected, in optical density, on the neutral axis, high-passed and
contrast-normalised (exposure and white balance are OD offsets, removed by the high-pass).
Vein-like pixels, which treatment changes on purpose, carry no features. The features of
one photo (:func:`photo_features`) need nothing of the other, so a caller may find both
photos' at once; :func:`match_features` then pairs them (Lowe ratio test,
``cv2.USAC_MAGSAC``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..colour import skin_mask, vein_like_mask
from ..io import as_rgb
from ..morphology import dilate_square
from ..optics import NEUTRAL_OD, optical_density

__all__ = [
    "MATCH_SIDE",
    "REFINE_SIDE",
    "FeatureMatch",
    "PhotoFeatures",
    "grid_matrix",
    "matching_channel",
    "match_features",
    "photo_features",
]

#: Long side (px) of the image used for SIFT matching.
MATCH_SIDE = 512
#: Long side (px) of the image used for ECC and optical-flow refinement.
REFINE_SIDE = 1000
#: Scale (px of the working grid) of the high-pass of the match and refine channels.
_HIGHPASS_PX = 3.0
#: A photo showing less skin than this share of its frame has no features.
MIN_SKIN_FRACTION = 0.02


def grid_matrix(src_shape: tuple[int, ...], dst_shape: tuple[int, ...]) -> np.ndarray:
    """Pixel coordinates of a ``src`` image in a resized copy of shape ``dst``.

    ``cv2.resize`` aligns pixel centres: ``x_dst = sx * x_src + (sx - 1) / 2``. Using
    the bare scale instead would shift a homography by half a pixel per level.
    """
    sx = dst_shape[1] / src_shape[1]
    sy = dst_shape[0] / src_shape[0]
    return np.array([[sx, 0.0, (sx - 1.0) / 2.0], [0.0, sy, (sy - 1.0) / 2.0], [0.0, 0.0, 1.0]])


def convert_h(h: np.ndarray, m_f: np.ndarray, m_b: np.ndarray) -> np.ndarray:
    """``h`` (follow-up -> baseline) in frames mapped by ``m_f`` and ``m_b``."""
    out = m_b @ h @ np.linalg.inv(m_f)
    return out / out[2, 2]


def _resize(rgb: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Downscale so the long side is at most ``side``: image, grid matrix, mean scale."""
    h, w = rgb.shape[:2]
    s = min(1.0, side / max(h, w))
    if s >= 1.0:
        return rgb, np.eye(3), 1.0
    out = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    m = grid_matrix(rgb.shape, out.shape)
    return out, m, 0.5 * (m[0, 0] + m[1, 1])


def matching_channel(rgb: np.ndarray, *, sigma_px: float = 3.0) -> np.ndarray:
    """The illumination-robust, vein-free channel registration matches on.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), dtype uint8
        RGB image (any resolution).
    sigma_px : float
        Scale of the high-pass, in px of ``rgb``.

    Returns
    -------
    ndarray, shape (H, W), dtype float32
        Neutral optical density (log-luminance; exposure and white balance are
        offsets in it), lightly smoothed against JPEG noise, minus its local mean
        (Gaussian ``sigma_px``). Vein pixels are masked separately.
    """
    return highpass(optical_density(as_rgb(rgb)) @ NEUTRAL_OD, sigma_px)


def _to_u8(hp: np.ndarray, sigma_px: float) -> np.ndarray:
    """Locally contrast-normalised high-pass as uint8, for SIFT."""
    sd = np.sqrt(cv2.GaussianBlur(hp * hp, (0, 0), 4.0 * sigma_px)) + 1e-3
    z = np.clip(hp / sd, -3.0, 3.0)
    return np.asarray(np.round(z * 40.0 + 128.0), dtype=np.uint8)


def highpass(ch: np.ndarray, sigma_px: float) -> np.ndarray:
    """``ch`` lightly smoothed (σ 1 px, against JPEG noise) less its local mean (σ
    ``sigma_px``), float32."""
    c = cv2.GaussianBlur(ch, (0, 0), 1.0)
    return np.asarray(c - cv2.GaussianBlur(c, (0, 0), sigma_px), dtype=np.float32)


def _clip_robust(ch: np.ndarray, mask: np.ndarray, k: float = 4.0) -> np.ndarray:
    """Clip a high-passed channel at k robust sigmas of its skin pixels (outline, moles)."""
    vals = ch[::4, ::4][mask[::4, ::4]]
    if vals.size < 100:
        return ch
    mad = float(np.median(np.abs(vals - np.median(vals)))) * 1.4826 + 1e-6
    return np.asarray(np.clip(ch, -k * mad, k * mad), dtype=np.float32)


def _grid(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A mask brought to the grid of the image ``like`` (as it is when already there)."""
    if mask.shape == like.shape[:2]:
        return mask
    out = cv2.resize(mask.astype(np.uint8), (like.shape[1], like.shape[0]))
    return np.asarray(out > 0)


@dataclass(frozen=True, eq=False)
class PhotoFeatures:
    """One photo's working images and features (what :func:`photo_features` finds).

    Attributes
    ----------
    shape : tuple of int
        ``(H, W)`` of the photo.
    ref : ndarray, shape (h, w, 3), uint8
        The photo on the refine grid (long side at most ``REFINE_SIDE``).
    to_ref, to_match : ndarray, shape (3, 3), float64
        Photo pixel (x, y) to refine-grid and to match-grid pixel (centres kept).
    ref_scale : float
        Refine-grid pixels per photo pixel.
    skin : ndarray, shape (h, w), bool
        The leg on the refine grid.
    use : ndarray, shape (h, w), bool
        The skin features are taken on: the leg, or the part of it around the region of
        interest.
    roi : ndarray, shape (h, w), bool, or None
        The region of interest on the refine grid.
    veins : ndarray, bool
        Vein-like pixels on the match grid (no features there).
    keypoints : sequence of cv2.KeyPoint
    descriptors : ndarray, shape (n, 128), float32, or None
        SIFT's, on the match grid.
    odn : ndarray, shape (h, w), float32
        Neutral optical density on the refine grid.
    channel : ndarray, shape (h, w), float32
        Its high-pass, clipped at 4 robust σ of the skin (what ECC aligns).

    A photo showing too little skin (:attr:`has_skin` false) has no keypoints, and all
    zero ``veins``, ``odn`` and ``channel``.
    """

    shape: tuple[int, int]
    ref: np.ndarray
    to_ref: np.ndarray
    to_match: np.ndarray
    ref_scale: float
    skin: np.ndarray
    use: np.ndarray
    roi: np.ndarray | None
    veins: np.ndarray
    keypoints: Sequence[Any]
    descriptors: np.ndarray | None
    odn: np.ndarray
    channel: np.ndarray

    @property
    def has_skin(self) -> bool:
        """Whether the photo shows enough skin to be registered."""
        return bool(self.use.mean() >= MIN_SKIN_FRACTION)


def photo_features(
    photo: np.ndarray, *, leg_mask: np.ndarray | None = None, roi: np.ndarray | None = None
) -> PhotoFeatures:
    """One photo's skin, vein-free matching channel and SIFT features.

    Parameters
    ----------
    photo : ndarray, shape (H, W, 3), uint8
        Upright RGB photo.
    leg_mask : ndarray, shape (H, W), bool, optional
        Its leg; default :func:`vein_tracker.colour.skin_mask` on the refine grid.
    roi : ndarray, shape (H, W), bool, optional
        A region of interest: features come from the leg around it (and the region
        itself weighs in the checks), when it holds enough skin.

    Returns
    -------
    PhotoFeatures
        Without keypoints and channels when the photo shows too little skin.
    """
    rgb = as_rgb(photo)
    ref, to_ref, ref_scale = _resize(rgb, REFINE_SIDE)
    small, ref_to_match, _ = _resize(ref, MATCH_SIDE)
    to_match = ref_to_match @ to_ref
    skin = skin_mask(ref) if leg_mask is None else _grid(leg_mask, ref)
    roi_ref: np.ndarray | None = None
    use = skin
    if roi is not None:
        roi_ref = _grid(roi, ref)
        # Keep context around a small ROI: features just outside it constrain it too.
        k = max(3, round(0.15 * max(ref.shape[:2])) | 1)
        roi_dil = cv2.dilate(roi_ref.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
        if (skin & roi_dil).mean() >= MIN_SKIN_FRACTION:
            use = skin & roi_dil
    shape = (int(rgb.shape[0]), int(rgb.shape[1]))
    if use.mean() < MIN_SKIN_FRACTION:
        zero = np.zeros(ref.shape[:2], np.float32)
        no_veins = np.zeros(small.shape[:2], bool)
        return PhotoFeatures(
            shape,
            ref,
            to_ref,
            to_match,
            ref_scale,
            skin,
            use,
            roi_ref,
            no_veins,
            (),
            None,
            zero,
            zero,
        )
    # Vein-like pixels (they change with treatment: no features there) and SIFT features
    # of the high-passed neutral OD on the ``use`` skin, on the match grid.
    od = optical_density(small)
    veins = dilate_square(vein_like_mask(od, sigma_px=4.0, k=4.0, mask=_grid(skin, small)), 5)
    ch = highpass(od @ NEUTRAL_OD, _HIGHPASS_PX)
    # A band around the leg outline is kept: the outline is a stable feature too.
    band = dilate_square(_grid(use, veins), 9)
    feature_mask = np.asarray((band & ~veins).astype(np.uint8) * 255)
    sift = cv2.SIFT.create(nfeatures=1500, contrastThreshold=0.02)
    kp, desc = sift.detectAndCompute(_to_u8(ch, _HIGHPASS_PX), feature_mask)
    # and, on the refine grid, what ECC aligns should the features match
    odn = optical_density(ref) @ NEUTRAL_OD
    channel = _clip_robust(highpass(odn, _HIGHPASS_PX), skin)
    return PhotoFeatures(
        shape, ref, to_ref, to_match, ref_scale, skin, use, roi_ref, veins, kp, desc, odn, channel
    )


@dataclass(frozen=True, eq=False)
class FeatureMatch:
    """The features two photos share, and the homography they agree on.

    Attributes
    ----------
    n_matches : int
        Ratio-test matches.
    followup_xy, baseline_xy : ndarray, shape (n_matches, 2), float32
        The matched features, match-grid pixels of each photo.
    homography : ndarray, shape (3, 3), float64, or None
        Follow-up photo pixel (x, y) to baseline photo pixel (x, y) (``USAC_MAGSAC``);
        None when none was found.
    inliers : ndarray, shape (n_matches,), bool
        The matches consistent with it.
    """

    n_matches: int
    followup_xy: np.ndarray
    baseline_xy: np.ndarray
    homography: np.ndarray | None
    inliers: np.ndarray

    @property
    def n_inliers(self) -> int:
        return int(self.inliers.sum())


def match_features(
    baseline: PhotoFeatures, followup: PhotoFeatures, *, min_matches: int = 4
) -> FeatureMatch:
    """Pair two photos' features (Lowe ratio test 0.8) and fit a homography (MAGSAC).

    Parameters
    ----------
    baseline, followup : PhotoFeatures
        Both with descriptors.
    min_matches : int
        Fewer matches than this (at least 4) are not fitted.

    Returns
    -------
    FeatureMatch
        Without a homography when too few features match or none fits.
    """
    if followup.descriptors is None or baseline.descriptors is None:
        raise ValueError("match_features needs both photos' descriptors: check has_skin first")
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(followup.descriptors, baseline.descriptors, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    pf = np.array([followup.keypoints[m.queryIdx].pt for m in good], dtype=np.float32)
    pb = np.array([baseline.keypoints[m.trainIdx].pt for m in good], dtype=np.float32)
    none = np.zeros(len(good), bool)
    if len(good) < max(4, min_matches):
        return FeatureMatch(len(good), pf.reshape(-1, 2), pb.reshape(-1, 2), None, none)
    h_m, inl = cv2.findHomography(pf, pb, cv2.USAC_MAGSAC, 1.5, maxIters=5000, confidence=0.9999)
    if h_m is None or inl is None:
        return FeatureMatch(len(good), pf, pb, None, none)
    h_full = convert_h(
        np.asarray(h_m, dtype=np.float64),
        np.linalg.inv(followup.to_match),
        np.linalg.inv(baseline.to_match),
    )
    return FeatureMatch(len(good), pf, pb, h_full, np.asarray(inl).ravel().astype(bool))
