"""The quartile rule and "target met" read from the band (vein_tracker.outcome)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vein_tracker.outcome import (
    GRADES,
    TARGET_STATUS_TEXT,
    TARGET_STATUSES,
    grade_for,
    quartile,
    target_met,
    target_status,
    target_status_of,
)


@pytest.mark.parametrize(
    ("pct", "index"),
    [
        (-12.0, 0),
        (0.0, 0),
        (25.0, 0),
        (25.000001, 1),
        (50.0, 1),
        (50.5, 2),
        (75.0, 2),
        (75.01, 3),
        (100.0, 3),
        (130.0, 3),
    ],
)
def test_quartile_bounds_are_inclusive_above(pct: float, index: int) -> None:
    assert quartile(pct) == index
    assert grade_for(pct) == GRADES[index]


@given(st.floats(min_value=-50, max_value=150, allow_nan=False))
def test_quartile_is_the_count_of_bounds_below(pct: float) -> None:
    # Independent statement of the rule: the number of quartile bounds strictly below.
    assert quartile(pct) == sum(pct > b for b in (25.0, 50.0, 75.0))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_quartile_rejects_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="improvement_pct"):
        quartile(bad)


def test_target_status_reads_the_band() -> None:
    # The case: 76 % (68-85 %) against 75 % is not "met", only "likely".
    assert target_status(76.0, (68.0, 85.0), 75.0) == "likely"
    assert target_status(80.0, (75.0, 86.0), 75.0) == "met"
    assert target_status(90.0, (82.0, 95.0), 75.0) == "met"
    assert target_status(74.9, (60.0, 80.0), 75.0) == "not yet"
    assert target_status(75.0, (70.0, 80.0), 75.0) == "likely"
    # Without a band the estimate alone never claims "met".
    assert target_status(95.0, None, 75.0) == "likely"
    assert target_status(40.0, None, 75.0) == "not yet"
    # Another clinic target.
    assert target_status(62.0, (55.0, 70.0), 50.0) == "met"
    assert set(TARGET_STATUS_TEXT) == set(TARGET_STATUSES)


@given(
    est=st.floats(0, 100),
    lo_off=st.floats(0, 30),
    hi_off=st.floats(0, 30),
    target=st.floats(0, 100),
)
def test_target_status_is_monotone_in_evidence(
    est: float, lo_off: float, hi_off: float, target: float
) -> None:
    band = (est - lo_off, est + hi_off)
    status = target_status(est, band, target)
    assert status == ("met" if band[0] >= target else "likely" if est >= target else "not yet")
    # A band read more narrowly never gives a worse status.
    narrower = target_status(est, (est - lo_off / 2, est + hi_off), target)
    assert TARGET_STATUSES.index(narrower) <= TARGET_STATUSES.index(status)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((math.nan, (1.0, 2.0), 75.0), "estimate_pct"),
        ((50.0, (1.0, 2.0), 120.0), "target_pct"),
        ((50.0, (1.0, 2.0), -1.0), "target_pct"),
        ((50.0, (60.0, 40.0), 75.0), "band_pct"),
        ((50.0, (math.nan, 40.0), 75.0), "band_pct"),
    ],
)
def test_target_status_rejects_bad_input(
    args: tuple[float, tuple[float, float], float], name: str
) -> None:
    with pytest.raises(ValueError, match=name):
        target_status(*args)


def test_target_status_of_a_comparison_json() -> None:
    base = {"improvement_pct": 76.0, "improvement_band_pct": [68.0, 85.0], "target_pct": 75.0}
    assert target_status_of(base) == "likely"
    assert target_status_of({**base, "improvement_band_pct": [75.5, 85.0]}) == "met"
    assert target_status_of({**base, "improvement_band_pct": None}) == "likely"
    assert target_status_of(base, target_pct=60.0) == "met"
    assert target_status_of({**base, "improvement_pct": None}) is None
    assert target_status_of({}) is None
    # A stored result whose band was written as null ends (non-finite) reads without band.
    assert target_status_of({**base, "improvement_band_pct": [None, None]}) == "likely"


def test_target_met_needs_a_usable_band() -> None:
    assert target_met(80.0, (76.0, 84.0), 75.0)
    assert not target_met(80.0, (70.0, 84.0), 75.0)
    assert not target_met(80.0, None, 75.0)
    assert not target_met(80.0, (float("nan"), 84.0), 75.0)
    assert not target_met(80.0, (84.0, 76.0), 75.0)


def test_reaches_is_the_target_rule_on_the_band() -> None:
    """The export's minimum-improvement filter: the band's lower end must reach it; a
    result stored without a band is read by its estimate."""
    from vein_tracker.outcome import reaches

    pair = {"improvement_pct": 79.5, "improvement_band_pct": [72.0, 86.0]}
    assert reaches(pair, 70.0)
    assert not reaches(pair, 75.0)  # "likely", not "met"
    assert reaches({"improvement_pct": 80.0}, 75.0)
    assert not reaches({"improvement_pct": 70.0}, 75.0)
    assert not reaches({"improvement_pct": None}, 0.0)
    assert reaches({"improvement_pct": 80.0, "improvement_band_pct": [75.0, 85.0]}, 75.0)
