"""Vein centrelines (step 4 of the package docstring).

The multi-scale Hessian ridge measure, non-maximum suppression, hysteresis (8-connected:
see :func:`_hysteresis`), and the tests that keep a vein's ridge and drop a step (a leg's
outline, a shadow's edge) or a line in colour only (JPEG's chroma).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..morphology import components
from ..smoothing import smooth_sum
from .levels import _level_size, _resize
from .params import (
    _DARK_MIN_SHARE,
    _DARK_PER_SHARE,
    _EDGE_MARGIN_MM,
    _FLANK_BALANCE,
    _FLANK_MIN_PX,
    _FLANK_SIGMAS,
    _FLOOR_OD,
    _FRAME_MARGIN_MM,
    _K_HI_MAX,
    _K_HI_MIN,
    _LO_FRACTION,
    _MIN_LENGTH_MM,
    _MIN_SIGMA_PX,
    _NOISE_WINDOW_MM,
    _RETIC_CHROMA_RATIO,
    _RETIC_DETECT_PX_PER_MM,
    _RETIC_SIGMAS_MM,
    _RIDGE_GAIN,
    _SPIDER_SIGMAS_MM,
    _STEP_PER_LINE,
    _SUPPORT_RATIO,
    NEUTRAL_PER_CLASS,
    SPIDER,
)
from .signals import _Maps


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
    # A local mean over a wide window: blurred on a reduced grid (:func:`smooth_sum`).
    num = smooth_sum(clipped, window_px)
    den = smooth_sum(w, window_px)
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

    Each centreline pixel's two flanks are read :data:`~.params._FLANK_SIGMAS` ridge scales
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

    # Never on the leg's outline, nor on an outline inside it (a crossing leg's or a
    # hand's edge): erode the leg at the coarse level first (cheap).
    k = 2 * max(1, int(round(_EDGE_MARGIN_MM[cls] * maps.ppm_coarse))) + 1
    inner_c = cv2.erode(
        (maps.leg_coarse & ~maps.occluding_coarse).astype(np.uint8),
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)),
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
    cc = components(centre)
    if cc.n <= 1:
        return centre
    keep = cc.sums(neutral) >= ratio * cc.sums(np.maximum(amp, 0.0))
    keep[0] = False
    return keep[cc.labels]
