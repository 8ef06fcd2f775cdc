"""Leg phantoms with exact ground truth: the yardstick every other module is measured against.

A phantom is a leg on a backdrop, built in optical density (OD): skin tone (melanin amount),
smooth mottling, neutral shading from the leg's curvature, and absorbers that add in OD
(spider veins along the haemoglobin direction, reticular veins along the deep-vein direction,
freckles and moles along melanin, near-neutral hair). A "photo" is the scene seen through a
:class:`Capture` (homography, optional smooth bend, exposure, white balance, blur, noise, JPEG).

Geometry lives in the leg's own baseline frame (pixels at ``Leg.px_per_mm``, x right, y down),
so a leg rendered at another resolution shows the same scene. Every photo comes with its
truth: vein footprint and class labels, vein ids, remaining visibility, leg and distractor
masks, and the exact map from each photo pixel to the baseline frame.

Not modelled (yet): injection-site redness, trapped blood, stocking marks, tattoos,
vignetting and flash glare.

This module generates and renders; it must not segment, register or measure real photos.
All randomness comes from ``numpy.random.Generator`` seeded by the caller (no global RNG):
the same seed and arguments give identical pixels.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import cv2
import numpy as np

from vein_tracker.optics import DEEP_VEIN_OD, HAEMOGLOBIN_OD, MELANIN_OD, NEUTRAL_OD

__all__ = [
    "TONES",
    "VEIN_CLASSES",
    "VEIN_STATUSES",
    "Bruise",
    "Capture",
    "Leg",
    "LegOutline",
    "PhantomPair",
    "Rendered",
    "Spot",
    "Stroke",
    "Vein",
    "default_px_per_mm",
    "identity_capture",
    "make_leg",
    "make_pair",
    "pair_truth",
    "random_capture",
    "render",
    "treat",
    "true_improvement",
]

#: Skin tones from light to brown, with the melanin OD each adds to the base skin.
TONES: dict[str, float] = {
    "light": 0.05,
    "fair": 0.30,
    "medium": 0.85,
    "olive": 1.20,
    "brown": 2.60,
}
#: Extra yellow (carotene-like, blue-absorbing) OD of a tone: olive skin is yellower.
_TONE_YELLOW: dict[str, float] = {"olive": 0.12}
VEIN_CLASSES = ("spider", "reticular")
VEIN_STATUSES = ("persisting", "faded", "cleared", "new", "recanalised")
LABEL_SPIDER = 1
LABEL_RETICULAR = 2

#: Width of the reference frame in mm: a 2000-px-wide phantom is 10 px/mm.
FRAME_WIDTH_MM = 200.0

# OD of lightly pigmented skin with its own blood content, per channel (R, G, B).
_SKIN_BASE_OD = np.array([0.22, 0.62, 0.80], dtype=np.float32)
# Bilirubin/biliverdin of an old bruise: absorbs blue, so it looks yellow.
_YELLOW_OD = np.array([0.10, 0.35, 0.93], dtype=np.float32)
_YELLOW_OD /= np.linalg.norm(_YELLOW_OD)
_HAIR_OD = NEUTRAL_OD + 0.25 * MELANIN_OD
_HAIR_OD = (_HAIR_OD / np.linalg.norm(_HAIR_OD)).astype(np.float32)
_NEUTRAL3 = np.ones(3, dtype=np.float32)  # neutral OD of 1 in every channel
# Bruise colours: fresh (purple, haemoglobin) and deeper/older blue (deoxygenated blood).
_BRUISE_PURPLE = HAEMOGLOBIN_OD.astype(np.float32)
_BRUISE_BLUE = (0.7 * DEEP_VEIN_OD + 0.4 * HAEMOGLOBIN_OD).astype(np.float32)

_BACKDROPS: tuple[tuple[float, float, float], ...] = (
    (0.20, 0.26, 0.36),  # grey-blue wall
    (0.045, 0.05, 0.06),  # dark cloth
    (0.30, 0.36, 0.32),  # grey-green drape
    (0.12, 0.16, 0.26),  # blue couch cover
)

# Bits of the packed distractor mask (remapped with nearest neighbour in one pass).
_BIT_LEG, _BIT_HAIR, _BIT_FRECKLE, _BIT_MOLE, _BIT_STAIN, _BIT_BRUISE, _BIT_MATTING = (
    1,
    2,
    4,
    8,
    16,
    32,
    64,
)

# Scene beyond the baseline frame is evaluated up to this fraction of the frame size.
_SCENE_MARGIN = 0.5


# --------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------


def _frozen_array(a: Any, dtype: Any = np.float64) -> np.ndarray:
    arr = np.array(a, dtype=dtype, copy=True)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class Vein:
    """One vein segment (a branch) of the phantom.

    Attributes
    ----------
    id : int
        Positive, unique within a leg and stable across treat() calls.
    cls : {"spider", "reticular"}
    centreline : ndarray, shape (N, 2), float64
        Polyline (x, y) in baseline-frame pixels (x right, y down), read-only.
    width_mm : float
        Full width; the footprint is the set of pixels within ``width/2`` of the centreline.
    amplitude : float
        Peak OD at full visibility, along the class's absorber direction.
    visibility : float
        Remaining contrast factor in [0, 1]: 1 at baseline, 0 cleared, the fade factor otherwise.
    status : {"persisting", "faded", "cleared", "new", "recanalised"}
    cluster : int
        Spider cluster index the vein belongs to (spider) or feeds (reticular); -1 for none.
    in_baseline : bool
        False for veins that appeared after the baseline visit ("new").
    """

    id: int
    cls: str
    centreline: np.ndarray
    width_mm: float
    amplitude: float
    visibility: float = 1.0
    status: str = "persisting"
    cluster: int = -1
    in_baseline: bool = True

    def length_px(self) -> float:
        """Centreline length in baseline pixels."""
        d = np.diff(self.centreline, axis=0)
        return float(np.hypot(d[:, 0], d[:, 1]).sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (the centreline as a list of [x, y])."""
        return {
            "id": self.id,
            "cls": self.cls,
            "centreline": self.centreline.round(3).tolist(),
            "width_mm": self.width_mm,
            "amplitude": self.amplitude,
            "visibility": self.visibility,
            "status": self.status,
            "cluster": self.cluster,
            "in_baseline": self.in_baseline,
        }


@dataclass(frozen=True, eq=False)
class Stroke:
    """A thin line-like absorber: a hair, a haemosiderin streak or a matting vessel.

    ``centreline`` (N, 2) float64 baseline-frame px; ``width_mm`` full width; ``amplitude``
    peak OD along the stroke's absorber direction (hair: near neutral, stain: melanin,
    matting: haemoglobin).
    """

    centreline: np.ndarray
    width_mm: float
    amplitude: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "centreline": self.centreline.round(3).tolist(),
            "width_mm": self.width_mm,
            "amplitude": self.amplitude,
        }


@dataclass(frozen=True)
class Spot:
    """A round pigment spot: ``kind`` "freckle" or "mole".

    Centre ``(x, y)`` baseline px; ``radius_mm`` (mean radius); ``aspect`` (minor/major);
    ``angle`` rad; ``amplitude`` peak melanin OD; ``edge_mm`` softness of the rim;
    ``wobble`` (3,) relative radius modulation by the 2nd-4th angular harmonics;
    ``phase`` (3,) rad.
    """

    kind: str
    x: float
    y: float
    radius_mm: float
    aspect: float
    angle: float
    amplitude: float
    edge_mm: float
    wobble: tuple[float, float, float] = (0.0, 0.0, 0.0)
    phase: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Bruise:
    """A diffuse bruise: elliptical patch, centre ``(x, y)`` baseline px.

    ``radius_mm`` semi-major axis (the 1/e radius of a Gaussian), ``aspect`` minor/major,
    ``angle`` rad, ``amplitude`` peak OD, ``hue`` "purple" | "blue" | "yellow".
    The mask is the region above half the peak.
    """

    x: float
    y: float
    radius_mm: float
    aspect: float
    angle: float
    amplitude: float
    hue: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class LegOutline:
    """The leg band in baseline px: centre ``x_c(y) = cx + tilt·(y − H/2) + bow·t²``
    with ``t = 2(y − H/2)/H``, half-width ``hw(y) = half_width·(1 + taper·(H/2 − y)/H)``.

    ``side_light`` (−1..1) tilts the shading towards one edge.
    """

    cx: float
    tilt: float
    bow: float
    half_width: float
    taper: float
    side_light: float

    def centre_and_half_width(self, y: np.ndarray, height: float) -> tuple[np.ndarray, np.ndarray]:
        """``x_c(y)`` and ``hw(y)`` (px) for rows ``y`` (baseline px) of a frame ``height`` px."""
        t = 2.0 * (y - height / 2.0) / height
        xc = self.cx + self.tilt * (y - height / 2.0) + self.bow * t * t
        hw = self.half_width * (1.0 + self.taper * (height / 2.0 - y) / height)
        return xc, hw

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return dict(self.__dict__)


@dataclass(frozen=True, eq=False)
class Leg:
    """The scene, in baseline-frame coordinates (px at ``px_per_mm``, x right, y down).

    Attributes
    ----------
    seed : int
        Seed it was made from.
    shape : (int, int)
        Baseline frame (H, W) px.
    px_per_mm : float
    tone : str
        One of :data:`TONES`.
    melanin : float
        Melanin OD added to the base skin.
    outline : LegOutline
    backdrop : (float, float, float)
        Linear reflectance of the backdrop (R, G, B).
    texture_seed : int
        Seed of the mottling and skin texture (fixed for a leg, so every visit shows it).
    veins : tuple of Vein
    hairs, stains, matting : tuple of Stroke
    spots : tuple of Spot (freckles and moles)
    bruises : tuple of Bruise
    visit : int
        Number of treat() calls since the baseline (0 at baseline).
    """

    seed: int
    shape: tuple[int, int]
    px_per_mm: float
    tone: str
    melanin: float
    outline: LegOutline
    backdrop: tuple[float, float, float]
    texture_seed: int
    veins: tuple[Vein, ...]
    hairs: tuple[Stroke, ...] = ()
    spots: tuple[Spot, ...] = ()
    stains: tuple[Stroke, ...] = ()
    bruises: tuple[Bruise, ...] = ()
    matting: tuple[Stroke, ...] = ()
    visit: int = 0

    def vein(self, vein_id: int) -> Vein:
        """The vein with this id (KeyError if absent)."""
        for v in self.veins:
            if v.id == vein_id:
                return v
        raise KeyError(vein_id)

    @property
    def freckles(self) -> tuple[Spot, ...]:
        """The freckles among :attr:`spots`."""
        return tuple(s for s in self.spots if s.kind == "freckle")

    @property
    def moles(self) -> tuple[Spot, ...]:
        """The moles among :attr:`spots`."""
        return tuple(s for s in self.spots if s.kind == "mole")

    def status_by_vein(self) -> dict[int, str]:
        """``{vein id: status}`` for every vein."""
        return {v.id: v.status for v in self.veins}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of the whole scene."""
        return {
            "seed": self.seed,
            "shape": list(self.shape),
            "px_per_mm": self.px_per_mm,
            "tone": self.tone,
            "melanin": self.melanin,
            "outline": self.outline.to_dict(),
            "backdrop": list(self.backdrop),
            "texture_seed": self.texture_seed,
            "visit": self.visit,
            "veins": [v.to_dict() for v in self.veins],
            "hairs": [h.to_dict() for h in self.hairs],
            "spots": [s.to_dict() for s in self.spots],
            "stains": [s.to_dict() for s in self.stains],
            "bruises": [b.to_dict() for b in self.bruises],
            "matting": [m.to_dict() for m in self.matting],
        }


@dataclass(frozen=True, eq=False)
class Capture:
    """How a photo was taken.

    Attributes
    ----------
    homography : ndarray, shape (3, 3), float64
        Maps rendered-photo pixel (x, y) to baseline pixel (x, y), for a frame of ``shape``.
    exposure : float
        Linear gain (1 = nominal).
    wb_gains : ndarray, shape (3,), float64
        Per-channel (R, G, B) linear gains.
    blur_sigma : float
        Gaussian optical blur, px (at ``shape``).
    noise : float
        Noise standard deviation in linear reflectance at mid-grey (0.18); shot-noise-like,
        it grows with the square root of the signal.
    jpeg_quality : int or None
        JPEG quality, or None for no compression.
    bend_px : float
        Largest displacement (px at ``shape``) of the smooth non-rigid bend; 0 for none.
    seed : int
        Seed of the noise and the bend field.
    shape : (int, int)
        Frame (H, W) the homography, blur and bend are expressed for; they scale with the
        rendered shape.
    rotation_deg, scale, translation_px : float, float, (float, float)
        The drawn pose parameters (for reports); the homography is authoritative.
    """

    homography: np.ndarray
    exposure: float = 1.0
    wb_gains: np.ndarray = field(default_factory=lambda: _frozen_array([1.0, 1.0, 1.0]))
    blur_sigma: float = 0.0
    noise: float = 0.0
    jpeg_quality: int | None = None
    bend_px: float = 0.0
    seed: int = 0
    shape: tuple[int, int] = (1500, 2000)
    rotation_deg: float = 0.0
    scale: float = 1.0
    translation_px: tuple[float, float] = (0.0, 0.0)

    @property
    def is_identity_geometry(self) -> bool:
        """True when the photo is pixel-aligned with the baseline frame."""
        return bool(np.allclose(self.homography, np.eye(3), atol=1e-12) and self.bend_px == 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "homography": self.homography.tolist(),
            "exposure": self.exposure,
            "wb_gains": self.wb_gains.tolist(),
            "blur_sigma": self.blur_sigma,
            "noise": self.noise,
            "jpeg_quality": self.jpeg_quality,
            "bend_px": self.bend_px,
            "seed": self.seed,
            "shape": list(self.shape),
            "rotation_deg": self.rotation_deg,
            "scale": self.scale,
            "translation_px": list(self.translation_px),
        }


@dataclass(frozen=True, eq=False)
class Rendered:
    """A phantom photo with its truth, all in this photo's own frame.

    Attributes
    ----------
    rgb : ndarray, (H, W, 3) uint8
        The photo (decoded JPEG when the capture sets a quality).
    jpeg : bytes or None
        The JPEG file, when the capture sets a quality.
    labels : ndarray, (H, W) uint8
        0 none, 1 spider, 2 reticular: footprint of the veins visible in this photo.
    vein_ids : ndarray, (H, W) int32
        Id of the vein covering each pixel (0 none).
    visibility : ndarray, (H, W) float32
        Remaining contrast factor of the vein at each pixel (0 where none).
    leg_mask : ndarray, (H, W) bool
    hair, freckles, moles, stain, bruise, matting : ndarray, (H, W) bool
        Distractor masks. They may overlap vein pixels; a vein pixel stays a vein pixel.
    to_baseline_map : ndarray, (H, W, 2) float32
        Baseline-frame (x, y) px seen at each pixel (exact, bend included), at this render's
        resolution.
    capture : Capture
    px_per_mm : float
        Pixels per mm of this photo near its centre.
    baseline_px_per_mm : float
        Pixels per mm of the baseline frame at this render's resolution.
    """

    rgb: np.ndarray
    jpeg: bytes | None
    labels: np.ndarray
    vein_ids: np.ndarray
    visibility: np.ndarray
    leg_mask: np.ndarray
    hair: np.ndarray
    freckles: np.ndarray
    moles: np.ndarray
    stain: np.ndarray
    bruise: np.ndarray
    matting: np.ndarray
    to_baseline_map: np.ndarray
    capture: Capture
    px_per_mm: float
    baseline_px_per_mm: float

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) px."""
        return (int(self.rgb.shape[0]), int(self.rgb.shape[1]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays)."""
        return {
            "shape": list(self.shape),
            "px_per_mm": self.px_per_mm,
            "baseline_px_per_mm": self.baseline_px_per_mm,
            "vein_px": int(np.count_nonzero(self.labels)),
            "spider_px": int(np.count_nonzero(self.labels == LABEL_SPIDER)),
            "reticular_px": int(np.count_nonzero(self.labels == LABEL_RETICULAR)),
            "leg_px": int(np.count_nonzero(self.leg_mask)),
            "jpeg_bytes": None if self.jpeg is None else len(self.jpeg),
            "capture": self.capture.to_dict(),
        }


@dataclass(frozen=True, eq=False)
class PhantomPair:
    """A baseline photo and a follow-up photo of the same leg, with the true change.

    ``true_improvement_pct`` follows :func:`true_improvement` (see there for the exact
    definition), in the baseline frame over ``overlap_mask`` ((H, W) bool, baseline frame:
    leg pixels seen in both photos). ``true_improvement_by_class_pct`` is the same figure
    restricted to spider or reticular veins (nan where the class has no baseline pixels).

    Secondary figures (the headline stays ``true_improvement_pct``), over the same region:

    - ``true_improvement_by_area_pct`` = 100 × (1 − visible follow-up vein area / baseline
      vein area): a faded vein counts in full, new veins add their area;
    - ``true_improvement_by_length_pct`` = 100 × (1 − visible follow-up centreline length /
      baseline centreline length): the Bertanha-style length end point, faded veins count
      in full, new veins add their length.
    """

    baseline: Rendered
    followup: Rendered
    baseline_leg: Leg
    followup_leg: Leg
    true_improvement_pct: float
    status_by_vein: dict[int, str]
    overlap_mask: np.ndarray
    true_improvement_by_class_pct: dict[str, float] = field(default_factory=dict)
    true_improvement_by_area_pct: float = float("nan")
    true_improvement_by_length_pct: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays)."""
        return {
            "true_improvement_pct": self.true_improvement_pct,
            "true_improvement_by_class_pct": dict(self.true_improvement_by_class_pct),
            "true_improvement_by_area_pct": self.true_improvement_by_area_pct,
            "true_improvement_by_length_pct": self.true_improvement_by_length_pct,
            "status_by_vein": {str(k): v for k, v in self.status_by_vein.items()},
            "overlap_px": int(np.count_nonzero(self.overlap_mask)),
            "baseline": self.baseline.to_dict(),
            "followup": self.followup.to_dict(),
        }


# --------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------


def _check_shape(shape: Any, name: str = "shape") -> tuple[int, int]:
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (height, width) in px, got {shape!r}") from None
    if h < 64 or w < 64 or (h, w) != tuple(shape):
        raise ValueError(f"{name} must be two integers ≥ 64 (height, width), got {shape!r}")
    return h, w


def _check_fraction(value: float, name: str) -> float:
    v = float(value)
    if not (0.0 <= v <= 1.0) or math.isnan(v):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


def _check_range(
    value: float | tuple[float, float], name: str, lo: float, hi: float
) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        a = b = float(value)
    else:
        try:
            a, b = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number or a (low, high) pair") from None
    if not (lo <= a <= b <= hi):
        raise ValueError(f"{name} must satisfy {lo} ≤ low ≤ high ≤ {hi}, got {value!r}")
    return a, b


def _check_nonneg(value: float, name: str, hi: float = math.inf) -> float:
    v = float(value)
    if not (0.0 <= v <= hi) or math.isnan(v):
        raise ValueError(f"{name} must be in [0, {hi}], got {value!r}")
    return v


def default_px_per_mm(shape: tuple[int, int]) -> float:
    """Default scale for a frame: the width spans 200 mm (2000 px wide → 10 px/mm).

    Parameters
    ----------
    shape : (int, int)
        (H, W) px.

    Returns
    -------
    float
        px per mm.
    """
    _, w = _check_shape(shape)
    return w / FRAME_WIDTH_MM


def _triple(values: np.ndarray) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))


def _rng(seed: int, tag: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng([int(seed), tag])


# --------------------------------------------------------------------------------------
# Scene generation (make_leg)
# --------------------------------------------------------------------------------------


def _walk(
    rng: np.random.Generator,
    start: np.ndarray,
    heading: float,
    length_mm: float,
    step_mm: float,
    curvature_sd: float,
    ppm: float,
) -> np.ndarray:
    """Smooth random walk: heading changes by an Ornstein-Uhlenbeck curvature (rad/mm)."""
    n = max(2, int(math.ceil(length_mm / step_mm)) + 1)
    kappa = rng.normal(0.0, curvature_sd, size=n)
    # Low-pass the curvature so the path bends smoothly.
    k = np.convolve(kappa, np.ones(5) / 5.0, mode="same")
    theta = heading + np.concatenate([[0.0], np.cumsum(k[:-1] * step_mm)])
    steps = np.stack([np.cos(theta), np.sin(theta)], axis=1) * step_mm * ppm
    pts = start[None, :] + np.concatenate([[[0.0, 0.0]], np.cumsum(steps[:-1], axis=0)])
    return pts


def _leg_u(outline: LegOutline, pts: np.ndarray, height: float) -> np.ndarray:
    xc, hw = outline.centre_and_half_width(pts[:, 1], height)
    return np.asarray((pts[:, 0] - xc) / hw)


def _clip_to_leg(
    pts: np.ndarray, outline: LegOutline, shape: tuple[int, int], u_max: float
) -> np.ndarray:
    """Leading part of a polyline that stays inside the leg (|u| < u_max) and the frame."""
    h, w = shape
    u = _leg_u(outline, pts, h)
    ok = (
        (np.abs(u) < u_max)
        & (pts[:, 0] >= 2)
        & (pts[:, 0] <= w - 3)
        & (pts[:, 1] >= 2)
        & (pts[:, 1] <= h - 3)
    )
    if ok.all():
        return pts
    first_bad = int(np.argmin(ok))
    return pts[:first_bad]


def _point_in_leg(
    rng: np.random.Generator, outline: LegOutline, shape: tuple[int, int], u_max: float
) -> np.ndarray:
    h, _ = shape
    y = rng.uniform(0.08 * h, 0.92 * h)
    xc, hw = outline.centre_and_half_width(np.array([y]), h)
    x = xc[0] + rng.uniform(-u_max, u_max) * hw[0]
    return np.array([x, y])


def _spider_cluster(
    rng: np.random.Generator,
    centre: np.ndarray,
    cluster: int,
    ppm: float,
    outline: LegOutline,
    shape: tuple[int, int],
    contrast: float,
    first_id: int,
    status: str = "persisting",
    in_baseline: bool = True,
    scale: float = 1.0,
) -> list[Vein]:
    """A starburst or arborising cluster of spider-vein branches."""
    veins: list[Vein] = []

    def add(pts: np.ndarray, width: float) -> None:
        pts = _clip_to_leg(pts, outline, shape, 0.88)
        if len(pts) < 3:
            return
        w = float(np.clip(width, 0.1, 1.0))
        amp = float(rng.uniform(0.25, 0.7)) * contrast
        veins.append(
            Vein(
                id=first_id + len(veins),
                cls="spider",
                centreline=_frozen_array(pts),
                width_mm=round(w, 4),
                amplitude=round(amp, 4),
                visibility=1.0,
                status=status,
                cluster=cluster,
                in_baseline=in_baseline,
            )
        )

    def branch(start: np.ndarray, heading: float, length: float, width: float, depth: int) -> None:
        pts = _walk(rng, start, heading, length, 0.2, 0.35, ppm)
        add(pts, width)
        if depth <= 0 or len(pts) < 6:
            return
        n_sub = int(rng.integers(1, 4)) if depth > 1 else int(rng.integers(0, 3))
        for _ in range(n_sub):
            i = int(rng.integers(len(pts) // 4, max(len(pts) // 4 + 1, 3 * len(pts) // 4)))
            d = pts[min(i + 1, len(pts) - 1)] - pts[max(i - 1, 0)]
            base = math.atan2(d[1], d[0])
            ang = base + rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.1)
            branch(pts[i], ang, length * rng.uniform(0.35, 0.65), width * 0.7, depth - 1)

    if rng.random() < 0.5:  # starburst: branches radiate from a punctum
        n = int(rng.integers(6, 15))
        offset = rng.uniform(0, 2 * math.pi)
        for k in range(n):
            ang = offset + 2 * math.pi * k / n + rng.normal(0, 0.25)
            length = rng.uniform(4.0, 18.0) * scale
            start = centre + rng.normal(0, 0.3, 2) * ppm
            branch(start, ang, length, rng.uniform(0.3, 0.8), 1)
    else:  # arborising: a trunk with branches
        ang = rng.uniform(0, 2 * math.pi)
        branch(centre, ang, rng.uniform(12.0, 30.0) * scale, rng.uniform(0.5, 0.9), 3)
    return veins


def _reticular(
    rng: np.random.Generator,
    start: np.ndarray,
    heading: float,
    vid: int,
    ppm: float,
    outline: LegOutline,
    shape: tuple[int, int],
    contrast: float,
    cluster: int,
    status: str = "persisting",
    in_baseline: bool = True,
) -> Vein | None:
    length = rng.uniform(40.0, 120.0)
    pts = _walk(rng, start, heading, length, 1.0, 0.06, ppm)
    pts = _clip_to_leg(pts, outline, shape, 0.85)
    if len(pts) < 8:
        return None
    return Vein(
        id=vid,
        cls="reticular",
        centreline=_frozen_array(pts),
        width_mm=round(float(rng.uniform(1.0, 3.0)), 4),
        amplitude=round(float(rng.uniform(0.10, 0.25) * contrast), 4),
        visibility=1.0,
        status=status,
        cluster=cluster,
        in_baseline=in_baseline,
    )


def make_leg(
    seed: int,
    *,
    shape: tuple[int, int] = (1500, 2000),
    px_per_mm: float | None = None,
    tone: str = "light",
    n_spider_clusters: int | None = None,
    n_reticular: int | None = None,
    hair: bool = True,
    freckles: bool = True,
    moles: bool = True,
) -> Leg:
    """Make a leg scene at baseline (every vein visible).

    Parameters
    ----------
    seed : int
        Non-negative seed; the same seed and arguments give the same leg.
    shape : (int, int)
        Baseline frame (H, W) px.
    px_per_mm : float, optional
        Scale; default ``W / 200`` (2000 px wide → 10 px/mm).
    tone : {"light", "fair", "medium", "olive", "brown"}
        Skin tone (melanin amount).
    n_spider_clusters : int, optional
        Spider clusters (starburst or arborising); default 3-6 from the seed.
    n_reticular : int, optional
        Reticular veins (1-3 mm, blue-green); default 2-4. Some of them feed a cluster.
    hair, freckles, moles : bool
        Add these distractors.

    Returns
    -------
    Leg
    """
    h, w = _check_shape(shape)
    if tone not in TONES:
        raise ValueError(f"tone must be one of {sorted(TONES)}, got {tone!r}")
    ppm = default_px_per_mm((h, w)) if px_per_mm is None else float(px_per_mm)
    if not (ppm > 0 and math.isfinite(ppm)):
        raise ValueError(f"px_per_mm must be a positive number, got {px_per_mm!r}")
    for name, val in (("n_spider_clusters", n_spider_clusters), ("n_reticular", n_reticular)):
        if val is not None and (not isinstance(val, (int, np.integer)) or val < 0 or val > 200):
            raise ValueError(f"{name} must be an integer in [0, 200] or None, got {val!r}")
    rng = _rng(seed, 0x1E6)
    melanin = TONES[tone]
    # Melanin screens the vessels: darker skin shows less vein contrast.
    contrast = float(np.exp(-0.2 * melanin))

    outline = LegOutline(
        cx=float(w / 2 + rng.uniform(-0.06, 0.06) * w),
        tilt=float(rng.uniform(-0.08, 0.08)),
        bow=float(rng.uniform(-0.04, 0.04) * w),
        half_width=float(rng.uniform(0.50, 0.65) * w / 2),
        taper=float(rng.uniform(0.05, 0.25) * rng.choice([-1.0, 1.0])),
        side_light=float(rng.uniform(-0.6, 0.6)),
    )
    backdrop = _BACKDROPS[int(rng.integers(len(_BACKDROPS)))]
    texture_seed = int(rng.integers(0, 2**31 - 1))

    n_cl = int(rng.integers(4, 8)) if n_spider_clusters is None else int(n_spider_clusters)
    n_ret = int(rng.integers(2, 5)) if n_reticular is None else int(n_reticular)

    veins: list[Vein] = []
    centres = [_point_in_leg(rng, outline, (h, w), 0.65) for _ in range(n_cl)]
    for k in range(n_ret):
        vid = len(veins) + 1
        if k < n_cl and rng.random() < 0.7:  # a feeder: runs out of a cluster
            c = centres[k]
            heading = rng.choice([-1.0, 1.0]) * math.pi / 2 + rng.normal(0, 0.5)
            start = c + np.array([math.cos(heading), math.sin(heading)]) * 3.0 * ppm
            cluster = k
        else:
            start = _point_in_leg(rng, outline, (h, w), 0.6)
            heading = rng.choice([-1.0, 1.0]) * math.pi / 2 + rng.normal(0, 0.35)
            cluster = -1
        v = _reticular(rng, start, heading, vid, ppm, outline, (h, w), contrast, cluster)
        if v is not None:
            veins.append(v)
    for k, c in enumerate(centres):
        veins.extend(
            _spider_cluster(rng, c, k, ppm, outline, (h, w), contrast, first_id=len(veins) + 1)
        )

    hairs = _make_hairs(rng, outline, (h, w), ppm) if hair else ()
    spots: list[Spot] = []
    if freckles:
        lo, hi = {"light": (10, 40), "fair": (6, 28), "medium": (3, 14), "olive": (2, 9)}.get(
            tone, (0, 5)
        )
        for _ in range(int(rng.integers(lo, hi + 1))):
            p = _point_in_leg(rng, outline, (h, w), 0.85)
            spots.append(
                Spot(
                    kind="freckle",
                    x=float(p[0]),
                    y=float(p[1]),
                    radius_mm=float(rng.uniform(0.5, 1.5)),
                    aspect=float(rng.uniform(0.7, 1.0)),
                    angle=float(rng.uniform(0, math.pi)),
                    amplitude=float(rng.uniform(0.12, 0.35)),
                    edge_mm=float(rng.uniform(0.15, 0.35)),
                    wobble=_triple(rng.uniform(0, 1, 3) * (0.06, 0.03, 0.012)),
                    phase=_triple(rng.uniform(0, 2 * math.pi, 3)),
                )
            )
    if moles:
        for _ in range(int(rng.integers(1, 5))):
            p = _point_in_leg(rng, outline, (h, w), 0.85)
            spots.append(
                Spot(
                    kind="mole",
                    x=float(p[0]),
                    y=float(p[1]),
                    radius_mm=float(rng.uniform(1.0, 2.5)),
                    aspect=float(rng.uniform(0.75, 1.0)),
                    angle=float(rng.uniform(0, math.pi)),
                    amplitude=float(rng.uniform(0.9, 1.7)),
                    edge_mm=float(rng.uniform(0.05, 0.15)),
                    wobble=_triple(rng.uniform(0, 1, 3) * (0.08, 0.04, 0.015)),
                    phase=_triple(rng.uniform(0, 2 * math.pi, 3)),
                )
            )
    return Leg(
        seed=int(seed),
        shape=(h, w),
        px_per_mm=ppm,
        tone=tone,
        melanin=melanin,
        outline=outline,
        backdrop=backdrop,
        texture_seed=texture_seed,
        veins=tuple(veins),
        hairs=tuple(hairs),
        spots=tuple(spots),
    )


def _make_hairs(
    rng: np.random.Generator, outline: LegOutline, shape: tuple[int, int], ppm: float
) -> tuple[Stroke, ...]:
    h, _ = shape
    leg_area_mm2 = 2 * outline.half_width * h / ppm**2
    n = int(leg_area_mm2 * rng.uniform(0.004, 0.015))
    width = float(rng.uniform(0.05, 0.1))
    # Leg hair grows roughly down the leg; the growth direction is shared.
    down = math.pi / 2 + rng.uniform(-0.3, 0.3)
    hairs = []
    for _ in range(n):
        start = _point_in_leg(rng, outline, shape, 0.95)
        length = rng.uniform(3.0, 15.0)
        n_runs = int(rng.integers(1, 4))
        heading = down + rng.normal(0, 0.35)
        pts = [start]
        for _r in range(n_runs):
            heading += rng.normal(0, 0.12)
            seg = length / n_runs * ppm
            pts.append(pts[-1] + seg * np.array([math.cos(heading), math.sin(heading)]))
        line = _clip_to_leg(np.array(pts), outline, shape, 0.99)
        if len(line) < 2:
            continue
        hairs.append(
            Stroke(
                centreline=_frozen_array(line),
                width_mm=round(width * rng.uniform(0.8, 1.2), 4),
                amplitude=round(float(rng.uniform(1.0, 2.2)), 4),
            )
        )
    return tuple(hairs)


# --------------------------------------------------------------------------------------
# Treatment (treat)
# --------------------------------------------------------------------------------------


def treat(
    leg: Leg,
    seed: int,
    *,
    cleared_frac: float = 0.6,
    faded_frac: float = 0.2,
    fade_to: float | tuple[float, float] = 0.5,
    n_new: int = 0,
    recanalise: Sequence[int] = (),
    staining: bool = False,
    bruising: bool = False,
    matting: bool = False,
    by: Literal["count", "area"] = "count",
) -> Leg:
    """The leg at a follow-up visit: veins cleared, faded or persisting by known amounts.

    Every vein visible before this call (visibility > 0) is drawn, deterministically from
    ``seed``, into one of three groups: cleared (visibility 0), faded (visibility multiplied
    by ``fade_to``, or by a factor drawn from the ``fade_to`` range) and persisting
    (unchanged). Veins already cleared stay cleared unless listed in ``recanalise``.

    Parameters
    ----------
    leg : Leg
        The current state (baseline or an earlier follow-up); never modified.
    seed : int
        Non-negative seed.
    cleared_frac, faded_frac : float
        Shares of the currently visible veins to clear and to fade; their sum ≤ 1.
    fade_to : float or (float, float)
        Remaining visibility factor of a faded vein, in (0, 1), or a range to draw from.
    n_new : int
        New veins (status "new", absent at baseline): spider branches near existing
        clusters or a new small cluster.
    recanalise : sequence of int
        Ids of veins that had faded or cleared at an earlier visit and are visible again
        (visibility back to 1, status "recanalised"). They are not drawn into the groups.
    staining : bool
        Brown haemosiderin streaks along some of the veins cleared now.
    bruising : bool
        Diffuse bruises (purple, blue or yellow, 10-30 mm) at some treated sites. Bruises
        from earlier visits resolve (they are not carried over).
    matting : bool
        Telangiectatic matting (a blush of very fine red vessels) near a treated site. It is
        real vasculature but flagged apart: it has its own mask and is not a vein in
        ``labels`` nor in the true improvement.
    by : {"count", "area"}
        Whether the fractions count veins or baseline footprint area (length × width).

    Returns
    -------
    Leg
        A new leg with ``visit`` increased by one.
    """
    cf = _check_fraction(cleared_frac, "cleared_frac")
    ff = _check_fraction(faded_frac, "faded_frac")
    if cf + ff > 1.0 + 1e-9:
        raise ValueError(
            f"cleared_frac + faded_frac must be ≤ 1, got {cleared_frac} + {faded_frac}"
        )
    fade_lo, fade_hi = _check_range(fade_to, "fade_to", 0.0, 1.0)
    if fade_lo <= 0.0 or fade_hi >= 1.0:
        raise ValueError(
            f"fade_to must lie strictly between 0 and 1 (use cleared_frac for 0), got {fade_to!r}"
        )
    if not isinstance(n_new, (int, np.integer)) or n_new < 0 or n_new > 100:
        raise ValueError(f"n_new must be an integer in [0, 100], got {n_new!r}")
    if by not in ("count", "area"):
        raise ValueError(f"by must be 'count' or 'area', got {by!r}")
    if not isinstance(leg, Leg):
        raise ValueError("leg must be a Leg from make_leg() or treat()")
    rng = _rng(seed, 0x7EA7 + leg.visit)
    by_id = {v.id: v for v in leg.veins}
    recan = set()
    for vid in recanalise:
        v = by_id.get(int(vid))
        if v is None:
            raise ValueError(f"recanalise: no vein with id {vid} in this leg")
        if v.status not in ("faded", "cleared"):
            raise ValueError(
                f"recanalise: vein {vid} is {v.status!r}; only faded or cleared veins re-open"
            )
        recan.add(int(vid))

    visible = [v for v in leg.veins if v.visibility > 0.0 and v.id not in recan]
    order = rng.permutation(len(visible))
    cleared_ids: set[int] = set()
    faded_ids: set[int] = set()
    if by == "count":
        n_c = int(round(cf * len(visible)))
        n_f = min(int(round(ff * len(visible))), len(visible) - n_c)
        cleared_ids = {visible[i].id for i in order[:n_c]}
        faded_ids = {visible[i].id for i in order[n_c : n_c + n_f]}
    else:
        ppm = leg.px_per_mm
        areas = np.array([v.length_px() / ppm * v.width_mm for v in visible])
        total = float(areas.sum()) or 1.0
        acc = 0.0
        for i in order:
            a = areas[i] / total
            if acc + a / 2 <= cf:
                cleared_ids.add(visible[i].id)
            elif acc + a / 2 <= cf + ff:
                faded_ids.add(visible[i].id)
            acc += a

    new_veins: list[Vein] = []
    stains = list(leg.stains)
    bruises: list[Bruise] = []
    mats = list(leg.matting)
    treated_sites: list[np.ndarray] = []
    for v in leg.veins:
        vis, status = v.visibility, v.status
        if v.id in recan:
            vis = 1.0
            status = "recanalised"
        elif v.id in cleared_ids:
            vis = 0.0
            status = "cleared"
        elif v.id in faded_ids:
            factor = fade_lo if fade_lo == fade_hi else float(rng.uniform(fade_lo, fade_hi))
            vis = round(v.visibility * factor, 6)
            if v.status == "recanalised":
                status = "recanalised"
            else:
                status = "faded" if v.in_baseline else "new"
        if v.id in cleared_ids or v.id in faded_ids or v.status in ("cleared", "faded"):
            # Injection sites: veins treated now or at an earlier visit.
            treated_sites.append(v.centreline[len(v.centreline) // 2])
        new_veins.append(replace(v, visibility=vis, status=status))

    ppm = leg.px_per_mm
    h, w = leg.shape
    next_id = max((v.id for v in leg.veins), default=0) + 1
    added: list[Vein] = []
    clusters = sorted({v.cluster for v in leg.veins if v.cls == "spider" and v.cluster >= 0})
    contrast = float(np.exp(-0.2 * leg.melanin))
    attempts = 0
    while len(added) < n_new and attempts < 50 * (n_new + 1):
        attempts += 1
        if clusters and rng.random() < 0.6:
            cl = int(rng.choice(clusters))
            members = [v for v in leg.veins if v.cluster == cl and v.cls == "spider"]
            centre = members[0].centreline[0] + rng.normal(0, 4.0, 2) * ppm
        else:
            cl = max(clusters, default=-1) + 1 + len(added)
            centre = _point_in_leg(rng, leg.outline, leg.shape, 0.65)
        cand = _spider_cluster(
            rng,
            centre,
            cl,
            ppm,
            leg.outline,
            (h, w),
            contrast,
            first_id=next_id,
            status="new",
            in_baseline=False,
            scale=0.5,
        )
        for v in cand[: n_new - len(added)]:
            added.append(replace(v, id=next_id))
            next_id += 1

    cleared_now = [v for v in leg.veins if v.id in cleared_ids]
    if staining and cleared_now:
        k = max(1, int(round(0.5 * len(cleared_now))))
        for i in rng.permutation(len(cleared_now))[:k]:
            v = cleared_now[int(i)]
            stains.append(
                Stroke(
                    centreline=v.centreline,
                    width_mm=round(float(rng.uniform(3.0, 8.0)), 4),
                    amplitude=round(float(rng.uniform(0.06, 0.16)), 4),
                )
            )
    if bruising and treated_sites:
        k = int(rng.integers(1, min(3, len(treated_sites)) + 1))
        for i in rng.permutation(len(treated_sites))[:k]:
            site = treated_sites[int(i)] + rng.normal(0, 3.0, 2) * ppm
            bruises.append(
                Bruise(
                    x=float(site[0]),
                    y=float(site[1]),
                    radius_mm=float(rng.uniform(6.0, 18.0)),
                    aspect=float(rng.uniform(0.5, 1.0)),
                    angle=float(rng.uniform(0, math.pi)),
                    amplitude=float(rng.uniform(0.10, 0.30)),
                    hue=str(rng.choice(["purple", "blue", "yellow"])),
                )
            )
    if matting and treated_sites:
        site = treated_sites[int(rng.integers(len(treated_sites)))]
        for _ in range(int(rng.integers(15, 40))):
            start = site + rng.normal(0, 4.0, 2) * ppm
            pts = _walk(
                rng, start, rng.uniform(0, 2 * math.pi), rng.uniform(1.0, 4.0), 0.15, 0.8, ppm
            )
            pts = _clip_to_leg(pts, leg.outline, leg.shape, 0.9)
            if len(pts) >= 2:
                mats.append(
                    Stroke(
                        centreline=_frozen_array(pts),
                        width_mm=round(float(rng.uniform(0.05, 0.12)), 4),
                        amplitude=round(float(rng.uniform(0.15, 0.35) * contrast), 4),
                    )
                )
    return replace(
        leg,
        veins=tuple(new_veins + added),
        stains=tuple(stains),
        bruises=tuple(bruises),
        matting=tuple(mats),
        visit=leg.visit + 1,
    )


# --------------------------------------------------------------------------------------
# Captures
# --------------------------------------------------------------------------------------


def identity_capture(
    *,
    shape: tuple[int, int] = (1500, 2000),
    exposure: float = 1.0,
    wb_gains: Sequence[float] = (1.0, 1.0, 1.0),
    blur_sigma: float = 0.0,
    noise: float = 0.0,
    jpeg_quality: int | None = None,
    seed: int = 0,
) -> Capture:
    """A capture aligned pixel for pixel with the baseline frame (no noise, no JPEG by default).

    Parameters
    ----------
    shape : (int, int)
        Frame (H, W) px; only matters for scaling ``blur_sigma`` at other resolutions.
    exposure, wb_gains, blur_sigma, noise, jpeg_quality, seed
        Photometric settings, as in :class:`Capture`.

    Returns
    -------
    Capture
    """
    shp = _check_shape(shape)
    gains = np.asarray(wb_gains, dtype=np.float64)
    if gains.shape != (3,) or not np.all(gains > 0):
        raise ValueError(f"wb_gains must be three positive numbers, got {wb_gains!r}")
    if not (exposure > 0):
        raise ValueError(f"exposure must be positive, got {exposure!r}")
    _check_nonneg(blur_sigma, "blur_sigma", 50.0)
    _check_nonneg(noise, "noise", 0.5)
    if jpeg_quality is not None and not (1 <= int(jpeg_quality) <= 100):
        raise ValueError(f"jpeg_quality must be in [1, 100] or None, got {jpeg_quality!r}")
    return Capture(
        homography=_frozen_array(np.eye(3)),
        exposure=float(exposure),
        wb_gains=_frozen_array(gains),
        blur_sigma=float(blur_sigma),
        noise=float(noise),
        jpeg_quality=None if jpeg_quality is None else int(jpeg_quality),
        bend_px=0.0,
        seed=int(seed),
        shape=shp,
    )


def random_capture(
    seed: int,
    *,
    shape: tuple[int, int] = (1500, 2000),
    rotation_deg: float = 10.0,
    scale: float = 0.10,
    translate: float = 0.05,
    perspective: float = 0.0005,
    exposure: float = 0.20,
    white_balance: float = 0.08,
    blur_sigma: float | tuple[float, float] = (0.0, 1.0),
    jpeg_quality: int | tuple[int, int] | None = (80, 95),
    bend_px: float = 0.0,
    noise: float | tuple[float, float] = (0.002, 0.008),
) -> Capture:
    """A random but reproducible camera pose and photometric setting for a follow-up photo.

    Parameters
    ----------
    seed : int
        Non-negative seed.
    shape : (int, int)
        Frame (H, W) px the pose is drawn for (rotation about its centre).
    rotation_deg : float
        Rotation drawn uniformly in ±rotation_deg.
    scale : float
        Relative scale change drawn in ±scale (0.10 → 0.9-1.1).
    translate : float
        Shift in ±translate × frame size, per axis.
    perspective : float
        Projective coefficients drawn in ±perspective, in 1/mm at the default scale
        (``W/200`` px/mm) in frame-centred coordinates: 0.0005 changes the scale by up to
        ~5 % at the edge of a 200-mm-wide frame.
    exposure : float
        Linear exposure gain drawn in 1 ± exposure.
    white_balance : float
        Per-channel gains drawn in 1 ± white_balance.
    blur_sigma : float or (float, float)
        Gaussian blur σ px (at ``shape``), fixed or a range.
    jpeg_quality : int or (int, int) or None
        JPEG quality, fixed or a range, or None for none.
    bend_px : float
        Largest displacement of a smooth low-frequency bend (px at ``shape``); 0 for none.
    noise : float or (float, float)
        Noise σ in linear reflectance at mid-grey, fixed or a range.

    Returns
    -------
    Capture
    """
    h, w = _check_shape(shape)
    rot = _check_nonneg(rotation_deg, "rotation_deg", 45.0)
    sc = _check_nonneg(scale, "scale", 0.5)
    tr = _check_nonneg(translate, "translate", 0.3)
    persp = _check_nonneg(perspective, "perspective", 0.005)
    ex = _check_nonneg(exposure, "exposure", 0.9)
    wb = _check_nonneg(white_balance, "white_balance", 0.5)
    b_lo, b_hi = _check_range(blur_sigma, "blur_sigma", 0.0, 50.0)
    n_lo, n_hi = _check_range(noise, "noise", 0.0, 0.5)
    bend = _check_nonneg(bend_px, "bend_px", 0.25 * min(h, w))
    q: tuple[float, float] | None = None
    if jpeg_quality is not None:
        q = _check_range(jpeg_quality, "jpeg_quality", 1, 100)
    rng = _rng(seed, 0xCA9)
    theta = float(rng.uniform(-rot, rot))
    s = float(1.0 + rng.uniform(-sc, sc))
    tx, ty = (float(v) for v in rng.uniform(-tr, tr, 2) * np.array([w, h]))
    ppm = w / FRAME_WIDTH_MM
    px, py = (float(v) for v in rng.uniform(-persp, persp, 2) / ppm)
    gain = float(1.0 + rng.uniform(-ex, ex))
    gains = 1.0 + rng.uniform(-wb, wb, 3)
    blur = float(rng.uniform(b_lo, b_hi))
    nz = float(rng.uniform(n_lo, n_hi))
    quality = None if q is None else int(rng.integers(int(q[0]), int(q[1]) + 1))
    cap_seed = int(rng.integers(0, 2**31 - 1))

    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    t_neg = np.array([[1, 0, -c[0]], [0, 1, -c[1]], [0, 0, 1]], dtype=np.float64)
    persp_m = np.array([[1, 0, 0], [0, 1, 0], [px, py, 1]], dtype=np.float64)
    ct, st = math.cos(math.radians(theta)), math.sin(math.radians(theta))
    rs = np.array([[s * ct, -s * st, 0], [s * st, s * ct, 0], [0, 0, 1]], dtype=np.float64)
    t_pos = np.array([[1, 0, c[0] + tx], [0, 1, c[1] + ty], [0, 0, 1]], dtype=np.float64)
    hom = t_pos @ rs @ persp_m @ t_neg
    hom /= hom[2, 2]
    return Capture(
        homography=_frozen_array(hom),
        exposure=gain,
        wb_gains=_frozen_array(gains),
        blur_sigma=blur,
        noise=nz,
        jpeg_quality=quality,
        bend_px=bend,
        seed=cap_seed,
        shape=(h, w),
        rotation_deg=theta,
        scale=s,
        translation_px=(tx, ty),
    )


def _bend_params(seed: int) -> np.ndarray:
    """Amplitudes, frequencies (cycles per frame) and phases of the bend: (2, 3, 5)."""
    rng = np.random.default_rng([int(seed), 0xBE4D])
    p = np.empty((2, 3, 5))
    for c in range(2):
        amp = rng.uniform(0.3, 1.0, 3)
        p[c, :, 0] = amp / amp.sum()
        p[c, :, 1] = rng.uniform(0.25, 1.0, 3) * rng.choice([-1.0, 1.0], 3)
        p[c, :, 2] = rng.uniform(0.25, 1.0, 3) * rng.choice([-1.0, 1.0], 3)
        p[c, :, 3] = rng.uniform(0, 2 * math.pi, 3)
        p[c, :, 4] = 0.0
    return p


def _bend_field(
    seed: int, bend_px: float, xn: np.ndarray, yn: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Displacement (dx, dy) px at normalised coordinates (x/W, y/H); |d| ≤ bend_px."""
    p = _bend_params(seed)
    out = []
    for c in range(2):
        acc = np.zeros(np.broadcast_shapes(xn.shape, yn.shape), dtype=np.float32)
        separable = xn.ndim == 2 and yn.ndim == 2 and xn.shape[0] == 1 and yn.shape[1] == 1
        for k in range(3):
            a, fx, fy, ph, _ = p[c, k]
            ax = np.float32(2 * math.pi * fx) * xn
            by = np.float32(2 * math.pi * fy) * yn + np.float32(ph)
            if separable:  # sin(A + B) from a row and a column: no per-pixel sine
                acc += np.float32(a) * (np.sin(by) * np.cos(ax) + np.cos(by) * np.sin(ax))
            else:
                acc += np.float32(a) * np.sin(ax + by)
        out.append(acc * np.float32(bend_px / math.sqrt(2.0)))
    return out[0], out[1]


def _scaled_capture(capture: Capture, shape: tuple[int, int]) -> tuple[np.ndarray, float, float]:
    """Homography, bend and blur of ``capture`` expressed for a frame of ``shape``."""
    k = shape[1] / capture.shape[1]
    if k == 1.0:
        return np.asarray(capture.homography, dtype=np.float64), capture.bend_px, capture.blur_sigma
    s = np.diag([k, k, 1.0])
    hom = s @ capture.homography @ np.linalg.inv(s)
    return hom / hom[2, 2], capture.bend_px * k, capture.blur_sigma * k


def _map_to_baseline(
    capture: Capture, shape: tuple[int, int]
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """(H, W, 2) float32 baseline (x, y) for every pixel of a photo of ``shape``.

    Also returns the map's extent (x min, y min, x max, y max).
    """
    h, w = shape
    hom, bend, _ = _scaled_capture(capture, shape)
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    out = np.empty((h, w, 2), dtype=np.float32)
    xn = (xs / w).astype(np.float32)[None, :]
    # Row by row blocks keep memory modest on 24 MP frames.
    block = max(1, 2_000_000 // w)
    ext = [math.inf, math.inf, -math.inf, -math.inf]
    for y0 in range(0, h, block):
        yy = ys[y0 : y0 + block][:, None]
        den = hom[2, 0] * xs[None, :] + hom[2, 1] * yy + hom[2, 2]
        mx = (hom[0, 0] * xs[None, :] + hom[0, 1] * yy + hom[0, 2]) / den
        my = (hom[1, 0] * xs[None, :] + hom[1, 1] * yy + hom[1, 2]) / den
        if bend > 0:
            yn = (yy / h).astype(np.float32)
            dx, dy = _bend_field(capture.seed, bend, xn, yn)
            mx = mx + dx
            my = my + dy
        out[y0 : y0 + block, :, 0] = mx
        out[y0 : y0 + block, :, 1] = my
        ext = [
            min(ext[0], float(mx.min())),
            min(ext[1], float(my.min())),
            max(ext[2], float(mx.max())),
            max(ext[3], float(my.max())),
        ]
    return out, (ext[0], ext[1], ext[2], ext[3])


def _inverse_in_frame(capture: Capture, shape: tuple[int, int]) -> np.ndarray:
    """Baseline-frame (H, W) bool: pixels that the photo taken with ``capture`` sees."""
    h, w = shape
    hom, bend, _ = _scaled_capture(capture, shape)
    inv = np.linalg.inv(hom)
    qx = np.arange(w, dtype=np.float64)[None, :]
    qy = np.arange(h, dtype=np.float64)[:, None]

    def apply(m: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        den = m[2, 0] * x + m[2, 1] * y + m[2, 2]
        return (m[0, 0] * x + m[0, 1] * y + m[0, 2]) / den, (
            m[1, 0] * x + m[1, 1] * y + m[1, 2]
        ) / den

    px, py = apply(inv, qx + 0 * qy, qy + 0 * qx)
    if bend > 0:
        # Fixed point of p = H⁻¹(q − bend(p)); the bend is smooth and small, so it converges.
        for _ in range(6):
            dx, dy = _bend_field(
                capture.seed, bend, (px / w).astype(np.float32), (py / h).astype(np.float32)
            )
            px, py = apply(inv, qx - dx, qy - dy)
    return np.asarray((px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1))


# --------------------------------------------------------------------------------------
# Scene rendering in OD
# --------------------------------------------------------------------------------------


def _polyline_distance(
    pts: np.ndarray, x0: int, y0: int, h: int, w: int, support: float
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Exact Euclidean distance (px) to a polyline, within ``support`` px, on a window.

    ``pts`` are (x, y) in window coordinates relative to origin (x0, y0) already removed.
    Returns the ROI slices of the window and the distance array (inf beyond support).
    """
    if len(pts) > 2:
        # Drop nearly collinear vertices: the distance changes by at most 0.05 px.
        simple = cv2.approxPolyDP(pts.astype(np.float32).reshape(-1, 1, 2), 0.05, False)
        pts = np.asarray(simple, dtype=np.float64).reshape(-1, 2)
    lo = np.floor(pts.min(axis=0) - support).astype(int)
    hi = np.ceil(pts.max(axis=0) + support).astype(int) + 1
    rx0, ry0 = max(lo[0], 0), max(lo[1], 0)
    rx1, ry1 = min(hi[0], w), min(hi[1], h)
    if rx0 >= rx1 or ry0 >= ry1:
        return None
    dist = np.full((ry1 - ry0, rx1 - rx0), np.inf, dtype=np.float32)
    a = pts[:-1]
    b = pts[1:]
    if len(pts) == 1:
        a = b = pts
    for (ax, ay), (bx, by) in zip(a, b, strict=True):
        sx0 = max(int(math.floor(min(ax, bx) - support)), rx0)
        sx1 = min(int(math.ceil(max(ax, bx) + support)) + 1, rx1)
        sy0 = max(int(math.floor(min(ay, by) - support)), ry0)
        sy1 = min(int(math.ceil(max(ay, by) + support)) + 1, ry1)
        if sx0 >= sx1 or sy0 >= sy1:
            continue
        gx = np.arange(sx0, sx1, dtype=np.float32)[None, :] - np.float32(ax)
        gy = np.arange(sy0, sy1, dtype=np.float32)[:, None] - np.float32(ay)
        dx, dy = np.float32(bx - ax), np.float32(by - ay)
        ll = dx * dx + dy * dy
        if ll > 0:
            t = np.clip((gx * dx + gy * dy) / ll, 0.0, 1.0)
            d2 = (gx - t * dx) ** 2 + (gy - t * dy) ** 2
        else:
            d2 = gx * gx + gy * gy
        sub = dist[sy0 - ry0 : sy1 - ry0, sx0 - rx0 : sx1 - rx0]
        np.minimum(sub, np.sqrt(d2), out=sub)
    return (slice(ry0, ry1), slice(rx0, rx1)), dist


def _box_profile(d: np.ndarray, r: float) -> np.ndarray:
    """Anti-aliased flat-top profile of half-width ``r`` px (≈ pixel coverage, 1-D)."""
    return np.clip(np.minimum(np.float32(r + 0.5) - d, np.float32(min(2 * r, 1.0))), 0.0, 1.0)


@functools.lru_cache(maxsize=24)
def _noise_grid(
    texture_seed: int, tag: int, spacing_mm: float, shape: tuple[int, int], px_per_mm: float
) -> np.ndarray:
    """Unit random grid (one node every ``spacing_mm``) over the scene and its margin."""
    lh, lw = shape
    gw = int(math.ceil(lw * (1 + 2 * _SCENE_MARGIN) / px_per_mm / spacing_mm)) + 4
    gh = int(math.ceil(lh * (1 + 2 * _SCENE_MARGIN) / px_per_mm / spacing_mm)) + 4
    rng = np.random.default_rng([int(texture_seed), tag])
    raw = rng.standard_normal((gh, gw), dtype=np.float32)
    grid = np.asarray(cv2.GaussianBlur(raw, (0, 0), 0.8), dtype=np.float32)
    grid /= max(float(grid.std()), 1e-6)
    grid.flags.writeable = False
    return grid


_COARSE_MM = 1.5  # node spacing of the merged coarse texture grid
_FINE_MM = 0.35  # node spacing of the fine (pore-scale) neutral texture


def _resample_grid(grid: np.ndarray, spacing_mm: float, target_mm: float, shape: Any) -> np.ndarray:
    """Resample a noise grid onto a finer grid with the same origin convention."""
    k = target_mm / spacing_mm
    # Node j of the target sits at ((j - 2) * target + margin) mm -> source index (j-2)k + 2.
    m = np.array([[k, 0.0, 2.0 - 2.0 * k], [0.0, k, 2.0 - 2.0 * k]], dtype=np.float64)
    out = cv2.warpAffine(
        grid,
        m,
        (shape[1], shape[0]),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    return np.asarray(out, dtype=np.float32)


@functools.lru_cache(maxsize=12)
def _texture_grids(
    texture_seed: int, shape: tuple[int, int], px_per_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Skin texture grids: coarse (gh, gw, 3) [melanin, haemoglobin, backdrop] and fine."""
    base = _noise_grid(texture_seed, 2, _COARSE_MM, shape, px_per_mm)
    gshape = base.shape
    mel = np.float32(0.025) * base + np.float32(0.05) * _resample_grid(
        _noise_grid(texture_seed, 1, 6.0, shape, px_per_mm), 6.0, _COARSE_MM, gshape
    )
    hb = np.float32(0.035) * _resample_grid(
        _noise_grid(texture_seed, 3, 4.0, shape, px_per_mm), 4.0, _COARSE_MM, gshape
    )
    bg = np.float32(0.03) * _resample_grid(
        _noise_grid(texture_seed, 5, 20.0, shape, px_per_mm), 20.0, _COARSE_MM, gshape
    )
    coarse = np.ascontiguousarray(np.stack([mel, hb, bg], axis=2), dtype=np.float32)
    fine = np.float32(0.012) * _noise_grid(texture_seed, 4, _FINE_MM, shape, px_per_mm)
    coarse.flags.writeable = False
    fine.flags.writeable = False
    return coarse, fine


def _sample_grid(
    grid: np.ndarray, spacing_mm: float, leg: Leg, s: float, x0: int, y0: int, h: int, w: int
) -> np.ndarray:
    """Bicubic sample of a texture grid on a window (pixel (j, i) = leg ((x0+j)/s, (y0+i)/s))."""
    lh, lw = leg.shape
    a = 1.0 / (leg.px_per_mm * s * spacing_mm)
    ox = (_SCENE_MARGIN * lw / leg.px_per_mm) / spacing_mm + 2.0
    oy = (_SCENE_MARGIN * lh / leg.px_per_mm) / spacing_mm + 2.0
    m = np.array([[a, 0.0, x0 * a + ox], [0.0, a, y0 * a + oy]], dtype=np.float64)
    out = cv2.warpAffine(
        grid,
        m,
        (w, h),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    return np.asarray(out, dtype=np.float32)


@functools.lru_cache(maxsize=64)
def _shading_lut(side_light: float) -> tuple[np.ndarray, np.ndarray]:
    """Neutral shading OD as a function of the across-leg coordinate u (−1 … 1 at the rims).

    A cylinder lit from the front and slightly from one side, with a soft specular band:
    the rim is darker than the middle.
    """
    u = np.linspace(-1.0, 1.0, 2049)
    cosine = np.sqrt(np.maximum(1.0 - u * u, 0.0))
    light = 0.25 + 0.75 * cosine**0.8 * (1.0 + 0.15 * side_light * u)
    spec = 0.06 * np.exp(-(((u + 0.35 * side_light) / 0.25) ** 2))
    od = -np.log(np.maximum(light + spec, 0.05))
    return u, od


@dataclass
class _Scene:
    od: np.ndarray  # (h, w, 3) float32 (empty in truth-only mode)
    labels: np.ndarray  # uint8
    ids: np.ndarray  # uint16
    bits: np.ndarray  # uint8 packed masks


_BLOCK_PX = 1 << 19  # pixels per row block in full-frame passes (bounds temporaries)


def _row_blocks(h: int, w: int) -> list[tuple[int, int]]:
    step = max(1, _BLOCK_PX // max(w, 1))
    return [(a, min(a + step, h)) for a in range(0, h, step)]


class _LegGeometry:
    """Per-row leg centre/half-width on a window, and per-block u and alpha."""

    def __init__(self, leg: Leg, s: float, x0: int, y0: int, h: int, w: int) -> None:
        lh, _ = leg.shape
        self.s = s
        ys = (np.arange(h, dtype=np.float64) + y0) / s
        xc, hw = leg.outline.centre_and_half_width(ys, lh)
        slope = np.gradient(xc) * s if h > 1 else np.zeros_like(xc)
        self.xc = xc.astype(np.float32)[:, None]
        self.hw = hw.astype(np.float32)[:, None]
        # Leg-edge distance in window px per leg px, across the (tilted) band.
        self.edge_gain = (s / np.sqrt(1.0 + slope**2)).astype(np.float32)[:, None]
        self.xs = ((np.arange(w, dtype=np.float32) + x0) / np.float32(s))[None, :]
        self.yfrac = (ys / lh - 0.5).astype(np.float32)[:, None]

    def u_alpha(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        dxl = self.xs - self.xc[a:b]
        u = dxl / self.hw[a:b]
        alpha = np.clip(0.5 + (self.hw[a:b] - np.abs(dxl)) * self.edge_gain[a:b], 0.0, 1.0)
        return u, alpha


def _render_scene(
    leg: Leg, s: float, x0: int, y0: int, h: int, w: int, *, with_od: bool = True
) -> _Scene:
    """OD image and truth maps of the leg on a window of the baseline frame at scale ``s``.

    Window pixel (i, j) is baseline point ((x0 + j) / s, (y0 + i) / s) in leg px.
    Smooth skin fields are composed in row blocks; the sparse absorbers (veins, hair,
    spots, stains, bruises) are stamped in their own bounding boxes, so a 24 MP window
    needs about five float32 planes.
    """
    lh, _ = leg.shape
    ppm = leg.px_per_mm * s
    geo = _LegGeometry(leg, s, x0, y0, h, w)
    leg_mask = np.empty((h, w), dtype=bool)
    for a, b in _row_blocks(h, w):
        leg_mask[a:b] = geo.u_alpha(a, b)[1] >= 0.5
    labels = np.zeros((h, w), dtype=np.uint8)
    ids = np.zeros((h, w), dtype=np.uint16)
    bits = leg_mask.astype(np.uint8) * np.uint8(_BIT_LEG)
    best = np.zeros((h, w), dtype=np.float32)
    # Vein fields combine by maximum within a class (a junction is not twice as dark).
    haem = np.zeros((h, w), dtype=np.float32)
    deep = np.zeros((h, w), dtype=np.float32)
    # Other absorbers add into OD directly after the skin is composed: (slices, OD (h, w, 3)).
    stamps: list[tuple[tuple[slice, slice], np.ndarray, np.ndarray]] = []
    origin = np.array([x0, y0], dtype=np.float64)

    # Veins: reticular first, spider over them (superficial wins the label).
    for cls in ("reticular", "spider"):
        for v in leg.veins:
            if v.cls != cls or v.visibility <= 0.0:
                continue
            r = v.width_mm * ppm / 2.0
            sigma = v.width_mm * ppm / 2.3548
            support = r + 1.5 if cls == "spider" else max(3.0 * sigma, r + 1.5)
            res = _polyline_distance(v.centreline * s - origin, x0, y0, h, w, support)
            if res is None:
                continue
            sl, d = res
            if cls == "spider":
                prof = _box_profile(d, r)
            else:
                prof = np.exp(-(d * d) / np.float32(2 * sigma * sigma))
            contrib = prof * np.float32(v.amplitude * v.visibility)
            target = haem if cls == "spider" else deep
            np.maximum(target[sl], contrib, out=target[sl])
            foot = (d <= max(r, 0.5)) & leg_mask[sl]
            score = contrib + (np.float32(10.0) if cls == "spider" else np.float32(0.0))
            take = foot & (score > best[sl])
            best[sl][take] = score[take]
            ids[sl][take] = v.id
            labels[sl][take] = LABEL_SPIDER if cls == "spider" else LABEL_RETICULAR
    del best

    def strokes(items: tuple[Stroke, ...], bit: int, soft: bool, direction: np.ndarray) -> None:
        for st in items:
            r = st.width_mm * ppm / 2.0
            sigma = st.width_mm * ppm / 2.3548
            support = 3.0 * sigma if soft else r + 1.5
            res = _polyline_distance(st.centreline * s - origin, x0, y0, h, w, support)
            if res is None:
                continue
            sl, d = res
            prof = np.exp(-(d * d) / np.float32(2 * sigma * sigma)) if soft else _box_profile(d, r)
            if direction is HAEMOGLOBIN_OD:  # matting: fine red vessels, max with spiders
                np.maximum(haem[sl], prof * np.float32(st.amplitude), out=haem[sl])
            else:
                stamps.append((sl, prof * np.float32(st.amplitude), direction))
            mask = (d <= max(r, 0.5)) & leg_mask[sl]
            bits[sl][mask] |= np.uint8(bit)

    strokes(leg.hairs, _BIT_HAIR, False, _HAIR_OD)
    strokes(leg.stains, _BIT_STAIN, True, MELANIN_OD)
    strokes(leg.matting, _BIT_MATTING, False, HAEMOGLOBIN_OD)

    for sp in leg.spots:
        rad = sp.radius_mm * ppm
        edge = max(sp.edge_mm * ppm, 0.5)
        support = rad * 1.4 + 3 * edge
        cx, cy = sp.x * s - x0, sp.y * s - y0
        jx0, jx1 = max(int(cx - support), 0), min(int(cx + support) + 2, w)
        jy0, jy1 = max(int(cy - support), 0), min(int(cy + support) + 2, h)
        if jx0 >= jx1 or jy0 >= jy1:
            continue
        gx = np.arange(jx0, jx1, dtype=np.float32)[None, :] - np.float32(cx)
        gy = np.arange(jy0, jy1, dtype=np.float32)[:, None] - np.float32(cy)
        ca, sa = math.cos(sp.angle), math.sin(sp.angle)
        ex = gx * ca + gy * sa
        ey = (-gx * sa + gy * ca) / np.float32(sp.aspect)
        rr = np.sqrt(ex * ex + ey * ey)
        phi = np.arctan2(ey, ex)
        mod = np.ones_like(rr)
        for k, (wb, ph) in enumerate(zip(sp.wobble, sp.phase, strict=True)):
            mod += np.float32(wb) * np.cos((k + 2) * phi + np.float32(ph))
        dd = rr - np.float32(rad) * mod
        prof = (1.0 / (1.0 + np.exp(np.clip(dd / np.float32(edge / 2.0), -30, 30)))).astype(
            np.float32
        )
        sl = (slice(jy0, jy1), slice(jx0, jx1))
        stamps.append((sl, prof * np.float32(sp.amplitude), MELANIN_OD))
        if sp.kind == "mole":
            stamps.append((sl, prof * np.float32(0.25 * sp.amplitude), _NEUTRAL3))
        inside = (dd <= 0) & leg_mask[sl]
        bits[sl][inside] |= np.uint8(_BIT_FRECKLE if sp.kind == "freckle" else _BIT_MOLE)

    for br in leg.bruises:
        rad = br.radius_mm * ppm
        support = rad * 2.2
        cx, cy = br.x * s - x0, br.y * s - y0
        jx0, jx1 = max(int(cx - support), 0), min(int(cx + support) + 2, w)
        jy0, jy1 = max(int(cy - support), 0), min(int(cy + support) + 2, h)
        if jx0 >= jx1 or jy0 >= jy1:
            continue
        gx = np.arange(jx0, jx1, dtype=np.float32)[None, :] - np.float32(cx)
        gy = np.arange(jy0, jy1, dtype=np.float32)[:, None] - np.float32(cy)
        ca, sa = math.cos(br.angle), math.sin(br.angle)
        ex = (gx * ca + gy * sa) / np.float32(rad)
        ey = (-gx * sa + gy * ca) / np.float32(rad * br.aspect)
        prof = np.exp(-(ex * ex + ey * ey)) * np.float32(br.amplitude)
        sl = (slice(jy0, jy1), slice(jx0, jx1))
        if br.hue == "purple":
            stamps.append((sl, prof, _BRUISE_PURPLE))
        elif br.hue == "blue":
            stamps.append((sl, prof, _BRUISE_BLUE))
        else:
            stamps.append((sl, prof, _YELLOW_OD))
        bits[sl][(prof >= 0.5 * br.amplitude) & leg_mask[sl]] |= np.uint8(_BIT_BRUISE)

    if not with_od:
        return _Scene(np.zeros((0, 0, 3), np.float32), labels, ids, bits)

    od = np.empty((h, w, 3), dtype=np.float32)
    skin_base = (
        _SKIN_BASE_OD
        + np.float32(leg.melanin) * MELANIN_OD
        + np.float32(_TONE_YELLOW.get(leg.tone, 0.0)) * _YELLOW_OD
    )
    bg_od = (-np.log(np.asarray(leg.backdrop, dtype=np.float64))).astype(np.float32)
    # Skin OD = base + M·mel + H·haem + D·deep + (1,1,1)·neutral, as one 3×5 transform.
    mix = np.zeros((3, 5), dtype=np.float32)
    mix[:, 0], mix[:, 1], mix[:, 2], mix[:, 3], mix[:, 4] = (
        MELANIN_OD,
        HAEMOGLOBIN_OD,
        DEEP_VEIN_OD,
        1.0,
        skin_base,
    )
    shade_u, shade_v = _shading_lut(leg.outline.side_light)
    coarse_grid, fine_grid = _texture_grids(leg.texture_seed, leg.shape, leg.px_per_mm)
    for a, b in _row_blocks(h, w):
        bh = b - a
        u, alpha = geo.u_alpha(a, b)
        # Skin texture, fixed in the leg's mm frame (every visit shows the same skin):
        # channels melanin, haemoglobin, backdrop variation; then fine neutral texture.
        coarse = _sample_grid(coarse_grid, _COARSE_MM, leg, s, x0, y0 + a, bh, w)
        neu = _sample_grid(fine_grid, _FINE_MM, leg, s, x0, y0 + a, bh, w)
        # Cylinder shading (darker at the rim, light from one side, a soft specular band).
        neu += np.interp(u, shade_u, shade_v).astype(np.float32)
        neu += np.float32(0.08) * geo.yfrac[a:b]
        mel = coarse[:, :, 0]
        hb = coarse[:, :, 1] + haem[a:b]
        fields = cv2.merge([mel, hb, deep[a:b], neu])
        skin = np.asarray(cv2.transform(fields, mix), dtype=np.float32)
        bg = (
            bg_od[None, None, :] + (coarse[:, :, 2] + np.float32(0.10) * geo.yfrac[a:b])[:, :, None]
        )
        skin -= bg
        skin *= alpha[:, :, None]
        skin += bg
        od[a:b] = skin
    for sl, prof, direction in stamps:
        roi = od[sl]
        roi += prof[:, :, None] * direction[None, None, :]
    return _Scene(od, labels, ids, bits)


# --------------------------------------------------------------------------------------
# Photography: exposure, WB, blur, noise, sRGB, JPEG
# --------------------------------------------------------------------------------------

_SRGB_LUT_N = 65536
_SRGB_LUT: np.ndarray | None = None


def _srgb_lut() -> np.ndarray:
    global _SRGB_LUT
    if _SRGB_LUT is None:
        v = np.arange(_SRGB_LUT_N, dtype=np.float64) / (_SRGB_LUT_N - 1)
        enc = np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)
        _SRGB_LUT = np.round(enc * 255.0).astype(np.uint8)
    return _SRGB_LUT


def _photograph(od: np.ndarray, capture: Capture, blur: float) -> tuple[np.ndarray, bytes | None]:
    """OD (H, W, 3) float32 → sRGB uint8 through the capture's photometric chain.

    ``od`` is consumed (overwritten in place with linear values) to save memory.
    """
    h, w, _ = od.shape
    gains = (np.asarray(capture.wb_gains, dtype=np.float64) * capture.exposure).astype(np.float32)
    blocks = _row_blocks(h, w)
    for a, b in blocks:
        blk = od[a:b]
        np.negative(blk, out=blk)
        np.exp(blk, out=blk)
        blk *= gains[None, None, :]
    if blur > 0.05:
        cv2.GaussianBlur(od, (0, 0), blur, dst=od, borderType=cv2.BORDER_REFLECT)
    lut = _srgb_lut()
    out = np.empty((h, w, 3), dtype=np.uint8)
    rng = np.random.default_rng([int(capture.seed), 0x401])
    scale = np.float32(_SRGB_LUT_N - 1)
    for a, b in blocks:
        blk = od[a:b]
        if capture.noise > 0:
            sd = np.maximum(blk, np.float32(0.0))
            sd += np.float32(0.01)
            np.sqrt(sd * np.float32(1.0 / 0.19), out=sd)
            sd *= np.float32(capture.noise)
            sd *= rng.standard_normal(blk.shape, dtype=np.float32)
            blk += sd
        blk *= scale
        blk += np.float32(0.5)
        np.clip(blk, 0, scale, out=blk)
        out[a:b] = np.take(lut, blk.astype(np.uint16))
    if capture.jpeg_quality is None:
        return out, None
    ok, buf = cv2.imencode(
        ".jpg",
        cv2.cvtColor(out, cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, int(capture.jpeg_quality)],
    )
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise RuntimeError("JPEG encoding failed")
    data = buf.tobytes()
    dec = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if dec is None:  # pragma: no cover - decoding our own JPEG
        raise RuntimeError("JPEG decoding failed")
    return np.asarray(cv2.cvtColor(dec, cv2.COLOR_BGR2RGB)), data


def _remap(src: np.ndarray, xy: np.ndarray, interpolation: int, border: int) -> np.ndarray:
    """cv2.remap with a (H, W, 2) float32 map of source (x, y)."""
    out = cv2.remap(src, xy, None, interpolation, borderMode=border)
    return np.asarray(out)


def _unpack(bits: np.ndarray, bit: int) -> np.ndarray:
    return (bits & np.uint8(bit)) != 0


def _local_px_per_mm(hom: np.ndarray, shape: tuple[int, int], ppm_base: float) -> float:
    """Photo px per mm at the frame centre: baseline scale over the map's local scale."""
    h, w = shape
    c = np.array([[[(w - 1) / 2.0, (h - 1) / 2.0]]], dtype=np.float64)
    pts = np.concatenate([c, c + [[[1.0, 0.0]]], c + [[[0.0, 1.0]]]], axis=1)
    q = cv2.perspectiveTransform(pts, hom)[0]
    jac = abs(float(np.linalg.det(np.stack([q[1] - q[0], q[2] - q[0]]))))
    return ppm_base / math.sqrt(jac) if jac > 0 else ppm_base


def render(
    leg: Leg, capture: Capture | None = None, *, shape: tuple[int, int] | None = None
) -> Rendered:
    """Photograph the leg with a capture and return the photo with its truth.

    The scene is evaluated in OD on the part of the baseline frame the photo sees (up to
    half a frame beyond its edges; further out the border is replicated), mapped into the
    photo by inverse mapping (``cv2.remap`` with :attr:`Rendered.to_baseline_map`: bilinear
    for OD, nearest for the truth), then exposed: linear = exp(−OD) × exposure × WB gains,
    Gaussian blur, signal-dependent noise, sRGB, JPEG.

    Parameters
    ----------
    leg : Leg
    capture : Capture, optional
        Default :func:`identity_capture` (pixel-aligned, no noise, no JPEG).
    shape : (int, int), optional
        Output (H, W) px; default the leg's baseline shape. Another shape with the same
        aspect ratio renders the same scene at another resolution (px_per_mm scales).

    Returns
    -------
    Rendered
        The photo and its truth, in the photo's own frame. Vein truth covers the veins
        visible in this state of the leg (visibility > 0).
    """
    if not isinstance(leg, Leg):
        raise ValueError("leg must be a Leg from make_leg() or treat()")
    out_shape = leg.shape if shape is None else _check_shape(shape)
    lh, lw = leg.shape
    if abs(out_shape[0] / out_shape[1] - lh / lw) > 0.01 * lh / lw:
        raise ValueError(
            f"shape {out_shape} must keep the leg's aspect ratio {lh}:{lw}; "
            "pass a shape proportional to the baseline shape"
        )
    cap = identity_capture(shape=leg.shape) if capture is None else capture
    if not isinstance(cap, Capture):
        raise ValueError("capture must be a Capture from random_capture() or identity_capture()")
    h, w = out_shape
    s = w / lw
    hom, _, blur = _scaled_capture(cap, out_shape)

    if cap.is_identity_geometry:
        scene = _render_scene(leg, s, 0, 0, h, w)
        od, labels, ids, bits = scene.od, scene.labels, scene.ids, scene.bits
        del scene
        bmap = np.empty((h, w, 2), dtype=np.float32)
        bmap[:, :, 0] = np.arange(w, dtype=np.float32)[None, :]
        bmap[:, :, 1] = np.arange(h, dtype=np.float32)[:, None]
    else:
        bmap, (ex0, ey0, ex1, ey1) = _map_to_baseline(cap, out_shape)
        mx0 = max(math.floor(ex0) - 3, -int(_SCENE_MARGIN * w))
        mx1 = min(math.ceil(ex1) + 4, w + int(_SCENE_MARGIN * w))
        my0 = max(math.floor(ey0) - 3, -int(_SCENE_MARGIN * h))
        my1 = min(math.ceil(ey1) + 4, h + int(_SCENE_MARGIN * h))
        if mx0 >= mx1 or my0 >= my1:
            raise ValueError("capture looks entirely outside the scene; use a milder pose")
        scene = _render_scene(leg, s, mx0, my0, my1 - my0, mx1 - mx0)
        od = np.empty((h, w, 3), dtype=np.float32)
        labels = np.empty((h, w), dtype=np.uint8)
        ids = np.empty((h, w), dtype=np.uint16)
        bits = np.empty((h, w), dtype=np.uint8)
        off = np.array([mx0, my0], dtype=np.float32)
        for a, b in _row_blocks(h, w):
            local = bmap[a:b] - off
            od[a:b] = _remap(scene.od, local, cv2.INTER_LINEAR, cv2.BORDER_REPLICATE)
            labels[a:b] = _remap(scene.labels, local, cv2.INTER_NEAREST, cv2.BORDER_CONSTANT)
            ids[a:b] = _remap(scene.ids, local, cv2.INTER_NEAREST, cv2.BORDER_CONSTANT)
            bits[a:b] = _remap(scene.bits, local, cv2.INTER_NEAREST, cv2.BORDER_REPLICATE)
        del scene

    rgb, jpeg = _photograph(od, cap, blur)
    del od
    vis_lut = np.zeros(int(ids.max()) + 1, dtype=np.float32)
    for v in leg.veins:
        if v.id < len(vis_lut):
            vis_lut[v.id] = v.visibility
    ppm_base = leg.px_per_mm * s
    return Rendered(
        rgb=rgb,
        jpeg=jpeg,
        labels=labels,
        vein_ids=ids.astype(np.int32),
        visibility=vis_lut[ids],
        leg_mask=_unpack(bits, _BIT_LEG),
        hair=_unpack(bits, _BIT_HAIR),
        freckles=_unpack(bits, _BIT_FRECKLE),
        moles=_unpack(bits, _BIT_MOLE),
        stain=_unpack(bits, _BIT_STAIN),
        bruise=_unpack(bits, _BIT_BRUISE),
        matting=_unpack(bits, _BIT_MATTING),
        to_baseline_map=bmap,
        capture=cap,
        px_per_mm=_local_px_per_mm(hom, out_shape, ppm_base),
        baseline_px_per_mm=ppm_base,
    )


# --------------------------------------------------------------------------------------
# Ground truth of a pair
# --------------------------------------------------------------------------------------


def true_improvement(
    baseline_leg: Leg,
    followup_leg: Leg,
    *,
    overlap: np.ndarray | None = None,
    shape: tuple[int, int] | None = None,
    cls: str | None = None,
) -> float:
    """True improvement (%) of ``followup_leg`` over ``baseline_leg``, in the baseline frame.

    Definition (the headline figure; ``metrics.compare`` uses the same)::

        B   = baseline vein pixels (footprint of every baseline vein) ∩ overlap
        v_f(p) = remaining visibility at follow-up of the baseline vein covering p
                 (0 cleared, the fade factor, 1 persisting or recanalised)
        N   = follow-up vein pixels (footprint of veins visible at follow-up) ∩ overlap,
              not in B  (new veins, and any growth beyond the baseline footprint)
        improvement = 100 × (1 − (Σ_{p ∈ B} min(1, v_f(p)) + |N|) / |B|)

    Footprint = pixels within ``width/2`` (at least 0.5 px) of a vein's centreline; where
    veins overlap, a spider vein wins over a reticular one, then the stronger one.
    It can be negative when new veins outweigh the cleared ones. Matting, staining and
    bruises are not veins and do not enter.

    Parameters
    ----------
    baseline_leg, followup_leg : Leg
        The baseline state and a later state of the same leg (from :func:`treat`).
    overlap : ndarray, (H, W) bool, optional
        Region of the baseline frame to score (default the baseline leg mask).
    shape : (int, int), optional
        Baseline frame resolution (default the leg's shape); must match ``overlap``.
    cls : {"spider", "reticular"}, optional
        Restrict B and N to one vein class.

    Returns
    -------
    float
        Percent; nan when there are no baseline vein pixels in the region.
    """
    if baseline_leg.seed != followup_leg.seed or baseline_leg.shape != followup_leg.shape:
        raise ValueError("followup_leg must be a treated state of baseline_leg (same seed/shape)")
    if cls is not None and cls not in VEIN_CLASSES:
        raise ValueError(f"cls must be one of {VEIN_CLASSES} or None, got {cls!r}")
    shp = baseline_leg.shape if shape is None else _check_shape(shape)
    s = shp[1] / baseline_leg.shape[1]
    b = _render_scene(baseline_leg, s, 0, 0, shp[0], shp[1], with_od=False)
    f = _render_scene(followup_leg, s, 0, 0, shp[0], shp[1], with_od=False)
    region = _unpack(b.bits, _BIT_LEG) if overlap is None else np.asarray(overlap, dtype=bool)
    if region.shape != shp:
        raise ValueError(f"overlap must have shape {shp}, got {region.shape}")
    return _improvement_from_maps(baseline_leg, followup_leg, b, f, region, cls)


def _improvement_from_maps(
    baseline_leg: Leg,
    followup_leg: Leg,
    b: _Scene,
    f: _Scene,
    region: np.ndarray,
    cls: str | None,
) -> float:
    want = {None: (LABEL_SPIDER, LABEL_RETICULAR), "spider": (LABEL_SPIDER,)}.get(
        cls, (LABEL_RETICULAR,)
    )
    bmask = np.isin(b.labels, want) & region
    n_b = int(np.count_nonzero(bmask))
    if n_b == 0:
        return float("nan")
    vis = np.zeros(max((v.id for v in followup_leg.veins), default=0) + 1, dtype=np.float64)
    for v in followup_leg.veins:
        vis[v.id] = min(1.0, max(0.0, v.visibility))
    remaining = float(vis[b.ids[bmask].astype(np.int64)].sum())
    all_b = (b.labels > 0) & region
    new = np.isin(f.labels, want) & region & ~all_b
    n_new = int(np.count_nonzero(new))
    return 100.0 * (1.0 - (remaining + n_new) / n_b)


def make_pair(
    seed: int,
    *,
    shape: tuple[int, int] = (1500, 2000),
    px_per_mm: float | None = None,
    tone: str | None = None,
    n_spider_clusters: int | None = None,
    n_reticular: int | None = None,
    hair: bool = True,
    freckles: bool = True,
    moles: bool = True,
    cleared_frac: float = 0.6,
    faded_frac: float = 0.2,
    fade_to: float | tuple[float, float] = 0.5,
    n_new: int = 0,
    recanalise: Sequence[int] = (),
    staining: bool = False,
    bruising: bool = False,
    matting: bool = False,
    by: Literal["count", "area"] = "count",
    capture: Capture | None = None,
    baseline_capture: Capture | None = None,
) -> PhantomPair:
    """A baseline photo and a treated follow-up photo of one leg, with the true improvement.

    Parameters
    ----------
    seed : int
        Non-negative seed of the whole pair (leg, treatment, follow-up capture).
    shape : (int, int)
        (H, W) px of both photos.
    px_per_mm, n_spider_clusters, n_reticular, hair, freckles, moles
        As in :func:`make_leg`.
    tone : str, optional
        One of :data:`TONES`; default drawn from the seed.
    cleared_frac, faded_frac, fade_to, n_new, recanalise, staining, bruising, matting, by
        As in :func:`treat`.
    capture : Capture, optional
        Follow-up capture; default ``random_capture`` with default ranges, from the seed.
    baseline_capture : Capture, optional
        Baseline capture; default :func:`identity_capture`. Its geometry must be the
        identity (photometric settings may differ), so the baseline photo is the baseline frame.

    Returns
    -------
    PhantomPair
        ``true_improvement_pct`` as defined in :func:`true_improvement`, over
        ``overlap_mask`` = baseline leg pixels that the follow-up photo also sees::

            B = baseline vein pixels ∩ overlap
            N = follow-up vein pixels (veins visible at follow-up, mapped to the
                baseline frame) ∩ overlap, not in B
            true_improvement_pct = 100 × (1 − (Σ_{p ∈ B} min(1, v_f(p)) + |N|) / |B|)

        with ``v_f(p)`` the follow-up visibility of the baseline vein covering p (0 cleared,
        the fade factor, 1 persisting or recanalised). 100 = every vein gone, 0 = no
        change, negative = new veins outweigh the cleared ones.
    """
    h, w = _check_shape(shape)
    rng = _rng(seed, 0x9A1)
    tone_ = str(rng.choice(list(TONES))) if tone is None else tone
    leg_seed, treat_seed, cap_seed = (int(v) for v in rng.integers(0, 2**31 - 1, 3))
    leg = make_leg(
        leg_seed,
        shape=(h, w),
        px_per_mm=px_per_mm,
        tone=tone_,
        n_spider_clusters=n_spider_clusters,
        n_reticular=n_reticular,
        hair=hair,
        freckles=freckles,
        moles=moles,
    )
    fol = treat(
        leg,
        treat_seed,
        cleared_frac=cleared_frac,
        faded_frac=faded_frac,
        fade_to=fade_to,
        n_new=n_new,
        recanalise=recanalise,
        staining=staining,
        bruising=bruising,
        matting=matting,
        by=by,
    )
    base_cap = identity_capture(shape=(h, w)) if baseline_capture is None else baseline_capture
    if not base_cap.is_identity_geometry:
        raise ValueError(
            "baseline_capture must have identity geometry (homography = I, no bend); "
            "vary only its photometric settings"
        )
    fol_cap = random_capture(cap_seed, shape=(h, w)) if capture is None else capture
    baseline = render(leg, base_cap)
    followup = render(fol, fol_cap)
    return pair_truth(leg, fol, baseline, followup)


def pair_truth(
    baseline_leg: Leg, followup_leg: Leg, baseline: Rendered, followup: Rendered
) -> PhantomPair:
    """Assemble a :class:`PhantomPair` (truth included) from two renders of one leg.

    ``baseline`` must be rendered with identity geometry at the leg's shape or a
    proportional one; ``followup`` at the same shape with any capture.
    """
    if not baseline.capture.is_identity_geometry:
        raise ValueError("baseline must be rendered with identity geometry")
    if baseline.shape != followup.shape:
        raise ValueError(
            f"baseline and followup must have the same shape, got {baseline.shape} and "
            f"{followup.shape}"
        )
    shp = baseline.shape
    s = shp[1] / baseline_leg.shape[1]
    overlap = baseline.leg_mask & _inverse_in_frame(followup.capture, shp)
    b = _render_scene(baseline_leg, s, 0, 0, shp[0], shp[1], with_od=False)
    f = _render_scene(followup_leg, s, 0, 0, shp[0], shp[1], with_od=False)
    imp = _improvement_from_maps(baseline_leg, followup_leg, b, f, overlap, None)
    by_cls = {
        c: _improvement_from_maps(baseline_leg, followup_leg, b, f, overlap, c)
        for c in VEIN_CLASSES
    }
    n_b = int(np.count_nonzero((b.labels > 0) & overlap))
    n_f = int(np.count_nonzero((f.labels > 0) & overlap))
    by_area = 100.0 * (1.0 - n_f / n_b) if n_b else float("nan")
    len_b = sum(_length_inside(v, s, overlap) for v in baseline_leg.veins if v.visibility > 0)
    len_f = sum(_length_inside(v, s, overlap) for v in followup_leg.veins if v.visibility > 0)
    by_length = 100.0 * (1.0 - len_f / len_b) if len_b > 0 else float("nan")
    return PhantomPair(
        baseline=baseline,
        followup=followup,
        baseline_leg=baseline_leg,
        followup_leg=followup_leg,
        true_improvement_pct=imp,
        status_by_vein=followup_leg.status_by_vein(),
        overlap_mask=overlap,
        true_improvement_by_class_pct=by_cls,
        true_improvement_by_area_pct=by_area,
        true_improvement_by_length_pct=by_length,
    )


def _length_inside(vein: Vein, s: float, region: np.ndarray) -> float:
    """Centreline length (px at scale ``s``) of ``vein`` inside ``region`` (nearest pixel)."""
    pts = vein.centreline * s
    seg = np.diff(pts, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    mid = np.rint((pts[:-1] + pts[1:]) / 2.0).astype(np.int64)
    h, w = region.shape
    ok = (mid[:, 0] >= 0) & (mid[:, 0] < w) & (mid[:, 1] >= 0) & (mid[:, 1] < h)
    inside = np.zeros(len(mid), dtype=bool)
    inside[ok] = region[mid[ok, 1], mid[ok, 0]]
    return float(seg_len[inside].sum())
