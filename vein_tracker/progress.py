"""Progress of one treatment area across sessions: the table, the flags and a projection.

Owns the view over a series of visits of one area (baseline first): session
number, date, days since baseline, improvement with its band per class, vein
status counts and warnings; flags for gaps over 4 weeks (recanalisation risk) and
for regression against the previous session; and a projection of whether the
clinic's target is likely by the planned last session. It does not analyse
photos: it takes the numbers of :func:`vein_tracker.measure.compare`.

Projection model ("constant fractional clearance per session"): each treatment
session clears the same share ``q`` of the vein burden still visible, so after
``k`` sessions the remaining burden is ``(1 - q)^k`` and the improvement
``100 × (1 - (1 - q)^k)``. ``q`` is fitted by least squares on
``log(remaining)`` against ``k`` through the origin (remaining = 1 − improvement/100
at each follow-up; the baseline has k = 0); the same fit on the lower and upper
ends of the bands gives the projection's range. The projection is "likely" when
the low end reaches the target by the planned last session, "possible" when the
central value does, and "unlikely" otherwise.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .confidence import low_reasons

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

    from .measure import Comparison

#: A gap between sessions longer than this raises the recanalisation risk (DOMAIN.md).
MAX_GAP_DAYS = 28
#: A drop of more than this many points against the previous session is a regression,
#: unless the two bands overlap.
REGRESSION_POINTS = 5.0
#: Remaining burden is floored here so that log(remaining) stays finite at 100 %.
_MIN_REMAINING = 1e-3

STATUS_COLUMNS = ("cleared", "faded", "persisting", "new", "recanalised")
#: A session's photo: usable, or why it gives no figure (issue 24).
PHOTO_STATUSES = ("ok", "unmatched", "refused", "missing")
CLASS_NAMES = ("spider", "reticular")


@dataclass(frozen=True)
class Visit:
    """One session of one treatment area.

    Attributes
    ----------
    date : date
        Day of the session (photo taken before treatment).
    improvement_pct : float or None
        Improvement against the baseline; None for the baseline itself.
    band_pct : tuple of float or None
        ``(low, high)`` band of the improvement.
    by_class_pct : mapping of str to float or None
        Improvement per class (``"spider"``, ``"reticular"``).
    by_class_band_pct : mapping of str to (low, high)
        Band per class; when absent the overall band's half-widths are used.
    vein_counts : mapping of str to int
        Number of veins per status.
    warnings : tuple of str
    treated : bool
        Whether the area was treated at this session (a session that only took a
        photo does not count in the projection's session count).
    photo_status : {"ok", "unmatched", "refused", "missing"}
        The session's photo: "unmatched" (does not match the baseline), "refused" (its
        alignment with the baseline was refused) and "missing" (none kept) give no
        figure; the session is flagged instead.
    low_confidence : tuple of str
        Why the figure is low-confidence (:func:`vein_tracker.confidence.low_reasons`);
        empty when it is not. Such a session is flagged, never shown bare.
    """

    date: dt.date
    improvement_pct: float | None = None
    band_pct: tuple[float, float] | None = None
    by_class_pct: Mapping[str, float | None] = field(default_factory=dict)
    by_class_band_pct: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    vein_counts: Mapping[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    treated: bool = True
    photo_status: str = "ok"
    low_confidence: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.photo_status not in PHOTO_STATUSES:
            raise ValueError(
                f"photo_status must be one of {PHOTO_STATUSES}, got {self.photo_status!r}"
            )
        if self.photo_status != "ok" and self.improvement_pct is not None:
            raise ValueError(
                "improvement_pct must be None when the photo is not usable "
                f"(photo_status {self.photo_status!r}): no figure from such a photo"
            )

    @classmethod
    def from_comparison(cls, when: dt.date | dt.datetime, comparison: Comparison) -> Visit:
        """A follow-up visit from the result of :func:`vein_tracker.measure.compare`."""
        lo, hi = comparison.improvement_band_pct
        return cls(
            date=_as_date(when),
            improvement_pct=_finite(comparison.improvement_pct),
            band_pct=(float(lo), float(hi)) if math.isfinite(lo) and math.isfinite(hi) else None,
            by_class_pct=dict(comparison.improvement_by_class_pct),
            vein_counts=dict(comparison.vein_counts),
            warnings=tuple(comparison.warnings),
            low_confidence=low_reasons(
                {"confidence": comparison.confidence and comparison.confidence.to_dict()}
            ),
        )

    @classmethod
    def from_dict(cls, when: dt.date | dt.datetime, result: Mapping[str, Any]) -> Visit:
        """A follow-up visit from ``Comparison.to_dict()`` (e.g. a stored analysis)."""
        band = result.get("improvement_band_pct")
        return cls(
            date=_as_date(when),
            improvement_pct=_finite(result.get("improvement_pct")),
            band_pct=(float(band[0]), float(band[1]))
            if band and band[0] is not None and band[1] is not None
            else None,
            by_class_pct=dict(result.get("improvement_by_class_pct") or {}),
            vein_counts={k: int(v) for k, v in (result.get("veins") or {}).items()},
            warnings=tuple(result.get("warnings") or ()),
            low_confidence=low_reasons(result),
        )


@dataclass(frozen=True)
class Projection:
    """Whether the target is likely by the planned last session.

    Attributes
    ----------
    model : str
        Description of the model (constant fractional clearance per session).
    per_session_clearance : float or None
        Fitted share ``q`` of the remaining burden cleared per session.
    planned_sessions : int
        Sessions planned in total (the baseline session included); the projection
        is for the last one's photo, after ``planned_sessions - 1`` treatments.
    projected_pct, projected_low_pct, projected_high_pct : float or None
        Improvement projected at the planned last session, with its range.
    target_pct : float
    verdict : str
        ``"likely"``, ``"possible"``, ``"unlikely"``, ``"reached"`` (already met) or
        ``"unknown"`` (no follow-up yet).
    sessions_needed : int or None
        Sessions (from baseline) the central fit needs to reach the target.
    """

    model: str
    per_session_clearance: float | None
    planned_sessions: int
    projected_pct: float | None
    projected_low_pct: float | None
    projected_high_pct: float | None
    target_pct: float
    verdict: str
    sessions_needed: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "per_session_clearance": self.per_session_clearance,
            "planned_sessions": self.planned_sessions,
            "projected_pct": self.projected_pct,
            "projected_low_pct": self.projected_low_pct,
            "projected_high_pct": self.projected_high_pct,
            "target_pct": self.target_pct,
            "verdict": self.verdict,
            "sessions_needed": self.sessions_needed,
        }


@dataclass(frozen=True, eq=False)
class Progress:
    """Result of :func:`summarise`: the table, the flags and the projection."""

    frame: pd.DataFrame
    gap_flags: tuple[int, ...]
    regression_flags: tuple[int, ...]
    projection: Projection
    #: ``(session, photo status)`` of the sessions whose photo gives no figure.
    photo_flags: tuple[tuple[int, str], ...] = ()
    #: ``(session, reasons)`` of the sessions whose figure is low-confidence.
    confidence_flags: tuple[tuple[int, tuple[str, ...]], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        rows = self.frame.to_dict(orient="records")
        for r in rows:
            for k, v in list(r.items()):
                if isinstance(v, float) and not math.isfinite(v):
                    r[k] = None
                elif hasattr(v, "isoformat"):
                    r[k] = v.isoformat()
        return {
            "sessions": rows,
            "gap_flags": list(self.gap_flags),
            "regression_flags": list(self.regression_flags),
            "photo_flags": [list(f) for f in self.photo_flags],
            "confidence_flags": [[s, list(r)] for s, r in self.confidence_flags],
            "projection": self.projection.to_dict(),
        }


MODEL_DESCRIPTION = (
    "constant fractional clearance per treatment session: remaining burden = (1 - q)^k "
    "after k sessions, q fitted by least squares on log(remaining)"
)


def _as_date(when: dt.date | dt.datetime) -> dt.date:
    if isinstance(when, dt.datetime):
        return when.date()
    if isinstance(when, dt.date):
        return when
    raise ValueError(f"date must be a datetime.date, got {type(when).__name__}")


def _finite(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def fit_clearance(sessions: Sequence[int], improvements_pct: Sequence[float]) -> float | None:
    """Fit the per-session clearance ``q`` of the projection model.

    Parameters
    ----------
    sessions : sequence of int
        Treatment sessions done before each follow-up (k ≥ 1).
    improvements_pct : sequence of float
        Improvement at each follow-up, percent.

    Returns
    -------
    float or None
        ``q`` in [0, 1): share of the remaining burden cleared per session; 0 when
        the data show no improvement; None without data.
    """
    if len(sessions) != len(improvements_pct):
        raise ValueError("sessions and improvements_pct must have the same length")
    pts = [(k, p) for k, p in zip(sessions, improvements_pct, strict=True) if k > 0]
    if not pts:
        return None
    num = sum(k * math.log(max(_MIN_REMAINING, 1.0 - p / 100.0)) for k, p in pts)
    den = sum(k * k for k, _ in pts)
    slope = num / den  # log(1 - q)
    return float(min(max(0.0, 1.0 - math.exp(slope)), 1.0 - _MIN_REMAINING))


def project(q: float | None, sessions: int) -> float | None:
    """Improvement (percent) after ``sessions`` treatment sessions at clearance ``q``."""
    if q is None:
        return None
    return 100.0 * (1.0 - (1.0 - q) ** sessions)


def summarise(
    visits: Sequence[Visit],
    *,
    planned_sessions: int = 4,
    target_pct: float = 75.0,
) -> Progress:
    """Table, flags and projection for a series of visits of one treatment area.

    Parameters
    ----------
    visits : sequence of Visit
        Baseline first (its improvement is ignored and shown as 0), then follow-ups
        in date order.
    planned_sessions : int
        Sessions planned in total, the baseline session included (2–4 is typical).
        The projection is made for the photo of the last of them, taken before its
        treatment, so after ``planned_sessions - 1`` treatments.
    target_pct : float
        The clinic's target (75 by default).

    Returns
    -------
    Progress
        ``frame`` has one row per visit with columns ``session``, ``date``,
        ``days_since_baseline``, ``gap_days``, ``improvement_pct``,
        ``improvement_low_pct``, ``improvement_high_pct``, per class
        ``<cls>_pct``/``<cls>_low_pct``/``<cls>_high_pct``, one count column per
        status, ``warnings`` (joined by "; "), ``photo_status``, ``low_confidence``
        (the reasons, joined by "; "), ``gap_flag`` and ``regression_flag``;
        ``photo_flags`` lists the sessions whose photo is not usable and
        ``confidence_flags`` those whose figure is low-confidence.
    """
    import pandas as pd

    _check_series(visits, planned_sessions, target_pct)
    rows: list[dict[str, Any]] = []
    gap_flags: list[int] = []
    regression_flags: list[int] = []
    photo_flags: list[tuple[int, str]] = []
    confidence_flags: list[tuple[int, tuple[str, ...]]] = []
    fit = _FitPoints()
    treated_before = 0
    prev: tuple[float, tuple[float, float] | None] | None = None
    for i, v in enumerate(visits):
        session = i + 1
        is_base = i == 0
        pct = 0.0 if is_base else v.improvement_pct
        band = (0.0, 0.0) if is_base else v.band_pct
        gap = (v.date - visits[i - 1].date).days if i else None
        gap_flag = gap is not None and gap > MAX_GAP_DAYS
        regression = not is_base and _regressed(pct, band, prev)
        if gap_flag:
            gap_flags.append(session)
        if regression:
            regression_flags.append(session)
        if not is_base and pct is not None:
            fit.add(treated_before, pct, band)
        if v.photo_status != "ok":
            photo_flags.append((session, v.photo_status))
        if v.low_confidence and not is_base and pct is not None:
            confidence_flags.append((session, v.low_confidence))
        row = _row(v, session, visits[0].date, gap, pct, band, is_base)
        row["gap_flag"] = bool(gap_flag)
        row["regression_flag"] = bool(regression)
        rows.append(row)
        if pct is not None:
            prev = (pct, band)
        if v.treated:
            treated_before += 1

    frame = pd.DataFrame(rows)
    frame["date"] = pd.to_datetime(frame["date"])
    frame["gap_days"] = frame["gap_days"].astype("Int64")
    return Progress(
        frame=frame,
        gap_flags=tuple(gap_flags),
        regression_flags=tuple(regression_flags),
        projection=_projection(fit, planned_sessions, target_pct),
        photo_flags=tuple(photo_flags),
        confidence_flags=tuple(confidence_flags),
    )


def _check_series(visits: Sequence[Visit], planned_sessions: int, target_pct: float) -> None:
    """:func:`summarise`'s argument checks."""
    if not visits:
        raise ValueError("visits must hold at least the baseline visit")
    if planned_sessions < 2:
        raise ValueError(
            f"planned_sessions must be ≥ 2 (baseline and one follow-up), got {planned_sessions!r}"
        )
    if not (math.isfinite(target_pct) and 0 < target_pct <= 100):
        raise ValueError(f"target_pct must be in (0, 100], got {target_pct!r}")
    for v in visits:
        if not isinstance(v, Visit):
            raise ValueError(f"visits must hold Visit objects, got {type(v).__name__}")
    dates = [v.date for v in visits]
    if any(b < a for a, b in zip(dates, dates[1:], strict=False)):
        raise ValueError("visits must be in date order, baseline first")


def _regressed(
    pct: float | None,
    band: tuple[float, float] | None,
    prev: tuple[float, tuple[float, float] | None] | None,
) -> bool:
    """A drop of more than :data:`REGRESSION_POINTS` against the previous measured session
    whose band does not overlap this one's."""
    if pct is None or prev is None:
        return False
    prev_pct, prev_band = prev
    overlap = (
        band is not None
        and prev_band is not None
        and band[1] >= prev_band[0]
        and prev_band[1] >= band[0]
    )
    return prev_pct - pct > REGRESSION_POINTS and not overlap


def _row(
    v: Visit,
    session: int,
    base_date: dt.date,
    gap: int | None,
    pct: float | None,
    band: tuple[float, float] | None,
    is_base: bool,
) -> dict[str, Any]:
    """One session's row of the table (without its flags)."""
    row: dict[str, Any] = {
        "session": session,
        "date": v.date,
        "days_since_baseline": (v.date - base_date).days,
        "gap_days": gap,
        "improvement_pct": pct if pct is not None else math.nan,
        "improvement_low_pct": band[0] if band is not None else math.nan,
        "improvement_high_pct": band[1] if band is not None else math.nan,
    }
    for cls_name in CLASS_NAMES:
        c = 0.0 if is_base else v.by_class_pct.get(cls_name)
        cb = v.by_class_band_pct.get(cls_name)
        if cb is None and c is not None and band is not None and pct is not None:
            cb = (c - (pct - band[0]), min(100.0, c + (band[1] - pct)))
        row[f"{cls_name}_pct"] = c if c is not None else math.nan
        row[f"{cls_name}_low_pct"] = cb[0] if cb is not None else math.nan
        row[f"{cls_name}_high_pct"] = cb[1] if cb is not None else math.nan
    for st in STATUS_COLUMNS:
        row[st] = int(v.vein_counts.get(st, 0))
    row["warnings"] = "; ".join(v.warnings)
    row["photo_status"] = v.photo_status
    row["low_confidence"] = "; ".join(v.low_confidence)
    return row


@dataclass
class _FitPoints:
    """The measured follow-ups the projection is fitted on: treatments before each, and
    the improvement with its band's ends."""

    ks: list[int] = field(default_factory=list)
    mids: list[float] = field(default_factory=list)
    lows: list[float] = field(default_factory=list)
    highs: list[float] = field(default_factory=list)

    def add(self, treated_before: int, pct: float, band: tuple[float, float] | None) -> None:
        self.ks.append(treated_before)
        self.mids.append(pct)
        lo, hi = band if band is not None else (pct, pct)
        self.lows.append(lo)
        self.highs.append(hi)


def _projection(fit: _FitPoints, planned_sessions: int, target_pct: float) -> Projection:
    """The constant-clearance model fitted on the follow-ups, at the planned last session."""
    ks = fit.ks
    q = fit_clearance(ks, fit.mids) if ks else None
    q_lo = fit_clearance(ks, fit.lows) if ks else None
    q_hi = fit_clearance(ks, fit.highs) if ks else None
    # The photo of planned session N is taken before its treatment: it shows N - 1 of them.
    k_end = planned_sessions - 1
    proj, proj_lo, proj_hi = project(q, k_end), project(q_lo, k_end), project(q_hi, k_end)
    if q is None:
        verdict = "unknown"
    elif fit.mids and fit.mids[-1] >= target_pct:
        verdict = "reached"
    elif proj_lo is not None and proj_lo >= target_pct:
        verdict = "likely"
    elif proj is not None and proj >= target_pct:
        verdict = "possible"
    else:
        verdict = "unlikely"
    needed: int | None = None
    if q is not None and q > 0:
        needed = max(1, math.ceil(math.log(1 - target_pct / 100.0) / math.log(1.0 - q)))
    return Projection(
        model=MODEL_DESCRIPTION,
        per_session_clearance=q,
        planned_sessions=planned_sessions,
        projected_pct=proj,
        projected_low_pct=proj_lo,
        projected_high_pct=proj_hi,
        target_pct=float(target_pct),
        verdict=verdict,
        sessions_needed=needed,
    )
