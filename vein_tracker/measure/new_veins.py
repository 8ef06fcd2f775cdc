"""New veins: follow-up vein pieces away from every baseline vein that are vein-like, were
not visible at baseline, and darken the skin as a vein of their class does.

A follow-up vein pixel within the tolerance (:data:`NEW_TOLERANCE_MM` plus twice the
registration residual) of a baseline vein is the same vein. Of the rest, a connected
piece is new only when it is long (:data:`NEW_MIN_LENGTH_MM`) and strong
(:data:`NEW_MIN_STRENGTH_K` of its class's baseline contrast) enough, had less than
:data:`NEW_MAX_BASELINE_FRAC` of that contrast at baseline, darkens as a vein
(:data:`NEW_NEUTRAL_WINDOW`) and lies :data:`NEW_EDGE_MARGIN_MM` inside the leg.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..morphology import components, distance_to
from ..segmentation import NEUTRAL_PER_CLASS
from .improvement import MIN_VEIN_CONTRAST_FRAC
from .results import RETICULAR, SPIDER

__all__ = [
    "NEW_EDGE_MARGIN_MM",
    "NEW_MAX_BASELINE_FRAC",
    "NEW_MIN_LENGTH_MM",
    "NEW_MIN_STRENGTH_K",
    "NEW_NEUTRAL_WINDOW",
    "NEW_TOLERANCE_MM",
    "NewVeinSearch",
    "find_new_veins",
    "new_tolerance_px",
    "new_vein_mask",
]

#: A follow-up vein piece counts as new only beyond this distance from baseline veins, mm.
NEW_TOLERANCE_MM = 0.6
#: ... and only when its centreline is at least this long, mm.
NEW_MIN_LENGTH_MM = 2.0
#: A new vein must have had less than this share of its follow-up contrast at baseline.
NEW_MAX_BASELINE_FRAC = 0.5
#: A new vein darkens the skin as a vein of its class does: its neutral OD over its own
#: contrast is within these multiples of the class's share (spider 0.90, reticular 0.94).
NEW_NEUTRAL_WINDOW = (2.0 / 3.0, 5.0 / 3.0)
#: New veins are not looked for closer than this to the leg's outline, mm.
NEW_EDGE_MARGIN_MM = 4.0
#: A new vein piece needs a mean contrast of at least this share of the median baseline
#: vein contrast of its class (JPEG blocks and skin texture read far below).
NEW_MIN_STRENGTH_K = 0.5


def new_vein_mask(
    followup_mask: np.ndarray,
    baseline_mask: np.ndarray,
    *,
    region: np.ndarray,
    tolerance_px: float,
    min_area_px: int,
    skeleton: np.ndarray | None = None,
    min_length_px: float = 0.0,
    strength: np.ndarray | None = None,
    min_strength: np.ndarray | float = 0.0,
    distance: np.ndarray | None = None,
    baseline_strength: np.ndarray | None = None,
    max_baseline_frac: float = 0.5,
    neutral: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Follow-up vein pixels that belong to veins absent at baseline.

    A follow-up vein pixel within ``tolerance_px`` of a baseline vein pixel is the
    same vein (registration and width differences), not a new one. Of the rest,
    a connected piece is a new vein only when it is a vein-like line: at least
    ``min_area_px`` pixels, at least ``min_length_px`` of ``skeleton`` pixels, and
    a mean ``strength`` of at least the mean ``min_strength`` over it; smaller or
    fainter pieces are segmentation noise (texture, compression blocks).
    A piece whose mean ``baseline_strength`` (the baseline photo's vein contrast at the
    same pixels) reaches ``max_baseline_frac`` of its follow-up strength was already
    visible at baseline (a vein the baseline segmentation missed, hair, an edge): it is
    not new. ``distance`` (px to the nearest baseline vein pixel) may be given to save time.
    With ``neutral`` (the follow-up's neutral OD contrast) and ``labels`` (its classes),
    a piece must also darken the skin as a vein of its class does: its neutral OD over
    its own contrast within ``NEW_NEUTRAL_WINDOW`` times the class's share
    (:data:`~vein_tracker.segmentation.NEUTRAL_PER_CLASS`). A colour fringe (JPEG's
    chroma around hair or an edge) hardly darkens; hair or a shadow darkens far more.

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    if distance is None:
        distance = distance_to(baseline_mask)
    cand = followup_mask & region & (distance > tolerance_px)
    if not cand.any():
        return cand
    cc = components(cand)
    n = cc.n
    # Per-piece sums over the candidate pixels only (label 0 is never kept): the same
    # pixels in the same order as over the whole image, so the same sums, far faster.
    idx, lab_c = cc.idx, cc.at
    keep = np.zeros(n, dtype=bool)
    keep[1:] = cc.areas[1:] >= min_area_px
    if skeleton is not None and min_length_px > 0:
        sk_len = np.bincount(lab_c[np.asarray(skeleton, dtype=bool).ravel()[idx]], minlength=n)
        keep &= sk_len >= min_length_px
    if strength is not None:
        area = np.maximum(cc.areas, 1).astype(np.float64)
        # read the candidate pixels first, then widen them (not the whole map)
        s_c = np.asarray(strength).ravel()[idx].astype(np.float64)
        mean_s = np.bincount(lab_c, weights=s_c, minlength=n)
        thr = np.asarray(min_strength)
        t_c = thr.ravel()[idx].astype(np.float64) if thr.ndim else np.full(idx.size, float(thr))
        mean_t = np.bincount(lab_c, weights=t_c, minlength=n)
        keep &= mean_s / area >= mean_t / area
        if baseline_strength is not None:
            w_b = np.asarray(baseline_strength).ravel()[idx].astype(np.float64)
            mean_b = np.bincount(lab_c, weights=w_b, minlength=n)
            keep &= mean_b < max_baseline_frac * mean_s
        if neutral is not None and labels is not None:
            neu = np.bincount(
                lab_c, weights=np.asarray(neutral).ravel()[idx].astype(np.float64), minlength=n
            )
            spider_px = np.bincount(
                lab_c, weights=(np.asarray(labels).ravel()[idx] == SPIDER), minlength=n
            )
            share = np.where(
                spider_px >= area / 2,
                NEUTRAL_PER_CLASS[SPIDER],
                NEUTRAL_PER_CLASS[RETICULAR],
            )
            lo, hi = NEW_NEUTRAL_WINDOW
            keep &= (neu >= lo * share * mean_s) & (neu <= hi * share * mean_s)
    keep[0] = False
    out = np.zeros(cand.size, dtype=bool)
    out[idx] = keep[lab_c]
    return out.reshape(cand.shape)


def new_tolerance_px(px_per_mm: float, residual_px: float) -> float:
    """How far from a baseline vein a follow-up vein piece must lie to be new, px."""
    return NEW_TOLERANCE_MM * px_per_mm + 2.0 * residual_px


@dataclass(frozen=True, eq=False)
class NewVeinSearch:
    """Where and how a comparison looks for new veins (all maps in the baseline frame).

    Attributes
    ----------
    followup : ndarray, bool
        The follow-up's vein pixels in the region that reach the contrast a vein of
        their class needs.
    baseline : ndarray, bool
        The baseline's vein pixels in the region, and ``distance`` (px) to them.
    inner : ndarray, bool
        The region less :data:`NEW_EDGE_MARGIN_MM` along the follow-up leg's outline.
    min_contrast : ndarray, float32
        The per-pixel smallest contrast of a follow-up vein pixel
        (:func:`~.improvement.min_vein_contrast`).
    px_per_mm : float
    """

    followup: np.ndarray
    baseline: np.ndarray
    distance: np.ndarray
    inner: np.ndarray
    skeleton: np.ndarray
    strength: np.ndarray
    baseline_strength: np.ndarray
    min_contrast: np.ndarray
    neutral: np.ndarray | None
    labels: np.ndarray
    px_per_mm: float


def find_new_veins(
    search: NewVeinSearch, *, tolerance_px: float, strength_k: float = 1.0
) -> np.ndarray:
    """The new veins of ``search``: :func:`new_vein_mask` with the comparison's gates, the
    contrast gate scaled by ``strength_k`` (the band moves it).

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    ppm = search.px_per_mm
    return new_vein_mask(
        search.followup,
        search.baseline,
        region=search.inner,
        tolerance_px=tolerance_px,
        min_area_px=int(round(NEW_MIN_LENGTH_MM * ppm)),
        skeleton=search.skeleton,
        min_length_px=NEW_MIN_LENGTH_MM * ppm,
        strength=search.strength,
        min_strength=NEW_MIN_STRENGTH_K * strength_k * search.min_contrast / MIN_VEIN_CONTRAST_FRAC,
        distance=search.distance,
        baseline_strength=search.baseline_strength,
        max_baseline_frac=NEW_MAX_BASELINE_FRAC,
        neutral=search.neutral,
        labels=search.labels,
    )
