"""Leg scenes at baseline (:func:`make_leg`): outline, veins, hair, freckles and moles.

Geometry is drawn in the leg's baseline frame (px at ``Leg.px_per_mm``, x right, y down)
from a seeded generator; nothing here renders pixels.
"""

from __future__ import annotations

import math

import numpy as np

from vein_tracker.synthetic._checks import _check_shape, _rng, _triple, default_px_per_mm
from vein_tracker.synthetic._model import (
    _BACKDROPS,
    TONES,
    Leg,
    LegOutline,
    Spot,
    Stroke,
    Vein,
    _frozen_array,
)


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


def _make_outline(rng: np.random.Generator, w: int) -> LegOutline:
    """A leg band across the frame, about 50-65 % of the width ``w`` px."""
    return LegOutline(
        cx=float(w / 2 + rng.uniform(-0.06, 0.06) * w),
        tilt=float(rng.uniform(-0.08, 0.08)),
        bow=float(rng.uniform(-0.04, 0.04) * w),
        half_width=float(rng.uniform(0.50, 0.65) * w / 2),
        taper=float(rng.uniform(0.05, 0.25) * rng.choice([-1.0, 1.0])),
        side_light=float(rng.uniform(-0.6, 0.6)),
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

    outline = _make_outline(rng, w)
    backdrop = _BACKDROPS[int(rng.integers(len(_BACKDROPS)))]
    texture_seed = int(rng.integers(0, 2**31 - 1))

    n_cl = int(rng.integers(4, 8)) if n_spider_clusters is None else int(n_spider_clusters)
    n_ret = int(rng.integers(2, 5)) if n_reticular is None else int(n_reticular)

    veins = _make_veins(rng, outline, (h, w), ppm, contrast, n_cl, n_ret)
    hairs = _make_hairs(rng, outline, (h, w), ppm) if hair else ()
    spots = _make_spots(rng, outline, (h, w), tone, freckles=freckles, moles=moles)
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


def _make_veins(
    rng: np.random.Generator,
    outline: LegOutline,
    shape: tuple[int, int],
    ppm: float,
    contrast: float,
    n_cl: int,
    n_ret: int,
) -> list[Vein]:
    """Reticular veins (most feeding a cluster) then the spider clusters, ids from 1."""
    h, w = shape
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
    return veins


def _make_spots(
    rng: np.random.Generator,
    outline: LegOutline,
    shape: tuple[int, int],
    tone: str,
    *,
    freckles: bool,
    moles: bool,
) -> list[Spot]:
    """Freckles (fewer on darker tones) and moles on the leg."""
    h, w = shape
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
    return spots


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
