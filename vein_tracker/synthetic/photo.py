"""Photo-like phantoms: scenes that look like clinic photographs of legs, with exact truth.

A scene (:func:`make_photo_scene`) is one or two legs in a layout ("single" close-up,
"two" side by side, "crossed" one over the other, "standing" with feet on a floor,
"lying" on an examination couch), optional hand, feet, floor, clothing and a backdrop
(white studio, black cloth, wood, tiles, painted wall, couch paper, grass). Each leg's
skin carries fine spider networks and reticular veins in optical density, hair,
freckles, moles, knee and ankle creases, relief (knee cap, tibia, malleoli) and skin
micro-texture at its real size, partly from a real photograph (see :mod:`.texture`).

:func:`treat_photo` is :func:`~vein_tracker.synthetic.treat` on every leg (a hand may
move between visits); :func:`make_photo_pair` photographs a baseline (identity pose)
and a follow-up (new pose, light, cast, camera) and computes the truth, with the
definition of :attr:`~vein_tracker.synthetic.PhantomPair.true_improvement_pct`.

This module builds scenes and pairs; rendering is :mod:`.photo_render`, lights and
camera :mod:`.photo_camera`. It must not segment, register or measure.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np

from vein_tracker.synthetic._checks import _check_nonneg, _check_shape, _rng
from vein_tracker.synthetic._model import TONES, VEIN_CLASSES, Stroke, _frozen_array
from vein_tracker.synthetic._photo_model import (
    BACKDROPS,
    CASTS,
    FLOORS,
    LAYOUTS,
    SURF_LEG0,
    VEIN_ID_STRIDE,
    Limb,
    Material,
    PhotoCapture,
    PhotoLeg,
    PhotoPair,
    PhotoRendered,
    PhotoScene,
    Region,
)
from vein_tracker.synthetic.anatomy import (
    _ANKLE_B,
    _KNEE_B,
    leg_folds,
    leg_local,
    leg_profile,
    leg_relief,
    make_foot,
    make_hand,
    make_surface_leg,
)
from vein_tracker.synthetic.backgrounds import BACKDROP_TINTS
from vein_tracker.synthetic.camera import _inverse_in_frame
from vein_tracker.synthetic.photo_camera import (
    identity_geometry,
    photo_capture,
    random_lighting,
    vary_lighting,
)
from vein_tracker.synthetic.photo_render import render_photo
from vein_tracker.synthetic.texture import ROUGH_SKIN, SMOOTH_SKIN, SkinTexture
from vein_tracker.synthetic.treatment import treat

SKINS = ("normal", "smooth", "rough")

#: What a follow-up's capture can take from the baseline's (``make_photo_pair``'s
#: ``same_as_baseline``): the lights, then each step of the camera, in the order it
#: develops a photo (:func:`~.photo_camera.develop`).
FOLLOWUP_CAN_SHARE = (
    "light",
    "vignette",
    "chromatic",
    "blur",
    "white_balance",
    "tint",
    "noise",
    "tone",
    "chroma_blur",
    "sharpen",
    "jpeg",
)
_CAPTURE_FIELDS = {
    "vignette": ("vignette",),
    "chromatic": ("chromatic",),
    "tint": ("cast", "cast_gains"),  # a named cast, or the small tint "none" draws
    "tone": ("tone",),
    "chroma_blur": ("chroma_blur",),
    "sharpen": ("sharpen",),
}
_GEOMETRY_FIELDS = {
    "blur": ("blur_sigma",),
    "white_balance": ("wb_gains", "exposure"),
    "noise": ("noise",),
    "jpeg": ("jpeg_quality",),
}

_GLOVES = ((0.06, 0.09, 0.36), (0.13, 0.07, 0.30), (0.02, 0.02, 0.025), (0.62, 0.56, 0.42))
_FABRICS = (
    (0.03, 0.05, 0.12),
    (0.02, 0.02, 0.02),
    (0.14, 0.14, 0.15),
    (0.25, 0.20, 0.12),
    (0.70, 0.70, 0.68),
    (0.32, 0.03, 0.04),
)


def _axis(angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit axis (down the leg) and across directions of a leg at ``angle``."""
    return (
        np.array([-math.sin(angle), math.cos(angle)]),
        np.array([math.cos(angle), math.sin(angle)]),
    )


def _anchor(point: np.ndarray, b: float, angle: float) -> np.ndarray:
    """Top of a leg whose axis passes through ``point`` at axis distance ``b`` px."""
    t, _ = _axis(angle)
    return point - b * t


def _skin_texture(rng: np.random.Generator, skin: str) -> SkinTexture:
    base = {"normal": SkinTexture(), "smooth": SMOOTH_SKIN, "rough": ROUGH_SKIN}[skin]
    j = rng.uniform(0.8, 1.25, 6)
    return replace(
        base,
        pores=base.pores * j[0],
        pore_od=base.pore_od * j[1],
        furrow_od=base.furrow_od * j[2],
        vellus=base.vellus * j[3],
        mottle=base.mottle * j[4],
        gloss=base.gloss * j[5],
        marmorata=float(rng.uniform(0.3, 1.0))
        if (skin != "smooth" and rng.random() < 0.3)
        else 0.0,
    )


def _material(rng: np.random.Generator, kind: str, *, blur_mm: float = 0.0) -> Material:
    tint = np.asarray(BACKDROP_TINTS[kind]) * rng.uniform(0.85, 1.15, 3) * rng.uniform(0.8, 1.2)
    return Material(
        kind=kind,
        tint=(float(tint[0]), float(tint[1]), float(tint[2])),
        scale=float(rng.uniform(0.7, 1.4)),
        angle=float(rng.uniform(-0.4, 0.4)),
        seed=int(rng.integers(0, 2**31 - 1)),
        gradient=(float(rng.uniform(-0.35, 0.35)), float(rng.uniform(-0.35, 0.35))),
        blur_mm=blur_mm,
    )


def _poses(
    rng: np.random.Generator, layout: str, shape: tuple[int, int], ppm: float, n_legs: int
) -> list[tuple[np.ndarray, float, float, float]]:
    """(point, b fraction, angle, depth mm) for each leg: its axis passes through point at
    b × length."""
    h, w = shape
    c = np.array([w / 2.0, h / 2.0])
    if layout == "single":
        b = float(rng.choice([0.15, 0.37, 0.55, 0.70, 0.85], p=[0.15, 0.15, 0.35, 0.25, 0.10]))
        p = c + np.array([rng.uniform(-0.12, 0.12) * w, rng.uniform(-0.1, 0.1) * h])
        return [(p, b, float(rng.normal(0, 0.12)), 150.0)]
    if layout == "lying":
        b = float(rng.uniform(0.45, 0.8))
        ang = float(rng.choice([-1.0, 1.0]) * math.pi / 2 + rng.normal(0, 0.08))
        p = c + np.array([rng.uniform(-0.08, 0.08) * w, rng.uniform(-0.12, 0.12) * h])
        out = [(p, b, ang, 60.0)]
        if n_legs == 2:
            _, across = _axis(ang)
            gap = (2 * 55.0 + rng.uniform(5, 40)) * ppm
            out.append(
                (
                    p + across * gap * rng.choice([-1.0, 1.0]),
                    b + rng.normal(0, 0.03),
                    ang + rng.normal(0, 0.05),
                    55.0,
                )
            )
        return out
    if layout == "crossed":
        back = c + np.array([rng.uniform(-0.18, 0.0) * w, rng.uniform(-0.05, 0.05) * h])
        front_ang = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.0))
        front = c + np.array([rng.uniform(-0.05, 0.12) * w, rng.uniform(-0.1, 0.1) * h])
        return [
            (back, float(rng.uniform(0.45, 0.65)), float(rng.normal(0, 0.08)), 100.0),
            (front, float(rng.uniform(0.3, 0.5)), front_ang, float(100.0 + rng.uniform(80, 140))),
        ]
    # "two" and "standing": side by side, nearly vertical
    b = float(rng.uniform(0.5, 0.75)) if layout == "two" else 0.95
    base = float(rng.normal(0, 0.05))
    gap_mm = rng.uniform(3, 60) if layout == "two" else rng.uniform(25, 140)
    half = (57.0 * 1.0 + gap_mm / 2.0) * ppm
    _, across = _axis(base)
    if layout == "two":
        p = c + np.array([rng.uniform(-0.05, 0.05) * w, rng.uniform(-0.1, 0.1) * h])
    else:
        p = np.array([c[0] + rng.uniform(-0.06, 0.06) * w, h - (85.0 + rng.uniform(0, 60)) * ppm])
    d0 = float(rng.uniform(100, 120))
    return [
        (p - across * half, b, base + float(rng.normal(0.02, 0.03)), d0),
        (
            p + across * half,
            b,
            base - float(rng.normal(0.02, 0.03)),
            d0 + float(rng.uniform(1, 20)),
        ),
    ]


def _visible_points(
    leg: PhotoLeg, shape: tuple[int, int], step: int = 24
) -> tuple[np.ndarray, np.ndarray]:
    """Surface px (x, y) of leg points in view on a coarse grid, and their across u."""
    h, w = shape
    ys, xs = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    xy = np.stack([xs, ys], axis=-1).astype(np.float32)
    b, a, r, _, cover = leg_local(leg, xy, 1.0)
    inside = cover > 0.99
    u = np.clip(a[inside] / r[inside], -1, 1)
    sx = leg.arc_centre + r[inside] * np.arcsin(u)
    return np.stack([sx, b[inside]], axis=1), u


def _check_scene(
    shape: tuple[int, int],
    px_per_mm: float,
    tone: str,
    layout: str,
    *,
    backdrop: str | None,
    floor: str | None,
    skin: str,
    hair: float,
) -> tuple[int, int, float, float]:
    """Validated (H, W, px_per_mm, hair) of :func:`make_photo_scene`'s arguments."""
    h, w = _check_shape(shape)
    ppm = float(px_per_mm)
    if not (1.0 <= ppm <= 40.0):
        raise ValueError(f"px_per_mm must be in [1, 40], got {px_per_mm!r}")
    if tone not in TONES:
        raise ValueError(f"tone must be one of {sorted(TONES)}, got {tone!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if backdrop is not None and backdrop not in BACKDROPS:
        raise ValueError(f"backdrop must be one of {BACKDROPS} or None, got {backdrop!r}")
    if floor is not None and floor != "auto" and floor not in FLOORS:
        raise ValueError(f"floor must be one of {FLOORS}, 'auto' or None, got {floor!r}")
    if skin not in SKINS:
        raise ValueError(f"skin must be one of {SKINS}, got {skin!r}")
    hair_ = _check_nonneg(hair, "hair", 5.0)
    return h, w, ppm, hair_


def make_photo_scene(
    seed: int,
    *,
    shape: tuple[int, int] = (1500, 2000),
    px_per_mm: float = 8.0,
    tone: str = "light",
    layout: str = "single",
    backdrop: str | None = None,
    floor: str | None = "auto",
    hand: bool = False,
    glove: bool | None = None,
    skin: str = "normal",
    hair: float = 1.0,
    clothing: bool | None = None,
    spots: bool = True,
) -> PhotoScene:
    """A photo-like scene of legs at baseline (every vein visible).

    Parameters
    ----------
    seed : int
        Non-negative seed; the same seed and arguments give the same scene.
    shape : (int, int)
        Photo (H, W) px (the baseline frame).
    px_per_mm : float
        True scale, 1-40 px/mm (a whole-leg photo is 2-3, a close-up 10-20).
    tone : str
        One of :data:`TONES`.
    layout : {"single", "two", "crossed", "standing", "lying"}
    backdrop : str, optional
        One of :data:`BACKDROPS`; default drawn (couch paper for "lying").
    floor : str or None
        One of :data:`FLOORS`, None for no floor, or "auto" (a drawn floor when
        standing, none otherwise).
    hand : bool
        A hand holding the (front) leg.
    glove : bool, optional
        Whether the hand wears a glove (default: drawn, a quarter of the time).
    skin : {"normal", "smooth", "rough"}
        Micro-texture: "smooth" is young, hairless, low-texture skin; "rough" dry, hairy,
        textured skin.
    hair : float
        Multiplier of the terminal hair density (0 for shaved legs).
    clothing : bool, optional
        Shorts over the top of the legs when the frame reaches them (default: drawn).
    spots : bool
        Freckles and moles.

    Returns
    -------
    PhotoScene
    """
    h, w, ppm, hair_ = _check_scene(
        shape, px_per_mm, tone, layout, backdrop=backdrop, floor=floor, skin=skin, hair=hair
    )
    rng = _rng(seed, 0x9407)
    n_legs = {"single": 1, "lying": int(rng.choice([1, 2])), "two": 2, "crossed": 2, "standing": 2}[
        layout
    ]
    build = float(rng.uniform(0.85, 1.2))
    poses = _poses(rng, layout, (h, w), ppm, n_legs)
    legs = [
        _make_leg(
            rng,
            k,
            pose,
            build,
            seed=seed,
            tone=tone,
            ppm=ppm,
            shape=(h, w),
            skin=skin,
            hair=hair_,
            spots=spots,
        )
        for k, pose in enumerate(poses)
    ]
    melanin = TONES[tone]
    limbs = _make_feet(rng, legs, layout, (h, w), ppm, melanin)
    if hand:
        limbs.append(_make_scene_hand(rng, legs, (h, w), ppm, melanin, glove))
    kind = backdrop if backdrop is not None else _draw_backdrop(rng, layout)
    bd = _material(rng, kind, blur_mm=float(rng.uniform(0.5, 3.0)))
    fl = _make_floor(rng, floor, layout, legs, (h, w), ppm)
    cl = _make_clothing(rng, clothing, legs, (h, w), ppm)
    return PhotoScene(
        seed=int(seed),
        shape=(h, w),
        px_per_mm=ppm,
        tone=tone,
        layout=layout,
        legs=tuple(legs),
        limbs=tuple(limbs),
        backdrop=bd,
        floor=fl,
        clothing=cl,
    )


def _make_leg(
    rng: np.random.Generator,
    k: int,
    pose: tuple[np.ndarray, float, float, float],
    build: float,
    *,
    seed: int,
    tone: str,
    ppm: float,
    shape: tuple[int, int],
    skin: str,
    hair: float,
    spots: bool,
) -> PhotoLeg:
    point, b_frac, angle, depth = pose
    radius, length = leg_profile(rng, ppm, build * float(rng.uniform(0.97, 1.03)))
    knee_b = _KNEE_B * float(rng.uniform(0.95, 1.05))
    anchor = _anchor(point, b_frac * length, angle)
    bow = float(rng.normal(0.0, 6.0) * ppm)
    texture = _skin_texture(rng, skin)
    # A first leg without veins finds the skin in view; veins then grow there.
    probe = PhotoLeg(
        surface=make_surface_leg(
            rng,
            seed=seed,
            tone=tone,
            ppm=ppm,
            radius=radius,
            length=length,
            centres=[],
            n_reticular=0,
            hair_density=0.0,
            spots=False,
        ),
        x=float(anchor[0]),
        y=float(anchor[1]),
        angle=angle,
        bow=bow,
        length=length,
        radius=_frozen_array(radius),
        depth=depth,
        texture=texture,
        knee_b=knee_b,
        ankle_b=_ANKLE_B,
    )
    pts, u = _visible_points(probe, shape)
    central = pts[np.abs(u) < 0.8] if len(pts) else pts
    area_mm2 = len(pts) * (24.0 / ppm) ** 2
    n_net = int(np.clip(round(area_mm2 / rng.uniform(2500, 6000)), 3, 12)) if len(pts) else 0
    centres = []
    for _ in range(n_net):
        if len(central):
            centres.append(central[int(rng.integers(len(central)))] + rng.normal(0, 4.0, 2) * ppm)
    n_ret = int(rng.integers(1, 4)) if len(pts) else 0
    surface = make_surface_leg(
        rng,
        seed=seed * 8 + k,
        tone=tone,
        ppm=ppm,
        radius=radius,
        length=length,
        centres=centres,
        n_reticular=n_ret,
        hair_density=hair * (0.0 if skin == "smooth" else (2.5 if skin == "rough" else 1.0)),
        spots=spots and skin != "smooth",
    )
    width = surface.shape[1]
    return replace(
        probe,
        surface=surface,
        folds=leg_folds(rng, length, width, ppm, knee_b, _ANKLE_B),
        relief=leg_relief(rng, length / ppm, float(np.median(radius)) / ppm, knee_b, _ANKLE_B),
    )


def _make_feet(
    rng: np.random.Generator,
    legs: list[PhotoLeg],
    layout: str,
    shape: tuple[int, int],
    ppm: float,
    melanin: float,
) -> list[Limb]:
    """A foot at every ankle in or near the frame (no leg ends in mid-air)."""
    h, w = shape
    limbs: list[Limb] = []
    mid_x = float(np.mean([leg.x for leg in legs]))
    for leg in legs:
        t, _ = _axis(leg.angle)
        ankle = np.array([leg.x, leg.y]) + t * leg.ankle_b * leg.length
        if -0.3 * w < ankle[0] < 1.3 * w and -0.3 * h < ankle[1] < 1.3 * h:
            view = "front" if layout == "standing" else "side"
            inner = 1.0 if leg.x < mid_x else -1.0
            r_ankle = float(np.interp(leg.ankle_b, np.linspace(0, 1, len(leg.radius)), leg.radius))
            limbs.append(
                make_foot(
                    rng,
                    ankle,
                    leg.angle,
                    ppm,
                    melanin,
                    leg.depth + 5.0,
                    view=view,
                    inner=inner,
                    ankle_radius=r_ankle,
                )
            )
    return limbs


def _make_scene_hand(
    rng: np.random.Generator,
    legs: list[PhotoLeg],
    shape: tuple[int, int],
    ppm: float,
    melanin: float,
    glove: bool | None,
) -> Limb:
    leg = max(legs, key=lambda lg: lg.depth)
    pts, _ = _visible_points(leg, shape)
    t, across = _axis(leg.angle)
    b = float(np.median(pts[:, 1])) if len(pts) else 0.5 * leg.length
    b += float(rng.normal(0, 25.0) * ppm)
    r = float(np.interp(b, np.linspace(0, leg.length, len(leg.radius)), leg.radius))
    side = float(rng.choice([-1.0, 1.0]))
    axis_pt = np.array([leg.x, leg.y]) + t * b
    wrist = axis_pt + across * side * (r + rng.uniform(10, 60) * ppm)
    d = -across * side
    direction = math.atan2(d[1], d[0]) + float(rng.normal(0, 0.35))
    wears = bool(rng.random() < 0.25) if glove is None else glove
    colour = _GLOVES[int(rng.integers(len(_GLOVES)))] if wears else None
    other = rng.random() < 0.3
    mel = float(rng.choice(list(TONES.values()))) if other else melanin
    return make_hand(rng, wrist, direction, ppm, mel, leg.depth + 25.0, glove=colour)


def _draw_backdrop(rng: np.random.Generator, layout: str) -> str:
    if layout == "lying" and rng.random() < 0.7:
        return "paper"
    return str(rng.choice(["studio-white", "dark", "wood", "tiles", "wall", "paper", "wall"]))


def _make_floor(
    rng: np.random.Generator,
    floor: str | None,
    layout: str,
    legs: list[PhotoLeg],
    shape: tuple[int, int],
    ppm: float,
) -> Region | None:
    if floor is None or (floor == "auto" and layout != "standing"):
        return None
    kind = str(rng.choice(FLOORS)) if floor == "auto" else floor
    ankles = [lg.y + math.cos(lg.angle) * lg.ankle_b * lg.length for lg in legs]
    y = (
        max(ankles) - rng.uniform(40, 220) * ppm
        if layout == "standing"
        else shape[0] * rng.uniform(0.6, 0.8)
    )
    tilt = float(rng.normal(0, 0.03))
    mat = _material(rng, kind, blur_mm=float(rng.uniform(0.0, 1.5)))
    return Region(
        p0=(shape[1] / 2.0, float(y)),
        normal=(math.sin(tilt), math.cos(tilt)),
        material=mat,
        soft=float(rng.uniform(2.0, 6.0) * ppm),
    )


def _make_clothing(
    rng: np.random.Generator,
    clothing: bool | None,
    legs: list[PhotoLeg],
    shape: tuple[int, int],
    ppm: float,
) -> Region | None:
    wants = bool(rng.random() < 0.6) if clothing is None else clothing
    leg = legs[0]
    t, across = _axis(leg.angle)
    hem_b = float(rng.uniform(0.0, 0.12)) * leg.length
    hem = np.array([leg.x, leg.y]) + t * hem_b
    h, w = shape
    if not wants or not (-0.1 * h < hem[1] < 1.1 * h and -0.1 * w < hem[0] < 1.1 * w):
        return None
    tint = np.asarray(_FABRICS[int(rng.integers(len(_FABRICS)))]) * rng.uniform(0.85, 1.15)
    mat = Material(
        kind="fabric",
        tint=(float(tint[0]), float(tint[1]), float(tint[2])),
        seed=int(rng.integers(0, 2**31 - 1)),
    )
    del across
    return Region(
        p0=(float(hem[0]), float(hem[1])),
        normal=(float(-t[0]), float(-t[1])),
        material=mat,
        wave=float(rng.uniform(2, 10) * ppm),
        period=float(rng.uniform(80, 200) * ppm),
        soft=1.0,
    )


# --------------------------------------------------------------------------------------
# Treatment and pairs
# --------------------------------------------------------------------------------------


def _move_limb(limb: Limb, shift: np.ndarray, turn: float, pivot: np.ndarray) -> Limb:
    ca, sa = math.cos(turn), math.sin(turn)
    rot = np.array([[ca, -sa], [sa, ca]])

    def mv(p: np.ndarray) -> np.ndarray:
        return (np.asarray(p) - pivot) @ rot.T + pivot + shift

    def st(s: Stroke) -> Stroke:
        return replace(s, centreline=_frozen_array(mv(s.centreline)))

    return replace(
        limb,
        parts=tuple((mv(c), r) for c, r in limb.parts),
        nails=tuple((mv(c), a, b, t + turn) for c, a, b, t in limb.nails),
        veins=tuple(st(v) for v in limb.veins),
        creases=tuple(st(v) for v in limb.creases),
    )


def treat_photo(
    scene: PhotoScene,
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
    move_hand_mm: float = 0.0,
    recanalise_n: int = 0,
) -> PhotoScene:
    """The scene at a follow-up visit: :func:`treat` on every leg's veins.

    Parameters
    ----------
    scene : PhotoScene
    seed : int
        Non-negative seed.
    cleared_frac, faded_frac, fade_to, n_new, staining, bruising, matting, by
        As in :func:`treat`, for each leg (``n_new`` new veins per leg).
    recanalise : sequence of int
        Photo vein ids (``VEIN_ID_STRIDE * (leg + 1) + id``) that re-open.
    move_hand_mm : float
        The hand is placed again: shifted by about this much (and turned a little).
    recanalise_n : int
        Also re-open this many veins drawn (from ``seed``) among those that faded or
        cleared at an earlier visit, preferring the longest.

    Returns
    -------
    PhotoScene
        ``visit`` increased by one; backdrop, floor, clothing and feet unchanged.
    """
    if not isinstance(scene, PhotoScene):
        raise ValueError("scene must be a PhotoScene from make_photo_scene()")
    move = _check_nonneg(move_hand_mm, "move_hand_mm", 100.0)
    rng = _rng(seed, 0x7EA8 + scene.visit)
    if not isinstance(recanalise_n, (int, np.integer)) or not 0 <= recanalise_n <= 100:
        raise ValueError(f"recanalise_n must be an integer in [0, 100], got {recanalise_n!r}")
    chosen = list(recanalise)
    if recanalise_n:
        treated = [
            (VEIN_ID_STRIDE * (k + 1) + v.id, v.length_px())
            for k, leg in enumerate(scene.legs)
            for v in leg.surface.veins
            if v.status in ("faded", "cleared") and VEIN_ID_STRIDE * (k + 1) + v.id not in chosen
        ]
        treated.sort(key=lambda t: -t[1])
        pool = treated[: max(recanalise_n * 3, recanalise_n)]
        for i in rng.permutation(len(pool))[:recanalise_n]:
            chosen.append(pool[int(i)][0])
    by_leg: dict[int, list[int]] = {}
    for pid in chosen:
        k = int(pid) // VEIN_ID_STRIDE - 1
        if not 0 <= k < len(scene.legs):
            raise ValueError(f"recanalise: {pid} is not a photo vein id of this scene")
        by_leg.setdefault(k, []).append(int(pid) % VEIN_ID_STRIDE)
    legs = []
    for k, leg in enumerate(scene.legs):
        surf = treat(
            leg.surface,
            int(rng.integers(0, 2**31 - 1)),
            cleared_frac=cleared_frac,
            faded_frac=faded_frac,
            fade_to=fade_to,
            n_new=n_new,
            recanalise=by_leg.get(k, ()),
            staining=staining,
            bruising=bruising,
            matting=matting,
            by=by,
        )
        legs.append(replace(leg, surface=surf))
    limbs = list(scene.limbs)
    if move > 0:
        for i, limb in enumerate(limbs):
            if limb.kind == "hand":
                shift = rng.normal(0.0, move / math.sqrt(2), 2) * scene.px_per_mm
                pivot = limb.parts[0][0][0]
                limbs[i] = _move_limb(limb, shift, float(rng.normal(0, 0.08)), pivot)
    return replace(scene, legs=tuple(legs), limbs=tuple(limbs), visit=scene.visit + 1)


def without_veins(scene: PhotoScene, cls: str | None = None) -> PhotoScene:
    """``scene`` without its veins of class ``cls`` ("spider" or "reticular"; every vein
    when None), all else as it is.

    Rendered with a photo's own capture (``render_photo(without_veins(scene),
    photo.capture)``) it is that photo without those veins: the same skin, lights and
    camera noise, so the difference of the two is what the veins show in the photo
    (their visible contrast after the camera's blur, tone curve and JPEG). Only the
    camera's auto exposure, which meters the whole frame, shifts every pixel a little.
    """
    if not isinstance(scene, PhotoScene):
        raise ValueError("scene must be a PhotoScene from make_photo_scene() or treat_photo()")
    if cls is not None and cls not in VEIN_CLASSES:
        raise ValueError(f"cls must be one of {VEIN_CLASSES} or None, got {cls!r}")
    legs = tuple(
        replace(
            leg,
            surface=replace(
                leg.surface,
                veins=tuple(v for v in leg.surface.veins if cls is not None and v.cls != cls),
            ),
        )
        for leg in scene.legs
    )
    return replace(scene, legs=legs)


def photo_pair_truth(
    baseline_scene: PhotoScene,
    followup_scene: PhotoScene,
    baseline: PhotoRendered,
    followup: PhotoRendered,
    *,
    identity: bool = False,
) -> PhotoPair:
    """Assemble a :class:`PhotoPair` with its truth from two renders of one scene.

    ``baseline`` must be rendered with identity geometry. The overlap is the baseline's
    leg skin whose world point shows the same leg in the follow-up (rendered again, for
    truth only, with identity geometry) and lies inside the follow-up's frame.
    """
    if not baseline.capture.geometry.is_identity_geometry:
        raise ValueError("baseline must be rendered with identity geometry")
    if baseline.shape != followup.shape:
        raise ValueError(
            "baseline and followup must have the same shape, got "
            f"{baseline.shape} and {followup.shape}"
        )
    fol_id = render_photo(followup_scene, identity_geometry(followup.capture), with_pixels=False)
    seen = _inverse_in_frame(followup.capture.geometry, baseline.shape)
    overlap = (baseline.surface >= SURF_LEG0) & (fol_id.surface == baseline.surface) & seen
    table_f = followup_scene.vein_table()
    vis_f = {k: min(1.0, max(0.0, v[3])) for k, v in table_f.items()}
    by_cls = {
        c: _improvement(baseline, fol_id, overlap, vis_f, (i + 1,))
        for i, c in enumerate(VEIN_CLASSES)
    }
    return PhotoPair(
        baseline=baseline,
        followup=followup,
        baseline_scene=baseline_scene,
        followup_scene=followup_scene,
        true_improvement_pct=_improvement(baseline, fol_id, overlap, vis_f, (1, 2)),
        true_improvement_by_class_pct=by_cls,
        status_by_vein={k: v[2] for k, v in table_f.items()},
        visibility_by_vein=vis_f,
        class_by_vein={k: v[1] for k, v in table_f.items()},
        overlap_mask=overlap,
        identity=identity,
    )


def _improvement(
    base: PhotoRendered,
    fol_id: PhotoRendered,
    overlap: np.ndarray,
    vis_f: dict[int, float],
    want: tuple[int, ...],
    baseline_veins: Collection[int] | None = None,
    new_veins: Collection[int] | None = None,
) -> float:
    """The headline formula on the truth; with ``baseline_veins`` / ``new_veins``, on
    those veins' pixels only (every vein when None)."""
    bmask = np.isin(base.labels, want) & overlap
    if baseline_veins is not None:
        bmask &= np.isin(base.vein_ids, list(baseline_veins))
    n_b = int(np.count_nonzero(bmask))
    if n_b == 0:
        return float("nan")
    ids = base.vein_ids[bmask]
    uniq, counts = np.unique(ids, return_counts=True)
    remaining = float(
        sum(vis_f.get(int(i), 0.0) * int(c) for i, c in zip(uniq, counts, strict=True))
    )
    new = np.isin(fol_id.labels, want) & overlap & ~(base.labels > 0)
    if new_veins is not None:
        new &= np.isin(fol_id.vein_ids, list(new_veins))
    return 100.0 * (1.0 - (remaining + int(np.count_nonzero(new))) / n_b)


def true_improvement_on(
    pair: PhotoPair, baseline_veins: Collection[int], new_veins: Collection[int]
) -> float:
    """``pair``'s true improvement counted on some of its veins only: the baseline vein
    pixels of ``baseline_veins`` (ids of ``pair.baseline.vein_ids``) and the new vein
    pixels of ``new_veins`` (ids of the follow-up scene's veins).

    With every id it is ``pair.true_improvement_pct``. A benchmark uses it to score the
    product against the veins a rater can see in each photo.
    """
    fol_id = render_photo(
        pair.followup_scene, identity_geometry(pair.followup.capture), with_pixels=False
    )
    return _improvement(
        pair.baseline,
        fol_id,
        pair.overlap_mask,
        pair.visibility_by_vein,
        (1, 2),
        baseline_veins,
        new_veins,
    )


def make_photo_pair(
    seed: int,
    *,
    identity: bool = False,
    cast_baseline: str = "none",
    cast_followup: str = "none",
    pose: float = 1.0,
    bend_mm: float = 0.0,
    light_change: float = 1.0,
    watermark: bool = False,
    jpeg_quality: int | tuple[int, int] = (72, 94),
    treatment: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    same_as_baseline: Sequence[str] = (),
    **scene_kw: Any,
) -> PhotoPair:
    """A baseline and a follow-up photo of the same photo-like scene, with the truth.

    Parameters
    ----------
    seed : int
        Non-negative seed of the whole pair.
    identity : bool
        No treatment: only the capture changes (true improvement 0).
    cast_baseline, cast_followup : str
        Colour casts (:data:`CASTS`).
    pose : float
        Scale of the follow-up's pose change (1: rotation ±7°, scale ±8 %, shift ±4 %,
        perspective).
    bend_mm : float
        Largest non-rigid bend of the follow-up, mm.
    light_change : float
        Scale of the change of the lights between visits (1: key turned ~10°, ±20 %).
    watermark : bool
        The clinic's watermark on both photos.
    jpeg_quality : int or (int, int)
        JPEG quality or range of both photos.
    treatment : dict or sequence of dict, optional
        Keyword arguments of :func:`treat_photo` (default: 60 % cleared, 20 % faded);
        a sequence makes one visit per item, and the follow-up photo is the last visit.
    same_as_baseline : sequence of str
        What the follow-up takes from the baseline's capture instead of its own draw
        (:data:`FOLLOWUP_CAN_SHARE`: the lights, and each step of the camera's
        processing); the rest of the pair is drawn as without it. To learn which
        difference between two captures moves a figure.
    **scene_kw
        Keyword arguments of :func:`make_photo_scene`.

    Returns
    -------
    PhotoPair
    """
    for name, cast in (("cast_baseline", cast_baseline), ("cast_followup", cast_followup)):
        if cast not in CASTS:
            raise ValueError(f"{name} must be one of {CASTS}, got {cast!r}")
    pose_ = _check_nonneg(pose, "pose", 3.0)
    bend = _check_nonneg(bend_mm, "bend_mm", 10.0)
    rng = _rng(seed, 0x9A2)
    s_scene, s_treat, s_light, s_light2, s_cb, s_cf = (
        int(v) for v in rng.integers(0, 2**31 - 1, 6)
    )
    scene = make_photo_scene(s_scene, **scene_kw)
    if identity:
        if treatment:
            raise ValueError("treatment must be empty for an identity pair")
        fol_scene = scene
    else:
        visits: list[dict[str, Any]]
        if treatment is None or isinstance(treatment, dict):
            visits = [treatment or {}]
        else:
            visits = list(treatment)
        fol_scene = scene
        for n, visit in enumerate(visits):
            fol_scene = treat_photo(fol_scene, s_treat + n, **visit)
    unknown = set(same_as_baseline) - set(FOLLOWUP_CAN_SHARE)
    if unknown:
        raise ValueError(f"same_as_baseline takes {FOLLOWUP_CAN_SHARE}, got {sorted(unknown)}")
    light_b = random_lighting(s_light)
    light_f = vary_lighting(light_b, s_light2, strength=light_change)
    if "light" in same_as_baseline:
        light_f = light_b
    cap_b = photo_capture(
        s_cb,
        shape=scene.shape,
        lighting=light_b,
        cast=cast_baseline,
        identity=True,
        watermark=watermark,
        jpeg_quality=jpeg_quality,
    )
    cap_f = photo_capture(
        s_cf,
        shape=scene.shape,
        lighting=light_f,
        cast=cast_followup,
        rotation_deg=7.0 * pose_,
        scale=0.08 * pose_,
        translate=0.04 * pose_,
        perspective=0.0004 * pose_,
        bend_px=bend * scene.px_per_mm,
        watermark=watermark,
        jpeg_quality=jpeg_quality,
    )
    cap_f = _shared_processing(cap_f, cap_b, same_as_baseline)
    baseline = render_photo(scene, cap_b)
    followup = render_photo(fol_scene, cap_f)
    return photo_pair_truth(scene, fol_scene, baseline, followup, identity=identity)


def _shared_processing(
    cap_f: PhotoCapture, cap_b: PhotoCapture, names: Sequence[str]
) -> PhotoCapture:
    """``cap_f`` with the camera steps ``names`` taken from ``cap_b`` (the lights are
    chosen before the capture is made)."""

    def taken(of: Any, fields: dict[str, tuple[str, ...]]) -> dict[str, Any]:
        return {f: getattr(of, f) for n, fs in fields.items() if n in names for f in fs}

    own = taken(cap_b, _CAPTURE_FIELDS)
    geo = taken(cap_b.geometry, _GEOMETRY_FIELDS)
    if geo:
        own["geometry"] = replace(cap_f.geometry, **geo)
    return replace(cap_f, **own) if own else cap_f
