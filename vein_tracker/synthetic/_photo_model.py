"""The photo-like phantoms' vocabulary: frozen dataclasses of scenes, captures and truth.

A :class:`PhotoScene` is a world in the baseline frame (px at ``px_per_mm``, x right,
y down): legs whose skin is an unrolled :class:`~vein_tracker.synthetic.Leg` surface (so
:func:`~vein_tracker.synthetic.treat` changes their veins), feet, hands, a floor, a
backdrop and clothing. A :class:`PhotoCapture` is how one photo of it was taken (pose,
lights, colour cast, lens, tone curve, sharpening, JPEG, watermark). This module holds no
logic beyond small geometric helpers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vein_tracker.synthetic._model import Capture, Leg, Stroke, _frozen_array
from vein_tracker.synthetic.texture import SkinTexture

#: Codes of :attr:`PhotoRendered.surface` (what is in front at each pixel).
SURF_BACKGROUND, SURF_FLOOR, SURF_CLOTHING, SURF_HAND, SURF_FOOT = 0, 1, 2, 3, 4
#: Leg ``k`` (0-based, in :attr:`PhotoScene.legs` order) is code ``SURF_LEG0 + k``.
SURF_LEG0 = 10
#: Vein ids in photo truth: ``VEIN_ID_STRIDE * (leg index + 1) + vein.id``.
VEIN_ID_STRIDE = 100_000

LAYOUTS = ("single", "two", "crossed", "standing", "lying")
BACKDROPS = ("studio-white", "dark", "wood", "tiles", "wall", "paper", "grass")
FLOORS = ("wood", "tiles", "gravel", "mat")
CASTS = ("none", "tungsten", "fluorescent", "led-blue", "daylight-shade")


@dataclass(frozen=True)
class Bump:
    """A smooth relief bump of the leg surface (knee cap, tibia, malleolus, calf).

    Centre ``(x_mm, y_mm)`` in the surface frame (x across the unrolled surface, y down
    the leg), Gaussian ``sx_mm``/``sy_mm``, ``height_mm`` (negative for a hollow).
    """

    x_mm: float
    y_mm: float
    sx_mm: float
    sy_mm: float
    height_mm: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return dict(self.__dict__)


@dataclass(frozen=True, eq=False)
class PhotoLeg:
    """One leg of a photo scene.

    The leg's axis starts at ``(x, y)`` (world px, the top of the modelled leg), runs
    ``length`` px in direction ``angle`` (rad; 0 = straight down, positive turns the
    lower end towards −x) and bows sideways by ``bow`` px at mid-length. ``radius``
    (K,) px is the half-width at K evenly spaced points from top to bottom (thigh, knee,
    calf, ankle). A world point at axis distance ``b`` and across offset ``a`` is skin
    when ``|a| ≤ r(b)``; it shows the surface point at arc ``r·asin(a/r)`` from the
    front line, so the skin foreshortens towards the outline.

    ``surface`` is the unrolled skin (a :class:`Leg` whose frame is (length, arc) px at
    the scene's scale; its ``veins``, hair and spots are the truth), ``folds`` the
    creases (surface px), ``relief`` bumps, ``texture`` the micro-texture, ``depth`` the
    drawing order (larger is nearer the camera), ``knee_b``/``ankle_b`` fractions of the
    length.
    """

    surface: Leg
    x: float
    y: float
    angle: float
    bow: float
    length: float
    radius: np.ndarray
    depth: float
    folds: tuple[Stroke, ...] = ()
    relief: tuple[Bump, ...] = ()
    texture: SkinTexture = field(default_factory=SkinTexture)
    knee_b: float = 0.33
    ankle_b: float = 0.95

    @property
    def arc_centre(self) -> float:
        """Surface x (px) of the leg's front line (the middle of the unrolled frame)."""
        return self.surface.shape[1] / 2.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "surface": self.surface.to_dict(),
            "x": self.x,
            "y": self.y,
            "angle": self.angle,
            "bow": self.bow,
            "length": self.length,
            "radius": self.radius.round(3).tolist(),
            "depth": self.depth,
            "folds": [f.to_dict() for f in self.folds],
            "relief": [b.to_dict() for b in self.relief],
            "texture": self.texture.to_dict(),
            "knee_b": self.knee_b,
            "ankle_b": self.ankle_b,
        }


@dataclass(frozen=True, eq=False)
class Limb:
    """A hand or a foot: capsules (polyline centrelines with radii) in world px.

    ``parts`` is a tuple of (centreline (N, 2) px, radius px) pairs: palm and fingers,
    or sole and toes. ``nails`` are (centre (2,), half-length px, half-width px, angle)
    of nail plates. ``kind`` is "hand" or "foot"; ``melanin`` the skin's melanin OD;
    ``glove`` None or a linear RGB colour; ``veins`` faint dorsal veins (not truth:
    they are outside the treatment area); ``creases`` knuckle creases; ``depth`` the
    drawing order (height above the backdrop, mm); ``ppm`` the scene's px per mm;
    ``fade`` (point, unit direction, length px): coverage rises from 0 to 1 over that
    length along the direction (a foot blending into its ankle); ``tilt`` a constant
    slope added to the surface normal (a foot's upper side faces up).
    """

    kind: str
    parts: tuple[tuple[np.ndarray, float], ...]
    nails: tuple[tuple[np.ndarray, float, float, float], ...]
    melanin: float
    depth: float
    ppm: float
    glove: tuple[float, float, float] | None = None
    veins: tuple[Stroke, ...] = ()
    creases: tuple[Stroke, ...] = ()
    fade: tuple[tuple[float, float], tuple[float, float], float] | None = None
    tilt: tuple[float, float] = (0.0, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "kind": self.kind,
            "parts": [[c.round(2).tolist(), r] for c, r in self.parts],
            "nails": [[c.tolist(), a, b, t] for c, a, b, t in self.nails],
            "melanin": self.melanin,
            "depth": self.depth,
            "ppm": self.ppm,
            "glove": self.glove,
            "veins": [v.to_dict() for v in self.veins],
            "creases": [v.to_dict() for v in self.creases],
            "fade": None
            if self.fade is None
            else [list(self.fade[0]), list(self.fade[1]), self.fade[2]],
            "tilt": list(self.tilt),
        }


@dataclass(frozen=True)
class Material:
    """A flat textured surface of the scene: backdrop, floor or clothing.

    ``kind`` names it (see :data:`BACKDROPS`, :data:`FLOORS`, "fabric"); ``tint`` (3,)
    linear RGB multiplies the material; ``scale`` multiplies its real size; ``angle``
    rotates it (rad); ``seed`` offsets it; ``gradient`` (gx, gy) brightness change per
    frame width/height; ``blur_mm`` its defocus.
    """

    kind: str
    tint: tuple[float, float, float]
    scale: float = 1.0
    angle: float = 0.0
    seed: int = 0
    gradient: tuple[float, float] = (0.0, 0.0)
    blur_mm: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Region:
    """A half-plane-like region of the world: points with ``n·(p − p0) > wave(p)``.

    ``p0`` (x, y) px, ``normal`` (nx, ny) unit, ``wave`` amplitude px and ``period`` px
    of a sinusoidal edge, ``soft`` px of edge softness; ``material`` fills it.
    """

    p0: tuple[float, float]
    normal: tuple[float, float]
    material: Material
    wave: float = 0.0
    period: float = 1000.0
    soft: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {**self.__dict__, "material": self.material.to_dict()}


@dataclass(frozen=True, eq=False)
class PhotoScene:
    """The world of a photo-like phantom (see the module docstring)."""

    seed: int
    shape: tuple[int, int]
    px_per_mm: float
    tone: str
    layout: str
    legs: tuple[PhotoLeg, ...]
    limbs: tuple[Limb, ...]
    backdrop: Material
    floor: Region | None
    clothing: Region | None
    visit: int = 0

    def vein_table(self) -> dict[int, tuple[int, str, str, float]]:
        """``{photo vein id: (leg index, class, status, visibility)}`` of every vein."""
        out = {}
        for k, leg in enumerate(self.legs):
            for v in leg.surface.veins:
                out[VEIN_ID_STRIDE * (k + 1) + v.id] = (k, v.cls, v.status, v.visibility)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of the whole scene."""
        return {
            "seed": self.seed,
            "shape": list(self.shape),
            "px_per_mm": self.px_per_mm,
            "tone": self.tone,
            "layout": self.layout,
            "legs": [leg.to_dict() for leg in self.legs],
            "limbs": [limb.to_dict() for limb in self.limbs],
            "backdrop": self.backdrop.to_dict(),
            "floor": None if self.floor is None else self.floor.to_dict(),
            "clothing": None if self.clothing is None else self.clothing.to_dict(),
            "visit": self.visit,
        }


@dataclass(frozen=True, eq=False)
class Lighting:
    """The lights of one photo (directions in camera coordinates: x right, y down, z to
    the camera; unit vectors).

    ``key`` direction and ``key_gain``; ``key_colour`` and ``ambient_colour`` (3,) linear
    RGB relative gains; ``ambient`` gain; ``rim_side`` −1/0/+1 (a back light grazing the
    left or right outlines) with ``rim_gain`` and ``rim_colour``; ``specular`` strength and
    ``shininess`` exponent; ``shadow_mm`` (dx, dy) world offset of cast shadows per mm of
    height above the receiver; ``shadow_soft`` penumbra per mm of height.
    """

    key: np.ndarray
    key_gain: float
    key_colour: np.ndarray
    ambient: float
    ambient_colour: np.ndarray
    rim_side: float
    rim_gain: float
    rim_colour: np.ndarray
    specular: float
    shininess: float
    shadow_mm: tuple[float, float]
    shadow_soft: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        d = dict(self.__dict__)
        for k in ("key", "key_colour", "ambient_colour", "rim_colour"):
            d[k] = np.asarray(d[k]).tolist()
        return d


@dataclass(frozen=True)
class Watermark:
    """Text the clinic's software stamps on the photo (photo px; it does not move with
    the leg): ``text``, ``alpha`` opacity, ``height`` of a letter as a fraction of the
    photo height, ``tiled`` (repeated diagonally over the frame) or in a corner, ``grey``
    level 0-1.
    """

    text: str
    alpha: float
    height: float
    tiled: bool
    grey: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return dict(self.__dict__)


@dataclass(frozen=True, eq=False)
class PhotoCapture:
    """How one photo of a scene was taken.

    ``geometry`` is a :class:`Capture` (homography photo → baseline, bend, exposure,
    white balance, blur, noise, JPEG, seed, shape); ``lighting``; ``cast`` the name of the
    colour cast (see :data:`CASTS`) with its linear ``cast_gains`` (3,); ``vignette``
    (relative fall-off at the corners), ``chromatic`` (lateral chromatic aberration: red
    scaled by 1 + c, blue by 1 − c about the centre), ``tone`` (strength of the phone's
    S-shaped tone curve, 0-1), ``sharpen`` (unsharp-mask amount), ``chroma_blur``
    (chroma denoising σ px), ``watermark``.
    """

    geometry: Capture
    lighting: Lighting
    cast: str = "none"
    cast_gains: np.ndarray = field(default_factory=lambda: _frozen_array([1.0, 1.0, 1.0]))
    vignette: float = 0.0
    chromatic: float = 0.0
    tone: float = 0.0
    sharpen: float = 0.0
    chroma_blur: float = 0.0
    watermark: Watermark | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "geometry": self.geometry.to_dict(),
            "lighting": self.lighting.to_dict(),
            "cast": self.cast,
            "cast_gains": self.cast_gains.tolist(),
            "vignette": self.vignette,
            "chromatic": self.chromatic,
            "tone": self.tone,
            "sharpen": self.sharpen,
            "chroma_blur": self.chroma_blur,
            "watermark": None if self.watermark is None else self.watermark.to_dict(),
        }


@dataclass(frozen=True, eq=False)
class PhotoRendered:
    """A photo-like phantom photo with its truth, all in this photo's own frame.

    Attributes
    ----------
    rgb : (H, W, 3) uint8
        The photo (decoded JPEG when the capture sets a quality).
    jpeg : bytes or None
    labels : (H, W) uint8
        0 none, 1 spider, 2 reticular: vein footprint visible in this photo (legs only:
        veins under a hand, another leg or clothing are not visible and not labelled).
    vein_ids : (H, W) int32
        Photo vein id (``VEIN_ID_STRIDE * (leg + 1) + vein id``; 0 none).
    visibility : (H, W) float32
        Remaining contrast factor of the vein at each pixel.
    surface : (H, W) uint8
        What is in front: ``SURF_*`` codes (``SURF_LEG0 + k`` for leg k).
    skin_masks : tuple of (H, W) bool
        The visible skin of each leg.
    hand, foot, floor, background, clothing, watermark : (H, W) bool
    outline_band : (H, W) bool
        Pixels within 1.5 mm of a skin boundary (leg, hand or foot against anything else).
    hair, folds, freckles, moles, stain, bruise, matting : (H, W) bool
        Look-alike masks on the legs.
    to_baseline_map : (H, W, 2) float32
        World (baseline-frame) (x, y) px seen at each pixel.
    capture : PhotoCapture
    px_per_mm : float
        Pixels per mm of this photo near its centre (the true scale).
    baseline_px_per_mm : float
    """

    rgb: np.ndarray
    jpeg: bytes | None
    labels: np.ndarray
    vein_ids: np.ndarray
    visibility: np.ndarray
    surface: np.ndarray
    skin_masks: tuple[np.ndarray, ...]
    hand: np.ndarray
    foot: np.ndarray
    floor: np.ndarray
    background: np.ndarray
    clothing: np.ndarray
    watermark: np.ndarray
    outline_band: np.ndarray
    hair: np.ndarray
    folds: np.ndarray
    freckles: np.ndarray
    moles: np.ndarray
    stain: np.ndarray
    bruise: np.ndarray
    matting: np.ndarray
    to_baseline_map: np.ndarray
    capture: PhotoCapture
    px_per_mm: float
    baseline_px_per_mm: float

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) px."""
        return (int(self.labels.shape[0]), int(self.labels.shape[1]))

    @property
    def leg_mask(self) -> np.ndarray:
        """(H, W) bool: the visible skin of every leg."""
        out = np.zeros(self.shape, dtype=bool)
        for m in self.skin_masks:
            out |= m
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays)."""
        return {
            "shape": list(self.shape),
            "px_per_mm": self.px_per_mm,
            "baseline_px_per_mm": self.baseline_px_per_mm,
            "vein_px": int(np.count_nonzero(self.labels)),
            "spider_px": int(np.count_nonzero(self.labels == 1)),
            "reticular_px": int(np.count_nonzero(self.labels == 2)),
            "leg_px": [int(np.count_nonzero(m)) for m in self.skin_masks],
            "hand_px": int(np.count_nonzero(self.hand)),
            "foot_px": int(np.count_nonzero(self.foot)),
            "jpeg_bytes": None if self.jpeg is None else len(self.jpeg),
            "capture": self.capture.to_dict(),
        }


@dataclass(frozen=True, eq=False)
class PhotoPair:
    """Baseline and follow-up photos of the same legs, with the true change.

    ``true_improvement_pct`` has the definition of
    :attr:`~vein_tracker.synthetic.PhantomPair.true_improvement_pct`, in the baseline
    frame over ``overlap_mask`` ((H, W) bool: leg skin seen in both photos, neither
    covered by a hand, another leg or clothing nor outside either frame).
    ``visibility_by_vein`` is each vein's follow-up visibility, ``status_by_vein`` its
    status, ``class_by_vein`` its class (photo vein ids); ``identity`` is True when only
    the capture changed (the true improvement is then 0).
    """

    baseline: PhotoRendered
    followup: PhotoRendered
    baseline_scene: PhotoScene
    followup_scene: PhotoScene
    true_improvement_pct: float
    true_improvement_by_class_pct: dict[str, float]
    status_by_vein: dict[int, str]
    visibility_by_vein: dict[int, float]
    class_by_vein: dict[int, str]
    overlap_mask: np.ndarray
    identity: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays)."""
        return {
            "true_improvement_pct": self.true_improvement_pct,
            "true_improvement_by_class_pct": dict(self.true_improvement_by_class_pct),
            "status_by_vein": {str(k): v for k, v in self.status_by_vein.items()},
            "visibility_by_vein": {str(k): v for k, v in self.visibility_by_vein.items()},
            "overlap_px": int(np.count_nonzero(self.overlap_mask)),
            "identity": self.identity,
            "baseline": self.baseline.to_dict(),
            "followup": self.followup.to_dict(),
        }
