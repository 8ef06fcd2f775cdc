"""The uncertainty band of the headline improvement.

Three measured spreads, each in percentage points:

- ``bootstrap``: SD of the improvement over 200 resamplings of ~1 cm² tiles
  (:func:`bootstrap_spread`);
- ``registration``: the largest change when the follow-up contrast is shifted by the
  registration residual (at least 1 px) in x or y (:func:`shifted_spread`);
- ``threshold``: the largest change when the baseline vein mask is cut to its stronger
  80 % (:func:`core_layout`, :func:`cut_core_spread`) or the new-vein tolerance is halved
  or doubled or its contrast gate lowered to 0.7 (:func:`moved_new_spread`);

and a fourth, not measured on the pair:

- ``photo``: the spread of the figure on photographs that the three above do not see
  (:func:`photo_spread`): false pieces of the vein map whose contrast moves between
  captures, two cameras' processing, hair and skin texture; smaller when the baseline's
  vein map was given (reviewed) than when it was segmented;

and the band is ``estimate ± (BAND_K × sqrt(Σ spread²) + BAND_FLOOR_PCT)``, clipped to at
most 100 (:func:`band_of`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .formula import ImprovementTerms
from .improvement import Estimate, Ratio, estimate_terms
from .support import Layout, Scale, lay_out

__all__ = [
    "BAND_FLOOR_PCT",
    "BAND_K",
    "PHOTO_SPREAD_GIVEN_MAP_PCT",
    "PHOTO_SPREAD_PCT",
    "Band",
    "band_of",
    "bootstrap_spread",
    "core_layout",
    "cut_core_spread",
    "moved_new_spread",
    "moved_tolerances",
    "photo_spread",
    "registration_shifts",
    "shift",
    "shifted_spread",
    "tile_bootstrap_sd",
]

#: Band calibration: half-width = BAND_K × sqrt(Σ component²) + BAND_FLOOR_PCT.
#: Fitted on calibration phantoms (seeds apart from the benchmark's) so that the
#: band covers the true improvement in ≥ 90 % of pairs; see benchmarks/improvement.py
#: (``--calibrate``, 42 pairs, algorithm 1.5.0: K 0.97 for 90 %, 1.25 for 95 %; the
#: 95 % fit is kept, rounded up, a margin over the 90 % target).
BAND_K = 1.3
BAND_FLOOR_PCT = 1.5
#: The ``photo`` spread (points) with the baseline's map segmented. Fitted on 41
#: measured photo-like pairs of calibration seeds, apart from the benchmark's
#: (``benchmarks/photolike.py``'s groups, algorithm 1.9.3), whose errors the three
#: measured spreads explain poorly: with BAND_K alone the band held the truth in 59 % of
#: them; 15 points gave 90 %, 16 gave 95 %. The 95 % fit is kept, as for BAND_K, a
#: margin over the 90 % target. It is what the automatic figure's accuracy on
#: photographs is today, and shrinks as that improves.
PHOTO_SPREAD_PCT = 16.0
#: The same with the baseline's map given (the true map of the same 41 pairs, as a
#: clinic's reviewed map would be): 73 % held without it; 8 points gave 90 %, 12 gave 95 %.
PHOTO_SPREAD_GIVEN_MAP_PCT = 12.0


def tile_bootstrap_sd(
    kept_px: np.ndarray,
    new_px: np.ndarray,
    base_px: np.ndarray,
    region: np.ndarray,
    tile_px: int,
    *,
    n_boot: int = 200,
) -> float:
    """Standard deviation of the improvement when sub-regions (tiles) are resampled.

    ``kept_px`` is read on the ``base_px`` pixels only (the remaining share is 0 off
    the baseline veins)."""
    h, w = region.shape
    ny, nx = max(1, math.ceil(h / tile_px)), max(1, math.ceil(w / tile_px))

    def tsum(at: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        ys, xs = np.divmod(at, w)
        tile = (ys // tile_px) * nx + xs // tile_px
        return np.bincount(tile, weights=weights, minlength=ny * nx).astype(np.float64)

    at_b = np.flatnonzero(base_px)
    k = tsum(at_b, np.asarray(kept_px, np.float64).reshape(-1)[at_b])
    n = tsum(np.flatnonzero(new_px))
    b = tsum(at_b)
    use = (b > 0) | (n > 0)
    k, n, b = k[use], n[use], b[use]
    if len(b) < 2 or b.sum() <= 0:
        return 0.0
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(b), size=(n_boot, len(b)))
    bs = b[idx].sum(axis=1)
    ok = bs > 0
    pct = 100.0 * (1.0 - (k[idx].sum(axis=1)[ok] + n[idx].sum(axis=1)[ok]) / bs[ok])
    return float(np.std(pct)) if len(pct) > 1 else 0.0


def shift(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``img`` moved by (dx, dy) px (x right, y down), zeros where nothing moved in."""
    out = np.zeros_like(img)
    h, w = img.shape[:2]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = img[ys, xs]
    return out


def bootstrap_spread(est: Estimate, counted: np.ndarray, region: np.ndarray, ppm: float) -> float:
    """:func:`tile_bootstrap_sd` of the estimate over ~1 cm² tiles (10 mm, at least 16 px)."""
    tile = max(16, int(round(10.0 * ppm)))
    return tile_bootstrap_sd(est.remaining, est.new_mask, counted, region, tile)


def registration_shifts(residual_px: float) -> tuple[tuple[int, int], ...]:
    """The (dx, dy) the follow-up's contrast is moved by: the residual, at least 1 px,
    each way in x and in y."""
    s = max(1, int(round(residual_px)))
    return ((s, 0), (-s, 0), (0, s), (0, -s))


def shifted_spread(ratio: Ratio, est: Estimate, dx: int, dy: int) -> float:
    """How far the estimate moves when the follow-up's contrast is moved by (dx, dy);
    0 when there is no estimate."""
    pct = est.terms.pct
    if not math.isfinite(pct):
        return 0.0
    terms, _ = estimate_terms(
        ratio.c_b,
        shift(ratio.c_f, dx, dy),
        ratio.layout,
        ratio.region,
        ratio.new,
        baseline_sums=ratio.baseline_sums,
        n_new=int(est.terms.new),
    )
    return abs(terms.pct - pct)


def core_layout(
    counted: np.ndarray,
    c_b: np.ndarray,
    *,
    labels: np.ndarray,
    region: np.ndarray,
    ids: np.ndarray,
    scale: Scale,
) -> Layout | None:
    """The supports of the counted baseline veins cut to their stronger 80 % (by ``c_b``),
    or None when no vein is counted."""
    if not counted.any():
        return None
    cut = float(np.quantile(c_b[counted], 0.2))
    return lay_out(counted & (c_b >= cut), labels=labels, region=region, ids=ids, scale=scale)


def cut_core_spread(ratio: Ratio, core: Layout | None, est: Estimate) -> float:
    """How far the estimate moves on the core's supports (:func:`core_layout`); 0 when
    there is no estimate."""
    pct = est.terms.pct
    if core is None or not math.isfinite(pct):
        return 0.0
    terms, _ = estimate_terms(ratio.c_b, ratio.c_f, core, ratio.region, ratio.new)
    return abs(terms.pct - pct)


def moved_tolerances(tolerance_px: float) -> tuple[tuple[float, float], ...]:
    """The new-vein tolerances (px) and contrast-gate factors the band tries: the
    tolerance halved and doubled, the gate at 0.7."""
    return ((0.5 * tolerance_px, 1.0), (2.0 * tolerance_px, 1.0), (tolerance_px, 0.7))


def moved_new_spread(est: Estimate, n_new: float) -> float:
    """How far the estimate moves with ``n_new`` new vein pixels instead of its own; 0
    when there is no estimate."""
    pct = est.terms.pct
    if not math.isfinite(pct):
        return 0.0
    alt = ImprovementTerms(est.terms.kept, n_new, est.terms.baseline)
    return abs(alt.pct - pct)


@dataclass(frozen=True)
class Band:
    """The band ``(low, high)`` (NaN without an estimate) and its spreads by name."""

    low_high: tuple[float, float]
    components: dict[str, float]


def photo_spread(map_given: bool) -> float:
    """The ``photo`` spread (points): :data:`PHOTO_SPREAD_GIVEN_MAP_PCT` when the
    baseline's vein map was given, else :data:`PHOTO_SPREAD_PCT`."""
    return PHOTO_SPREAD_GIVEN_MAP_PCT if map_given else PHOTO_SPREAD_PCT


def band_of(
    pct: float,
    *,
    bootstrap: float,
    registration: Sequence[float],
    threshold: Sequence[float],
    map_given: bool = False,
) -> Band:
    """The band around ``pct`` from the spreads: the bootstrap's, the largest of the
    registration shifts' and of the threshold moves', and the photographs' own
    (:func:`photo_spread`)."""
    reg_dev = max(registration, default=0.0)
    thr_dev = max(threshold, default=0.0)
    comps = {
        "bootstrap": bootstrap,
        "registration": reg_dev,
        "threshold": thr_dev,
        "photo": photo_spread(map_given),
    }
    if not math.isfinite(pct):
        return Band((math.nan, math.nan), comps)
    half = BAND_K * math.sqrt(sum(v**2 for v in comps.values())) + BAND_FLOOR_PCT
    return Band((pct - half, min(100.0, pct + half)), comps)
