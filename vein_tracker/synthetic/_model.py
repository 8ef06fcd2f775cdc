"""The phantom's vocabulary: constants of the optics and the frozen scene/photo dataclasses.

Everything else in :mod:`vein_tracker.synthetic` builds, changes or renders these objects;
this module holds no generation or rendering logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vein_tracker.optics import DEEP_VEIN_OD, HAEMOGLOBIN_OD, MELANIN_OD, NEUTRAL_OD

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
