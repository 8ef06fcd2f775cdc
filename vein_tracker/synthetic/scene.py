"""The scene in optical density: skin, shading, texture and absorbers on a window.

:func:`_render_scene` evaluates a :class:`Leg` on any window of its baseline frame at any
scale, with the truth maps (vein labels and ids, packed distractor masks). Photography
(exposure, noise, JPEG) and the camera's geometry are not done here.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vein_tracker.optics import DEEP_VEIN_OD, HAEMOGLOBIN_OD, MELANIN_OD
from vein_tracker.synthetic._model import (
    _BIT_BRUISE,
    _BIT_FRECKLE,
    _BIT_HAIR,
    _BIT_LEG,
    _BIT_MATTING,
    _BIT_MOLE,
    _BIT_STAIN,
    _BRUISE_BLUE,
    _BRUISE_PURPLE,
    _HAIR_OD,
    _NEUTRAL3,
    _SCENE_MARGIN,
    _SKIN_BASE_OD,
    _TONE_YELLOW,
    _YELLOW_OD,
    LABEL_RETICULAR,
    LABEL_SPIDER,
    Bruise,
    Leg,
    Spot,
    Stroke,
    Vein,
)


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


@dataclass
class _Canvas:
    """Truth maps and absorber fields of a window while the scene's absorbers are stamped.

    Window pixel (i, j) is baseline point ((x0 + j) / s, (y0 + i) / s); ``ppm`` is window
    px per mm; ``mask`` the skin the absorbers may mark in the truth maps.
    """

    s: float
    x0: int
    y0: int
    h: int
    w: int
    ppm: float
    mask: np.ndarray  # (h, w) bool: skin the truth maps may mark
    labels: np.ndarray  # (h, w) uint8
    ids: np.ndarray  # (h, w) uint16
    bits: np.ndarray  # (h, w) uint8 packed masks
    haem: np.ndarray  # (h, w) float32 spider/matting OD (max within the class)
    deep: np.ndarray  # (h, w) float32 reticular OD (max within the class)
    # Absorbers that add into OD after the skin is composed: (slices, OD (h', w'), direction).
    stamps: list[tuple[tuple[slice, slice], np.ndarray, np.ndarray]]

    @classmethod
    def empty(
        cls, s: float, x0: int, y0: int, h: int, w: int, ppm: float, mask: np.ndarray
    ) -> _Canvas:
        return cls(
            s=s,
            x0=x0,
            y0=y0,
            h=h,
            w=w,
            ppm=ppm,
            mask=mask,
            labels=np.zeros((h, w), dtype=np.uint8),
            ids=np.zeros((h, w), dtype=np.uint16),
            bits=mask.astype(np.uint8) * np.uint8(_BIT_LEG),
            haem=np.zeros((h, w), dtype=np.float32),
            deep=np.zeros((h, w), dtype=np.float32),
            stamps=[],
        )

    @property
    def origin(self) -> np.ndarray:
        return np.array([self.x0, self.y0], dtype=np.float64)

    def box(self, cx: float, cy: float, support: float) -> tuple[slice, slice] | None:
        """Window slices of the square of half-side ``support`` px around (cx, cy)."""
        jx0, jx1 = max(int(cx - support), 0), min(int(cx + support) + 2, self.w)
        jy0, jy1 = max(int(cy - support), 0), min(int(cy + support) + 2, self.h)
        if jx0 >= jx1 or jy0 >= jy1:
            return None
        return (slice(jy0, jy1), slice(jx0, jx1))


def _stamp_veins(cv: _Canvas, veins: tuple[Vein, ...]) -> None:
    """Vein OD fields and truth: reticular first, spider over them (superficial wins)."""
    best = np.zeros((cv.h, cv.w), dtype=np.float32)
    origin = cv.origin
    for cls in ("reticular", "spider"):
        for v in veins:
            if v.cls != cls or v.visibility <= 0.0:
                continue
            r = v.width_mm * cv.ppm / 2.0
            sigma = v.width_mm * cv.ppm / 2.3548
            support = r + 1.5 if cls == "spider" else max(3.0 * sigma, r + 1.5)
            res = _polyline_distance(
                v.centreline * cv.s - origin, cv.x0, cv.y0, cv.h, cv.w, support
            )
            if res is None:
                continue
            sl, d = res
            if cls == "spider":
                prof = _box_profile(d, r)
            else:
                prof = np.exp(-(d * d) / np.float32(2 * sigma * sigma))
            contrib = prof * np.float32(v.amplitude * v.visibility)
            target = cv.haem if cls == "spider" else cv.deep
            np.maximum(target[sl], contrib, out=target[sl])
            foot = (d <= max(r, 0.5)) & cv.mask[sl]
            score = contrib + (np.float32(10.0) if cls == "spider" else np.float32(0.0))
            take = foot & (score > best[sl])
            best[sl][take] = score[take]
            cv.ids[sl][take] = v.id
            cv.labels[sl][take] = LABEL_SPIDER if cls == "spider" else LABEL_RETICULAR


def _stamp_strokes(
    cv: _Canvas, items: tuple[Stroke, ...], bit: int, soft: bool, direction: np.ndarray
) -> None:
    """Hair (hard-edged), stains (soft) or matting (hard, haemoglobin: max with spiders)."""
    origin = cv.origin
    for st in items:
        r = st.width_mm * cv.ppm / 2.0
        sigma = st.width_mm * cv.ppm / 2.3548
        support = 3.0 * sigma if soft else r + 1.5
        res = _polyline_distance(st.centreline * cv.s - origin, cv.x0, cv.y0, cv.h, cv.w, support)
        if res is None:
            continue
        sl, d = res
        prof = np.exp(-(d * d) / np.float32(2 * sigma * sigma)) if soft else _box_profile(d, r)
        if direction is HAEMOGLOBIN_OD:  # matting: fine red vessels, max with spiders
            np.maximum(cv.haem[sl], prof * np.float32(st.amplitude), out=cv.haem[sl])
        else:
            cv.stamps.append((sl, prof * np.float32(st.amplitude), direction))
        mask = (d <= max(r, 0.5)) & cv.mask[sl]
        cv.bits[sl][mask] |= np.uint8(bit)


def _stamp_spots(cv: _Canvas, spots: tuple[Spot, ...]) -> None:
    """Freckles and moles: melanin (moles also a little neutral) with wobbly soft rims."""
    s, ppm = cv.s, cv.ppm
    for sp in spots:
        rad = sp.radius_mm * ppm
        edge = max(sp.edge_mm * ppm, 0.5)
        cx, cy = sp.x * s - cv.x0, sp.y * s - cv.y0
        sl = cv.box(cx, cy, rad * 1.4 + 3 * edge)
        if sl is None:
            continue
        gx = np.arange(sl[1].start, sl[1].stop, dtype=np.float32)[None, :] - np.float32(cx)
        gy = np.arange(sl[0].start, sl[0].stop, dtype=np.float32)[:, None] - np.float32(cy)
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
        cv.stamps.append((sl, prof * np.float32(sp.amplitude), MELANIN_OD))
        if sp.kind == "mole":
            cv.stamps.append((sl, prof * np.float32(0.25 * sp.amplitude), _NEUTRAL3))
        inside = (dd <= 0) & cv.mask[sl]
        cv.bits[sl][inside] |= np.uint8(_BIT_FRECKLE if sp.kind == "freckle" else _BIT_MOLE)


def _stamp_bruises(cv: _Canvas, bruises: tuple[Bruise, ...]) -> None:
    """Diffuse elliptical bruises (purple, blue or yellow); the mask is above half the peak."""
    s, ppm = cv.s, cv.ppm
    for br in bruises:
        rad = br.radius_mm * ppm
        cx, cy = br.x * s - cv.x0, br.y * s - cv.y0
        sl = cv.box(cx, cy, rad * 2.2)
        if sl is None:
            continue
        gx = np.arange(sl[1].start, sl[1].stop, dtype=np.float32)[None, :] - np.float32(cx)
        gy = np.arange(sl[0].start, sl[0].stop, dtype=np.float32)[:, None] - np.float32(cy)
        ca, sa = math.cos(br.angle), math.sin(br.angle)
        ex = (gx * ca + gy * sa) / np.float32(rad)
        ey = (-gx * sa + gy * ca) / np.float32(rad * br.aspect)
        prof = np.exp(-(ex * ex + ey * ey)) * np.float32(br.amplitude)
        hue = {"purple": _BRUISE_PURPLE, "blue": _BRUISE_BLUE}.get(br.hue, _YELLOW_OD)
        cv.stamps.append((sl, prof, hue))
        cv.bits[sl][(prof >= 0.5 * br.amplitude) & cv.mask[sl]] |= np.uint8(_BIT_BRUISE)


def _stamp_absorbers(cv: _Canvas, leg: Leg) -> None:
    """Every absorber of ``leg`` in the order the OD sums them (the order fixes the bytes)."""
    _stamp_veins(cv, leg.veins)
    _stamp_strokes(cv, leg.hairs, _BIT_HAIR, False, _HAIR_OD)
    _stamp_strokes(cv, leg.stains, _BIT_STAIN, True, MELANIN_OD)
    _stamp_strokes(cv, leg.matting, _BIT_MATTING, False, HAEMOGLOBIN_OD)
    _stamp_spots(cv, leg.spots)
    _stamp_bruises(cv, leg.bruises)


def _skin_mix(leg: Leg) -> np.ndarray:
    """(3, 5) float32: skin OD = base + M·mel + H·haem + D·deep + (1,1,1)·neutral."""
    skin_base = (
        _SKIN_BASE_OD
        + np.float32(leg.melanin) * MELANIN_OD
        + np.float32(_TONE_YELLOW.get(leg.tone, 0.0)) * _YELLOW_OD
    )
    mix = np.zeros((3, 5), dtype=np.float32)
    mix[:, 0], mix[:, 1], mix[:, 2], mix[:, 3], mix[:, 4] = (
        MELANIN_OD,
        HAEMOGLOBIN_OD,
        DEEP_VEIN_OD,
        1.0,
        skin_base,
    )
    return mix


def _compose_od(leg: Leg, cv: _Canvas, geo: _LegGeometry) -> np.ndarray:
    """(h, w, 3) float32 OD: skin fields over the backdrop, then the stamped absorbers."""
    s, x0, y0, h, w = cv.s, cv.x0, cv.y0, cv.h, cv.w
    od = np.empty((h, w, 3), dtype=np.float32)
    bg_od = (-np.log(np.asarray(leg.backdrop, dtype=np.float64))).astype(np.float32)
    mix = _skin_mix(leg)
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
        hb = coarse[:, :, 1] + cv.haem[a:b]
        fields = cv2.merge([mel, hb, cv.deep[a:b], neu])
        skin = np.asarray(cv2.transform(fields, mix), dtype=np.float32)
        bg = (
            bg_od[None, None, :] + (coarse[:, :, 2] + np.float32(0.10) * geo.yfrac[a:b])[:, :, None]
        )
        skin -= bg
        skin *= alpha[:, :, None]
        skin += bg
        od[a:b] = skin
    for sl, prof, direction in cv.stamps:
        roi = od[sl]
        roi += prof[:, :, None] * direction[None, None, :]
    return od


def _render_scene(
    leg: Leg, s: float, x0: int, y0: int, h: int, w: int, *, with_od: bool = True
) -> _Scene:
    """OD image and truth maps of the leg on a window of the baseline frame at scale ``s``.

    Window pixel (i, j) is baseline point ((x0 + j) / s, (y0 + i) / s) in leg px.
    Smooth skin fields are composed in row blocks; the sparse absorbers (veins, hair,
    spots, stains, bruises) are stamped in their own bounding boxes, so a 24 MP window
    needs about five float32 planes.
    """
    geo = _LegGeometry(leg, s, x0, y0, h, w)
    leg_mask = np.empty((h, w), dtype=bool)
    for a, b in _row_blocks(h, w):
        leg_mask[a:b] = geo.u_alpha(a, b)[1] >= 0.5
    cv = _Canvas.empty(s, x0, y0, h, w, leg.px_per_mm * s, leg_mask)
    _stamp_absorbers(cv, leg)
    if not with_od:
        return _Scene(np.zeros((0, 0, 3), np.float32), cv.labels, cv.ids, cv.bits)
    return _Scene(_compose_od(leg, cv, geo), cv.labels, cv.ids, cv.bits)
