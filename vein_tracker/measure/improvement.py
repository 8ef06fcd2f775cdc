"""How ``compare`` estimates the headline formula's terms, robustly, and its per-class
figures.

Each baseline vein pixel's remaining share is the ratio of the two visits' contrast
integrated over its class's support (:mod:`.support`), smoothed along the veins; each
vein's mean share is then set from its own support (:func:`per_vein_shares`: a vein
that reads as persisting counts 1, a fainter one its own share). Only veins with a
contrast of their own are counted (:func:`measurable`, algorithm 1.5.0), and a
follow-up vein needs a share of its class's baseline contrast
(:func:`min_vein_contrast`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..segmentation import Segmentation
from .formula import ImprovementTerms, remaining_fraction
from .results import CLASS_CODES, RETICULAR
from .status import PERSISTING_FROM
from .support import Layout, class_sums

__all__ = [
    "MIN_VEIN_CONTRAST_FRAC",
    "MIN_VEIN_CONTRAST_OD",
    "Estimate",
    "Ratio",
    "contrast_along",
    "estimate",
    "estimate_terms",
    "headline_estimate",
    "improvement_by_class",
    "measurable",
    "min_vein_contrast",
    "per_vein_shares",
]

#: A follow-up vein pixel needs at least this share of the median baseline vein contrast
#: of its class, and at least MIN_VEIN_CONTRAST_OD.
MIN_VEIN_CONTRAST_FRAC = 0.3
MIN_VEIN_CONTRAST_OD = 0.03


@dataclass(frozen=True)
class Estimate:
    """The headline's estimate: its terms, each baseline vein pixel's remaining share and
    the new veins."""

    terms: ImprovementTerms
    remaining: np.ndarray  # per-pixel remaining share on baseline vein pixels (0 elsewhere)
    new_mask: np.ndarray


def estimate_terms(
    c_b: np.ndarray,
    c_f: np.ndarray,
    layout: Layout,
    region: np.ndarray,
    new: np.ndarray,
    *,
    baseline_sums: np.ndarray | None = None,
    n_new: int | None = None,
) -> tuple[ImprovementTerms, np.ndarray]:
    """The formula's terms, and the remaining shares on ``layout.base_idx``.

    Local ratio of contrast integrated over the baseline veins and a thin margin around
    them (``layout``'s supports, per class): a sub-pixel misalignment, a blur or JPEG's
    chroma subsampling moves contrast within the margin and leaves the ratio unchanged,
    and pixel noise averages out. Classes are kept apart so one cannot dilute the other.
    Only the baseline vein pixels and their margins are read. ``baseline_sums`` is
    ``class_sums(c_b, layout)`` and ``n_new`` the count of ``new & ~layout.base &
    region``, when already known."""
    cb_s = class_sums(c_b, layout) if baseline_sums is None else baseline_sums
    cf_s = class_sums(c_f, layout)
    r = per_vein_shares(remaining_fraction(cb_s, cf_s), c_b, c_f, layout)
    # The formula's sums (see improvement_terms, with c_b = 1 and c_f = rem, already in
    # [0, 1]): the follow-up mask holds the new pieces only: follow-up vein pixels near
    # baseline veins are the same veins, judged by their contrast.
    kept = float(np.sum(r, dtype=np.float64))
    if n_new is None:
        n_new = int(np.count_nonzero(new & ~layout.base & region))
    terms = ImprovementTerms(kept=kept, new=float(n_new), baseline=float(layout.base_idx.size))
    return terms, r


def estimate(terms: ImprovementTerms, r: np.ndarray, layout: Layout, new: np.ndarray) -> Estimate:
    """The headline's estimate: :func:`estimate_terms`' figures with the per-pixel remaining
    share (0 off the baseline veins) and the new-vein mask."""
    rem = np.zeros(layout.base.shape, np.float32)
    rem.reshape(-1)[layout.base_idx] = r
    return Estimate(terms=terms, remaining=rem, new_mask=new)


@dataclass(frozen=True, eq=False)
class Ratio:
    """What the headline's estimate and the band's alternatives read: the contrast the
    ratio divides by (``c_b``) and the follow-up's (``c_f``), both less their zero point,
    the counted veins' supports, the region and the new veins; and ``c_b`` integrated over
    the supports (the estimates on ``layout`` share it)."""

    c_b: np.ndarray
    c_f: np.ndarray
    layout: Layout
    region: np.ndarray
    new: np.ndarray
    baseline_sums: np.ndarray

    @classmethod
    def of(
        cls,
        c_b: np.ndarray,
        c_f: np.ndarray,
        layout: Layout,
        region: np.ndarray,
        new: np.ndarray,
    ) -> Ratio:
        return cls(c_b, c_f, layout, region, new, class_sums(c_b, layout))


def headline_estimate(ratio: Ratio) -> Estimate:
    """The headline improvement's estimate on ``ratio``."""
    terms, r = estimate_terms(
        ratio.c_b,
        ratio.c_f,
        ratio.layout,
        ratio.region,
        ratio.new,
        baseline_sums=ratio.baseline_sums,
    )
    return estimate(terms, r, ratio.layout, ratio.new)


def per_vein_shares(
    r: np.ndarray,
    c_b: np.ndarray,
    c_f: np.ndarray,
    layout: Layout,
) -> np.ndarray:
    """Set each vein's mean remaining share from its own contrast, and apply the
    formula's ``min(1, .)`` where it is not biased by noise.

    ``r``: the local remaining shares on ``layout.base_idx``; returns them adjusted.
    A vein's share is ``Σ c_f / Σ c_b`` over its own support (its pixels and the
    margin around them): unlike the local ratio, no neighbouring vein leaks into it.
    Clipping each vein's noisy ratio at 1 reads unchanged veins as improved: their
    ratios scatter both ways (light, pose, blur, and on dark skin JPEG's dead zone,
    which keeps a different share of a faint vein's colour in each photo): on the
    benchmark's phantoms an unchanged vein reads 0.86-1.13 (5th-95th percentile). So a
    vein that reads as persisting (ratio ≥ ``PERSISTING_FROM``) counts as persisting,
    1, as the headline's definition has it: a change within the capture's noise is not
    claimed as improvement. Fainter veins (faded, cleared) keep their own ratio, clipped
    to [0, 1]. The local pattern of ``r`` (a vein cleared over part of its length) is
    kept: its shares are scaled down, or moved toward 1 by the same share of their
    headroom, to the vein's mean.
    """
    ids = layout.ids
    pick = np.flatnonzero(ids > 0)
    if pick.size == 0:
        return r
    n_lab = int(ids.max()) + 1
    num = np.zeros(n_lab, np.float64)
    den = np.zeros(n_lab, np.float64)
    cb, cf = c_b.reshape(-1), c_f.reshape(-1)
    for sp in layout.classes:
        num += np.bincount(sp.own, weights=cf[sp.own_idx], minlength=n_lab)
        den += np.bincount(sp.own, weights=cb[sp.own_idx], minlength=n_lab)
    ok = den > 1e-9
    raw = np.ones(n_lab)
    raw[ok] = num[ok] / den[ok]
    target = np.clip(raw, 0.0, 1.0)
    target[ok & (raw >= PERSISTING_FROM)] = 1.0
    v = ids[pick]
    rv = r[pick].astype(np.float64)
    cnt = np.bincount(v, minlength=n_lab).astype(np.float64)
    have = cnt > 0
    mean = np.zeros(n_lab)
    mean[have] = np.bincount(v, weights=rv, minlength=n_lab)[have] / cnt[have]
    # Down: scale the shares; up: move each toward 1 by the same share of its headroom.
    # Either keeps them in [0, 1] and makes their mean exactly the target.
    down = np.ones(n_lab)
    lo = have & (target <= mean) & (mean > 0)
    down[lo] = target[lo] / mean[lo]
    up = np.zeros(n_lab)
    hi = have & (target > mean)
    up[hi] = (target[hi] - mean[hi]) / np.maximum(1.0 - mean[hi], 1e-12)
    vals = rv * down[v]
    vals += up[v] * (1.0 - vals)
    out = r.copy()
    out[pick] = np.clip(vals, 0.0, 1.0).astype(np.float32)
    return out


def contrast_along(seg: Segmentation, labels: np.ndarray) -> np.ndarray:
    """Per-pixel contrast of a segmentation along the class ``labels`` give each pixel (a
    baseline's labels): its class map where it has one, its own ``strength`` elsewhere.

    Parameters
    ----------
    seg : Segmentation
    labels : ndarray, shape (H, W), uint8
        0 none, 1 spider, 2 reticular.

    Returns
    -------
    ndarray, shape (H, W), float32
        A new array.
    """
    by = seg.strength_by_class
    out = np.array(seg.strength, dtype=np.float32, copy=True)
    for name, code in CLASS_CODES.items():
        m = by.get(name)
        if m is not None:
            sel = labels == code
            out[sel] = np.asarray(m, dtype=np.float32)[sel]
    return out


def measurable(
    base: np.ndarray, c_b: np.ndarray, labels: np.ndarray, ids: np.ndarray
) -> np.ndarray:
    """``base`` without the veins that show no measurable contrast of their own.

    ``c_b`` is the contrast the ratio divides by (the baseline at the follow-up's JPEG
    quantisation, less the zero point of the skin around it). A vein whose mean over its
    own pixels falls below ``MIN_VEIN_CONTRAST_FRAC`` of its class's median (the share a
    follow-up vein needs too) stands no more out of its surroundings than they do out of
    themselves: a diffuse patch of mottled or brown skin the segmentation took for a
    wide vein. Its share of contrast cannot be measured (a ratio of two near-zero sums),
    so it is left out of the comparison, counted neither as treated nor as kept. On the
    phantoms this drops most of the area of reticular false positives and almost none
    of true veins (see docs/ARCHITECTURE.md). Pixels of no vein (id 0) are kept.
    """
    idx = np.flatnonzero(base)
    if idx.size == 0:
        return base
    lab = labels.reshape(-1)[idx]
    val = np.asarray(c_b, dtype=np.float64).reshape(-1)[idx]
    vid = ids.reshape(-1)[idx]
    n_lab = int(vid.max()) + 1
    cnt = np.bincount(vid, minlength=n_lab).astype(np.float64)
    mean = np.bincount(vid, weights=val, minlength=n_lab) / np.maximum(cnt, 1.0)
    retic = np.bincount(vid, weights=lab == RETICULAR, minlength=n_lab) > cnt / 2
    weak = np.zeros(n_lab, bool)
    for code, med in class_medians(val, lab).items():
        of_class = retic if code == RETICULAR else ~retic
        weak |= of_class & (cnt > 0) & (mean < MIN_VEIN_CONTRAST_FRAC * med)
    weak[0] = False
    if not weak.any():
        return base
    out = base.copy()
    out.reshape(-1)[idx[weak[vid]]] = False
    return out


def class_medians(values: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """Median of ``values`` (baseline vein pixels) per class code of ``labels`` (the same
    pixels); the median of all of them for a class with fewer than 20 pixels."""
    all_med = float(np.median(values)) if values.size else 0.0
    out = {}
    for code in CLASS_CODES.values():
        sel = labels == code
        out[code] = float(np.median(values[sel])) if np.count_nonzero(sel) >= 20 else all_med
    return out


def min_vein_contrast(
    c_b: np.ndarray, base: np.ndarray, labels_b: np.ndarray, labels_f: np.ndarray
) -> np.ndarray:
    """Per-pixel smallest contrast a follow-up vein pixel must have (by its class)."""
    out = np.full(labels_f.shape, MIN_VEIN_CONTRAST_OD, dtype=np.float32)
    for code, med in class_medians(c_b[base], labels_b[base]).items():
        out[labels_f == code] = max(MIN_VEIN_CONTRAST_OD, MIN_VEIN_CONTRAST_FRAC * med)
    return out


def improvement_by_class(
    est: Estimate,
    layout: Layout,
    labels_b: np.ndarray,
    labels_f: np.ndarray,
    region: np.ndarray,
) -> dict[str, float | None]:
    """The headline formula on each class's baseline veins and new veins alone
    (:func:`improvement_terms` with ``c_b = 1`` and ``c_f`` the estimate's remaining
    share, on the class's pixels; read on the baseline vein and new pixels only)."""
    rem = est.remaining.reshape(-1)[layout.base_idx]
    lab_b = labels_b.reshape(-1)
    at_new = np.flatnonzero(est.new_mask & region)
    new_lab = labels_f.reshape(-1)[at_new]
    new_in_base = layout.base.reshape(-1)[at_new]
    by_class: dict[str, float | None] = {}
    for name, code in CLASS_CODES.items():
        mine = lab_b[layout.base_idx] == code
        kept = float(np.sum(rem[mine], dtype=np.float64))
        n_new = int(np.count_nonzero((new_lab == code) & ~(new_in_base & (lab_b[at_new] == code))))
        t = ImprovementTerms(kept=kept, new=float(n_new), baseline=float(np.count_nonzero(mine)))
        by_class[name] = None if not math.isfinite(t.pct) else t.pct
    return by_class
