"""Anatomy of the photo-like phantoms: leg shapes and their skin, hands and feet.

A leg (:class:`PhotoLeg`) is a tube along a bowed axis with an anatomical half-width
profile (thigh, knee, calf, ankle); its skin is an unrolled surface (a :class:`Leg`) on
which veins, hair, spots and creases are drawn, so :func:`treat` works on it unchanged.
Hands and feet are unions of capsules (:class:`Limb`), rasterised on a window of the
world with a capsule normal for shading.

Vein networks follow DOMAIN.md: spider veins (< 1 mm, haemoglobin direction, red to
purple) as fine arborising or starburst networks of tortuous branches at low contrast;
reticular veins (1-3 mm, deep-vein direction, blue-green) long, smooth and blurred.

This module generates geometry and evaluates it; it does not light or photograph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from vein_tracker.optics import DEEP_VEIN_OD, HAEMOGLOBIN_OD, MELANIN_OD, NEUTRAL_OD
from vein_tracker.synthetic._model import TONES, Leg, LegOutline, Stroke, Vein, _frozen_array
from vein_tracker.synthetic._photo_model import Bump, Limb, PhotoLeg
from vein_tracker.synthetic.legs import (
    _clip_to_leg,
    _make_hairs,
    _make_spots,
    _point_in_leg,
    _reticular,
    _walk,
)
from vein_tracker.synthetic.scene import _box_profile, _polyline_distance
from vein_tracker.synthetic.texture import SurfaceWindow, value_noise

# Half-width of an average adult leg (mm) against the fraction of the modelled length
# (0 = mid-thigh, 1 = below the ankle): thigh, above the knee, knee, calf, ankle, heel.
_PROFILE_B = np.array([0.0, 0.15, 0.28, 0.35, 0.41, 0.48, 0.56, 0.66, 0.78, 0.88, 0.95, 1.0])
_PROFILE_R = np.array([78.0, 68.0, 55.0, 49.0, 50.0, 55.0, 58.0, 52.0, 40.0, 33.0, 31.0, 34.0])
LEG_LENGTH_MM = 660.0
_KNEE_B = 0.37
_ANKLE_B = 0.95


# --------------------------------------------------------------------------------------
# Legs: generation
# --------------------------------------------------------------------------------------


def leg_profile(rng: np.random.Generator, ppm: float, build: float) -> tuple[np.ndarray, float]:
    """Half-width profile (64,) px and length px of one leg (``build`` scales the girth)."""
    jitter = 1.0 + rng.normal(0.0, 0.035, len(_PROFILE_R))
    r_mm = _PROFILE_R * build * jitter
    length = LEG_LENGTH_MM * float(rng.uniform(0.92, 1.08))
    bs = np.linspace(0.0, 1.0, 64)
    r = np.interp(bs, _PROFILE_B, r_mm)
    r = np.convolve(np.pad(r, 3, mode="edge"), np.ones(7) / 7.0, mode="valid")
    return (r * ppm).astype(np.float64), length * ppm


def make_surface_leg(
    rng: np.random.Generator,
    *,
    seed: int,
    tone: str,
    ppm: float,
    radius: np.ndarray,
    length: float,
    centres: list[np.ndarray],
    n_reticular: int,
    hair_density: float,
    spots: bool,
) -> Leg:
    """The unrolled skin of a leg with its veins, hair and spots.

    The surface frame is (length, arc) px: y down the leg, x around it with the front
    line at the middle; it is wide enough for the visible half of the widest girth.
    ``centres`` (surface px) are where the spider networks grow (the area photographed).
    """
    r_max = float(np.max(radius))
    r_mean = float(np.mean(radius))
    width = int(math.ceil(math.pi * r_max * 1.15)) + 8
    height = int(math.ceil(length)) + 8
    shape = (height, width)
    outline = LegOutline(
        cx=width / 2.0,
        tilt=0.0,
        bow=0.0,
        half_width=math.pi / 2.0 * r_mean,
        taper=0.0,
        side_light=0.0,
    )
    melanin = TONES[tone]
    contrast = float(np.exp(-0.2 * melanin))
    veins = _surface_veins(rng, outline, shape, ppm, contrast, centres, n_reticular)
    hairs = _hairs(rng, outline, shape, ppm, hair_density)
    spot_list = _make_spots(rng, outline, shape, tone, freckles=spots, moles=spots)
    return Leg(
        seed=int(seed),
        shape=shape,
        px_per_mm=ppm,
        tone=tone,
        melanin=melanin,
        outline=outline,
        backdrop=(0.5, 0.5, 0.5),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
        veins=tuple(veins),
        hairs=tuple(hairs),
        spots=tuple(spot_list),
    )


def _hairs(
    rng: np.random.Generator,
    outline: LegOutline,
    shape: tuple[int, int],
    ppm: float,
    density: float,
) -> tuple[Stroke, ...]:
    """Terminal leg hair; ``density`` multiplies the usual 0.4-1.5 hairs per cm²."""
    if density <= 0:
        return ()
    reps = max(1, int(round(density)))
    out: list[Stroke] = []
    for _ in range(reps):
        out.extend(_make_hairs(rng, outline, shape, ppm))
    keep = min(len(out), int(round(len(out) * density / reps)))
    return tuple(out[:keep])


def _surface_veins(
    rng: np.random.Generator,
    outline: LegOutline,
    shape: tuple[int, int],
    ppm: float,
    contrast: float,
    centres: list[np.ndarray],
    n_reticular: int,
) -> list[Vein]:
    """Reticular feeders first (ids from 1), then the spider networks they feed."""
    h, w = shape
    veins: list[Vein] = []
    for k in range(n_reticular):
        if k < len(centres) and rng.random() < 0.75:
            c = centres[k]
            heading = rng.choice([-1.0, 1.0]) * math.pi / 2 + rng.normal(0, 0.5)
            start = c + np.array([math.cos(heading), math.sin(heading)]) * 3.0 * ppm
            cluster = k
        else:
            base = (
                centres[int(rng.integers(len(centres)))]
                if centres
                else _point_in_leg(rng, outline, shape, 0.55)
            )
            start = base + rng.normal(0.0, 25.0, 2) * ppm
            heading = rng.choice([-1.0, 1.0]) * math.pi / 2 + rng.normal(0, 0.35)
            cluster = -1
        v = _reticular(rng, start, heading, len(veins) + 1, ppm, outline, shape, contrast, cluster)
        if v is not None:
            # A little stronger than the clean phantoms': photos add texture around them.
            veins.append(
                Vein(
                    id=v.id,
                    cls=v.cls,
                    centreline=v.centreline,
                    width_mm=v.width_mm,
                    amplitude=round(v.amplitude * 1.25, 4),
                    cluster=v.cluster,
                )
            )
    for k, c in enumerate(centres):
        veins.extend(
            spider_network(
                rng, c, k, ppm, outline, (h, w), contrast, first_id=len(veins) + 1, kind=None
            )
        )
    return veins


def spider_network(
    rng: np.random.Generator,
    centre: np.ndarray,
    cluster: int,
    ppm: float,
    outline: LegOutline,
    shape: tuple[int, int],
    contrast: float,
    *,
    first_id: int,
    kind: str | None,
    status: str = "persisting",
    in_baseline: bool = True,
) -> list[Vein]:
    """A network of spider-vein branches: "arborising", "starburst", "linear" or "mat".

    Branches are tortuous walks 0.08-0.8 mm wide (finer further out), each with its own
    amplitude (0.18-0.55 OD along haemoglobin times 0.55-1 from tip to trunk, times
    ``contrast``): real networks are fine and faint at their tips, clearer at trunks.
    """
    kinds = ("arborising", "starburst", "linear", "mat")
    kind_ = kinds[int(rng.choice(4, p=[0.45, 0.25, 0.15, 0.15]))] if kind is None else kind
    veins: list[Vein] = []

    def add(pts: np.ndarray, width: float, amp_scale: float) -> None:
        pts = _clip_to_leg(pts, outline, shape, 0.9)
        if len(pts) < 3:
            return
        veins.append(
            Vein(
                id=first_id + len(veins),
                cls="spider",
                centreline=_frozen_array(pts),
                width_mm=round(float(np.clip(width, 0.08, 0.9)), 4),
                amplitude=round(float(rng.uniform(0.18, 0.55)) * amp_scale * contrast, 4),
                status=status,
                cluster=cluster,
                in_baseline=in_baseline,
            )
        )

    def branch(start: np.ndarray, heading: float, length: float, width: float, depth: int) -> None:
        tort = float(rng.uniform(0.45, 0.95))
        pts = _walk(rng, start, heading, length, 0.15, tort, ppm)
        add(pts, width, 0.55 + 0.15 * depth)
        if depth <= 0 or len(pts) < 8:
            return
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(len(pts) // 5, max(len(pts) // 5 + 1, 4 * len(pts) // 5)))
            d = pts[min(i + 1, len(pts) - 1)] - pts[max(i - 1, 0)]
            ang = math.atan2(d[1], d[0]) + rng.choice([-1.0, 1.0]) * rng.uniform(0.35, 1.2)
            branch(pts[i], ang, length * rng.uniform(0.3, 0.7), width * 0.7, depth - 1)

    if kind_ == "arborising":
        for _ in range(int(rng.integers(1, 3))):
            start = centre + rng.normal(0, 2.0, 2) * ppm
            branch(
                start, rng.uniform(0, 2 * math.pi), rng.uniform(12, 35), rng.uniform(0.4, 0.8), 3
            )
    elif kind_ == "starburst":
        n = int(rng.integers(7, 16))
        off = rng.uniform(0, 2 * math.pi)
        for k in range(n):
            ang = off + 2 * math.pi * k / n + rng.normal(0, 0.3)
            start = centre + rng.normal(0, 0.4, 2) * ppm
            branch(start, ang, rng.uniform(4, 16), rng.uniform(0.2, 0.55), 1)
    elif kind_ == "linear":
        for _ in range(int(rng.integers(2, 6))):
            start = centre + rng.normal(0, 6.0, 2) * ppm
            ang = math.pi / 2 + rng.normal(0, 0.6)
            pts = _walk(rng, start, ang, rng.uniform(15, 45), 0.2, 0.2, ppm)
            add(pts, rng.uniform(0.12, 0.4), 0.8)
    else:  # mat: a dense tangle of very fine vessels
        for _ in range(int(rng.integers(20, 45))):
            start = centre + rng.normal(0, 3.5, 2) * ppm
            pts = _walk(
                rng, start, rng.uniform(0, 2 * math.pi), rng.uniform(1.5, 6), 0.12, 1.1, ppm
            )
            add(pts, rng.uniform(0.08, 0.2), 0.7)
    return veins


def leg_folds(
    rng: np.random.Generator, leg_len: float, width: int, ppm: float, knee_b: float, ankle_b: float
) -> tuple[Stroke, ...]:
    """Creases (surface px): arcs above and below the knee cap (many fine, a few deep) and
    across the front of the ankle."""
    out: list[Stroke] = []
    cx = width / 2.0 + rng.normal(0.0, 6.0) * ppm
    knee_y = knee_b * leg_len

    def arc(centre: np.ndarray, radius: float, a0: float, a1: float, deep: bool) -> None:
        t = np.linspace(a0, a1, 20)
        rr = radius * (1.0 + rng.normal(0.0, 0.015, 20))
        pts = centre[None, :] + np.stack([np.cos(t) * rr, np.sin(t) * rr * 0.7], axis=1)
        out.append(
            Stroke(
                centreline=_frozen_array(pts),
                width_mm=round(
                    float(rng.uniform(0.5, 1.1) if deep else rng.uniform(0.12, 0.35)), 4
                ),
                amplitude=round(
                    float(rng.uniform(0.10, 0.22) if deep else rng.uniform(0.04, 0.11)), 4
                ),
            )
        )

    for _ in range(int(rng.integers(8, 20))):
        below = rng.random() < 0.5
        r = rng.uniform(22.0, 48.0) * ppm
        mid = math.pi / 2 if below else -math.pi / 2  # arcs open towards the knee cap
        half = rng.uniform(0.2, 0.6)
        c = np.array([cx + rng.normal(0, 5.0) * ppm, knee_y + rng.normal(0, 4.0) * ppm])
        arc(c, r, mid - half, mid + half, deep=rng.random() < 0.2)
    for _ in range(int(rng.integers(2, 6))):
        y = (ankle_b - 0.035) * leg_len + rng.normal(0.0, 8.0) * ppm
        c = np.array([cx + rng.normal(0, 6.0) * ppm, y - 60.0 * ppm])
        half = rng.uniform(0.15, 0.3)
        arc(c, 60.0 * ppm, math.pi / 2 - half, math.pi / 2 + half, deep=rng.random() < 0.3)
    return tuple(out)


def leg_relief(
    rng: np.random.Generator, leg_len_mm: float, r_mm: float, knee_b: float, ankle_b: float
) -> tuple[Bump, ...]:
    """Knee cap, tibia ridge, calf bulge and malleoli as smooth bumps (surface mm)."""
    front = rng.normal(0.0, 6.0)
    knee = knee_b * leg_len_mm
    return (
        Bump(front, knee, 22.0, 26.0, 7.0 + rng.uniform(-2, 2)),
        Bump(front, knee + 38.0, 12.0, 10.0, -3.0),  # hollow below the knee cap
        Bump(front + rng.normal(0, 3), (knee_b + 0.3) * leg_len_mm, 7.0, 110.0, 4.0),  # tibia
        Bump(front + r_mm * rng.choice([-0.9, 0.9]), 0.55 * leg_len_mm, 30.0, 70.0, 6.0),
        Bump(front - 0.8 * r_mm * 0.6, ankle_b * leg_len_mm, 9.0, 9.0, 5.0),  # malleoli
        Bump(front + 0.8 * r_mm * 0.6, ankle_b * leg_len_mm + 4.0, 9.0, 9.0, 5.0),
    )


# --------------------------------------------------------------------------------------
# Legs: evaluation at world points
# --------------------------------------------------------------------------------------


@dataclass
class LegSample:
    """A leg evaluated at photo pixels (all (H, W) float32 unless said).

    ``alpha`` coverage in [0, 1]; ``u`` across coordinate (−1 … 1 at the outline);
    ``sx``, ``sy`` surface px; ``normal`` (H, W, 3) unit camera-frame normal of the
    smooth tube (relief is added later); ``tangent_arc`` (H, W, 3) and ``axis`` (3,)
    the surface directions for relief slopes.
    """

    alpha: np.ndarray
    u: np.ndarray
    sx: np.ndarray
    sy: np.ndarray
    normal: np.ndarray
    tangent_arc: np.ndarray
    axis: np.ndarray


def _leg_tables(leg: PhotoLeg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """b (px), r(b) (px) and dr/db on a 1-px grid along the leg."""
    n = max(2, int(math.ceil(leg.length)) + 1)
    b = np.linspace(0.0, leg.length, n)
    r = np.interp(b, np.linspace(0.0, leg.length, len(leg.radius)), leg.radius)
    dr = np.gradient(r, b)
    return b.astype(np.float32), r.astype(np.float32), dr.astype(np.float32)


def leg_local(
    leg: PhotoLeg, xy: np.ndarray, px_scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Axis distance b, across offset a, half-width r, dr/db and coverage at world points.

    ``xy`` (..., 2) float32 world px; ``px_scale`` photo px per world px (for the edge's
    anti-aliasing). Coverage is 1 inside, 0 outside, linear over one photo pixel.
    """
    ca, sa = math.cos(leg.angle), math.sin(leg.angle)
    dx = xy[..., 0] - np.float32(leg.x)
    dy = xy[..., 1] - np.float32(leg.y)
    b = dx * np.float32(-sa) + dy * np.float32(ca)
    a = dx * np.float32(ca) + dy * np.float32(sa)
    tb = np.clip(b / np.float32(leg.length), 0.0, 1.0)
    a -= np.float32(leg.bow) * (1.0 - (2.0 * tb - 1.0) ** 2)
    tb_, tr, tdr = _leg_tables(leg)
    r = np.interp(b, tb_, tr).astype(np.float32)
    dr = np.interp(b, tb_, tdr).astype(np.float32)
    edge = (r - np.abs(a)) / np.sqrt(1.0 + dr * dr)
    # The modelled leg ends below the ankle, fading out where its foot is opaque.
    cover = np.clip(0.5 + edge * np.float32(px_scale), 0.0, 1.0)
    cover *= np.clip((np.float32(leg.length) - b) / np.float32(0.015 * leg.length), 0.0, 1.0)
    return b, a, r, dr, cover.astype(np.float32)


def sample_leg(leg: PhotoLeg, xy: np.ndarray, px_scale: float) -> LegSample:
    """Evaluate a leg at world points ``xy`` (H, W, 2) float32 (see :class:`LegSample`)."""
    b, a, r, dr, alpha = leg_local(leg, xy, px_scale)
    u = np.clip(a / np.maximum(r, np.float32(1e-3)), -1.0, 1.0).astype(np.float32)
    sx = (np.float32(leg.arc_centre) + r * np.arcsin(u)).astype(np.float32)
    sy = b.astype(np.float32)
    ca, sa = math.cos(leg.angle), math.sin(leg.angle)
    n3 = np.array([ca, sa, 0.0], dtype=np.float32)
    t3 = np.array([-sa, ca, 0.0], dtype=np.float32)
    z3 = np.array([0.0, 0.0, 1.0], dtype=np.float32)
    cz = np.sqrt(np.maximum(1.0 - u * u, 0.0)).astype(np.float32)
    inv = (1.0 / np.sqrt(1.0 + dr * dr)).astype(np.float32)  # |u n + cz z − dr t|
    normal = (u * inv)[..., None] * n3 + (cz * inv)[..., None] * z3 - (dr * inv)[..., None] * t3
    tangent = -cz[..., None] * n3 + u[..., None] * z3
    return LegSample(alpha, u, sx, sy, normal.astype(np.float32), tangent, t3)


# --------------------------------------------------------------------------------------
# Hands and feet
# --------------------------------------------------------------------------------------


def _polyline(p0: np.ndarray, angles: list[float], lengths: list[float]) -> np.ndarray:
    pts = [p0]
    for ang, ln in zip(angles, lengths, strict=True):
        pts.append(pts[-1] + ln * np.array([math.cos(ang), math.sin(ang)]))
    return np.array(pts)


def make_hand(
    rng: np.random.Generator,
    wrist: np.ndarray,
    direction: float,
    ppm: float,
    melanin: float,
    depth: float,
    *,
    glove: tuple[float, float, float] | None = None,
) -> Limb:
    """A hand seen from the back: palm, four fingers, thumb, nails, knuckle creases and
    faint dorsal veins, the fingers pointing along ``direction`` (rad, image angle)."""
    size = float(rng.uniform(0.88, 1.12)) * ppm
    side = float(rng.choice([-1.0, 1.0]))  # which side the thumb is on
    fwd = np.array([math.cos(direction), math.sin(direction)])
    across = np.array([-fwd[1], fwd[0]]) * side
    palm_len, palm_w = 92.0 * size, 82.0 * size
    parts: list[tuple[np.ndarray, float]] = []
    # Forearm (leaving the frame), then the back of the hand as a rounded rectangle.
    parts.append((np.array([wrist - fwd * 260.0 * size, wrist + fwd * 5.0 * size]), 29.0 * size))
    c0 = wrist + fwd * 0.36 * palm_w
    c1 = wrist + fwd * (palm_len - 0.4 * palm_w)
    parts.append((np.array([c0, c1]), 0.5 * palm_w))
    nails: list[tuple[np.ndarray, float, float, float]] = []
    creases: list[Stroke] = []
    spread = float(rng.uniform(0.0, 0.07))
    curl = float(rng.uniform(0.0, 0.3))
    finger_mm = [(-1.5, 0.93, 8.2), (-0.5, 1.0, 9.0), (0.5, 0.96, 8.8), (1.5, 0.8, 7.8)]
    for off, ln, rad in finger_mm:
        base = wrist + fwd * (palm_len - 6.0 * size) + across * off * 17.5 * size
        ang0 = direction + side * (off * spread)
        seg = [44.0 * ln * size, 27.0 * ln * size * (1 - curl), 21.0 * ln * size * (1 - 1.4 * curl)]
        angs = [ang0, ang0 + side * rng.normal(0, 0.04), ang0 + side * rng.normal(0, 0.05)]
        pts = _polyline(base, angs, seg)
        for j, shrink in enumerate((1.0, 0.93, 0.86)):
            parts.append((pts[j : j + 2], rad * shrink * size))
        tip_dir = pts[-1] - pts[-2]
        tip_ang = math.atan2(tip_dir[1], tip_dir[0])
        nail_c = pts[-1] - 5.5 * size * np.array([math.cos(tip_ang), math.sin(tip_ang)])
        nails.append((nail_c, 7.0 * size, 0.6 * rad * size, tip_ang))
        for j in (1, 2):
            c = pts[j]
            perp = np.array([-math.sin(angs[j]), math.cos(angs[j])])
            creases.append(
                Stroke(
                    centreline=_frozen_array(
                        np.array([c - perp * rad * size * 0.6, c + perp * rad * size * 0.6])
                    ),
                    width_mm=0.6,
                    amplitude=0.14,
                )
            )
    t_base = wrist + fwd * 0.2 * palm_len + across * 0.42 * palm_w
    t_ang = direction + side * float(rng.uniform(0.35, 0.7))
    thumb = _polyline(t_base, [t_ang, t_ang - side * 0.3], [40.0 * size, 30.0 * size])
    parts.append((thumb[:2], 11.5 * size))
    parts.append((thumb[1:], 10.0 * size))
    th_dir = thumb[-1] - thumb[-2]
    th_ang = math.atan2(th_dir[1], th_dir[0])
    nails.append(
        (thumb[-1] - 7.0 * size * th_dir / np.linalg.norm(th_dir), 7.0 * size, 7.5 * size, th_ang)
    )
    veins: list[Stroke] = []
    if glove is None:
        for _ in range(int(rng.integers(2, 5))):
            start = wrist + across * rng.uniform(-0.3, 0.3) * palm_w + fwd * 5 * size
            pts = _walk(
                rng, start, direction + rng.normal(0, 0.25), 60.0 * size / ppm, 1.0, 0.08, ppm
            )
            veins.append(
                Stroke(
                    centreline=_frozen_array(pts),
                    width_mm=float(rng.uniform(2.0, 3.5)),
                    amplitude=float(rng.uniform(0.05, 0.12)),
                )
            )
    return Limb(
        kind="hand",
        parts=tuple((np.asarray(p, dtype=np.float64), float(r)) for p, r in parts),
        nails=tuple(nails),
        melanin=melanin,
        depth=depth,
        ppm=ppm,
        glove=glove,
        veins=tuple(veins),
        creases=tuple(creases),
    )


def make_foot(
    rng: np.random.Generator,
    ankle: np.ndarray,
    leg_dir: float,
    ppm: float,
    melanin: float,
    depth: float,
    *,
    view: str,
    inner: float = 1.0,
    ankle_radius: float | None = None,
) -> Limb:
    """A foot at ``ankle`` (world px): seen from the front ("front": pointing at the
    camera, toes below; the big toe on the ``inner`` side, +1 towards +x) or from the side
    ("side": pointing across the leg). ``ankle_radius`` (px) is the leg's half-width at the
    ankle, which the instep covers."""
    size = float(rng.uniform(0.9, 1.1)) * ppm
    down = np.array([-math.sin(leg_dir), math.cos(leg_dir)])
    right = np.array([down[1], -down[0]]) * -1.0
    parts: list[tuple[np.ndarray, float]] = []
    nails: list[tuple[np.ndarray, float, float, float]] = []
    fade = None
    tilt = (0.0, 0.0)
    if view == "front":
        turn = float(rng.uniform(0.0, 0.25)) * -inner  # feet turn out a little
        d = down * math.cos(turn) + right * math.sin(turn)
        acr = np.array([d[1], -d[0]]) * inner  # towards the big toe
        # Instep narrow at the ankle, widening to the ball; toes in a row below.
        # Instep narrow at the ankle, the forefoot wide across; toes in a row below.
        instep = 1.08 * ankle_radius if ankle_radius is not None else 33.0 * size
        parts.append((np.array([ankle - d * 8.0 * size, ankle + d * 25.0 * size]), instep))
        parts.append((np.array([ankle + d * 20.0 * size, ankle + d * 45.0 * size]), 34.0 * size))
        fore = ankle + d * 55.0 * size + acr * 3.0 * size
        parts.append((np.array([fore - acr * 22.0 * size, fore + acr * 22.0 * size]), 24.0 * size))
        for off, rad, ln in (
            (1.55, 11.5, 16.0),
            (0.6, 8.0, 14.0),
            (-0.15, 7.5, 12.5),
            (-0.85, 7.0, 11.0),
            (-1.5, 6.5, 9.0),
        ):
            base = ankle + d * (70.0 - 4.0 * abs(off)) * size + acr * off * 16.0 * size
            tip = base + d * ln * size
            parts.append((np.array([base, tip]), rad * size))
            ang = math.atan2(d[1], d[0])
            nails.append((tip - d * 0.3 * rad * size, 0.38 * rad * size, 0.55 * rad * size, ang))
        fade = ((float(ankle[0]), float(ankle[1])), (float(d[0]), float(d[1])), 22.0 * size)
        tilt = (float(-d[0] * 0.7), float(-d[1] * 0.7))
    else:
        sgn = float(rng.choice([-1.0, 1.0]))
        fwd = right * sgn
        # Side view: a wedge from the heel (high, round) down to the toes (low, thin).
        r0 = ankle_radius if ankle_radius is not None else 32.0 * size
        heel = ankle + down * 40.0 * size - fwd * 25.0 * size
        arch = ankle + down * 45.0 * size + fwd * 40.0 * size
        ball = ankle + down * 55.0 * size + fwd * 100.0 * size
        tip = ball + fwd * 38.0 * size + down * 4.0 * size
        parts.append((np.array([ankle - down * 5.0 * size, heel]), 0.95 * r0))
        parts.append((np.array([heel, arch]), 30.0 * size))
        parts.append((np.array([arch, ball]), 25.0 * size))
        parts.append((np.array([ball, tip]), 18.0 * size))
        ang = math.atan2(fwd[1], fwd[0])
        nails.append((tip - fwd * 6.0 * size - down * 6.0 * size, 6.0 * size, 4.5 * size, ang))
        fade = ((float(ankle[0]), float(ankle[1])), (float(down[0]), float(down[1])), 18.0 * size)
        tilt = (float(-down[0] * 0.5), float(-down[1] * 0.5))
    return Limb(
        kind="foot",
        parts=tuple((np.asarray(p, dtype=np.float64), float(r)) for p, r in parts),
        nails=tuple(nails),
        melanin=melanin,
        depth=depth,
        ppm=ppm,
        fade=fade,
        tilt=tilt,
    )


@dataclass
class LimbRaster:
    """A limb rasterised on a world window (origin ``(x0, y0)`` px, scale ``s``).

    ``alpha`` coverage, ``nx``/``ny`` the capsule normal's image components (z follows),
    ``nail`` nail-plate coverage, ``od`` extra neutral/vein OD (h, w, 3): creases and
    dorsal veins. All float32 (h, w) except ``od``.
    """

    x0: int
    y0: int
    s: float
    alpha: np.ndarray
    nx: np.ndarray
    ny: np.ndarray
    nail: np.ndarray
    od: np.ndarray


def raster_limb(limb: Limb, s: float, margin: float = 4.0) -> LimbRaster:
    """Rasterise ``limb`` at scale ``s`` (window px per world px) over its bounding box."""
    pts = np.concatenate([c for c, _ in limb.parts], axis=0) * s
    rmax = max(r for _, r in limb.parts) * s
    x0 = int(math.floor(pts[:, 0].min() - rmax - margin))
    y0 = int(math.floor(pts[:, 1].min() - rmax - margin))
    x1 = int(math.ceil(pts[:, 0].max() + rmax + margin))
    y1 = int(math.ceil(pts[:, 1].max() + rmax + margin))
    h, w = y1 - y0, x1 - x0
    height = np.full((h, w), -np.inf, dtype=np.float32)
    alpha = np.zeros((h, w), dtype=np.float32)
    nx = np.zeros((h, w), dtype=np.float32)
    ny = np.zeros((h, w), dtype=np.float32)
    gx = np.arange(w, dtype=np.float32)[None, :] + np.float32(x0 + 0.0)
    gy = np.arange(h, dtype=np.float32)[:, None] + np.float32(y0 + 0.0)
    for k, (centre, rad) in enumerate(limb.parts):
        c = centre * s
        r = np.float32(rad * s)
        # Broad parts (palm, forearm, sole) are flatter than a tube of their width.
        flat = np.float32(min(1.0, max(0.35, 12.0 * limb.ppm / rad)))
        lift = np.float32(0.0 if k == 0 else 2.0 * s * limb.parts[0][1] / 40.0)
        for (ax, ay), (bx, by) in zip(c[:-1], c[1:], strict=True):
            sx0 = max(int(math.floor(min(ax, bx) - r - 2)) - x0, 0)
            sx1 = min(int(math.ceil(max(ax, bx) + r + 2)) - x0, w)
            sy0 = max(int(math.floor(min(ay, by) - r - 2)) - y0, 0)
            sy1 = min(int(math.ceil(max(ay, by) + r + 2)) - y0, h)
            if sx0 >= sx1 or sy0 >= sy1:
                continue
            px = gx[:, sx0:sx1] - np.float32(ax)
            py = gy[sy0:sy1, :] - np.float32(ay)
            dx, dy = np.float32(bx - ax), np.float32(by - ay)
            ll = dx * dx + dy * dy
            t = np.clip((px * dx + py * dy) / max(ll, 1e-6), 0.0, 1.0)
            ex = px - t * dx
            ey = py - t * dy
            d = np.sqrt(ex * ex + ey * ey)
            z = np.sqrt(np.maximum(r * r - d * d, 0.0)) + lift
            z = np.where(d < r + 1.0, z, -np.inf).astype(np.float32)
            sl = (slice(sy0, sy1), slice(sx0, sx1))
            take = z > height[sl]
            height[sl] = np.where(take, z, height[sl])
            nx[sl] = np.where(take, ex * flat / r, nx[sl])
            ny[sl] = np.where(take, ey * flat / r, ny[sl])
            np.maximum(alpha[sl], np.clip(0.5 + (r - d), 0.0, 1.0), out=alpha[sl])
    # Smooth the normals across the seams where capsules meet (skin is one surface).
    sig = 2.5 * limb.ppm * s
    wgt = cv2.GaussianBlur(alpha, (0, 0), sig)
    nx = np.asarray(cv2.GaussianBlur(nx * alpha, (0, 0), sig) / np.maximum(wgt, 1e-3), np.float32)
    ny = np.asarray(cv2.GaussianBlur(ny * alpha, (0, 0), sig) / np.maximum(wgt, 1e-3), np.float32)
    if limb.fade is not None:
        (fx, fy), (dx_, dy_), flen = limb.fade
        along = (gx - np.float32(fx * s)) * np.float32(dx_) + (
            gy - np.float32(fy * s)
        ) * np.float32(dy_)
        alpha *= np.clip(along / np.float32(flen * s), 0.0, 1.0)
    if limb.tilt != (0.0, 0.0):
        nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
        nx += np.float32(limb.tilt[0]) * nz
        ny += np.float32(limb.tilt[1]) * nz
        norm = np.sqrt(nx * nx + ny * ny + nz * nz)
        nx /= norm
        ny /= norm
    lx = np.arange(w, dtype=np.float32)[None, :]
    ly = np.arange(h, dtype=np.float32)[:, None]
    nail = np.zeros((h, w), dtype=np.float32)
    for centre, half_l, half_w, ang in limb.nails:
        cx, cy = np.float32(centre[0] * s - x0), np.float32(centre[1] * s - y0)
        ca, sa = np.float32(math.cos(ang)), np.float32(math.sin(ang))
        ex = (lx - cx) * ca + (ly - cy) * sa
        ey = -(lx - cx) * sa + (ly - cy) * ca
        rr = np.sqrt((ex / np.float32(half_l * s)) ** 2 + (ey / np.float32(half_w * s)) ** 2)
        np.maximum(nail, np.clip((1.0 - rr) * np.float32(half_w * s), 0.0, 1.0), out=nail)
    # Skin texture fixed on the limb (world mm): mottling and fine grain.
    win = SurfaceWindow(x0, y0, h, w, limb.ppm * s)
    seed = int(abs(limb.parts[0][0][0, 0] * 7919 + limb.parts[0][0][0, 1] * 104729)) % (2**31)
    mott = np.float32(0.05) * value_noise(win, 5.0, seed, 81) + np.float32(0.02) * value_noise(
        win, 0.5, seed, 82
    )
    red = np.float32(0.03) * value_noise(win, 12.0, seed, 83)
    od = (mott[:, :, None] * MELANIN_OD + red[:, :, None] * HAEMOGLOBIN_OD).astype(np.float32)
    origin = np.array([x0, y0], dtype=np.float64)
    for st, direction, soft in [(c, NEUTRAL_OD * np.float32(1.7), False) for c in limb.creases] + [
        (v, DEEP_VEIN_OD, True) for v in limb.veins
    ]:
        half_px = float(st.width_mm * (limb.ppm * s) / 2.0)
        sigma = float(max(st.width_mm * (limb.ppm * s) / 2.3548, 0.5))
        res = _polyline_distance(st.centreline * s - origin, 0, 0, h, w, 3.0 * sigma + half_px)
        if res is None:
            continue
        sl, d = res
        prof = (
            np.exp(-(d * d) / np.float32(2 * sigma * sigma)) if soft else _box_profile(d, half_px)
        )
        od[sl] += (prof * np.float32(st.amplitude))[:, :, None] * direction[None, None, :]
    return LimbRaster(x0, y0, s, alpha, nx, ny, nail * alpha, od)
