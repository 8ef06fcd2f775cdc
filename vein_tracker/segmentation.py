"""Vein segmentation: the measuring instrument of vein_tracker.

Finds spider veins (telangiectasia: red-purple, < 1 mm) and reticular veins (feeders:
blue-green, 1-3 mm) in an upright leg photo, labels each vein pixel with its class, and
gives the continuous vein contrast that measurement uses for fading.

Method (physics in ``DOMAIN.md``):

1. **Optical density** of linearised sRGB, at a working resolution of about
   :data:`WORK_PX_PER_MM` (photos with more pixels per millimetre are reduced first).
2. **Colour projections.** The OD is projected on weight vectors chosen so that each
   class reads its own amplitude and is blind to the look-alikes:

   * spider ``w_s``: ``w_s·HAEMOGLOBIN = 1``, ``w_s·MELANIN = 0``, ``w_s·NEUTRAL = 0``
     (blind to freckles, moles, staining, hair, shading, exposure);
   * reticular ``w_r``: ``w_r·DEEP_VEIN = 1``, ``w_r·MELANIN = 0``,
     ``w_r·HAEMOGLOBIN = 0``. Deep venous blood is almost "neutral minus melanin"
     in OD, so no projection can reject both neutral and melanin and keep it: the
     reticular channel sees a neutral darkening at 0.45 of its amplitude. Hair and skin
     folds are rejected by width, shape and a chroma test instead;
   * neutral and the deep-vein chroma (bluish, anti-melanin), used for those tests.
3. **Local skin background** of each projection, a normalised Gaussian average over
   leg skin that excludes vein candidates (two passes), at a scale of a few
   millimetres. Subtracting it cancels exposure and white balance (per-channel OD
   offsets), shading, and diffuse bruises, and leaves the vein **contrast** in OD units.
4. **Ridges.** A multi-scale Hessian (Gaussian + separable derivative filters) of each
   contrast map, with scales set in millimetres: spiders at the working resolution,
   reticular veins at a quarter of it. Blobs are suppressed (``λ2/λ1``), centrelines
   are the non-maximum-suppressed ridge pixels, kept by hysteresis and by component
   tests (length, elongation).
5. **Footprint.** Each pixel near a centreline is a vein pixel when its contrast is at
   least a fixed fraction of the contrast at its nearest centreline pixel (the
   half-height rule), so the mask has the vein's width, not the filter's.

**Phone JPEGs.** JPEG keeps luminance at full resolution but colour (chroma) at half
resolution, in 8 × 8 blocks, and bleeds it across sharp edges; the colour projections
inherit those errors. Blood darkens every channel, so luminance (neutral OD) is used to
keep them out: the ridge maps are guided-filtered by the neutral contrast (structure
without luminance is smoothed away), every centreline must be dark in luminance too,
the hair test allows a thin spider's colour to be smeared over its neighbours, and a
spider's footprint must also reach a share of its seed's full-resolution luminance
contrast. The continuous contrast maps (:func:`vein_contrast`) are not filtered.

This module must not register photos, measure improvement or draw user interface.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .card import read_card
from .checks import PX_PER_MM_RANGE, check_mask, check_px_per_mm
from .confidence import Confidence, combine, photo_reasons
from .io import Photo, as_rgb
from .morphology import components
from .optics import DEEP_VEIN_OD, HAEMOGLOBIN_OD, MELANIN_OD, NEUTRAL_OD, OD_EPS
from .scale import Scale, estimate_scale, resolve_scale
from .skin import SkinMap, find_skin

__all__ = [
    "WORK_PX_PER_MM",
    "Segmentation",
    "VeinContrast",
    "VeinSegment",
    "estimate_px_per_mm",
    "overlay",
    "segment",
    "vein_contrast",
]

#: Resolution (px/mm) at which spider veins are analysed; finer photos are reduced to it.
WORK_PX_PER_MM = 10.0
#: Assumed width of the photographed field along the long side of the frame (mm), used
#: only when the scale is unknown (a 2000 px wide photo of a 20 cm field is 10 px/mm).
ASSUMED_FIELD_MM = 200.0

SPIDER, RETICULAR = 1, 2
CLASS_NAMES = {SPIDER: "spider", RETICULAR: "reticular"}


def _projection_weights() -> np.ndarray:
    """Rows: spider, reticular, neutral, deep-vein chroma (see the module docstring)."""
    w_s = np.linalg.solve(np.stack([HAEMOGLOBIN_OD, MELANIN_OD, NEUTRAL_OD]), [1.0, 0.0, 0.0])
    w_r = np.linalg.solve(np.stack([DEEP_VEIN_OD, MELANIN_OD, HAEMOGLOBIN_OD]), [1.0, 0.0, 0.0])
    chroma = DEEP_VEIN_OD - DEEP_VEIN_OD.mean()
    chroma = chroma / np.linalg.norm(chroma)
    return np.stack([w_s, w_r, NEUTRAL_OD, chroma]).astype(np.float32)


#: 4×3 matrix mapping OD (R, G, B) to (spider, reticular, neutral, deep chroma) signals.
PROJECTION = _projection_weights()

_OD_LUT = (
    -np.log(
        np.maximum(
            np.where(
                (v := np.arange(256) / 255.0) <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4
            ),
            OD_EPS,
        )
    )
).astype(np.float32)

# Tuned in millimetres from the vein classes' widths (DOMAIN.md), never per photo.
_HALF_PX_PER_MM = 5.0  # L1: spider ridges, reticular footprints, colour tests
_RETIC_DETECT_PX_PER_MM = 2.5  # L2: reticular ridges
_BG_PX_PER_MM = 2.5  # the smooth skin background is estimated at a quarter
_SPIDER_SIGMAS_MM = (0.12, 0.2, 0.32)
_RETIC_SIGMAS_MM = (0.35, 0.6, 0.9)
_MIN_SIGMA_PX = 0.6
_BG_SIGMA_MM = (1.5, 4.0, 1.5, 4.0)  # spider, reticular, neutral, chroma
_BG_RIM_MM = (0.4, 1.5, 0.4, 1.5)
# Veins are not sought this close to the frame's edge (mm).
_FRAME_MARGIN_MM = 1.5
# The skin's outline band left out of the leg (mm).
_OUTLINE_MM = 0.75
# Veins are not sought where the photo is darker than this mean OD (sRGB ≈ 57).
_DARK_OD = 3.2
# Veins are not sought this close to the leg's outline: the shading of the leg's curvature
# steepens there (neutral OD, which the reticular channel sees at 0.45).
_EDGE_MARGIN_MM = {SPIDER: 3.0, RETICULAR: 5.0}
_MAX_HALF_WIDTH_MM = {SPIDER: 0.8, RETICULAR: 2.2}
_MIN_LENGTH_MM = {SPIDER: 1.5, RETICULAR: 4.0}
_FOOTPRINT_FRACTION = 0.5
_LUMA_FRACTION = 0.25
_RETIC_SMOOTH_MM = 0.15
# Footprint pixels must exceed this many robust standard deviations of the contrast.
_FOOTPRINT_NOISE_K = {SPIDER: 4.0, RETICULAR: 3.0}
_MIN_AREA_MM2 = 0.2
# Neutral OD per unit of vein amplitude, and the excess over it that marks hair (OD).
_NEUTRAL_PER_SPIDER = float(NEUTRAL_OD @ HAEMOGLOBIN_OD)
_NEUTRAL_PER_RETIC = float(NEUTRAL_OD @ DEEP_VEIN_OD)
#: Neutral OD per unit of class contrast a vein of each class carries (label -> share).
NEUTRAL_PER_CLASS = {SPIDER: _NEUTRAL_PER_SPIDER, RETICULAR: _NEUTRAL_PER_RETIC}
_HAIR_EXCESS_OD = 0.06
_HAIR_EXCESS_REL = 0.5
_HAIR_RIM_MM = 0.2
# Hysteresis: the high threshold is k_hi × the ridge noise (k_hi from the sensitivity),
# never below a floor in OD; the low one a fraction of it.
_K_HI_MAX, _K_HI_MIN = 7.0, 2.5
_FLOOR_OD = {SPIDER: 0.04, RETICULAR: 0.03}
_LO_FRACTION = 0.5
# The local noise floor is measured over this window (mm, Gaussian sigma).
_NOISE_WINDOW_MM = 6.0
# Ridge vs step: flanks read this many ridge scales (at least this many px) across;
# along a centreline piece the weaker flank must be (median) at least this share of the
# stronger, and the luminance step across at most this many times the line's contrast.
_FLANK_SIGMAS = 3.0
_FLANK_MIN_PX = 2.0
_FLANK_BALANCE = 0.1
_STEP_PER_LINE = 2.5
# ... and its luminance line between these multiples of what a vein of its colour
# carries (a thin spider's colour is spread by JPEG's half-resolution chroma: its
# luminance line reads ~2.4x its share on the phone-like phantoms).
# (The reticular channel's wide lines share their luminance with the neutral map's own
# background, which follows them, so only a spider needs a luminance line of its own.)
_DARK_MIN_SHARE = {SPIDER: 0.3, RETICULAR: -np.inf}
_DARK_PER_SHARE = {SPIDER: 5.0, RETICULAR: 2.0}
# A centreline's neutral OD must reach this share of its class contrast (physics: 0.90
# spider, 0.94 deep vein; the background estimate inside clusters lowers it to ~0.7).
_SUPPORT_RATIO = {SPIDER: 0.15, RETICULAR: 0.1}
# Spider contrast at L1 is guided-filtered by the neutral OD (radius px, eps OD²): JPEG's
# blocky half-resolution chroma is smoothed where the luminance is flat and follows the
# luminance where it has structure (a vein darkens every channel).
_GF_RADIUS_PX = 3
_GF_EPS = 1e-3
_GF_EPS_RETIC = 1e-4
# A deep vein's bluish chroma is ≈ 0.34 of its amplitude; hair and folds have none.
_RETIC_CHROMA_RATIO = 0.12
# Mean centreline length per skeleton pixel (mix of straight and diagonal steps).
_SKELETON_STEP = 1.12
# Ridge amplitude of a Gaussian line at its best scale is 2/(3√3) of its peak contrast.
_RIDGE_GAIN = 3.0 * math.sqrt(3.0) / 2.0


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class VeinContrast:
    """Continuous vein contrast maps, in OD units over the local skin background.

    Attributes
    ----------
    spider : ndarray, shape (H, W), float32
        Contrast along the haemoglobin direction, blind to melanin and neutral OD.
    reticular : ndarray, shape (H, W), float32
        Contrast along the deep-vein direction, blind to melanin and haemoglobin.
    leg_mask : ndarray, shape (H, W), bool
        Where the maps are meaningful (leg skin); 0 outside.
    px_per_mm : float
    """

    spider: np.ndarray
    reticular: np.ndarray
    leg_mask: np.ndarray
    px_per_mm: float

    def of_class(self, labels: np.ndarray) -> np.ndarray:
        """Contrast of each pixel's class: ``spider`` where ``labels == 1``, ``reticular``
        where ``labels == 2`` and the larger of the two elsewhere.

        Parameters
        ----------
        labels : ndarray, shape (H, W), uint8 0/1/2
        """
        if labels.shape != self.spider.shape:
            raise ValueError(
                f"labels must have shape {self.spider.shape}, got {labels.shape}; "
                "warp the labels to this photo's frame first"
            )
        out = np.maximum(self.spider, self.reticular)
        np.copyto(out, self.spider, where=labels == SPIDER)
        np.copyto(out, self.reticular, where=labels == RETICULAR)
        return out

    def to_dict(self) -> dict[str, Any]:
        leg = self.leg_mask
        return {
            "shape": list(self.spider.shape),
            "px_per_mm": float(self.px_per_mm),
            "leg_fraction": float(leg.mean()) if leg.size else 0.0,
            "spider_p99": float(np.percentile(self.spider[leg], 99)) if leg.any() else 0.0,
            "reticular_p99": float(np.percentile(self.reticular[leg], 99)) if leg.any() else 0.0,
        }


@dataclass(frozen=True)
class VeinSegment:
    """One connected vein (or vein tree) of one class.

    Attributes
    ----------
    id : int
        Value of this vein in :attr:`Segmentation.vein_ids` (1-based).
    cls : str
        ``"spider"`` or ``"reticular"``.
    length_mm : float
        Centreline length.
    width_mm : float
        Mean width (area / length).
    area_mm2 : float
    contrast : float
        Mean contrast (OD) of the class over the vein's pixels.
    bbox : tuple of int
        ``(x, y, w, h)`` in pixels of the photo.
    """

    id: int
    cls: str
    length_mm: float
    width_mm: float
    area_mm2: float
    contrast: float
    bbox: tuple[int, int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cls": self.cls,
            "length_mm": round(self.length_mm, 3),
            "width_mm": round(self.width_mm, 3),
            "area_mm2": round(self.area_mm2, 3),
            "contrast": round(self.contrast, 4),
            "bbox": list(self.bbox),
        }


@dataclass(frozen=True, eq=False)
class Segmentation:
    """Result of :func:`segment`; every array has the photo's shape ``(H, W)``.

    Attributes
    ----------
    mask : ndarray, bool
        Vein pixels.
    labels : ndarray, uint8
        0 none, 1 spider, 2 reticular.
    strength : ndarray, float32
        Vein contrast in OD units of each pixel's class (see :meth:`VeinContrast.of_class`,
        evaluated at the working resolution and upsampled); continuous, ≈ 0 on skin
        without veins, 0 outside the leg.
    skeleton : ndarray, bool
        Vein centrelines (subset of ``mask``).
    vein_ids : ndarray, int32
        0 none, else the :attr:`VeinSegment.id` of the pixel's vein.
    veins : tuple of VeinSegment
    px_per_mm : float
    px_per_mm_estimated : bool
        True when the scale was not given and was estimated from the frame size.
    leg_mask : ndarray, bool
        Leg skin considered (after the region of interest).
    sensitivity : float
    contrast : VeinContrast
        Both classes' continuous contrast maps (what :func:`vein_contrast` returns).
    neutral : ndarray, float32, optional
        Neutral OD contrast over the local skin background: how much each pixel darkens,
        whatever its hue (0 outside the leg). A vein darkens in proportion to its colour
        contrast (:data:`NEUTRAL_PER_CLASS`); a colour fringe hardly darkens, and hair or
        a shadow darkens far more.
    scale : Scale, optional
        The scale used and where it came from (given, card or estimated, with its range).
    skin : SkinMap, optional
        The skin :func:`vein_tracker.skin.find_skin` found (every region, the cast), at
        the working resolution; None when the caller gave the leg.
    confidence : Confidence, optional
        Whether the map can be trusted (scale below what spider veins need, little skin,
        an estimated scale, a strong cast), with the reasons.
    """

    mask: np.ndarray
    labels: np.ndarray
    strength: np.ndarray
    skeleton: np.ndarray
    vein_ids: np.ndarray
    veins: tuple[VeinSegment, ...]
    px_per_mm: float
    px_per_mm_estimated: bool
    leg_mask: np.ndarray
    sensitivity: float = 0.5
    contrast: VeinContrast | None = None
    neutral: np.ndarray | None = None
    scale: Scale | None = None
    skin: SkinMap | None = None
    confidence: Confidence | None = None

    @property
    def strength_by_class(self) -> dict[str, np.ndarray]:
        """Contrast maps of both classes, ``{"spider": (H, W), "reticular": (H, W)}``."""
        if self.contrast is None:
            return {}
        return {"spider": self.contrast.spider, "reticular": self.contrast.reticular}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays)."""
        ppm2 = self.px_per_mm**2
        by_class: dict[str, dict[str, float | int]] = {}
        for code, name in CLASS_NAMES.items():
            segs = [v for v in self.veins if v.cls == name]
            by_class[name] = {
                "count": len(segs),
                "length_mm": round(sum(v.length_mm for v in segs), 2),
                "area_mm2": round(float((self.labels == code).sum()) / ppm2, 2),
            }
        return {
            "shape": list(self.mask.shape),
            "px_per_mm": round(float(self.px_per_mm), 4),
            "px_per_mm_estimated": bool(self.px_per_mm_estimated),
            "sensitivity": float(self.sensitivity),
            "vein_pixels": int(self.mask.sum()),
            "leg_pixels": int(self.leg_mask.sum()),
            "by_class": by_class,
            "veins": [v.to_dict() for v in self.veins],
            "scale": None if self.scale is None else self.scale.to_dict(),
            "skin": None if self.skin is None else self.skin.to_dict(),
            "confidence": None if self.confidence is None else self.confidence.to_dict(),
        }


# --------------------------------------------------------------------------- helpers


def estimate_px_per_mm(image: Photo | np.ndarray) -> float:
    """Scale of a photo whose scale is unknown (:func:`vein_tracker.scale.estimate_scale`).

    From the width of a leg whose two outlines are in the frame (adult lower legs are
    about 100 mm wide), else from the frame size: clinic photos of one treatment area
    frame about :data:`ASSUMED_FIELD_MM` of leg along the long side, so a 2000 × 1500
    close-up is about 10 px/mm. Either way an estimate (see ``Scale.low``/``high``).

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


def _level_size(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    return (max(8, round(shape[1] * factor)), max(8, round(shape[0] * factor)))


def _background(signals: np.ndarray, leg: np.ndarray, ppm: float, channels: int = 4) -> np.ndarray:
    """Local skin background of the first ``channels`` signal channels (coarse level),
    excluding veins; the others are left 0.

    Two exclusion passes: pixels standing out of the first estimate, widened by a
    class-sized rim (a reticular vein's Gaussian tails reach ~1.5 mm), are left out of
    the second and third. Excluding the tails as well as the core keeps the contrast
    linear in the vein's amplitude: a faded vein loses the same share of its contrast.
    """
    w0 = leg.astype(np.float32)
    out = np.zeros_like(signals)
    den0_at: dict[float, np.ndarray] = {}  # the leg's weight, once per scale
    for c in range(min(channels, signals.shape[2])):
        x = np.ascontiguousarray(signals[..., c])
        sigma = _BG_SIGMA_MM[c] * ppm
        if sigma not in den0_at:
            den0_at[sigma] = cv2.GaussianBlur(w0, (0, 0), sigma)
        den0 = den0_at[sigma]
        bg = cv2.GaussianBlur(x * w0, (0, 0), sigma) / np.maximum(den0, 1e-3)
        k = 2 * max(1, int(round(_BG_RIM_MM[c] * ppm))) + 1
        rim = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        for _ in range(2):
            resid = x - bg
            spread = 1.4826 * float(np.median(np.abs(resid[leg]))) if leg.any() else 0.0
            # Candidates (vein-like excess, either sign for neutral/chroma) are left out.
            r = np.abs(resid) if c >= 2 else resid
            cand = cv2.dilate((r > max(2.0 * spread, 1e-4)).astype(np.uint8), rim)
            w1 = w0 * (cand == 0)
            den1 = cv2.GaussianBlur(w1, (0, 0), sigma)
            bg1 = cv2.GaussianBlur(x * w1, (0, 0), sigma) / np.maximum(den1, 1e-3)
            # Where the exclusion left too little skin, keep the previous estimate.
            bg = np.where(den1 > 0.15 * den0, bg1, bg)
        out[..., c] = bg
    return out


def _hessian_ridges(x: np.ndarray, sigmas_px: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """Multi-scale bright-ridge measure of ``x``.

    Returns ``(ridge, sigma, nx, ny)``: ridge amplitude (≈ line contrast in the units of
    ``x``), best scale in px, and the unit normal across the ridge.
    """
    d1 = np.array([-0.5, 0.0, 0.5], np.float32)
    d2 = np.array([1.0, -2.0, 1.0], np.float32)
    one = np.array([1.0], np.float32)
    best = np.zeros(x.shape, np.float32)
    best_s = np.zeros(x.shape, np.float32)
    bxx = np.zeros(x.shape, np.float32)
    bxy = np.zeros(x.shape, np.float32)
    byy = np.zeros(x.shape, np.float32)
    # three scratch maps, worked in place (the arithmetic of the comments, same order)
    l1 = np.empty(x.shape, np.float32)
    disc = np.empty(x.shape, np.float32)
    ratio = np.empty(x.shape, np.float32)
    better = np.empty(x.shape, bool)
    for s in sigmas_px:
        g = cv2.GaussianBlur(x, (0, 0), s)
        dxx = cv2.sepFilter2D(g, cv2.CV_32F, d2, one)
        dyy = cv2.sepFilter2D(g, cv2.CV_32F, one, d2)
        dxy = cv2.sepFilter2D(g, cv2.CV_32F, d1, d1)
        half_tr = np.multiply(np.add(dxx, dyy, out=l1), 0.5, out=l1)  # 0.5 (dxx + dyy)
        # disc = sqrt((0.5 (dxx − dyy))² + dxy²)
        np.multiply(np.subtract(dxx, dyy, out=disc), 0.5, out=disc)
        cv2.pow(disc, 2, dst=disc)
        np.add(disc, np.multiply(dxy, dxy, out=ratio), out=disc)
        cv2.sqrt(disc, dst=disc)
        l2 = np.add(half_tr, disc, out=ratio)
        l1 = np.subtract(half_tr, disc, out=l1)  # most negative: across the ridge
        # Blobs (both curvatures negative and similar) are not lines:
        # ratio = clip(l2 / min(l1, −1e-12), 0, 1)
        ratio = np.clip(
            np.divide(l2, np.minimum(l1, -1e-12, out=disc), out=ratio), 0.0, 1.0, out=ratio
        )
        # r = max(−l1, 0) (1 − ratio)² s² gain
        r = np.maximum(np.negative(l1, out=l1), 0.0, out=l1)
        np.multiply(r, np.square(np.subtract(1.0, ratio, out=ratio), out=ratio), out=r)
        np.multiply(r, np.float32(s * s * _RIDGE_GAIN), out=r)
        np.greater(r, best, out=better)
        np.copyto(best, r, where=better)
        np.copyto(best_s, np.float32(s), where=better)
        np.copyto(bxx, dxx, where=better)
        np.copyto(bxy, dxy, where=better)
        np.copyto(byy, dyy, where=better)
    # Eigenvector of the most negative eigenvalue = normal across the ridge.
    theta = 0.5 * np.arctan2(2.0 * bxy, bxx - byy) + np.float32(np.pi / 2)
    return best, best_s, np.cos(theta).astype(np.float32), np.sin(theta).astype(np.float32)


def _nms(ridge: np.ndarray, nx: np.ndarray, ny: np.ndarray) -> np.ndarray:
    """Pixels that are a local maximum of ``ridge`` across the ridge (4 directions)."""
    p = np.pad(ridge, 1, mode="constant")
    h, w = ridge.shape
    ang = (np.round(np.arctan2(ny, nx) / (np.pi / 4)).astype(np.int8)) % 4
    out = np.zeros(ridge.shape, bool)
    for k, (dy, dx) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        a = p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        b = p[1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]
        sel = ang == k
        out |= sel & (ridge >= a) & (ridge >= b)  # symmetric, so a flip gives the same lines
    return out


def _hysteresis(cand: np.ndarray, strong: np.ndarray, min_px: int) -> np.ndarray:
    """The 8-connected pieces of ``cand`` that hold a ``strong`` pixel and ``min_px`` pixels.

    Not ``skimage.filters.apply_hysteresis_threshold``: it labels 4-connected pieces
    (``ndimage.label``'s default) and takes no connectivity, while the non-maximum-
    suppressed centrelines are 8-connected lines: it splits them at every diagonal step
    (the benchmark's Dice on phantom seed 1001 falls from 0.918 to 0.853).
    """
    cc = components(cand)
    n, lab = cc.n, cc.labels
    if n <= 1:
        return np.zeros(cand.shape, bool)
    has_strong = np.zeros(n, bool)
    has_strong[np.unique(lab[strong & cand])] = True
    has_strong[0] = False
    has_strong &= cc.areas >= min_px
    return has_strong[lab]


# --------------------------------------------------------------------------- pipeline


@dataclass(frozen=True, eq=False)
class _Maps:
    """Internal: contrast maps at the working level L0 and at half of it (L1)."""

    spider: np.ndarray  # (H0, W0) float32 spider contrast at L0
    neutral: np.ndarray  # (H0, W0) float32 neutral contrast at L0 (full-resolution luminance)
    half: np.ndarray  # (H1, W1, 4) float32 at L1: spider, reticular, neutral, deep chroma
    retic_detect: np.ndarray  # (H1, W1) float32: reticular contrast guided by luminance
    hair: np.ndarray  # (H1, W1) bool: hair, moles and other neutral-dark marks at L1 (core)
    leg: np.ndarray  # (H0, W0) bool
    leg_half: np.ndarray  # (H1, W1) bool
    leg_coarse: np.ndarray  # bool at the background level L2
    ppm_work: float
    ppm_half: float
    ppm_coarse: float
    skin: SkinMap | None  # what find_skin said, when the leg was found here
    dark_coarse: np.ndarray  # bool at L2: skin too dark for its OD to be measured


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


def _coarse_leg(
    small: np.ndarray,
    coarse_size: tuple[int, int],
    ppm_work: float,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, SkinMap]:
    """Every skin region found on the working-level photo (:func:`skin.find_skin`), less
    ``exclude`` (a calibration card: its edge is an outline too), at the coarse level, as
    uint8 0/255, and the finding itself."""
    found = find_skin(small, px_per_mm=ppm_work)
    skin = found.mask
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
) -> np.ndarray:
    """The leg skin :func:`segment` finds on a photo when given no ``leg_mask``.

    The same mask as ``segment(photo, px_per_mm=px_per_mm).leg_mask``, without finding
    the veins: for a caller that segments a processed copy of the photo (say, blurred)
    on the leg of the photo as taken. ``exclude`` (H, W) bool is left out, as
    :func:`segment` leaves out a calibration card it finds.

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
    leg_u8, _ = _coarse_leg(_resize(rgb, work_size), coarse_size, ppm_work, exclude)
    return _leg_full(_resize(leg_u8, work_size, cv2.INTER_LINEAR) >= 128, (w, h))


@dataclass(frozen=True, eq=False)
class _Signals:
    """Internal: what both the segmentation's maps and :func:`vein_contrast` start from."""

    od: np.ndarray  # (H0, W0, 3) float32 optical density at the working level L0
    half: np.ndarray  # (H1, W1, 4) float32 contrast at L1 (hair and moles filled in)
    bg: np.ndarray  # (H2, W2, 4) float32 skin background at the background level L2
    hair: np.ndarray  # (H1, W1) bool
    leg: np.ndarray  # (H0, W0) bool
    leg_half: np.ndarray  # (H1, W1) bool
    leg_coarse: np.ndarray  # (H2, W2) bool
    work_size: tuple[int, int]  # (W0, H0)
    ppm_work: float
    ppm_half: float
    ppm_coarse: float
    skin: SkinMap | None

    def at_work(self, channel: int) -> np.ndarray:
        """Contrast of projection ``channel`` at L0: OD less its background (off the leg
        too)."""
        out = cv2.transform(self.od, PROJECTION[channel : channel + 1]).reshape(self.od.shape[:2])
        out -= _resize(
            np.ascontiguousarray(self.bg[..., channel]), self.work_size, cv2.INTER_LINEAR
        )
        return out

    def spider(self) -> np.ndarray:
        """The spider contrast at L0, 0 off the leg."""
        out = self.at_work(0)
        out[~self.leg] = 0.0
        return out


def _signals(
    rgb: np.ndarray,
    ppm: float,
    leg_mask: np.ndarray | None,
    deep: bool = True,
    exclude: np.ndarray | None = None,
) -> _Signals:
    """The signals; with ``deep=False`` the deep-chroma channel (3) is left 0 (what
    :func:`vein_contrast` reads needs none of it). ``exclude`` is left out of the skin
    found when no ``leg_mask`` is given."""
    h, w = rgb.shape[:2]
    work_size, ppm_work, half_size, coarse_size, ppm_coarse = _levels((h, w), ppm)
    small = _resize(rgb, work_size)
    od = cv2.LUT(small, _OD_LUT)
    ppm_half = ppm_work * half_size[0] / work_size[0]
    sig_half = cv2.transform(_resize(od, half_size), PROJECTION)  # (h1, w1, 4)
    sig_c = _resize(sig_half, coarse_size)
    skin: SkinMap | None = None
    if leg_mask is None:
        leg_u8, skin = _coarse_leg(small, coarse_size, ppm_work, exclude)
        leg_c = leg_u8 > 0
        leg = _resize(leg_u8, work_size, cv2.INTER_LINEAR) >= 128
        leg_half = _resize(leg_u8, half_size, cv2.INTER_LINEAR) >= 128
    else:
        leg_u8 = leg_mask.astype(np.uint8) * 255
        leg = _resize(leg_u8, work_size) >= 128
        leg_half = _resize(leg_u8, half_size) >= 128
        leg_c = _resize(leg_u8, coarse_size) >= 128
    n_ch = 4 if deep else 3
    bg = _background(sig_c, leg_c, ppm_coarse, n_ch)
    half = sig_half - _resize(bg, half_size, cv2.INTER_LINEAR)
    half[~leg_half] = 0.0
    if not deep:
        half[..., 3] = 0.0
    hair = _remove_hair(half, leg_half, ppm_half, n_ch)
    return _Signals(
        od, half, bg, hair, leg, leg_half, leg_c, work_size, ppm_work, ppm_half, ppm_coarse, skin
    )


def _compute_maps(
    rgb: np.ndarray, ppm: float, leg_mask: np.ndarray | None, exclude: np.ndarray | None = None
) -> _Maps:
    sg = _signals(rgb, ppm, leg_mask, exclude=exclude)
    half, leg_half = sg.half, sg.leg_half
    half[..., 0] = _guided(half[..., 0], half[..., 2], _GF_RADIUS_PX, _GF_EPS)
    half[~leg_half, 0] = 0.0
    retic_det = _guided(half[..., 1], half[..., 2], _GF_RADIUS_PX, _GF_EPS_RETIC)
    retic_det[~leg_half] = 0.0
    return _Maps(
        sg.spider(),
        sg.at_work(2),  # neutral
        half,
        retic_det,
        sg.hair,
        sg.leg,
        leg_half,
        sg.leg_coarse,
        sg.ppm_work,
        sg.ppm_half,
        sg.ppm_coarse,
        sg.skin,
        _too_dark(sg.od, (sg.leg_coarse.shape[1], sg.leg_coarse.shape[0])),
    )


def _too_dark(od: np.ndarray, coarse_size: tuple[int, int]) -> np.ndarray:
    """Where the photo is too dark for a vein's optical density to be read (L2 bool).

    An 8-bit photo's code step is worth more OD the darker the pixel: below about sRGB
    57 (OD 3.2) one step is over 0.04 OD and JPEG's errors of a few steps rival a spider
    vein's whole contrast. A leg's shaded flank, a dark cast shadow and under-exposed
    brown skin are left unsearched rather than read as noise.
    """
    mean_od = cv2.transform(od, np.full((1, 3), 1.0 / 3.0, np.float32)).reshape(od.shape[:2])
    return np.asarray(_resize(mean_od, coarse_size) > _DARK_OD, dtype=bool)


def _guided(p: np.ndarray, guide: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Guided filter (He et al.) of ``p`` by ``guide``, from box filters."""
    k = (2 * r + 1, 2 * r + 1)
    p = np.ascontiguousarray(p)
    g = np.ascontiguousarray(guide)
    mg = cv2.boxFilter(g, -1, k)
    mp = cv2.boxFilter(p, -1, k)
    cov = cv2.boxFilter(g * p, -1, k) - mg * mp
    var = cv2.boxFilter(g * g, -1, k) - mg * mg
    a = cov / (var + np.float32(eps))
    b = mp - a * mg
    return cv2.boxFilter(a, -1, k) * g + cv2.boxFilter(b, -1, k)


def _remove_hair(
    contrast: np.ndarray, leg: np.ndarray, ppm: float, channels: int = 4
) -> np.ndarray:
    """Replace the non-spider contrast under hair and moles by that of the skin around them.

    Veins carry a fixed share of neutral OD (0.90 of a spider's amplitude, 0.94 of a
    deep vein's); hair, moles and shadows carry far more. Pixels with that excess, and
    a rim of 0.2 mm around them, are filled from their surroundings (normalised
    convolution), so hair crossing or lying beside a vein neither adds to it nor cuts
    it. The spider channel is blind to neutral OD by construction and is left as is.
    Works at half resolution, where JPEG's half-resolution chroma is consistent with
    the luminance. Modifies ``contrast`` (H, W, 4) in place (its first ``channels``);
    returns the mask.
    """
    # JPEG smears a thin spider's colour over its neighbours while its luminance stays
    # sharp, so the spider share is taken as the local maximum over 3 × 3 pixels.
    spider = cv2.dilate(np.maximum(contrast[..., 0], 0.0), np.ones((3, 3), np.uint8))
    expected = _NEUTRAL_PER_SPIDER * spider + (
        _NEUTRAL_PER_RETIC * np.maximum(contrast[..., 1], 0.0)
    )
    # The relative term tolerates colour smeared by JPEG's half-resolution chroma.
    core = contrast[..., 2] - expected > _HAIR_EXCESS_OD + _HAIR_EXCESS_REL * expected
    if not core.any():
        return core
    k = 2 * max(1, int(round(_HAIR_RIM_MM * ppm))) + 1
    hair = cv2.dilate(core.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    keep = (leg & (hair == 0)).astype(np.float32)
    sigma = max(1.0, 0.2 * ppm)
    num = cv2.GaussianBlur(contrast[..., 1:channels] * keep[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(keep, (0, 0), sigma)
    sel = hair.astype(bool) & leg
    den_sel = den[sel]
    fill = num[sel] / np.maximum(den_sel, 1e-3)[:, None]
    # only the filled pixels are written (no copy of the channels out and back)
    contrast[sel, 1:channels] = np.where((den_sel > 0.05)[:, None], fill, 0.0)
    return core & leg


def vein_contrast(
    photo: Photo | np.ndarray, *, px_per_mm: float, leg_mask: np.ndarray | None = None
) -> VeinContrast:
    """Continuous spider and reticular vein contrast over the local skin background.

    The contrast of class *k* at a pixel is ``w_k · (OD − OD_background)`` where OD is
    the optical density of the linearised sRGB pixel, ``OD_background`` a Gaussian
    average (σ 1.5 mm spider, 4 mm reticular) of the surrounding leg skin with vein
    candidates left out, and ``w_k`` the weights of the module docstring. Properties
    measurement relies on:

    * linear in vein absorption: a vein of OD amplitude ``a`` along the class direction
      reads ``≈ a`` at its centre (less what the photo's blur spreads away);
    * invariant to exposure and white balance (per-channel OD offsets), to smooth
      shading and to diffuse patches wider than the background scale (bruises);
    * blind to melanin (freckles, moles, haemosiderin staining): ``w_k · MELANIN = 0``;
      the spider map is blind to neutral OD (hair, shadows) as well;
    * ≈ 0 on vein-free skin, 0 outside the leg.

    The maps are those of :attr:`Segmentation.contrast` for the same inputs.

    Parameters
    ----------
    photo : Photo or ndarray, shape (H, W, 3), uint8
        Upright RGB photo.
    px_per_mm : float
        Scale of the photo, pixels per millimetre.
    leg_mask : ndarray, shape (H, W), bool, optional
        Leg skin; estimated from colour when not given.

    Returns
    -------
    VeinContrast
        Maps of shape (H, W), float32, OD units.
    """
    rgb = as_rgb(photo)
    check_px_per_mm(px_per_mm)
    shape = (int(rgb.shape[0]), int(rgb.shape[1]))
    lm = None if leg_mask is None else check_mask(leg_mask, shape=shape, name="leg_mask")
    # Only the spider map and the reticular contrast are read: none of the detection
    # maps (guided filters, neutral map) the segmentation makes from the same signals.
    sg = _signals(rgb, float(px_per_mm), lm, deep=False)
    return _contrast_full(sg.spider(), sg.half, sg.leg, shape, float(px_per_mm))


def _contrast_full(
    spider: np.ndarray,
    half: np.ndarray,
    leg_work: np.ndarray,
    shape: tuple[int, int],
    ppm: float,
) -> VeinContrast:
    size = (shape[1], shape[0])
    sp = _resize(spider, size, cv2.INTER_LINEAR)
    if sp is spider:
        sp = sp.copy()
    rt = _resize(np.ascontiguousarray(half[..., 1]), size, cv2.INTER_LINEAR)
    leg = _leg_full(leg_work, size)
    sp[~leg] = 0.0
    rt[~leg] = 0.0
    return VeinContrast(spider=sp, reticular=rt, leg_mask=leg, px_per_mm=ppm)


def _local_noise(
    ridge: np.ndarray, inner: np.ndarray, noise: float, window_px: float
) -> np.ndarray:
    """The ridge noise around each pixel: the global robust level scaled by the local mean
    of the (clipped) ridge map over skin, never below the global level."""
    if not inner.any() or noise <= 0:
        return np.full(ridge.shape, noise, np.float32)
    w = inner.astype(np.float32)
    clipped = np.minimum(ridge, np.float32(3.0 * noise)) * w
    glob = float(clipped[inner].mean())
    if glob <= 0:
        return np.full(ridge.shape, noise, np.float32)
    num = cv2.GaussianBlur(clipped, (0, 0), window_px)
    den = cv2.GaussianBlur(w, (0, 0), window_px)
    local = num / np.maximum(den, 1e-3) / np.float32(glob)
    return np.asarray(np.maximum(local, 1.0) * np.float32(noise), np.float32)


def _ridge_not_edge(
    x: np.ndarray,
    neutral: np.ndarray,
    centre: np.ndarray,
    sigma: np.ndarray,
    nx: np.ndarray,
    ny: np.ndarray,
    neutral_share: float,
    dark_min: float,
    dark_max: float,
    long_px: int,
) -> np.ndarray:
    """The centreline pieces that are ridges, not the inner lobe of a step nor a shadow.

    Each centreline pixel's two flanks are read :data:`_FLANK_SIGMAS` ridge scales
    across it, on the class map and on the neutral OD, both smoothed at the ridge's
    scale. A vein stands above both flanks of its class map by a similar amount and
    darkens the skin in luminance no more on one side than on the other; a leg outline,
    a shadow's edge or a finger's edge drops on one side only, with a luminance step
    larger than the line it leaves in the colour map. Single pixels are noisy (texture,
    branching), so each 8-connected piece is judged by its medians.
    """
    from scipy.ndimage import map_coordinates  # lazy: a slow import

    cc = components(centre)
    if cc.n <= 1:
        return centre
    ys, xs = np.divmod(cc.idx, centre.shape[1])
    s = sigma[ys, xs]
    ratio = np.zeros(len(ys), np.float64)
    step = np.zeros(len(ys), np.float64)
    dark = np.zeros(len(ys), np.float64)
    for sv in np.unique(s):
        sel = np.flatnonzero(s == sv)
        g = cv2.GaussianBlur(x, (0, 0), float(sv))
        gn = cv2.GaussianBlur(neutral, (0, 0), float(sv))
        d = max(_FLANK_MIN_PX, _FLANK_SIGMAS * float(sv))
        y0 = ys[sel].astype(np.float64)
        x0 = xs[sel].astype(np.float64)
        ddx = nx[ys[sel], xs[sel]].astype(np.float64) * d
        ddy = ny[ys[sel], xs[sel]].astype(np.float64) * d
        c = g[ys[sel], xs[sel]].astype(np.float64)
        # Each side is its lower reading at one and two flank distances: a neighbouring
        # vein fills one reading only, a step's plateau both.
        dl = c - np.minimum(
            map_coordinates(g, [y0 - ddy, x0 - ddx], order=1, mode="nearest"),
            map_coordinates(g, [y0 - 2 * ddy, x0 - 2 * ddx], order=1, mode="nearest"),
        )
        dr = c - np.minimum(
            map_coordinates(g, [y0 + ddy, x0 + ddx], order=1, mode="nearest"),
            map_coordinates(g, [y0 + 2 * ddy, x0 + 2 * ddx], order=1, mode="nearest"),
        )
        lo, hi = np.minimum(dl, dr), np.maximum(dl, dr)
        ratio[sel] = lo / np.maximum(hi, 1e-6)
        nl = map_coordinates(gn, [y0 - ddy, x0 - ddx], order=1, mode="nearest").astype(np.float64)
        nr = map_coordinates(gn, [y0 + ddy, x0 + ddx], order=1, mode="nearest").astype(np.float64)
        step[sel] = np.abs(nl - nr) / np.maximum(hi, 1e-6)
        line = 0.5 * (dl + dr)
        dark[sel] = (gn[ys[sel], xs[sel]] - 0.5 * (nl + nr)) / np.maximum(line, 1e-6)
    order = np.argsort(cc.at, kind="stable")
    bounds = np.searchsorted(cc.at[order], np.arange(cc.n + 1))
    keep = np.zeros(cc.n, bool)
    for k in range(1, cc.n):
        part = order[bounds[k] : bounds[k + 1]]
        if not len(part):
            continue
        # A short stub beside a stronger branch has one flank on that branch: the
        # balance is read on pieces long enough to be an outline's or a shadow's.
        keep[k] = (
            (len(part) < long_px or float(np.median(ratio[part])) >= _FLANK_BALANCE)
            and float(np.median(step[part])) <= _STEP_PER_LINE
            and dark_min * neutral_share <= float(np.median(dark[part])) <= dark_max * neutral_share
        )
    return keep[cc.labels]


@dataclass(frozen=True, eq=False)
class _Centrelines:
    """Centreline seeds of one class, in pixels of the level its footprint is drawn at."""

    ys: np.ndarray
    xs: np.ndarray
    sigma_px: np.ndarray  # best ridge scale, in that level's px


def _centrelines(maps: _Maps, cls: int, sensitivity: float, roi_half: np.ndarray) -> _Centrelines:
    """Ridges of one class: Hessian, non-maximum suppression, hysteresis, vetoes.

    Spider ridges are found at L1 and returned at L0; reticular ridges at L2 and
    returned at L1.
    """
    half_shape = maps.leg_half.shape
    if cls == SPIDER:
        sig = maps.half
        det_shape = half_shape
        out_shape = maps.leg.shape
    else:
        det_size = _level_size(half_shape, min(1.0, _RETIC_DETECT_PX_PER_MM / maps.ppm_half))
        sig = _resize(maps.half, det_size)
        det_shape = (det_size[1], det_size[0])
        out_shape = half_shape
    det_size = (det_shape[1], det_shape[0])
    ppm_det = maps.ppm_half * det_shape[1] / half_shape[1]
    if cls == SPIDER:
        cd = np.ascontiguousarray(sig[..., 0])
    else:
        cd = _resize(maps.retic_detect, det_size)
    sigmas_mm = _SPIDER_SIGMAS_MM if cls == SPIDER else _RETIC_SIGMAS_MM
    sigmas = tuple(max(_MIN_SIGMA_PX, s * ppm_det) for s in sigmas_mm)
    ridge, best_s, nx, ny = _hessian_ridges(cd, sigmas)

    # Never on the leg's outline: erode the leg at the coarse level first (cheap).
    k = 2 * max(1, int(round(_EDGE_MARGIN_MM[cls] * maps.ppm_coarse))) + 1
    inner_c = cv2.erode(
        maps.leg_coarse.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    )
    inner_c[maps.dark_coarse] = 0
    # Nor at the frame's edge, where the skin's background is seen from one side only.
    b = max(1, int(round(_FRAME_MARGIN_MM * maps.ppm_coarse)))
    inner_c[:b, :] = 0
    inner_c[-b:, :] = 0
    inner_c[:, :b] = 0
    inner_c[:, -b:] = 0
    inner = _resize(inner_c * 255, det_size, cv2.INTER_LINEAR) >= 128
    inner &= _resize(roi_half.astype(np.uint8) * 255, det_size) >= 128
    ridge[~inner] = 0.0
    vals = ridge[inner]
    noise = 1.4826 * float(np.median(vals)) if vals.size else 1.0
    k_hi = _K_HI_MAX - (_K_HI_MAX - _K_HI_MIN) * sensitivity
    floor = _FLOOR_OD[cls] * (1.5 - sensitivity)
    # The noise floor is local: rough, hairy or dark skin (a shaded flank, where the
    # camera's noise is larger in OD) raises it where it is, not over the whole leg.
    hi = np.maximum(k_hi * _local_noise(ridge, inner, noise, _NOISE_WINDOW_MM * ppm_det), floor)
    centre = _nms(ridge, nx, ny) & (ridge > _LO_FRACTION * hi)

    # Colour vetoes: hair and moles (neutral-dark) for spiders, a deep vein's bluish
    # chroma for reticular veins (hair, folds and shading have none).
    if cls == SPIDER:
        centre &= ~maps.hair
    else:
        amp = np.maximum(cv2.GaussianBlur(cd, (0, 0), 0.7), 0.0)
        centre &= sig[..., 3] > _RETIC_CHROMA_RATIO * amp
    min_px = max(2, int(round(_MIN_LENGTH_MM[cls] * ppm_det)))
    centre = _hysteresis(centre, ridge > hi, min_px)
    # A vein is a line darker than the skin on both sides; an outline, a fold, a
    # shadow's edge or a finger's edge is a step (one side only).
    centre = _ridge_not_edge(
        cd,
        np.ascontiguousarray(sig[..., 2]),
        centre,
        best_s,
        nx,
        ny,
        NEUTRAL_PER_CLASS[cls],
        _DARK_MIN_SHARE[cls],
        _DARK_PER_SHARE[cls],
        2 * min_px,
    )
    centre = _luminance_support(centre, cd, sig[..., 2], _SUPPORT_RATIO[cls])

    ys, xs = np.nonzero(centre)
    f = out_shape[1] / det_shape[1]
    # Every finer pixel under a seed becomes a seed (symmetric under flips).
    n = max(1, int(math.ceil(f - 1e-6)))
    offs = (np.arange(n) + 0.5) * (f / n)
    yo = np.floor(ys[:, None, None] * f + offs[None, :, None]) + np.zeros((1, 1, n))
    xo = np.floor(xs[:, None, None] * f + offs[None, None, :]) + np.zeros((1, n, 1))
    yo = np.clip(yo.ravel().astype(np.int32), 0, out_shape[0] - 1)
    xo = np.clip(xo.ravel().astype(np.int32), 0, out_shape[1] - 1)
    sig = np.repeat(best_s[ys, xs] * f, n * n)
    return _Centrelines(yo, xo, sig)


def _luminance_support(
    centre: np.ndarray, amp: np.ndarray, neutral: np.ndarray, ratio: float
) -> np.ndarray:
    """Keep centreline components whose neutral OD is at least ``ratio`` × their contrast.

    Blood darkens every channel (a spider's neutral OD is 0.90 of its amplitude, a deep
    vein's 0.94), so a real vein is dark in luminance too. JPEG stores colour at half
    resolution in 8 × 8 blocks: its chroma errors make ridges in the colour projections
    that have no luminance behind them (neutral ≈ 0 or negative), and they are dropped.
    """
    n, lab = cv2.connectedComponents(centre.astype(np.uint8), connectivity=8)
    if n <= 1:
        return centre
    li = lab[centre]
    s_neu = np.bincount(li, weights=neutral[centre], minlength=n)
    s_amp = np.bincount(li, weights=np.maximum(amp[centre], 0.0), minlength=n)
    keep = s_neu >= ratio * s_amp
    keep[0] = False
    return keep[lab]


def _footprint_margin(
    sm: np.ndarray,
    lines: _Centrelines,
    frac: np.ndarray,
    reach_px: float,
    floor: float,
    region: np.ndarray,
    luminance: np.ndarray | None = None,
) -> np.ndarray:
    """Half-height rule around seeds: ``sm − threshold of the nearest seed`` (> 0 inside).

    With ``luminance`` (a full-resolution neutral contrast map), a pixel must also reach
    :data:`_LUMA_FRACTION` of the seed's luminance contrast: JPEG smears the colour of a
    thin vein over its neighbours, its luminance stays sharp. Returns a float32 map, −1
    where no seed is within reach.
    """
    out = np.full(sm.shape, -1.0, np.float32)
    if not len(lines.ys):
        return out
    seeds = np.ones(sm.shape, np.uint8)
    seeds[lines.ys, lines.xs] = 0
    dist, lab = cv2.distanceTransformWithLabels(
        seeds, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    nlab = int(lab.max()) + 1
    ids = lab[lines.ys, lines.xs]
    thr_lut = np.full(nlab, np.inf, np.float32)
    half_lut = np.zeros(nlab, np.float32)
    peak = sm[lines.ys, lines.xs]
    thr_lut[ids] = np.where(peak > 0, np.maximum(frac * peak, floor), np.inf)
    half_lut[ids] = np.minimum(reach_px, 1.0 + 2.5 * lines.sigma_px)
    idx = np.flatnonzero((dist <= reach_px).ravel() & region.ravel())
    li = lab.ravel()[idx]
    ok = dist.ravel()[idx] <= half_lut[li]
    idx, li = idx[ok], li[ok]
    marg = sm.ravel()[idx] - thr_lut[li]
    if luminance is not None:
        lum_lut = np.full(nlab, -np.inf, np.float32)
        lum_peak = luminance[lines.ys, lines.xs]
        # Only seeds that are dark in luminance constrain the width (not hair-filled ones).
        lum_lut[ids] = np.where(lum_peak > 0, _LUMA_FRACTION * lum_peak, -np.inf)
        marg = np.where(luminance.ravel()[idx] >= lum_lut[li], marg, np.float32(-1.0))
    out.ravel()[idx] = np.maximum(marg, -1.0)
    return out


def _noise_floor(sm: np.ndarray, leg: np.ndarray, cls: int) -> float:
    v = sm[::4, ::4][leg[::4, ::4]]
    return _FOOTPRINT_NOISE_K[cls] * 1.4826 * float(np.median(np.abs(v))) if v.size else 0.0


def _labels_at_work(
    maps: _Maps, lines: dict[int, _Centrelines], region: np.ndarray, region_half: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Class labels and centreline skeleton at the working level L0.

    The footprint rule: a pixel belongs to the vein of its nearest seed when it is
    within reach and its lightly smoothed class contrast is at least a fraction of the
    seed's. The fraction is 1/2 for the flat-topped spider profile; for the
    Gaussian-like reticular profile it is corrected for the smoothing, so the mask keeps
    the vein's full width at half maximum. Spiders lie over reticular veins (the
    superficial vessel wins a pixel).
    """
    from skimage.morphology import skeletonize  # lazy: a slow import (SciPy)

    shape = maps.leg.shape
    size = (shape[1], shape[0])
    labels = np.zeros(shape, np.uint8)
    skeleton = np.zeros(shape, bool)

    rl = lines[RETICULAR]
    if len(rl.ys):
        s_px = max(0.6, _RETIC_SMOOTH_MM * maps.ppm_half)
        sm_r = cv2.GaussianBlur(maps.retic_detect, (0, 0), s_px)
        # Gaussian profile of σ_v (ridge scale / √2), smoothed by s_px.
        sv2 = np.maximum(rl.sigma_px, 0.5) ** 2 / 2.0
        frac = np.exp(-math.log(2.0) * sv2 / (sv2 + s_px**2)).astype(np.float32)
        marg = _footprint_margin(
            sm_r,
            rl,
            frac,
            _MAX_HALF_WIDTH_MM[RETICULAR] * maps.ppm_half,
            _noise_floor(sm_r, maps.leg_half, RETICULAR),
            region_half,
        )
        inside_half = marg > 0
        if inside_half.any():
            sk_half = skeletonize(inside_half)
            marg_up = _resize(marg, size, cv2.INTER_LINEAR)
            labels[(marg_up > 0) & region] = RETICULAR
            skeleton |= _upsample_skeleton(sk_half, shape)

    sl = lines[SPIDER]
    if len(sl.ys):
        sm_s = cv2.GaussianBlur(maps.spider, (0, 0), 0.6)
        marg = _footprint_margin(
            sm_s,
            sl,
            np.full(len(sl.ys), _FOOTPRINT_FRACTION, np.float32),
            _MAX_HALF_WIDTH_MM[SPIDER] * maps.ppm_work,
            _noise_floor(sm_s, maps.leg, SPIDER),
            region,
            cv2.GaussianBlur(maps.neutral, (0, 0), 0.6),
        )
        labels[marg > 0] = SPIDER

    # Specks left by the rule at the ends of faint ridges are not veins.
    cc = components(labels > 0)
    n, lab = cc.n, cc.labels
    small = cc.areas < _MIN_AREA_MM2 * maps.ppm_work**2
    # Pieces that hold no centreline seed are noise that passed a faint seed's threshold.
    seeded = np.zeros(n, bool)
    seeded[lab[sl.ys, sl.xs]] = True
    seeded[lab[skeleton]] = True
    small |= ~seeded
    small[0] = False
    if small.any():
        labels.reshape(-1)[cc.idx[small[cc.at]]] = 0  # on the vein pixels only
    # The reticular centreline, redrawn from L1, is part of its vein even where the
    # upsampled edge rounding left it out; spiders lying over it keep their pixels.
    skeleton &= labels != SPIDER
    labels[skeleton & (labels == 0)] = RETICULAR
    sp = labels == SPIDER
    if sp.any():
        skeleton |= skeletonize(sp)
    return labels, skeleton


def _upsample_skeleton(sk: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Redraw an 8-connected skeleton on a finer grid of ``shape``, keeping it connected."""
    out = np.zeros(shape, bool)
    if sk.shape == shape:
        out |= sk
        return out
    fy = shape[0] / sk.shape[0]
    fx = shape[1] / sk.shape[1]
    ys, xs = np.nonzero(sk)
    yf = (ys + 0.5) * fy - 0.5
    xf = (xs + 0.5) * fx - 0.5

    def put(y: np.ndarray, x: np.ndarray) -> None:
        out[
            np.clip(np.floor(y).astype(np.int64), 0, shape[0] - 1),
            np.clip(np.floor(x).astype(np.int64), 0, shape[1] - 1),
        ] = True

    put(yf, xf)
    steps = max(1, int(math.ceil(max(fx, fy))))
    h, w = sk.shape
    for dy, dx in ((0, 1), (1, 1), (1, 0), (1, -1)):
        ny, nx = ys + dy, xs + dx
        ok = (ny < h) & (nx >= 0) & (nx < w)
        ok[ok] = sk[ny[ok], nx[ok]]
        for t in range(1, steps):
            put(yf[ok] + t * dy * fy / steps, xf[ok] + t * dx * fx / steps)
    return out


def segment(
    photo: Photo | np.ndarray,
    *,
    px_per_mm: float | None = None,
    roi: np.ndarray | None = None,
    leg_mask: np.ndarray | None = None,
    sensitivity: float = 0.5,
) -> Segmentation:
    """Segment spider and reticular veins in an upright leg photo.

    Parameters
    ----------
    photo : Photo or ndarray, shape (H, W, 3), uint8
        Upright RGB photo.
    px_per_mm : float, optional
        Scale in pixels per millimetre. Default: ``photo.px_per_mm`` when known, else
        estimated with :func:`estimate_px_per_mm` (``px_per_mm_estimated=True``).
    roi : ndarray, shape (H, W), bool, optional
        Region of interest; vein pixels outside it are not reported.
    leg_mask : ndarray, shape (H, W), bool, optional
        Leg skin; estimated from colour when not given. Backdrop never counts.
    sensitivity : float in [0, 1]
        0.5 is right for all photos; higher finds fainter veins (and more false ones),
        lower only the clearest.

    Returns
    -------
    Segmentation

    Raises
    ------
    ValueError
        Bad ``sensitivity``, ``px_per_mm``, or mask shape/dtype.
    """
    rgb = as_rgb(photo)
    if (
        isinstance(sensitivity, bool)
        or not isinstance(sensitivity, int | float | np.floating)
        or not 0.0 <= float(sensitivity) <= 1.0
    ):
        raise ValueError(f"sensitivity must be a number in [0, 1], got {sensitivity!r}")
    if px_per_mm is not None:
        check_px_per_mm(px_per_mm)
    shape = (int(rgb.shape[0]), int(rgb.shape[1]))
    roi_m = None if roi is None else check_mask(roi, shape=shape, name="roi")
    lm = None if leg_mask is None else check_mask(leg_mask, shape=shape, name="leg_mask")
    # A printed calibration card in the photo gives the scale (unless one is given) and
    # is no skin: its edges and colour patches are never veins.
    card = read_card(rgb)
    card_mask = None if card is None else card.mask(shape)
    if lm is not None and card_mask is not None:
        lm = lm & ~card_mask
    scale = resolve_scale(
        photo, px_per_mm=px_per_mm, card_px_per_mm=None if card is None else card.px_per_mm
    )
    ppm = float(np.clip(scale.px_per_mm, *PX_PER_MM_RANGE))
    estimated = scale.estimated
    sens = float(sensitivity)

    maps = _compute_maps(rgb, ppm, lm, card_mask)
    work_shape = maps.leg.shape
    work_size = (work_shape[1], work_shape[0])
    half_size = (maps.leg_half.shape[1], maps.leg_half.shape[0])
    if roi_m is not None:
        roi_u8 = roi_m.astype(np.uint8) * 255
        roi_w = _resize(roi_u8, work_size) >= 128
        roi_h = _resize(roi_u8, half_size) >= 128
    else:
        roi_w = np.ones(work_shape, bool)
        roi_h = np.ones(maps.leg_half.shape, bool)
    # The classes' ridges, and the contrast maps, in a second thread while this one
    # works (OpenCV and NumPy release the GIL; the same results as one after the other).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segment") as pool:
        retic_job = pool.submit(_centrelines, maps, RETICULAR, sens, roi_h)
        spider_lines = _centrelines(maps, SPIDER, sens, roi_h)
        lines = {SPIDER: spider_lines, RETICULAR: retic_job.result()}
        contrast_job = pool.submit(_contrast_full, maps.spider, maps.half, maps.leg, shape, ppm)
        labels_w, skel_w = _labels_at_work(maps, lines, maps.leg & roi_w, maps.leg_half & roi_h)
        contrast = contrast_job.result()

    size = (shape[1], shape[0])
    if work_size != size:
        # Upsample class by class through a linear blend, so edges stay sub-pixel; the
        # redrawn centrelines stay inside their veins.
        labels = np.zeros(shape, np.uint8)
        skeleton = np.zeros(shape, bool)
        for code in (RETICULAR, SPIDER):
            up = _resize((labels_w == code).astype(np.uint8) * 255, size, cv2.INTER_LINEAR)
            sk = _upsample_skeleton(skel_w & (labels_w == code), shape)
            labels[(up >= 128) | sk] = code
            skeleton |= sk
        skeleton &= labels > 0
    else:
        labels, skeleton = labels_w, skel_w
    leg = contrast.leg_mask
    if roi_m is not None:
        labels[~roi_m] = 0
        leg = leg & roi_m
    mask = labels > 0
    skeleton &= mask
    # Class contrast at the working level (one upsampling instead of three passes at a
    # 12 MP photo's full size).
    rt_w = _resize(np.ascontiguousarray(maps.half[..., 1]), work_size, cv2.INTER_LINEAR)
    rt_w = np.where(maps.leg, rt_w, np.float32(0.0))
    strength_w = np.maximum(maps.spider, rt_w)
    np.copyto(strength_w, maps.spider, where=labels_w == SPIDER)
    np.copyto(strength_w, rt_w, where=labels_w == RETICULAR)
    strength = _resize(strength_w, size, cv2.INTER_LINEAR) if work_size != size else strength_w
    if roi_m is not None:
        strength[~leg] = 0.0

    neutral_w = np.where(maps.leg, maps.neutral, np.float32(0.0))
    neutral = _resize(neutral_w, size, cv2.INTER_LINEAR) if work_size != size else neutral_w
    if roi_m is not None:
        neutral[~leg] = 0.0

    vein_ids, veins = _vein_objects(labels_w, skel_w, maps, rt_w, shape)
    return Segmentation(
        mask=mask,
        labels=labels,
        strength=strength,
        skeleton=skeleton,
        vein_ids=vein_ids,
        veins=veins,
        px_per_mm=ppm,
        px_per_mm_estimated=estimated,
        leg_mask=leg,
        sensitivity=sens,
        contrast=contrast,
        neutral=neutral,
        scale=scale,
        skin=maps.skin,
        confidence=_confidence(scale, maps.skin, leg),
    )


def _confidence(scale: Scale, skin: SkinMap | None, leg: np.ndarray) -> Confidence:
    """The segmentation's confidence: its scale, the skin in view and the light."""
    if skin is None:  # the caller gave the leg
        return combine(
            photo_reasons(scale=scale, skin_fraction=float(leg.mean()), skin_found=bool(leg.any()))
        )
    return combine(
        photo_reasons(
            scale=scale,
            skin_fraction=float(leg.mean()),
            skin_found=skin.found,
            cast_od=skin.cast_od,
            heavy_cast=skin.heavy_cast,
        )
    )


def _vein_objects(
    labels: np.ndarray,
    skeleton: np.ndarray,
    maps: _Maps,
    reticular: np.ndarray,
    out_shape: tuple[int, int],
) -> tuple[np.ndarray, tuple[VeinSegment, ...]]:
    """Connected veins of each class at the working level, ids resized to ``out_shape``."""
    ppm = maps.ppm_work
    vein_ids = np.zeros(labels.shape, np.int32)
    veins: list[VeinSegment] = []
    next_id = 1
    f = out_shape[1] / labels.shape[1]
    for code in (SPIDER, RETICULAR):
        m = labels == code
        if not m.any():
            continue
        cc = components(m)
        n, idx = cc.n, cc.idx
        area = cc.areas.astype(np.float64)
        stats = cc.boxes()
        skel_n = np.bincount(cc.at[skeleton.reshape(-1)[idx]], minlength=n).astype(np.float64)
        cval = (maps.spider if code == SPIDER else reticular).ravel()[idx]
        csum = np.bincount(cc.at, weights=cval, minlength=n)
        ids = np.arange(n, dtype=np.int32) + np.int32(next_id - 1)
        ids[0] = 0
        for i in range(1, n):
            length_px = max(skel_n[i] * _SKELETON_STEP, 1.0)
            x, y, bw, bh = (float(v) for v in stats[i, :4])
            veins.append(
                VeinSegment(
                    id=int(ids[i]),
                    cls=CLASS_NAMES[code],
                    length_mm=float(length_px / ppm),
                    width_mm=float(area[i] / length_px / ppm),
                    area_mm2=float(area[i] / ppm**2),
                    contrast=float(csum[i] / area[i]),
                    bbox=(
                        int(round(x * f)),
                        int(round(y * f)),
                        max(1, int(round(bw * f))),
                        max(1, int(round(bh * f))),
                    ),
                )
            )
        next_id += n - 1
        vein_ids.ravel()[idx] = ids[cc.at]
    if vein_ids.shape != out_shape:
        up = cv2.resize(vein_ids, (out_shape[1], out_shape[0]), interpolation=cv2.INTER_NEAREST)
        return np.asarray(up, dtype=np.int32), tuple(veins)
    return vein_ids, tuple(veins)


def overlay(
    image: Photo | np.ndarray,
    labels: np.ndarray,
    *,
    dim: float = 0.55,
    spider_rgb: tuple[int, int, int] = (255, 40, 90),
    reticular_rgb: tuple[int, int, int] = (40, 200, 255),
) -> np.ndarray:
    """Vein classes drawn over a dimmed photo.

    Parameters
    ----------
    image : Photo or ndarray, shape (H, W, 3), uint8
    labels : ndarray, shape (H, W), uint8 0/1/2
    dim : float in [0, 1]
        Brightness kept from the photo under and around the veins.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    rgb = as_rgb(image)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"labels must have shape {rgb.shape[:2]}, got {labels.shape}")
    if not 0.0 <= dim <= 1.0:
        raise ValueError(f"dim must be in [0, 1], got {dim}")
    out = (rgb.astype(np.float32) * dim).astype(np.uint8)
    out[labels == SPIDER] = spider_rgb
    out[labels == RETICULAR] = reticular_rgb
    return out
