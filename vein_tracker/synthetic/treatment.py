"""A leg at a follow-up visit (:func:`treat`): veins cleared, faded, new or recanalised.

Treatment changes the scene only (visibilities, statuses, new veins and look-alikes such
as staining, bruising and matting); photographing it is :mod:`.rendering`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import numpy as np

from vein_tracker.synthetic._checks import _check_fraction, _check_range, _rng
from vein_tracker.synthetic._model import Bruise, Leg, Stroke, Vein, _frozen_array
from vein_tracker.synthetic.legs import _clip_to_leg, _point_in_leg, _spider_cluster, _walk


def treat(
    leg: Leg,
    seed: int,
    *,
    cleared_frac: float = 0.6,
    faded_frac: float = 0.2,
    fade_to: float | tuple[float, float] = 0.5,
    n_new: int = 0,
    recanalise: Sequence[int] = (),
    staining: bool = False,
    bruising: bool = False,
    matting: bool = False,
    by: Literal["count", "area"] = "count",
) -> Leg:
    """The leg at a follow-up visit: veins cleared, faded or persisting by known amounts.

    Every vein visible before this call (visibility > 0) is drawn, deterministically from
    ``seed``, into one of three groups: cleared (visibility 0), faded (visibility multiplied
    by ``fade_to``, or by a factor drawn from the ``fade_to`` range) and persisting
    (unchanged). Veins already cleared stay cleared unless listed in ``recanalise``.

    Parameters
    ----------
    leg : Leg
        The current state (baseline or an earlier follow-up); never modified.
    seed : int
        Non-negative seed.
    cleared_frac, faded_frac : float
        Shares of the currently visible veins to clear and to fade; their sum ≤ 1.
    fade_to : float or (float, float)
        Remaining visibility factor of a faded vein, in (0, 1), or a range to draw from.
    n_new : int
        New veins (status "new", absent at baseline): spider branches near existing
        clusters or a new small cluster.
    recanalise : sequence of int
        Ids of veins that had faded or cleared at an earlier visit and are visible again
        (visibility back to 1, status "recanalised"). They are not drawn into the groups.
    staining : bool
        Brown haemosiderin streaks along some of the veins cleared now.
    bruising : bool
        Diffuse bruises (purple, blue or yellow, 10-30 mm) at some treated sites. Bruises
        from earlier visits resolve (they are not carried over).
    matting : bool
        Telangiectatic matting (a blush of very fine red vessels) near a treated site. It is
        real vasculature but flagged apart: it has its own mask and is not a vein in
        ``labels`` nor in the true improvement.
    by : {"count", "area"}
        Whether the fractions count veins or baseline footprint area (length × width).

    Returns
    -------
    Leg
        A new leg with ``visit`` increased by one.
    """
    cf, ff, fade_lo, fade_hi = _check_treatment(
        leg, cleared_frac, faded_frac, fade_to, n_new=n_new, by=by
    )
    rng = _rng(seed, 0x7EA7 + leg.visit)
    recan = _recanalised_ids(leg, recanalise)
    visible = [v for v in leg.veins if v.visibility > 0.0 and v.id not in recan]
    cleared_ids, faded_ids = _draw_groups(rng, visible, cf, ff, by=by, px_per_mm=leg.px_per_mm)
    new_veins, treated_sites = _apply_groups(
        rng, leg, recan, cleared_ids, faded_ids, fade_lo, fade_hi
    )
    added = _new_veins(rng, leg, n_new)
    stains = list(leg.stains)
    bruises: list[Bruise] = []
    mats = list(leg.matting)
    cleared_now = [v for v in leg.veins if v.id in cleared_ids]
    if staining and cleared_now:
        stains.extend(_stains(rng, cleared_now))
    if bruising and treated_sites:
        bruises.extend(_bruises(rng, treated_sites, leg.px_per_mm))
    if matting and treated_sites:
        mats.extend(_matting(rng, leg, treated_sites))
    return replace(
        leg,
        veins=tuple(new_veins + added),
        stains=tuple(stains),
        bruises=tuple(bruises),
        matting=tuple(mats),
        visit=leg.visit + 1,
    )


def _check_treatment(
    leg: Leg,
    cleared_frac: float,
    faded_frac: float,
    fade_to: float | tuple[float, float],
    *,
    n_new: int,
    by: str,
) -> tuple[float, float, float, float]:
    """Validated ``(cleared_frac, faded_frac, fade_lo, fade_hi)`` of a :func:`treat` call."""
    cf = _check_fraction(cleared_frac, "cleared_frac")
    ff = _check_fraction(faded_frac, "faded_frac")
    if cf + ff > 1.0 + 1e-9:
        raise ValueError(
            f"cleared_frac + faded_frac must be ≤ 1, got {cleared_frac} + {faded_frac}"
        )
    fade_lo, fade_hi = _check_range(fade_to, "fade_to", 0.0, 1.0)
    if fade_lo <= 0.0 or fade_hi >= 1.0:
        raise ValueError(
            f"fade_to must lie strictly between 0 and 1 (use cleared_frac for 0), got {fade_to!r}"
        )
    if not isinstance(n_new, (int, np.integer)) or n_new < 0 or n_new > 100:
        raise ValueError(f"n_new must be an integer in [0, 100], got {n_new!r}")
    if by not in ("count", "area"):
        raise ValueError(f"by must be 'count' or 'area', got {by!r}")
    if not isinstance(leg, Leg):
        raise ValueError("leg must be a Leg from make_leg() or treat()")
    return cf, ff, fade_lo, fade_hi


def _recanalised_ids(leg: Leg, recanalise: Sequence[int]) -> set[int]:
    """Ids to re-open; each must name a vein that faded or cleared earlier."""
    by_id = {v.id: v for v in leg.veins}
    recan = set()
    for vid in recanalise:
        v = by_id.get(int(vid))
        if v is None:
            raise ValueError(f"recanalise: no vein with id {vid} in this leg")
        if v.status not in ("faded", "cleared"):
            raise ValueError(
                f"recanalise: vein {vid} is {v.status!r}; only faded or cleared veins re-open"
            )
        recan.add(int(vid))
    return recan


def _draw_groups(
    rng: np.random.Generator,
    visible: list[Vein],
    cf: float,
    ff: float,
    *,
    by: str,
    px_per_mm: float,
) -> tuple[set[int], set[int]]:
    """Ids of the visible veins to clear and to fade, by count or by footprint area."""
    order = rng.permutation(len(visible))
    cleared_ids: set[int] = set()
    faded_ids: set[int] = set()
    if by == "count":
        n_c = int(round(cf * len(visible)))
        n_f = min(int(round(ff * len(visible))), len(visible) - n_c)
        cleared_ids = {visible[i].id for i in order[:n_c]}
        faded_ids = {visible[i].id for i in order[n_c : n_c + n_f]}
    else:
        ppm = px_per_mm
        areas = np.array([v.length_px() / ppm * v.width_mm for v in visible])
        total = float(areas.sum()) or 1.0
        acc = 0.0
        for i in order:
            a = areas[i] / total
            if acc + a / 2 <= cf:
                cleared_ids.add(visible[i].id)
            elif acc + a / 2 <= cf + ff:
                faded_ids.add(visible[i].id)
            acc += a
    return cleared_ids, faded_ids


def _apply_groups(
    rng: np.random.Generator,
    leg: Leg,
    recan: set[int],
    cleared_ids: set[int],
    faded_ids: set[int],
    fade_lo: float,
    fade_hi: float,
) -> tuple[list[Vein], list[np.ndarray]]:
    """Every vein with its new visibility and status, and the injection sites (baseline px)."""
    new_veins: list[Vein] = []
    treated_sites: list[np.ndarray] = []
    for v in leg.veins:
        vis, status = v.visibility, v.status
        if v.id in recan:
            vis = 1.0
            status = "recanalised"
        elif v.id in cleared_ids:
            vis = 0.0
            status = "cleared"
        elif v.id in faded_ids:
            factor = fade_lo if fade_lo == fade_hi else float(rng.uniform(fade_lo, fade_hi))
            vis = round(v.visibility * factor, 6)
            if v.status == "recanalised":
                status = "recanalised"
            else:
                status = "faded" if v.in_baseline else "new"
        if v.id in cleared_ids or v.id in faded_ids or v.status in ("cleared", "faded"):
            # Injection sites: veins treated now or at an earlier visit.
            treated_sites.append(v.centreline[len(v.centreline) // 2])
        new_veins.append(replace(v, visibility=vis, status=status))
    return new_veins, treated_sites


def _new_veins(rng: np.random.Generator, leg: Leg, n_new: int) -> list[Vein]:
    """``n_new`` new spider branches near existing clusters or in a new small cluster."""
    ppm = leg.px_per_mm
    h, w = leg.shape
    next_id = max((v.id for v in leg.veins), default=0) + 1
    added: list[Vein] = []
    clusters = sorted({v.cluster for v in leg.veins if v.cls == "spider" and v.cluster >= 0})
    contrast = float(np.exp(-0.2 * leg.melanin))
    attempts = 0
    while len(added) < n_new and attempts < 50 * (n_new + 1):
        attempts += 1
        if clusters and rng.random() < 0.6:
            cl = int(rng.choice(clusters))
            members = [v for v in leg.veins if v.cluster == cl and v.cls == "spider"]
            centre = members[0].centreline[0] + rng.normal(0, 4.0, 2) * ppm
        else:
            cl = max(clusters, default=-1) + 1 + len(added)
            centre = _point_in_leg(rng, leg.outline, leg.shape, 0.65)
        cand = _spider_cluster(
            rng,
            centre,
            cl,
            ppm,
            leg.outline,
            (h, w),
            contrast,
            first_id=next_id,
            status="new",
            in_baseline=False,
            scale=0.5,
        )
        for v in cand[: n_new - len(added)]:
            added.append(replace(v, id=next_id))
            next_id += 1
    return added


def _stains(rng: np.random.Generator, cleared_now: list[Vein]) -> list[Stroke]:
    """Brown haemosiderin streaks along half of the veins cleared at this visit."""
    out = []
    k = max(1, int(round(0.5 * len(cleared_now))))
    for i in rng.permutation(len(cleared_now))[:k]:
        v = cleared_now[int(i)]
        out.append(
            Stroke(
                centreline=v.centreline,
                width_mm=round(float(rng.uniform(3.0, 8.0)), 4),
                amplitude=round(float(rng.uniform(0.06, 0.16)), 4),
            )
        )
    return out


def _bruises(rng: np.random.Generator, treated_sites: list[np.ndarray], ppm: float) -> list[Bruise]:
    """One to three bruises near injection sites."""
    out = []
    k = int(rng.integers(1, min(3, len(treated_sites)) + 1))
    for i in rng.permutation(len(treated_sites))[:k]:
        site = treated_sites[int(i)] + rng.normal(0, 3.0, 2) * ppm
        out.append(
            Bruise(
                x=float(site[0]),
                y=float(site[1]),
                radius_mm=float(rng.uniform(6.0, 18.0)),
                aspect=float(rng.uniform(0.5, 1.0)),
                angle=float(rng.uniform(0, math.pi)),
                amplitude=float(rng.uniform(0.10, 0.30)),
                hue=str(rng.choice(["purple", "blue", "yellow"])),
            )
        )
    return out


def _matting(rng: np.random.Generator, leg: Leg, treated_sites: list[np.ndarray]) -> list[Stroke]:
    """A blush of very fine red vessels around one injection site."""
    ppm = leg.px_per_mm
    contrast = float(np.exp(-0.2 * leg.melanin))
    out = []
    site = treated_sites[int(rng.integers(len(treated_sites)))]
    for _ in range(int(rng.integers(15, 40))):
        start = site + rng.normal(0, 4.0, 2) * ppm
        pts = _walk(rng, start, rng.uniform(0, 2 * math.pi), rng.uniform(1.0, 4.0), 0.15, 0.8, ppm)
        pts = _clip_to_leg(pts, leg.outline, leg.shape, 0.9)
        if len(pts) >= 2:
            out.append(
                Stroke(
                    centreline=_frozen_array(pts),
                    width_mm=round(float(rng.uniform(0.05, 0.12)), 4),
                    amplitude=round(float(rng.uniform(0.15, 0.35) * contrast), 4),
                )
            )
    return out
