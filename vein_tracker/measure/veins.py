"""The per-vein table and the change map: each baseline vein's status and share, the new
veins, and the count of veins by status.

A vein's share is the mean of its pixels' remaining shares in the headline's estimate;
its status follows :func:`~.status.status_for`, with the shares it had at earlier
follow-ups of the same baseline (``previous`` comparisons) for recanalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..morphology import components, label_boxes
from ..segmentation import Segmentation
from .improvement import Estimate
from .results import (
    CHANGE_CLEARED,
    CHANGE_FADED,
    CHANGE_NEW,
    CHANGE_PERSISTING,
    RETICULAR,
    SPIDER,
    STATUS_CODES,
    STATUSES,
    Comparison,
    VeinChange,
)
from .status import CLEARED_BELOW, PERSISTING_FROM, status_for

__all__ = ["VeinTable", "previous_remaining_maps", "vein_table"]


@dataclass(frozen=True, eq=False)
class VeinTable:
    """The veins' changes, the change map (uint8 codes, baseline frame) and the count of
    veins by status."""

    veins: tuple[VeinChange, ...]
    change_map: np.ndarray
    counts: dict[str, int]


def vein_table(
    est: Estimate,
    seg_b: Segmentation,
    seg_f: Segmentation,
    *,
    base: np.ndarray,
    ids_b: np.ndarray,
    labels_b: np.ndarray,
    labels_f: np.ndarray,
    previous: Sequence[Comparison] | None,
    ppm: float,
) -> VeinTable:
    """Each baseline vein's status and share, the new veins, the change map and the
    count of veins by status.

    Parameters
    ----------
    est : Estimate
        The headline's estimate (remaining shares, new veins).
    seg_b, seg_f : Segmentation
        The two visits' segmentations (baseline frame): their skeletons give lengths.
    base : ndarray, shape (H, W), bool
        The counted baseline vein pixels in the region.
    ids_b, labels_b : ndarray, shape (H, W)
        The baseline's vein ids and classes; ``labels_f`` the follow-up's classes.
    previous : sequence of Comparison, optional
        Earlier comparisons against the same baseline, oldest first.
    ppm : float
        Scale, px/mm.

    Returns
    -------
    VeinTable
    """
    shape = base.shape
    prev_maps = previous_remaining_maps(previous, shape)
    change = np.zeros(shape, dtype=np.uint8)
    max_id = int(ids_b.max()) if ids_b.size else 0
    veins = _baseline_veins(
        est,
        seg_b,
        base=base,
        ids_b=ids_b,
        labels_b=labels_b,
        prev_maps=prev_maps,
        ppm=ppm,
        change=change,
    )
    if est.new_mask.any():
        veins += _new_veins(est, seg_f, labels_f=labels_f, max_id=max_id, ppm=ppm)
        change[est.new_mask] = CHANGE_NEW
    counts = {s_: 0 for s_ in STATUSES}
    for v in veins:
        counts[v.status] += 1
    return VeinTable(tuple(veins), change, counts)


def _baseline_veins(
    est: Estimate,
    seg_b: Segmentation,
    *,
    base: np.ndarray,
    ids_b: np.ndarray,
    labels_b: np.ndarray,
    prev_maps: Sequence[np.ndarray],
    ppm: float,
    change: np.ndarray,
) -> list[VeinChange]:
    """Each baseline vein's status and share; writes the baseline's codes into ``change``."""
    shape = base.shape
    veins: list[VeinChange] = []
    ids_in = ids_b[base]
    if not ids_in.size:
        return veins
    n_lab = int(ids_b.max()) + 1
    cnt = np.bincount(ids_in, minlength=n_lab).astype(np.float64)
    rem_sum = np.bincount(ids_in, weights=est.remaining[base], minlength=n_lab)
    sk_b = np.asarray(seg_b.skeleton, dtype=bool) & base
    sk_cnt = np.bincount(ids_b[sk_b], minlength=n_lab).astype(np.float64)
    cls_votes = np.bincount(ids_in, weights=(labels_b[base] == RETICULAR), minlength=n_lab)
    per = np.maximum(cnt, 1.0)
    prev_means = [np.bincount(ids_in, weights=pm[base], minlength=n_lab) / per for pm in prev_maps]
    # each vein's box, from its pixels (one pass, not one per vein)
    box = label_boxes(ids_in, np.flatnonzero(base), n_lab, shape[1])
    status_of = np.zeros(n_lab, dtype=np.uint8)
    for vid in np.nonzero(cnt)[0]:
        if vid == 0:
            continue
        rem = float(rem_sum[vid] / cnt[vid])
        prev = [float(pmn[vid]) for pmn in prev_means]
        st = status_for(rem, previous_remaining=prev)
        status_of[vid] = STATUS_CODES[st]
        veins.append(
            VeinChange(
                id=int(vid),
                cls="reticular" if cls_votes[vid] > cnt[vid] / 2 else "spider",
                status=st,
                remaining=rem,
                faded_pct=100.0 * (1.0 - rem),
                area_mm2=float(cnt[vid]) / ppm**2,
                length_mm=float(sk_cnt[vid]) / ppm,
                bbox=(int(box[vid, 0]), int(box[vid, 1]), int(box[vid, 2]), int(box[vid, 3])),
            )
        )
    change[base] = status_of[ids_in]
    # baseline vein pixels without a vein id: by their own remaining share
    loose = base & (ids_b == 0)
    r = est.remaining[loose]
    change[loose] = np.where(
        r < CLEARED_BELOW,
        CHANGE_CLEARED,
        np.where(r >= PERSISTING_FROM, CHANGE_PERSISTING, CHANGE_FADED),
    ).astype(np.uint8)
    return veins


def _new_veins(
    est: Estimate, seg_f: Segmentation, *, labels_f: np.ndarray, max_id: int, ppm: float
) -> list[VeinChange]:
    """The new veins (pieces of the estimate's new mask), numbered after the baseline's."""
    cc = components(est.new_mask)
    n, stats = cc.n, cc.boxes()
    sk_new = cc.sums(np.asarray(seg_f.skeleton, dtype=bool))
    # per piece, its spider pixels
    n_spider = cc.sums(labels_f == SPIDER)
    veins: list[VeinChange] = []
    for k in range(1, n):
        spider = n_spider[k] >= cc.areas[k] / 2
        x, y, ww, hh = (int(v) for v in stats[k, :4])
        veins.append(
            VeinChange(
                id=max_id + k,
                cls="spider" if spider else "reticular",
                status="new",
                remaining=1.0,
                faded_pct=0.0,
                area_mm2=float(cc.areas[k]) / ppm**2,
                length_mm=float(sk_new[k]) / ppm,
                bbox=(x, y, ww, hh),
            )
        )
    return veins


def previous_remaining_maps(
    previous: Sequence[Comparison] | None, shape: tuple[int, ...]
) -> list[np.ndarray]:
    """Per-pixel remaining share of earlier comparisons (baseline frame), oldest first."""
    out: list[np.ndarray] = []
    for p in previous or ():
        if not isinstance(p, Comparison):
            raise ValueError(f"previous must hold Comparison objects, got {type(p).__name__}")
        if p.change_map.shape != tuple(shape):
            raise ValueError(
                "previous comparisons must share this baseline (same frame and size), got "
                f"shape {p.change_map.shape} instead of {tuple(shape)}"
            )
        ids = np.asarray(p.baseline_seg.vein_ids)
        lut = np.ones(int(ids.max()) + 1 if ids.size else 1, dtype=np.float32)
        for v in p.veins:
            if v.status != "new" and v.id < len(lut):
                lut[v.id] = v.remaining
        out.append(lut[ids])
    return out
