"""Corrections of a vein map (vein_tracker.vein_map): known edits on known maps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vein_tracker.vein_map import (
    MAX_EDITS,
    RETICULAR,
    SPIDER,
    MapEdit,
    apply_edits,
    parse_edits,
    reviewed_note,
    scale_edits,
)


@pytest.fixture
def labels() -> np.ndarray:
    """Two spider veins (one horizontal, one diagonal) and one reticular vein."""
    lab = np.zeros((120, 160), np.uint8)
    lab[30, 10:70] = SPIDER
    for i in range(40):
        lab[70 + i // 2, 20 + i] = SPIDER
    lab[20:100, 120:123] = RETICULAR
    return lab


def test_no_edit_keeps_the_map_and_never_modifies_the_input(labels: np.ndarray) -> None:
    before = labels.copy()
    out = apply_edits(labels, [])
    assert np.array_equal(out.labels, labels)
    assert out.labels is not labels
    assert out.roi is None
    assert not out.changed
    out = apply_edits(labels, [{"op": "erase", "width_px": 9, "points": [[40, 30]]}])
    assert np.array_equal(labels, before)


def test_erase_clears_only_the_stroke(labels: np.ndarray) -> None:
    out = apply_edits(labels, [{"op": "erase", "width_px": 6, "points": [[121, 40], [121, 60]]}])
    # The stroke covers the reticular vein from y = 37 to 63 (half-width 3 at each end).
    assert not out.labels[40:61, 120:123].any()
    assert out.labels[20:35, 120:123].all()
    assert out.labels[66:100, 120:123].all()
    assert np.array_equal(out.labels[:, :100], labels[:, :100])
    assert out.erased_px == np.count_nonzero((labels > 0) & (out.labels == 0))
    assert out.added_px == 0


def test_brush_adds_a_vein_of_the_chosen_class(labels: np.ndarray) -> None:
    stroke = {"op": "add", "cls": RETICULAR, "width_px": 3, "points": [[10, 110], [90, 110]]}
    out = apply_edits(labels, [stroke])
    assert (out.labels[109:112, 12:89] == RETICULAR).all()
    assert out.added_px >= 3 * 77
    assert out.erased_px == 0
    # Painting over a spider vein reclassifies it.
    over = {"op": "add", "cls": RETICULAR, "width_px": 1, "points": [[10, 30], [69, 30]]}
    out = apply_edits(labels, [over])
    assert (out.labels[30, 10:70] == RETICULAR).all()
    assert out.reclassified_px == 60
    assert out.added_px == 0


def test_click_rejects_the_whole_vein_and_a_second_click_accepts_it(labels: np.ndarray) -> None:
    # A click 3 px off the diagonal vein picks all of it, and only it.
    click = {"op": "toggle", "x": 40.0, "y": 83.0}
    out = apply_edits(labels, [click])
    assert out.rejected_veins == 1
    assert out.erased_px == 40
    assert (out.labels[30, 10:70] == SPIDER).all()
    assert (out.labels[20:100, 120:123] == RETICULAR).all()
    again = apply_edits(labels, [click, click])
    assert np.array_equal(again.labels, labels)
    assert again.rejected_veins == 0


def test_click_far_from_any_vein_does_nothing(labels: np.ndarray) -> None:
    out = apply_edits(labels, [{"op": "toggle", "x": 100, "y": 5}])
    assert np.array_equal(out.labels, labels)


def test_accepting_again_keeps_what_was_painted_since(labels: np.ndarray) -> None:
    reject = {"op": "toggle", "x": 30, "y": 30}
    paint = {"op": "add", "cls": RETICULAR, "width_px": 1, "points": [[10, 30], [20, 30]]}
    out = apply_edits(labels, [reject, paint, {"op": "toggle", "x": 50, "y": 30}])
    # The click at x=50 finds no vein (only x 10-20 were painted), so it restores the
    # rejected vein; the painted part keeps its new class.
    assert (out.labels[30, 10:21] == RETICULAR).all()
    assert (out.labels[30, 21:70] == SPIDER).all()


def test_free_hand_region_replaces_and_clears(labels: np.ndarray) -> None:
    tri = {"op": "roi", "points": [[0, 0], [159, 0], [0, 119]]}
    out = apply_edits(labels, [tri])
    assert out.roi is not None
    assert out.roi.dtype == bool
    assert out.roi[5, 5]
    assert not out.roi[115, 155]
    # Area of the right triangle, within the raster's edge pixels.
    assert abs(int(out.roi.sum()) - 160 * 120 / 2) < 160 + 120
    assert out.changed
    cleared = apply_edits(labels, [tri, {"op": "roi_clear"}])
    assert cleared.roi is None
    start = np.zeros(labels.shape, bool)
    start[10:20, 10:20] = True
    kept = apply_edits(labels, [], roi=start)
    assert kept.roi is not None
    assert np.array_equal(kept.roi, start)


def test_points_off_the_map_stay_on_its_edge(labels: np.ndarray) -> None:
    out = apply_edits(labels, [{"op": "erase", "width_px": 3, "points": [[-50, -50], [500, 500]]}])
    assert out.erased_px > 0  # the diagonal stroke crosses the map corner to corner


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.builds(
                lambda c, w, p: {"op": "add", "cls": c, "width_px": w, "points": p},
                st.sampled_from([1, 2]),
                st.floats(0.5, 12),
                st.lists(
                    st.tuples(st.floats(-10, 170), st.floats(-10, 130)), min_size=1, max_size=6
                ),
            ),
            st.builds(
                lambda w, p: {"op": "erase", "width_px": w, "points": p},
                st.floats(0.5, 12),
                st.lists(
                    st.tuples(st.floats(-10, 170), st.floats(-10, 130)), min_size=1, max_size=6
                ),
            ),
            st.builds(
                lambda x, y: {"op": "toggle", "x": x, "y": y}, st.floats(0, 159), st.floats(0, 119)
            ),
        ),
        max_size=8,
    )
)
def test_replay_is_deterministic_and_counts_match(ops: list[dict[str, object]]) -> None:
    lab = np.zeros((120, 160), np.uint8)
    lab[30, 10:70] = SPIDER
    lab[20:100, 120:123] = RETICULAR
    a = apply_edits(lab, ops)
    b = apply_edits(lab, [e.to_dict() for e in parse_edits(ops, shape=lab.shape)])
    assert np.array_equal(a.labels, b.labels)
    assert set(np.unique(a.labels)) <= {0, 1, 2}
    was, now = lab > 0, a.labels > 0
    assert a.added_px == np.count_nonzero(now & ~was)
    assert a.erased_px == np.count_nonzero(was & ~now)


def test_scale_edits_maps_points_and_widths() -> None:
    edits = [{"op": "add", "cls": 1, "width_px": 4, "points": [[10, 20], [30, 40]]}]
    scaled = scale_edits(edits, src_shape=(100, 200), dst_shape=(200, 400))
    assert scaled == [
        {"op": "add", "cls": 1, "width_px": 8.0, "points": [[20.0, 40.0], [60.0, 80.0]]}
    ]
    toggle = scale_edits([{"op": "toggle", "x": 5, "y": 6}], src_shape=(10, 10), dst_shape=(20, 30))
    assert toggle == [{"op": "toggle", "x": 15.0, "y": 12.0}]


@pytest.mark.parametrize(
    ("edits", "needle"),
    [
        ({"op": "add"}, "must be a list"),
        ([{"op": "paint"}], "unknown op"),
        ([{"op": "add", "cls": 3, "width_px": 2, "points": [[1, 1]]}], "cls must be 1"),
        ([{"op": "add", "cls": True, "width_px": 2, "points": [[1, 1]]}], "cls must be 1"),
        ([{"op": "erase", "width_px": 0, "points": [[1, 1]]}], "width_px"),
        ([{"op": "erase", "width_px": 2, "points": []}], "non-empty list"),
        ([{"op": "erase", "width_px": 2, "points": [[1, "a"]]}], "must be a number"),
        ([{"op": "erase", "width_px": 2, "points": [[1, float("nan")]]}], "finite"),
        ([{"op": "erase", "width_px": 2, "points": [[1, 2, 3]]}], "[x, y] pairs"),
        ([{"op": "roi", "points": [[1, 1], [2, 2]]}], "at least 3 points"),
        ([{"op": "toggle", "x": None, "y": 1}], "must be a number"),
        (["add"], "must be an object"),
        ([{"op": "roi_clear"}] * (MAX_EDITS + 1), "at most"),
    ],
)
def test_bad_edits_are_refused(labels: np.ndarray, edits: object, needle: str) -> None:
    with pytest.raises(ValueError, match="edits") as exc:
        apply_edits(labels, edits)
    assert needle in str(exc.value)


def test_bad_maps_are_refused(labels: np.ndarray) -> None:
    with pytest.raises(ValueError, match="labels"):
        apply_edits(labels.astype(np.int32), [])
    with pytest.raises(ValueError, match="labels"):
        apply_edits(np.full((4, 4), 3, np.uint8), [])
    with pytest.raises(ValueError, match="roi"):
        apply_edits(labels, [], roi=np.ones((3, 3), bool))


def test_map_edit_round_trip() -> None:
    e = MapEdit("roi", ((1.0, 2.0), (3.0, 4.0), (5.0, 1.0)))
    assert parse_edits([e.to_dict()], shape=(10, 10)) == (e,)
    assert parse_edits(None, shape=(10, 10)) == ()


def test_reviewed_note_of_an_analysis() -> None:
    result = {"vein_map": {"reviewed_by": "anna", "reviewed_at": "2026-12-04T10:00:00+00:00"}}
    assert reviewed_note(result) == "vein map reviewed by anna on 2026-12-04"
    assert reviewed_note({"vein_map": {}}) == "vein map reviewed by the clinic"
    assert reviewed_note({"improvement_pct": 50.0}) is None
