"""The pages' table and appointment helpers (vein_tracker.ui.widgets), without a browser.

Tables: no cell shows "None", and a column mixing types (a date and "no expiry") reaches
Arrow as text instead of raising ArrowTypeError on the server. The next-appointment
window: upcoming, due, overdue.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from vein_tracker.ui import widgets


def test_missing_values_read_as_a_dash_and_mixed_columns_as_text() -> None:
    rows = [
        {
            "pair": "a1",
            "weeks": 6.0,
            "sessions": 3,
            "consent expires": date(2027, 5, 1),
            "client": 4,
            "ok": True,
            "when": datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        },
        {
            "pair": "b2",
            "weeks": 4.5,
            "sessions": 2,
            "consent expires": "no expiry",
            "client": None,
            "ok": False,
            "when": None,
        },
    ]
    # What the pages did before: Arrow refuses the mixed column.
    with pytest.raises(pa.ArrowTypeError):
        pa.Table.from_pandas(pd.DataFrame(rows))
    df = widgets.table_frame(rows)
    pa.Table.from_pandas(df)  # no error now
    assert list(df["consent expires"]) == ["2027-05-01", "no expiry"]
    assert list(df["client"]) == ["4", "—"]
    assert list(df["when"]) == ["2026-03-01 09:30", "—"]
    assert list(df["ok"]) == ["yes", "no"]
    # Columns without a gap keep their type (numbers stay numbers, sortable).
    assert df["sessions"].dtype.kind == "i"
    assert df["weeks"].dtype.kind == "f"
    assert "None" not in df.astype(str).to_numpy().ravel().tolist()
    assert "nan" not in df.astype(str).to_numpy().ravel().tolist()


def test_columns_are_chosen_and_ordered() -> None:
    df = widgets.table_frame([{"a": 1, "b": None, "c": "x"}], columns=["c", "b", "missing"])
    assert list(df.columns) == ["c", "b"]
    assert df.iloc[0].tolist() == ["x", "—"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (float("nan"), "—"),
        (pd.NaT, "—"),
        ("", "—"),
        ("  ", "—"),
        (3.0, "3"),
        (2.5, "2.5"),
        (date(2026, 1, 2), "2026-01-02"),
        (True, "yes"),
        ("text", "text"),
    ],
)
def test_cell_text(value: object, text: str) -> None:
    assert widgets.cell_text(value) == text


def test_next_window_state() -> None:
    start, end = date(2026, 3, 9), date(2026, 3, 30)
    assert widgets.next_window_state(start, end, today=start - timedelta(days=1)) == "upcoming"
    assert widgets.next_window_state(start, end, today=start) == "due"
    assert widgets.next_window_state(start, end, today=end) == "due"
    assert widgets.next_window_state(start, end, today=end + timedelta(days=1)) == "overdue"


def test_overdue_window_is_flagged_on_the_page() -> None:
    from streamlit.testing.v1 import AppTest

    def app() -> None:
        from datetime import UTC, date, datetime, timedelta

        from vein_tracker.storage.info import VisitInfo
        from vein_tracker.ui import widgets

        day = date.today() - timedelta(weeks=7)
        now = datetime.now(UTC)
        fields = {f: None for f in VisitInfo.__dataclass_fields__}
        fields.update(
            id=1,
            client_id=1,
            session_number=2,
            visit_date=day,
            area_ids=(1,),
            next_window_start=day + timedelta(weeks=1),
            next_window_end=day + timedelta(weeks=4),
            created_at=now,
        )
        widgets.next_window([VisitInfo(**fields)], audience="client")

    at = AppTest.from_function(app, default_timeout=60)
    at.run()
    assert not at.exception
    assert len(at.warning) == 1
    text = at.warning[0].value
    assert text.startswith("**Overdue** by 21 days.")
    assert "book your next session soon" in text


def test_low_confidence_figure_is_never_shown_bare() -> None:
    """The reasons come first and the figure is labelled; the target is read from the
    band; a reviewed map is named."""
    from streamlit.testing.v1 import AppTest

    def app() -> None:
        from vein_tracker.ui import widgets

        widgets.improvement_numbers(
            {
                "improvement_pct": 78.0,
                "improvement_band_pct": [70.0, 86.0],
                "target_pct": 75.0,
                "grade": "76-100",
                "confidence": {
                    "level": "low",
                    "reasons": ["Little skin is in view in the follow-up photo."],
                    "codes": ["little_skin"],
                    "notes": [],
                },
                "vein_map": {"reviewed_by": "anna", "reviewed_at": "2026-12-04T10:00:00"},
            }
        )

    at = AppTest.from_function(app, default_timeout=60)
    at.run()
    assert not at.exception
    assert [w.value for w in at.warning] == [
        "**Low confidence.** Little skin is in view in the follow-up photo."
    ]
    labels = [m.label for m in at.metric]
    assert labels[0] == "Improvement (low confidence)"
    target = at.metric[2]
    assert target.delta == "target likely met"
    assert any("Vein map reviewed by anna on 2026-12-04" in c.value for c in at.caption)


def test_notes_are_shown_to_the_clinic_and_not_to_the_client() -> None:
    """What was allowed for without lowering the confidence (here, a part of the view
    that moved and was left out) is said to the clinic under the figure; the client's
    portal keeps to the figure."""
    from streamlit.testing.v1 import AppTest

    def app() -> None:
        import streamlit as st

        from vein_tracker.ui import widgets

        result = {
            "improvement_pct": 62.0,
            "improvement_band_pct": [50.0, 74.0],
            "target_pct": 75.0,
            "confidence": {
                "level": "ok",
                "reasons": [],
                "codes": ["part_moved"],
                "notes": [
                    "Part of the view moved between the photos: 9 % of the skin is left out."
                ],
            },
        }
        widgets.improvement_numbers(result, audience=st.session_state.get("audience", "clinic"))

    at = AppTest.from_function(app, default_timeout=60)
    at.run()
    assert not at.exception
    assert not at.warning
    assert at.metric[0].label == "Improvement"
    assert [c.value for c in at.caption if c.value.startswith("Note:")] == [
        "Note: Part of the view moved between the photos: 9 % of the skin is left out."
    ]
    at.session_state["audience"] = "client"
    at.run()
    assert not at.exception
    assert not [c.value for c in at.caption if c.value.startswith("Note:")]


def test_the_likely_range_says_what_photographs_add_and_what_narrows_it() -> None:
    segmented = {"band_components": {"photo": 16.0}, "params": {"baseline_map": "segmented"}}
    given = {"band_components": {"photo": 12.0}, "params": {"baseline_map": "given"}}
    assert "16 points" in widgets.range_help(segmented)
    assert "a reviewed vein map narrows it" in widgets.range_help(segmented)
    assert "12 points" in widgets.range_help(given)
    assert "narrows" not in widgets.range_help(given)
    # a stored result from before the photographs' spread: the meaning alone
    assert widgets.range_help({}) == "Where the true improvement lies, about 9 times in 10."
