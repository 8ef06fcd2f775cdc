"""The clinical reading of an improvement figure: quartile grade and target status.

One place for two rules every layer shows (the analysis, the app, the PDF report, the
client portal, the export filter, the rating sessions and the agreement statistics):

- the clinical **quartile of clearance** (0-25, 26-50, 51-75, 76-100 %), as an index
  (:func:`quartile`, 0-3) and as its label (:func:`grade_for`);
- whether the clinic's **target is met**, read from the uncertainty band rather than
  from the estimate alone (:func:`target_status`).

Standard library only: the command line's parser and the agreement statistics import
it without numpy or the image analysis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final, Literal

#: Quartile labels, in order (index = :func:`quartile`).
GRADES: Final[tuple[str, ...]] = ("0-25", "26-50", "51-75", "76-100")

#: Upper bounds (inclusive) of the first three quartiles, percent.
_QUARTILE_UPPER_PCT: Final[tuple[float, ...]] = (25.0, 50.0, 75.0)

TargetStatus = Literal["met", "likely", "not yet"]

#: The three target statuses, best first.
TARGET_STATUSES: Final[tuple[TargetStatus, ...]] = ("met", "likely", "not yet")

#: Wording of each status for clinic and client screens and reports.
TARGET_STATUS_TEXT: Final[dict[str, str]] = {
    "met": "target met",
    "likely": "target likely met",
    "not yet": "target not met yet",
}


def quartile(improvement_pct: float) -> int:
    """Quartile grade of a percent clearance as an index 0-3.

    0 for <= 25, 1 for (25, 50], 2 for (50, 75], 3 for > 75: upper bounds are
    inclusive, so 25 is grade 0 and 25.1 grade 1. A negative figure (worse than
    baseline) is grade 0.

    Parameters
    ----------
    improvement_pct : float
        Clearance or improvement, percent.

    Returns
    -------
    int
        0, 1, 2 or 3; :data:`GRADES` gives its label.

    Raises
    ------
    ValueError
        If ``improvement_pct`` is NaN or infinite.
    """
    value = float(improvement_pct)
    if not math.isfinite(value):
        raise ValueError(f"improvement_pct must be a finite percentage, got {improvement_pct!r}")
    for index, upper in enumerate(_QUARTILE_UPPER_PCT):
        if value <= upper:
            return index
    return len(_QUARTILE_UPPER_PCT)


def grade_for(improvement: float) -> str:
    """Quartile label of a percent improvement: ``"0-25"``, ``"26-50"``, ``"51-75"``, ``"76-100"``.

    The label of :func:`quartile` (same bounds). NaN raises ``ValueError``.
    """
    return GRADES[quartile(improvement)]


def target_status(
    estimate_pct: float,
    band_pct: tuple[float, float] | None,
    target_pct: float,
) -> TargetStatus:
    """Whether an improvement meets the clinic's target, given its uncertainty band.

    ``"met"`` when the band's lower end reaches the target, ``"likely"`` when only the
    estimate does, ``"not yet"`` otherwise. A figure of 76 % with a band of 68-85 %
    against a 75 % target is "likely", not "met": its truth may well be below 75 %.
    Without a band (an analysis stored before bands existed) the estimate alone can
    never give "met", only "likely".

    Parameters
    ----------
    estimate_pct : float
        The headline improvement, percent.
    band_pct : (low, high) of float, or None
        The uncertainty band, percent, ``low <= high``.
    target_pct : float
        The clinic's target, percent, in [0, 100].

    Returns
    -------
    {"met", "likely", "not yet"}
        :data:`TARGET_STATUS_TEXT` gives the wording.

    Raises
    ------
    ValueError
        If a value is not finite, ``target_pct`` is outside [0, 100] or the band's
        low end is above its high end.
    """
    estimate = float(estimate_pct)
    target = float(target_pct)
    if not math.isfinite(estimate):
        raise ValueError(f"estimate_pct must be a finite percentage, got {estimate_pct!r}")
    if not (math.isfinite(target) and 0.0 <= target <= 100.0):
        raise ValueError(f"target_pct must be in [0, 100], got {target_pct!r}")
    low: float | None = None
    if band_pct is not None:
        low, high = (float(v) for v in band_pct)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"band_pct must hold two finite percentages, got {band_pct!r}")
        if low > high:
            raise ValueError(f"band_pct must be (low, high) with low <= high, got {band_pct!r}")
    if low is not None and low >= target:
        return "met"
    if estimate >= target:
        return "likely"
    return "not yet"


def target_status_of(
    result: Mapping[str, Any], *, target_pct: float | None = None
) -> TargetStatus | None:
    """:func:`target_status` of a comparison's JSON (``Comparison.to_dict()``, or a stored
    analysis' result): its ``improvement_pct``, ``improvement_band_pct`` and
    ``target_pct`` (or the given ``target_pct``). None when there is no figure."""
    pct = result.get("improvement_pct")
    if isinstance(pct, bool) or not isinstance(pct, int | float) or not math.isfinite(pct):
        return None
    target = target_pct if target_pct is not None else result.get("target_pct", 75.0)
    if not isinstance(target, int | float):
        target = 75.0
    return target_status(float(pct), _band_of(result), float(target))


def reaches(result: Mapping[str, Any], threshold_pct: float) -> bool:
    """Whether a comparison's JSON reaches ``threshold_pct`` by the target rule: its band's
    lower end reaches it ("met"); a result stored without a band, by its estimate. The
    marketing export's minimum-improvement filter reads this, so a pair listed as "at
    least 75 %" is one whose band says so."""
    status = target_status_of(result, target_pct=threshold_pct)
    if status is None:
        return False
    return status == "met" or (status == "likely" and _band_of(result) is None)


def _band_of(result: Mapping[str, Any]) -> tuple[float, float] | None:
    """A comparison's JSON's band, or None when it has none (or a malformed one)."""
    band = result.get("improvement_band_pct")
    if isinstance(band, list | tuple) and len(band) == 2:
        lo, hi = band
        if all(isinstance(v, int | float) and math.isfinite(v) for v in (lo, hi)) and lo <= hi:
            return (float(lo), float(hi))
    return None


def target_met(
    estimate_pct: float, band_pct: tuple[float, float] | None, target_pct: float
) -> bool:
    """True when :func:`target_status` is ``"met"``; a band with a non-finite or crossed
    end counts as no band (so never "met")."""
    band: tuple[float, float] | None = None
    if band_pct is not None:
        lo, hi = (float(v) for v in band_pct)
        if math.isfinite(lo) and math.isfinite(hi) and lo <= hi:
            band = (lo, hi)
    return target_status(estimate_pct, band, target_pct) == "met"
