"""Vein footprints (step 5 of the package docstring).

The half-height rule around the centrelines gives each vein pixel its class; with the
centreline skeleton, at the working level L0. Specks, unseeded pieces, lone spider
specks (no vein network around them), pieces running along the leg's outline (its
curvature's shading), spider pieces of colour alone (no darkness of blood in the
luminance) and reticular pieces wider than a reticular vein are dropped.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..morphology import Components, components, distance_to, near_on_grid, skeleton_of
from .levels import _resize
from .params import (
    _FOOTPRINT_FRACTION,
    _FOOTPRINT_NOISE_K,
    _LUMA_FRACTION,
    _MAX_HALF_WIDTH_MM,
    _MIN_AREA_MM2,
    _MIN_NETWORK_MM,
    _NETWORK_REACH_MM,
    _OUTLINE_FOLLOW_COS,
    _OUTLINE_FOLLOW_ELONGATION,
    _OUTLINE_FOLLOW_MM,
    _RETIC_MAX_WIDTH_MM,
    _RETIC_SMOOTH_MM,
    _SKELETON_STEP,
    _SPIDER_MIN_LUMA_SHARE,
    NEUTRAL_PER_CLASS,
    RETICULAR,
    SPIDER,
)
from .ridges import _Centrelines
from .signals import _Maps
from .veins import _centreline_lengths_px


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
    :data:`~.params._LUMA_FRACTION` of the seed's luminance contrast: JPEG smears the colour of a
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
            sk_half = skeleton_of(inside_half)
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
        skeleton |= skeleton_of(sp)
    labels, skeleton = _without_lone_specks(labels, skeleton, maps.ppm_work)
    # The edges of one skin surface over another are outlines too.
    labels, skeleton = _without_outline_followers(
        labels, skeleton, maps.leg & ~maps.occluding, maps.ppm_work
    )
    labels, skeleton = _without_colour_only_spiders(labels, skeleton, maps.spider, maps.neutral)
    return _without_wide_reticular(labels, skeleton, maps.ppm_work)


def _without_lone_specks(
    labels: np.ndarray, skeleton: np.ndarray, ppm: float
) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` and ``skeleton`` without the spider pixels of the vein groups (pieces
    within 2 × :data:`~.params._NETWORK_REACH_MM` of each other) that total under
    :data:`~.params._MIN_NETWORK_MM` of centreline: a lone speck is texture, not a vein
    network. Grouped on a grid of about 2.5 px/mm (a group's reach is millimetres)."""
    sp = labels == SPIDER
    if not sp.any():
        return labels, skeleton
    step = max(1, int(ppm // 2.5))
    groups = components(near_on_grid(labels > 0, _NETWORK_REACH_MM * ppm, step))

    def group_of(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        # the grid cell of each pixel: near_on_grid's blocks are centred on grid pixels
        o, (hg, wg) = step // 2, groups.labels.shape
        return groups.labels[
            np.minimum((ys + o) // step, hg - 1), np.minimum((xs + o) // step, wg - 1)
        ]

    length_px = np.bincount(group_of(*np.nonzero(skeleton)), minlength=groups.n)
    lone = length_px * _SKELETON_STEP < _MIN_NETWORK_MM * ppm
    lone[0] = False
    if not lone.any():
        return labels, skeleton
    ys, xs = np.nonzero(sp)
    drop = lone[group_of(ys, xs)]
    labels[ys[drop], xs[drop]] = 0
    skeleton &= labels > 0
    return labels, skeleton


def _without_outline_followers(
    labels: np.ndarray, skeleton: np.ndarray, leg: np.ndarray, ppm: float
) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` and ``skeleton`` without the pieces that run along the leg's outline
    close to it (see :data:`~.params._OUTLINE_FOLLOW_MM`): the leg's shading steepens
    toward its outline, and a rim light or a change of pose moves that band, so a line
    parallel to the outline there is shading, not a vein. A piece's direction is its
    major axis (second moments); the outline's, the normal of the distance to it. The
    frame's edge is not an outline (the leg continues beyond it)."""
    cc = components(labels > 0)
    if cc.n <= 1:
        return labels, skeleton
    reach = _OUTLINE_FOLLOW_MM * ppm
    pad = int(math.ceil(reach)) + 2
    leg_p = cv2.copyMakeBorder(leg.astype(np.uint8), pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    dist = distance_to(leg_p == 0)[pad:-pad, pad:-pad]
    near = np.minimum(dist, 2.0 * reach)  # inf (no outline at all) reads as far
    gy, gx = np.gradient(cv2.GaussianBlur(near, (0, 0), max(1.0, 0.25 * ppm)))
    ys, xs = np.divmod(cc.idx, labels.shape[1])
    at, n = cc.at, cc.n

    def mean(v: np.ndarray) -> np.ndarray:
        return np.bincount(at, weights=v, minlength=n) / np.maximum(cc.areas, 1)

    # Each piece's central second moments, for all pieces at once: the same axes and
    # orientation as skimage.measure.regionprops, without its loop over regions.
    x, y = xs.astype(np.float64), ys.astype(np.float64)
    mx, my = mean(x), mean(y)
    cxx = mean(x * x) - mx**2
    cyy = mean(y * y) - my**2
    cxy = mean(x * y) - mx * my
    half_gap = np.sqrt((0.5 * (cxx - cyy)) ** 2 + cxy**2)
    major = 0.5 * (cxx + cyy) + half_gap
    minor = np.maximum(0.5 * (cxx + cyy) - half_gap, 1e-3)
    theta = 0.5 * np.arctan2(2.0 * cxy, cxx - cyy)  # the major axis
    nx, ny = mean(gx[ys, xs]), mean(gy[ys, xs])
    norm = np.hypot(nx, ny)
    cos = np.abs(np.cos(theta) * nx + np.sin(theta) * ny) / np.maximum(norm, 1e-9)
    follows = (
        (mean(near[ys, xs]) < reach)
        & (norm > 1e-3)
        & (major >= _OUTLINE_FOLLOW_ELONGATION**2 * minor)
        & (cos < _OUTLINE_FOLLOW_COS)
    )
    return _without_pieces(labels, skeleton, cc, follows)


def _without_colour_only_spiders(
    labels: np.ndarray, skeleton: np.ndarray, spider: np.ndarray, neutral: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` and ``skeleton`` without the spider pieces that do not darken the
    luminance as a vein of their colour does (see :data:`~.params._SPIDER_MIN_LUMA_SHARE`):
    a piece's mean ``neutral`` contrast against its mean ``spider`` contrast, both at the
    working level. JPEG keeps a photo's colour at half its resolution, in blocks, and
    that colour's noise makes spider-coloured pieces that the full-resolution luminance
    does not show."""
    cc = components(labels == SPIDER)
    if cc.n <= 1:
        return labels, skeleton
    colour = cc.sums(spider)
    luma = cc.sums(neutral)
    expected = NEUTRAL_PER_CLASS[SPIDER] * colour
    colour_only = (colour > 0) & (luma < _SPIDER_MIN_LUMA_SHARE * expected)
    return _without_pieces(labels, skeleton, cc, colour_only)


def _without_wide_reticular(
    labels: np.ndarray, skeleton: np.ndarray, ppm: float
) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` and ``skeleton`` without the reticular pieces wider than a reticular vein
    is (see :data:`~.params._RETIC_MAX_WIDTH_MM`). A piece's width is that of a band with
    round ends of its area and centreline length: ``w`` with ``L·w + π·w²/4 = area``,
    which a short piece's area over its length would overstate."""
    cc = components(labels == RETICULAR)
    if cc.n <= 1:
        return labels, skeleton
    length = _centreline_lengths_px(cc, skeleton)
    width_mm = (np.sqrt(length**2 + math.pi * cc.areas) - length) / (math.pi / 2) / ppm
    return _without_pieces(labels, skeleton, cc, width_mm > _RETIC_MAX_WIDTH_MM)


def _without_pieces(
    labels: np.ndarray, skeleton: np.ndarray, cc: Components, drop: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``labels`` and ``skeleton`` (changed in place) without the components of ``cc``
    that ``drop`` (bool, one per component; the background's is ignored) marks."""
    drop = drop.copy()
    drop[0] = False
    if drop.any():
        labels.reshape(-1)[cc.idx[drop[cc.at]]] = 0
        skeleton &= labels > 0
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
