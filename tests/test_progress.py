"""Tests of vein_tracker.progress: the session table, flags and the projection model."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from vein_tracker.progress import (
    MODEL_DESCRIPTION,
    Visit,
    fit_clearance,
    project,
    summarise,
)

D0 = date(2026, 1, 5)


def _series(pcts: list[float], gaps_days: list[int], half: float = 4.0) -> list[Visit]:
    visits = [Visit(date=D0)]
    d = D0
    for p, g in zip(pcts, gaps_days, strict=True):
        d = d + timedelta(days=g)
        visits.append(
            Visit(
                date=d,
                improvement_pct=p,
                band_pct=(p - half, min(100.0, p + half)),
                by_class_pct={"spider": p + 5, "reticular": p - 5},
                vein_counts={"cleared": 3, "faded": 2, "persisting": 1, "new": 0},
                warnings=("poor capture: blur",) if p < 0 else (),
            )
        )
    return visits


def test_fit_clearance_exact() -> None:
    # 50 % after one session, 75 % after two: q = 0.5 exactly
    assert fit_clearance([1, 2], [50.0, 75.0]) == pytest.approx(0.5)
    assert fit_clearance([2], [75.0]) == pytest.approx(0.5)
    assert fit_clearance([1], [-20.0]) == 0.0
    assert fit_clearance([], []) is None
    assert project(0.5, 3) == pytest.approx(87.5)
    assert project(None, 3) is None
    with pytest.raises(ValueError, match="same length"):
        fit_clearance([1, 2], [50.0])


def test_summarise_table_columns_and_values() -> None:
    visits = _series([40.0, 64.0], [21, 21])
    prog = summarise(visits, planned_sessions=4, target_pct=75.0)
    f = prog.frame
    assert isinstance(f, pd.DataFrame)
    assert list(f["session"]) == [1, 2, 3]
    assert list(f["days_since_baseline"]) == [0, 21, 42]
    assert f["improvement_pct"].tolist() == [0.0, 40.0, 64.0]
    assert f["improvement_low_pct"].tolist() == [0.0, 36.0, 60.0]
    assert f["spider_pct"].tolist() == [0.0, 45.0, 69.0]
    assert f["reticular_low_pct"].iloc[2] == pytest.approx(59.0 - 4.0)
    for col in ("cleared", "faded", "persisting", "new", "recanalised", "warnings"):
        assert col in f.columns
    assert f["cleared"].tolist() == [0, 3, 3]
    assert not f["gap_flag"].any()
    assert not f["regression_flag"].any()
    # q from 40 % at k=1 and 64 % at k=2: remaining 0.6 and 0.36 → q = 0.4 exactly
    p = prog.projection
    assert p.per_session_clearance == pytest.approx(0.4)
    assert p.projected_pct == pytest.approx(100 * (1 - 0.6**3))  # session 4 shows 3 treatments
    assert p.verdict == "possible"  # 78.4 central; the low end (bands ±4) falls short
    assert p.sessions_needed == 3
    assert p.model == MODEL_DESCRIPTION
    d = prog.to_dict()
    assert d["sessions"][0]["date"].startswith("2026-01-05")
    assert d["projection"]["verdict"] == "possible"


def test_summarise_flags_gap_and_regression() -> None:
    visits = _series([60.0, 30.0, 31.0], [14, 35, 14], half=3.0)
    prog = summarise(visits)
    assert prog.gap_flags == (3,)  # 35 days > 4 weeks before session 3
    assert prog.regression_flags == (3,)  # 60 → 30, bands apart
    f = prog.frame
    assert f["gap_flag"].tolist() == [False, False, True, False]
    assert f["regression_flag"].tolist() == [False, False, True, False]
    assert f["gap_days"].iloc[2] == 35
    assert pd.isna(f["gap_days"].iloc[0])


def test_summarise_small_drop_within_bands_is_not_regression() -> None:
    visits = _series([60.0, 57.0], [14, 14], half=4.0)
    assert summarise(visits).regression_flags == ()


@pytest.mark.parametrize(
    ("pcts", "verdict"),
    [
        ([80.0], "reached"),
        ([60.0], "likely"),  # q = 0.6: 93.6 % by session 4, low end (56) gives 91.2 %
        ([20.0], "unlikely"),  # q = 0.2: 48.8 %
    ],
)
def test_projection_verdicts(pcts: list[float], verdict: str) -> None:
    prog = summarise(_series(pcts, [21] * len(pcts)), planned_sessions=4)
    assert prog.projection.verdict == verdict


def test_projection_unknown_with_baseline_only() -> None:
    prog = summarise([Visit(date=D0)])
    assert prog.projection.verdict == "unknown"
    assert prog.projection.projected_pct is None
    assert len(prog.frame) == 1


def test_untreated_session_does_not_count() -> None:
    visits = [
        Visit(date=D0),
        Visit(date=D0 + timedelta(days=14), improvement_pct=50.0, treated=False),
        Visit(date=D0 + timedelta(days=28), improvement_pct=50.0),
    ]
    # session 2 was a photo only: both follow-ups show one treatment
    prog = summarise(visits, planned_sessions=3)
    assert prog.projection.per_session_clearance == pytest.approx(0.5)


def test_visit_from_dict_and_datetime() -> None:
    v = Visit.from_dict(
        datetime(2026, 2, 1, 10, 30),
        {
            "improvement_pct": 55.5,
            "improvement_band_pct": [50.0, 61.0],
            "improvement_by_class_pct": {"spider": 60.0, "reticular": None},
            "veins": {"cleared": 2, "faded": 1, "persisting": 0, "new": 1},
            "warnings": ["little overlap"],
        },
    )
    assert v.date == date(2026, 2, 1)
    assert v.band_pct == (50.0, 61.0)
    prog = summarise([Visit(date=D0), v])
    assert math.isnan(prog.frame["reticular_pct"].iloc[1])
    assert prog.frame["warnings"].iloc[1] == "little overlap"
    assert prog.to_dict()["sessions"][1]["reticular_pct"] is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"planned_sessions": 1}, "planned_sessions"),
        ({"target_pct": 0.0}, "target_pct"),
        ({"target_pct": float("nan")}, "target_pct"),
    ],
)
def test_summarise_bad_options(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        summarise([Visit(date=D0)], **kwargs)  # type: ignore[arg-type]


def test_summarise_bad_visits() -> None:
    with pytest.raises(ValueError, match="visits"):
        summarise([])
    with pytest.raises(ValueError, match="date order"):
        summarise([Visit(date=D0), Visit(date=D0 - timedelta(days=1), improvement_pct=10.0)])
    with pytest.raises(ValueError, match="Visit"):
        summarise(["2026-01-01"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="date"):
        Visit.from_dict("2026-01-01", {})  # type: ignore[arg-type]


def test_low_confidence_session_is_flagged_with_its_reasons() -> None:
    """A stored result whose confidence is low gives a flagged session (never a bare
    figure); an ok one, or one stored before results carried a confidence, does not."""
    low = {
        "improvement_pct": 60.0,
        "improvement_band_pct": [50.0, 70.0],
        "confidence": {
            "level": "low",
            "reasons": ["The scale is 3 px/mm: spider veins need 5 px/mm."],
            "codes": ["scale_too_coarse"],
            "notes": [],
        },
    }
    ok = dict(low, improvement_pct=70.0, improvement_band_pct=[65.0, 75.0])
    ok["confidence"] = {"level": "ok", "reasons": [], "codes": [], "notes": []}
    old = {"improvement_pct": 72.0, "improvement_band_pct": [66.0, 78.0]}
    visits = [
        Visit(date=D0),
        Visit.from_dict(D0 + timedelta(days=21), low),
        Visit.from_dict(D0 + timedelta(days=42), ok),
        Visit.from_dict(D0 + timedelta(days=63), old),
    ]
    assert visits[1].low_confidence == ("The scale is 3 px/mm: spider veins need 5 px/mm.",)
    assert visits[2].low_confidence == ()
    assert visits[3].low_confidence == ()
    prog = summarise(visits)
    assert prog.confidence_flags == ((2, visits[1].low_confidence),)
    assert list(prog.frame["low_confidence"]) == ["", visits[1].low_confidence[0], "", ""]
    assert prog.to_dict()["confidence_flags"] == [[2, list(visits[1].low_confidence)]]
