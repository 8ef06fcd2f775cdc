"""Where one skin surface lies over another inside the leg skin (a crossing leg, a hand, a
foot): the edges seen there (:func:`_occluding_edges`) and the outlines of the surface in
front that run on across the skin behind it (:func:`_hidden_outlines`). The segmentation
treats both as outlines.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..morphology import components, dilate_disc
from .params import (
    _HIDDEN_ALIGN_DEG,
    _HIDDEN_ALONG_MM,
    _HIDDEN_ARM_DEG,
    _HIDDEN_CONTROL_MM,
    _HIDDEN_DEEP_MM,
    _HIDDEN_EDGE_OD,
    _HIDDEN_EDGE_RATIO,
    _HIDDEN_FRAME_MM,
    _HIDDEN_IN_SKIN,
    _HIDDEN_MIN_MM,
    _HIDDEN_NOTCH_DEG,
    _HIDDEN_READ_MM,
    _HIDDEN_SNAP_MM,
    _HIDDEN_STEP_MM,
    _HIDDEN_TRACE_CLEAR_MM,
    _HIDDEN_TRACE_STEP_MM,
    _HIDDEN_TRACE_TURN_DEG,
    _OCCLUDING_BOW,
    _OCCLUDING_CLEAR_MM,
    _OCCLUDING_HALF_WIDTH_MM,
    _OCCLUDING_HI_OD_PER_MM,
    _OCCLUDING_JUNCTION_MM,
    _OCCLUDING_LO_OD_PER_MM,
    _OCCLUDING_NEAR_MM,
    _OCCLUDING_REACH_MM,
    _OCCLUDING_SHARP_MM,
    _OCCLUDING_SHARP_RATIO,
    _OCCLUDING_SHARP_WITHIN_MM,
    _OCCLUDING_SIGMA_MM,
    _OCCLUDING_SPAN_MM,
    _OCCLUDING_STEP_FRAC,
)


def _occluding_edges(
    od: np.ndarray, leg: np.ndarray, ppm_work: float, coarse_size: tuple[int, int]
) -> np.ndarray:
    """Where one skin surface lies over another in the leg (a crossing leg, a hand): the
    edges, widened by :data:`~.params._OCCLUDING_HALF_WIDTH_MM`, as (H0, W0) bool at the
    working level of ``od`` (H0, W0, 3) and ``leg`` (H0, W0) bool; with the outlines that
    run on hidden across the skin behind (:func:`_hidden_outlines`).

    Found at the coarse level ``coarse_size`` (w, h) on the mean OD of the three
    channels, smoothed within the leg, as the steps :mod:`.params` describes
    (``_OCCLUDING_*``): Canny's non-maximum suppression and hysteresis on the gradient,
    then each chain's sharpness, span, bow and T-junction with the leg's outline.
    """
    h0, w0 = leg.shape
    w, h = coarse_size
    p = ppm_work * w / w0  # px per mm at the coarse level
    leg_c = cv2.resize(leg.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    mean_od = cv2.resize(od.mean(axis=2, dtype=np.float32), (w, h), interpolation=cv2.INTER_AREA)

    def smoothed(sigma_mm: float) -> np.ndarray:
        den = cv2.GaussianBlur(leg_c, (0, 0), sigma_mm * p)
        return np.asarray(cv2.GaussianBlur(mean_od * leg_c, (0, 0), sigma_mm * p)) / np.maximum(
            den, 1e-3
        )

    def gradient(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """d/dx and d/dy in OD per mm."""
        return (
            cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3) * (p / 8.0),
            cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3) * (p / 8.0),
        )

    s = smoothed(_OCCLUDING_SIGMA_MM)
    gx, gy = gradient(s)
    g = np.hypot(gx, gy)
    dx, dy = gx / np.maximum(g, 1e-9), gy / np.maximum(g, 1e-9)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def along(img: np.ndarray, t_mm: float) -> np.ndarray:
        """``img`` read ``t_mm`` along the gradient's direction from every pixel."""
        t = np.float32(t_mm * p)
        return np.asarray(cv2.remap(img, xx + dx * t, yy + dy * t, cv2.INTER_LINEAR))

    dist_out = cv2.distanceTransform((leg_c > 0.5).astype(np.uint8), cv2.DIST_L2, 5) / p
    # The step is read _OCCLUDING_REACH_MM either side, within the frame: near the
    # frame's edge the leg's own outline may lie just beyond it.
    to_frame = np.minimum(np.minimum(xx, w - 1 - xx), np.minimum(yy, h - 1 - yy)) / p
    peak = (
        (g >= along(g, 1.0 / p))
        & (g >= along(g, -1.0 / p))
        & (dist_out > _OCCLUDING_CLEAR_MM)
        & (to_frame > _OCCLUDING_REACH_MM)
    )
    # Still a step farther out, by as much as the gradient says: not a ridge's flank.
    far = along(s, _OCCLUDING_REACH_MM) - along(s, -_OCCLUDING_REACH_MM)
    near = along(s, _OCCLUDING_NEAR_MM) - along(s, -_OCCLUDING_NEAR_MM)
    expected = g * math.sqrt(2.0 * math.pi) * _OCCLUDING_SIGMA_MM
    step = peak & (far >= _OCCLUDING_STEP_FRAC * np.maximum(expected, near))
    # The fine gradient along the coarse one, at its best close across the chain.
    s_fine = smoothed(_OCCLUDING_SHARP_MM)
    fx, fy = gradient(s_fine)
    fine = fx * dx + fy * dy
    reach = _OCCLUDING_SHARP_WITHIN_MM
    fine_best = np.max([along(fine, t) for t in np.linspace(-reach, reach, 7)], axis=0)

    chains = components(step & (g >= _OCCLUDING_LO_OD_PER_MM))
    keep = np.zeros(chains.n, bool)
    keep[np.unique(chains.labels[step & (g >= _OCCLUDING_HI_OD_PER_MM)])] = True
    keep[0] = False
    ratio = fine_best.reshape(-1)[chains.idx] / np.maximum(g.reshape(-1)[chains.idx], 1e-9)
    sharp = np.bincount(chains.at, weights=ratio, minlength=chains.n) / np.maximum(chains.areas, 1)
    keep &= sharp >= _OCCLUDING_SHARP_RATIO
    ys, xs = np.divmod(chains.idx, w)
    for k in np.flatnonzero(keep):
        on = chains.at == k
        _, sides, _ = cv2.minAreaRect(np.stack([xs[on], ys[on]], axis=1).astype(np.float32))
        span = max(sides) / p
        keep[k] = (
            span >= _OCCLUDING_SPAN_MM
            and min(sides) / p <= _OCCLUDING_BOW * span
            and float(dist_out[ys[on], xs[on]].min())
            <= _OCCLUDING_CLEAR_MM + _OCCLUDING_JUNCTION_MM
        )
    found = keep[chains.labels].astype(np.uint8)
    for curve in _hidden_outlines(leg_c > 0.5, s_fine, p, depth_mm=dist_out):
        cv2.polylines(found, [np.round(curve).astype(np.int32).reshape(-1, 1, 2)], False, 1)
    edges = cv2.resize(found, (w0, h0), interpolation=cv2.INTER_NEAREST)
    return dilate_disc(edges > 0, max(1.0, _OCCLUDING_HALF_WIDTH_MM * ppm_work))


def _hidden_outlines(
    skin: np.ndarray, s: np.ndarray, p: float, *, depth_mm: np.ndarray | None = None
) -> list[np.ndarray]:
    """The outlines of a surface in front that run on, hidden, across the skin behind it:
    each as an (n, 2) float array of (x, y) points on the grid of ``skin`` (h, w) bool,
    at ``p`` px per mm, with ``s`` (h, w) the mean OD smoothed within the skin.

    Where a leg crosses another (or a hand, a foot lies over the leg) the silhouette of the
    skin has a notch: the outline of the surface in front meets that of the surface behind
    at a sharp inward corner (:func:`_notches`). The front outline runs on from there,
    smoothly, across the skin behind, to another notch or out of the frame. Each such
    course is drawn from the notches alone (a cubic leaving each along its outline), moved
    onto the edge the photo shows there (:func:`_onto_edge`) and kept when that edge is
    strong and stands out of the skin beside it (:func:`_edge_strength`). ``depth_mm``
    is each pixel's distance from the skin's outline in mm, when already known.
    """
    m = skin.astype(np.uint8)
    depth = (
        np.asarray(cv2.distanceTransform(m, cv2.DIST_L2, 5)) / p if depth_mm is None else depth_mm
    )
    notches = _notches(m, p)
    courses: list[np.ndarray] = []
    paired: set[int] = set()
    cos_align = math.cos(math.radians(_HIDDEN_ALIGN_DEG))
    for i, (a, arms_a) in enumerate(notches):
        for j in range(i + 1, len(notches)):
            b, arms_b = notches[j]
            u = b - a
            length = float(np.linalg.norm(u))
            if length < _HIDDEN_MIN_MM * p:
                continue
            u /= length
            da = max(arms_a, key=lambda d: float(d @ u))
            db = max(arms_b, key=lambda d: float(d @ -u))
            if float(da @ u) >= cos_align and float(db @ -u) >= cos_align:
                courses.append(_cubic(a, da, b, db, length))
                paired |= {i, j}
    for i, (a, arms) in enumerate(notches):
        if i in paired:
            continue
        # A notch whose front outline leaves the frame: each arm that runs on through the
        # skin to the frame's edge, along the edge the photo shows. Where both do (the
        # outline behind runs on hidden too), the edge test below keeps the one seen.
        for d in arms:
            traced = _traced_to_frame(s, depth, a, d, p)
            if traced is not None and len(traced) >= _HIDDEN_MIN_MM * p:
                courses.append(traced)
    inside = depth >= _HIDDEN_READ_MM  # where the edge can be read without the outline
    kept = []
    for course in courses:
        if _within(m, course).mean() < _HIDDEN_IN_SKIN or (
            float(depth[_rc(course, m.shape)].max()) < _HIDDEN_DEEP_MM
        ):
            continue
        course = _onto_edge(s, course, p)
        normals = _normals(course)
        strength = _edge_strength(s, course, normals, p, inside)
        beside = _beside(s, course, normals, p, inside)
        if (
            math.isfinite(strength)
            and strength >= _HIDDEN_EDGE_OD
            and (not math.isfinite(beside) or strength >= _HIDDEN_EDGE_RATIO * beside)
        ):
            kept.append(course)
    return kept


Notch = tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]  # a point (x, y), its arms' courses on


def _notches(m: np.ndarray, p: float) -> list[Notch]:
    """The silhouette's notches: points of the outline of ``m`` (h, w) uint8 where it turns
    inward by more than :data:`~.params._HIDDEN_NOTCH_DEG` between two straight arms
    (:data:`~.params._HIDDEN_STEP_MM` and three times that long, bent by at most
    :data:`~.params._HIDDEN_ARM_DEG`), away from the frame: each point (x, y) with the
    directions that its two arms run on in past it."""
    h, w = m.shape
    k = max(2, int(round(_HIDDEN_STEP_MM * p)))
    cos_arm = math.cos(math.radians(_HIDDEN_ARM_DEG))
    out: list[Notch] = []
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    for contour in contours:
        pts = contour[:, 0, :].astype(np.float32)
        n = len(pts)
        if n < 8 * k:
            continue
        back, ahead = np.roll(pts, k, axis=0) - pts, np.roll(pts, -k, axis=0) - pts
        nb, na = np.linalg.norm(back, axis=1), np.linalg.norm(ahead, axis=1)
        cos = (back * ahead).sum(axis=1) / np.maximum(nb * na, 1e-6)
        angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
        chord_mid = (np.roll(pts, k, axis=0) + np.roll(pts, -k, axis=0)) / 2
        inward = m[_rc(chord_mid, m.shape)] == 0
        to_frame = np.minimum(
            np.minimum(pts[:, 0], w - 1 - pts[:, 0]), np.minimum(pts[:, 1], h - 1 - pts[:, 1])
        )
        for i in np.flatnonzero(inward & (angle < _HIDDEN_NOTCH_DEG)):
            if to_frame[i] < _HIDDEN_FRAME_MM * p:
                continue
            if angle[i] > angle[(i + np.arange(-k, k + 1)) % n].min():
                continue
            if _straight(pts, int(i), k, cos_arm) and _straight(pts, int(i), -k, cos_arm):
                out.append((pts[i].copy(), (_arm(pts, int(i), k), _arm(pts, int(i), -k))))
    return out


def _straight(pts: np.ndarray, i: int, step: int, cos_arm: float) -> bool:
    """Whether the outline ``pts`` runs straight from point ``i`` on for three ``step``s
    (its direction from the first step to the third within the arm's bend)."""
    n = len(pts)
    near, far = pts[(i + step) % n], pts[(i + 3 * step) % n]
    u1, u2 = near - pts[i], far - near
    return float(u1 @ u2) >= cos_arm * max(float(np.linalg.norm(u1) * np.linalg.norm(u2)), 1e-6)


def _arm(pts: np.ndarray, i: int, step: int) -> np.ndarray:
    """The direction the outline's arm from point ``i`` (towards ``i + step``) runs on in
    past it: read on the arm's straight part, one to three ``step``s out, since the notch's
    own corner is rounded."""
    n = len(pts)
    d = pts[(i + step) % n] - pts[(i + 3 * step) % n]
    return np.asarray(d / max(float(np.linalg.norm(d)), 1e-6), np.float32)


def _cubic(
    a: np.ndarray, da: np.ndarray, b: np.ndarray, db: np.ndarray, length: float
) -> np.ndarray:
    """The cubic (Hermite) from ``a`` leaving along ``da`` to ``b`` arriving along
    ``-db``: (n, 2) points, one per px or so."""
    t = np.linspace(0.0, 1.0, max(8, int(length)))[:, None]
    return np.asarray(
        (2 * t**3 - 3 * t**2 + 1) * a
        + (t**3 - 2 * t**2 + t) * (length * da)
        + (-2 * t**3 + 3 * t**2) * b
        + (t**3 - t**2) * (length * -db),
        np.float32,
    )


def _traced_to_frame(
    s: np.ndarray, depth_mm: np.ndarray, a: np.ndarray, d: np.ndarray, p: float
) -> np.ndarray | None:
    """The course from the notch ``a`` along its arm ``d`` through the skin to the frame's
    edge, traced along the edge the photo shows in ``s``: steps of
    :data:`~.params._HIDDEN_TRACE_STEP_MM`, each turning by at most
    :data:`~.params._HIDDEN_TRACE_TURN_DEG` towards the strongest edge response
    (:func:`_edge_response`), and in all by at most :data:`~.params._HIDDEN_ALIGN_DEG`
    from the arm. A leg's outline bends over its length, so a straight ray along the arm
    strays off it by centimetres; it does not turn a corner. ``depth_mm`` is each pixel's
    distance from the skin's outline. One point per px or so; None when the course comes
    within :data:`~.params._HIDDEN_TRACE_CLEAR_MM` of the outline past its first
    :data:`~.params._HIDDEN_STEP_MM`: it meets another outline, not the frame."""
    h, w = depth_mm.shape
    step = _HIDDEN_TRACE_STEP_MM * p
    turns = np.radians(np.linspace(-_HIDDEN_TRACE_TURN_DEG, _HIDDEN_TRACE_TURN_DEG, 5))
    fractions = np.linspace(0.25, 1.0, 4, dtype=np.float32)[:, None]
    pos = np.asarray(a, np.float32)
    arm = heading = math.atan2(float(d[1]), float(d[0]))
    bend = math.radians(_HIDDEN_ALIGN_DEG)
    points = [pos]
    for n in range(1, int((h + w) / step) + 2):
        best = -1.0
        for turn in turns:
            if abs(heading + turn - arm) > bend:
                continue
            u = np.array([math.cos(heading + turn), math.sin(heading + turn)], np.float32)
            on = pos + u * (step * fractions)
            normal = np.broadcast_to(np.array([-u[1], u[0]], np.float32), on.shape)
            response = float(np.mean(_edge_response(s, on, normal, p)))
            if response > best:
                best, best_turn, best_u = response, float(turn), u
        heading += best_turn
        pos = pos + best_u * step
        x, y = float(pos[0]), float(pos[1])
        if not (0.0 <= x <= w - 1 and 0.0 <= y <= h - 1):
            break  # out of the frame: the course ends at its edge
        if (
            n * _HIDDEN_TRACE_STEP_MM > _HIDDEN_STEP_MM
            and depth_mm[int(round(y)), int(round(x))] < _HIDDEN_TRACE_CLEAR_MM
        ):
            return None
        points.append(pos)
    course = np.asarray(points, np.float32)
    if len(course) < 2:
        return None
    # one point per px or so, as the cubic's
    t = np.arange(0.0, len(course) - 1, 1.0 / step, dtype=np.float32)
    i = np.minimum(t.astype(np.intp), len(course) - 2)
    frac = (t - i)[:, None]
    return np.asarray(course[i] * (1.0 - frac) + course[i + 1] * frac, np.float32)


def _rc(points: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of (x, y) ``points``, rounded into the grid."""
    cols = np.clip(np.round(points[:, 0]).astype(np.intp), 0, shape[1] - 1)
    rows = np.clip(np.round(points[:, 1]).astype(np.intp), 0, shape[0] - 1)
    return rows, cols


def _within(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(m[_rc(points, m.shape)] > 0)


def _normals(course: np.ndarray) -> np.ndarray:
    d = np.gradient(course, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)
    return np.stack([-d[:, 1], d[:, 0]], axis=1)


def _edge_response(s: np.ndarray, points: np.ndarray, normals: np.ndarray, p: float) -> np.ndarray:
    """At each point, the step of ``s`` across (``_HIDDEN_READ_MM`` either side) plus how
    far it stands above both sides (a shadow's dark line)."""

    def at(q: np.ndarray) -> np.ndarray:
        return np.asarray(
            cv2.remap(
                s,
                np.ascontiguousarray(q[:, :1], np.float32),
                np.ascontiguousarray(q[:, 1:], np.float32),
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
        )[:, 0]

    r = _HIDDEN_READ_MM * p
    ahead, behind, on = at(points + normals * r), at(points - normals * r), at(points)
    return np.asarray(np.abs(ahead - behind) + np.maximum(0.0, on - (ahead + behind) / 2))


def _onto_edge(s: np.ndarray, course: np.ndarray, p: float) -> np.ndarray:
    """``course`` moved across itself, by at most ``_HIDDEN_SNAP_MM`` and smoothly, onto
    the strongest edge nearby: the notches and the cubic only say roughly where it runs."""
    normals = _normals(course)
    shifts = np.arange(-_HIDDEN_SNAP_MM, _HIDDEN_SNAP_MM + 1e-6, 0.25, dtype=np.float32)
    response = np.stack(
        [_edge_response(s, course + normals * (t * p), normals, p) for t in shifts]
    ).astype(np.float32)
    # An edge runs on: its response is smoothed along the course before the best is
    # taken, and so is the move.
    along = _HIDDEN_ALONG_MM * p
    smooth = np.asarray(cv2.GaussianBlur(response, (0, 0), sigmaX=along, sigmaY=0.5))
    moves = shifts[np.argmax(smooth, axis=0)].reshape(1, -1)
    best = cv2.GaussianBlur(moves, (0, 0), sigmaX=along)[0]
    return np.asarray(course + normals * (best[:, None] * p), np.float32)


def _beside(
    s: np.ndarray, course: np.ndarray, normals: np.ndarray, p: float, inside: np.ndarray
) -> float:
    """The edge response of the skin beside ``course``: on each side, the mean of
    :func:`_edge_strength` ``_HIDDEN_CONTROL_MM`` across; the stronger side's (NaN where
    neither side can be read). A course along a hand's or a finger's edge has that edge
    on one side."""
    sides = []
    for side in (-1.0, 1.0):
        read = [
            _edge_strength(s, course, normals, p, inside, side * at) for at in _HIDDEN_CONTROL_MM
        ]
        read = [r for r in read if math.isfinite(r)]
        if read:
            sides.append(float(np.mean(read)))
    return max(sides, default=math.nan)


def _edge_strength(
    s: np.ndarray,
    course: np.ndarray,
    normals: np.ndarray,
    p: float,
    inside: np.ndarray,
    beside_mm: float = 0.0,
) -> float:
    """The mean edge response along the middle 80 % of ``course`` (moved ``beside_mm``
    across itself, along its ``normals``: :func:`_normals`), read where the whole reading
    lies ``inside``; NaN where too little does."""
    points = course + normals * (beside_mm * p)
    n = len(points)
    read = np.zeros(n, bool)
    read[int(0.1 * n) : int(0.9 * n)] = True
    r = _HIDDEN_READ_MM * p
    for q in (points, points + normals * r, points - normals * r):
        read &= inside[_rc(q, inside.shape)]
    if read.sum() < 10:
        return math.nan
    return float(np.mean(_edge_response(s, points[read], normals[read], p)))
