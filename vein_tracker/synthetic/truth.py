"""Ground truth of a pair: the true improvement, :func:`make_pair` and :func:`pair_truth`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from vein_tracker.synthetic._checks import _check_shape, _rng
from vein_tracker.synthetic._model import (
    _BIT_LEG,
    LABEL_RETICULAR,
    LABEL_SPIDER,
    TONES,
    VEIN_CLASSES,
    Capture,
    Leg,
    PhantomPair,
    Rendered,
    Vein,
)
from vein_tracker.synthetic.camera import _inverse_in_frame, identity_capture, random_capture
from vein_tracker.synthetic.legs import make_leg
from vein_tracker.synthetic.rendering import _unpack, render
from vein_tracker.synthetic.scene import _render_scene, _Scene
from vein_tracker.synthetic.treatment import treat


def true_improvement(
    baseline_leg: Leg,
    followup_leg: Leg,
    *,
    overlap: np.ndarray | None = None,
    shape: tuple[int, int] | None = None,
    cls: str | None = None,
) -> float:
    """True improvement (%) of ``followup_leg`` over ``baseline_leg``, in the baseline frame.

    Definition (the headline figure; ``measure.compare`` uses the same)::

        B   = baseline vein pixels (footprint of every baseline vein) ∩ overlap
        v_f(p) = remaining visibility at follow-up of the baseline vein covering p
                 (0 cleared, the fade factor, 1 persisting or recanalised)
        N   = follow-up vein pixels (footprint of veins visible at follow-up) ∩ overlap,
              not in B  (new veins, and any growth beyond the baseline footprint)
        improvement = 100 × (1 − (Σ_{p ∈ B} min(1, v_f(p)) + |N|) / |B|)

    Footprint = pixels within ``width/2`` (at least 0.5 px) of a vein's centreline; where
    veins overlap, a spider vein wins over a reticular one, then the stronger one.
    It can be negative when new veins outweigh the cleared ones. Matting, staining and
    bruises are not veins and do not enter.

    Parameters
    ----------
    baseline_leg, followup_leg : Leg
        The baseline state and a later state of the same leg (from :func:`treat`).
    overlap : ndarray, (H, W) bool, optional
        Region of the baseline frame to score (default the baseline leg mask).
    shape : (int, int), optional
        Baseline frame resolution (default the leg's shape); must match ``overlap``.
    cls : {"spider", "reticular"}, optional
        Restrict B and N to one vein class.

    Returns
    -------
    float
        Percent; nan when there are no baseline vein pixels in the region.
    """
    if baseline_leg.seed != followup_leg.seed or baseline_leg.shape != followup_leg.shape:
        raise ValueError("followup_leg must be a treated state of baseline_leg (same seed/shape)")
    if cls is not None and cls not in VEIN_CLASSES:
        raise ValueError(f"cls must be one of {VEIN_CLASSES} or None, got {cls!r}")
    shp = baseline_leg.shape if shape is None else _check_shape(shape)
    s = shp[1] / baseline_leg.shape[1]
    b = _render_scene(baseline_leg, s, 0, 0, shp[0], shp[1], with_od=False)
    f = _render_scene(followup_leg, s, 0, 0, shp[0], shp[1], with_od=False)
    region = _unpack(b.bits, _BIT_LEG) if overlap is None else np.asarray(overlap, dtype=bool)
    if region.shape != shp:
        raise ValueError(f"overlap must have shape {shp}, got {region.shape}")
    return _improvement_from_maps(baseline_leg, followup_leg, b, f, region, cls)


def _improvement_from_maps(
    baseline_leg: Leg,
    followup_leg: Leg,
    b: _Scene,
    f: _Scene,
    region: np.ndarray,
    cls: str | None,
) -> float:
    want = {None: (LABEL_SPIDER, LABEL_RETICULAR), "spider": (LABEL_SPIDER,)}.get(
        cls, (LABEL_RETICULAR,)
    )
    bmask = np.isin(b.labels, want) & region
    n_b = int(np.count_nonzero(bmask))
    if n_b == 0:
        return float("nan")
    vis = np.zeros(max((v.id for v in followup_leg.veins), default=0) + 1, dtype=np.float64)
    for v in followup_leg.veins:
        vis[v.id] = min(1.0, max(0.0, v.visibility))
    remaining = float(vis[b.ids[bmask].astype(np.int64)].sum())
    all_b = (b.labels > 0) & region
    new = np.isin(f.labels, want) & region & ~all_b
    n_new = int(np.count_nonzero(new))
    return 100.0 * (1.0 - (remaining + n_new) / n_b)


def make_pair(
    seed: int,
    *,
    shape: tuple[int, int] = (1500, 2000),
    px_per_mm: float | None = None,
    tone: str | None = None,
    n_spider_clusters: int | None = None,
    n_reticular: int | None = None,
    hair: bool = True,
    freckles: bool = True,
    moles: bool = True,
    cleared_frac: float = 0.6,
    faded_frac: float = 0.2,
    fade_to: float | tuple[float, float] = 0.5,
    n_new: int = 0,
    recanalise: Sequence[int] = (),
    staining: bool = False,
    bruising: bool = False,
    matting: bool = False,
    by: Literal["count", "area"] = "count",
    capture: Capture | None = None,
    baseline_capture: Capture | None = None,
) -> PhantomPair:
    """A baseline photo and a treated follow-up photo of one leg, with the true improvement.

    Parameters
    ----------
    seed : int
        Non-negative seed of the whole pair (leg, treatment, follow-up capture).
    shape : (int, int)
        (H, W) px of both photos.
    px_per_mm, n_spider_clusters, n_reticular, hair, freckles, moles
        As in :func:`make_leg`.
    tone : str, optional
        One of :data:`TONES`; default drawn from the seed.
    cleared_frac, faded_frac, fade_to, n_new, recanalise, staining, bruising, matting, by
        As in :func:`treat`.
    capture : Capture, optional
        Follow-up capture; default ``random_capture`` with default ranges, from the seed.
    baseline_capture : Capture, optional
        Baseline capture; default :func:`identity_capture`. Its geometry must be the
        identity (photometric settings may differ), so the baseline photo is the baseline frame.

    Returns
    -------
    PhantomPair
        ``true_improvement_pct`` as defined in :func:`true_improvement`, over
        ``overlap_mask`` = baseline leg pixels that the follow-up photo also sees::

            B = baseline vein pixels ∩ overlap
            N = follow-up vein pixels (veins visible at follow-up, mapped to the
                baseline frame) ∩ overlap, not in B
            true_improvement_pct = 100 × (1 − (Σ_{p ∈ B} min(1, v_f(p)) + |N|) / |B|)

        with ``v_f(p)`` the follow-up visibility of the baseline vein covering p (0 cleared,
        the fade factor, 1 persisting or recanalised). 100 = every vein gone, 0 = no
        change, negative = new veins outweigh the cleared ones.
    """
    h, w = _check_shape(shape)
    rng = _rng(seed, 0x9A1)
    tone_ = str(rng.choice(list(TONES))) if tone is None else tone
    leg_seed, treat_seed, cap_seed = (int(v) for v in rng.integers(0, 2**31 - 1, 3))
    leg = make_leg(
        leg_seed,
        shape=(h, w),
        px_per_mm=px_per_mm,
        tone=tone_,
        n_spider_clusters=n_spider_clusters,
        n_reticular=n_reticular,
        hair=hair,
        freckles=freckles,
        moles=moles,
    )
    fol = treat(
        leg,
        treat_seed,
        cleared_frac=cleared_frac,
        faded_frac=faded_frac,
        fade_to=fade_to,
        n_new=n_new,
        recanalise=recanalise,
        staining=staining,
        bruising=bruising,
        matting=matting,
        by=by,
    )
    base_cap = identity_capture(shape=(h, w)) if baseline_capture is None else baseline_capture
    if not base_cap.is_identity_geometry:
        raise ValueError(
            "baseline_capture must have identity geometry (homography = I, no bend); "
            "vary only its photometric settings"
        )
    fol_cap = random_capture(cap_seed, shape=(h, w)) if capture is None else capture
    baseline = render(leg, base_cap)
    followup = render(fol, fol_cap)
    return pair_truth(leg, fol, baseline, followup)


def pair_truth(
    baseline_leg: Leg, followup_leg: Leg, baseline: Rendered, followup: Rendered
) -> PhantomPair:
    """Assemble a :class:`PhantomPair` (truth included) from two renders of one leg.

    ``baseline`` must be rendered with identity geometry at the leg's shape or a
    proportional one; ``followup`` at the same shape with any capture.
    """
    if not baseline.capture.is_identity_geometry:
        raise ValueError("baseline must be rendered with identity geometry")
    if baseline.shape != followup.shape:
        raise ValueError(
            f"baseline and followup must have the same shape, got {baseline.shape} and "
            f"{followup.shape}"
        )
    shp = baseline.shape
    s = shp[1] / baseline_leg.shape[1]
    overlap = baseline.leg_mask & _inverse_in_frame(followup.capture, shp)
    b = _render_scene(baseline_leg, s, 0, 0, shp[0], shp[1], with_od=False)
    f = _render_scene(followup_leg, s, 0, 0, shp[0], shp[1], with_od=False)
    imp = _improvement_from_maps(baseline_leg, followup_leg, b, f, overlap, None)
    by_cls = {
        c: _improvement_from_maps(baseline_leg, followup_leg, b, f, overlap, c)
        for c in VEIN_CLASSES
    }
    n_b = int(np.count_nonzero((b.labels > 0) & overlap))
    n_f = int(np.count_nonzero((f.labels > 0) & overlap))
    by_area = 100.0 * (1.0 - n_f / n_b) if n_b else float("nan")
    len_b = sum(_length_inside(v, s, overlap) for v in baseline_leg.veins if v.visibility > 0)
    len_f = sum(_length_inside(v, s, overlap) for v in followup_leg.veins if v.visibility > 0)
    by_length = 100.0 * (1.0 - len_f / len_b) if len_b > 0 else float("nan")
    return PhantomPair(
        baseline=baseline,
        followup=followup,
        baseline_leg=baseline_leg,
        followup_leg=followup_leg,
        true_improvement_pct=imp,
        status_by_vein=followup_leg.status_by_vein(),
        overlap_mask=overlap,
        true_improvement_by_class_pct=by_cls,
        true_improvement_by_area_pct=by_area,
        true_improvement_by_length_pct=by_length,
    )


def _length_inside(vein: Vein, s: float, region: np.ndarray) -> float:
    """Centreline length (px at scale ``s``) of ``vein`` inside ``region`` (nearest pixel)."""
    pts = vein.centreline * s
    seg = np.diff(pts, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    mid = np.rint((pts[:-1] + pts[1:]) / 2.0).astype(np.int64)
    h, w = region.shape
    ok = (mid[:, 0] >= 0) & (mid[:, 0] < w) & (mid[:, 1] >= 0) & (mid[:, 1] < h)
    inside = np.zeros(len(mid), dtype=bool)
    inside[ok] = region[mid[ok, 1], mid[ok, 0]]
    return float(seg_len[inside].sum())
