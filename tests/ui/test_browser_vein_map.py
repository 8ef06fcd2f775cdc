"""Correcting the baseline vein map on the Review page, in Debian's Chromium (issue 22).

An aesthetician opens the seeded pair on Review, turns on "Correct the baseline vein
map", erases a false vein (a piece of the automatic map that covers no true vein of the
phantom, else the largest piece) and paints a missed one (a true vein the automatic map
left out, else a line on bare skin). The figure on the corrected map changes after the
strokes with no re-registration, Save stores a reviewed map version beside the automatic
one, and the audit log holds both saves with the aesthetician's name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from vt_ui_seed import PASSWORD, SHAPE, Seeded, open_test_repo, seed_temp_clinic

from tests.browser_util import settle, sign_in, streamlit_app
from vein_tracker import synthetic

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def review_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Seeded]]:
    seeded = seed_temp_clinic(tmp_path_factory, "vein-map-clinic")
    with streamlit_app(
        seeded.data_dir, tmp_path_factory.mktemp("vein-map-log") / "streamlit.log"
    ) as base:
        yield base, seeded


def _strokes(seeded: Seeded) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """An eraser path over a false vein and a brush path along a missed one (map px)."""
    import cv2

    from vein_tracker.measure import compare

    repo = open_test_repo(seeded.data_dir)
    try:
        anna = repo.authenticate("anna", PASSWORD)
        b = repo.load_photo(anna, seeded.baseline_a)
        f = repo.load_photo(anna, seeded.followup_a)
    finally:
        repo.close()
    auto = compare(b, f).baseline_seg.labels
    assert auto.shape == SHAPE  # a small photo is analysed at its own size
    # The seeded photos are seed 3's phantom (tests/ui/vt_ui_seed.py).
    truth = synthetic.make_pair(
        3, shape=SHAPE, capture=synthetic.random_capture(3, blur_sigma=(0.0, 0.3))
    ).baseline.labels
    near_truth = cv2.dilate((truth > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    n, comp = cv2.connectedComponents((auto > 0).astype(np.uint8), connectivity=8)
    pieces = [comp == i for i in range(1, n)]
    false = [p for p in pieces if p.sum() >= 20 and (p & near_truth).mean() < 0.2]
    target = max(false or pieces, key=lambda p: int(p.sum()))
    ys, xs = np.nonzero(target)
    order = np.argsort(xs if np.ptp(xs) >= np.ptp(ys) else ys)
    erase = [(float(xs[k]), float(ys[k])) for k in order[:: max(1, len(order) // 12)]]
    near_auto = cv2.dilate((auto > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    missed = (truth > 0) & ~near_auto
    if missed.sum() >= 30:
        ys, xs = np.nonzero(missed)
        order = np.argsort(xs)
        add = [(float(xs[k]), float(ys[k])) for k in order[:: max(1, len(order) // 10)]]
    else:
        y = int(np.argmin(np.abs(np.arange(SHAPE[0]) - SHAPE[0] * 0.8)))
        add = [(SHAPE[1] * 0.3, float(y)), (SHAPE[1] * 0.5, float(y))]
    return erase, add


def _screen(box: dict[str, float], x: float, y: float) -> tuple[float, float]:
    h, w = SHAPE
    return box["x"] + (x + 0.5) * box["width"] / w, box["y"] + (y + 0.5) * box["height"] / h


def _drag(page: Any, box: dict[str, float], points: list[tuple[float, float]]) -> None:
    page.mouse.move(*_screen(box, *points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*_screen(box, *p), steps=4)
    page.mouse.up()


def _measured(page: Any) -> str:
    return str(page.get_by_text(re.compile(r"^Measured on this map: ")).inner_text())


def test_aesthetician_corrects_the_vein_map_and_the_figure_follows(
    review_server: tuple[str, Seeded], page_factory: Any
) -> None:
    from playwright.sync_api import expect

    base, seeded = review_server
    erase, add = _strokes(seeded)
    page = page_factory(1280, 1400)
    sign_in(page, base, "anna", PASSWORD)
    page.get_by_role("link", name="Review").click()
    settle(page)
    headline = re.compile(r"^Improvement( \(low confidence\))?$")
    expect(page.get_by_text(headline).first).to_be_visible()
    page.get_by_text("Correct the baseline vein map").click()
    settle(page)
    canvas = page.locator("[data-testid='vt-vein-map-canvas']")
    expect(canvas).to_be_visible()
    canvas.scroll_into_view_if_needed()
    before = _measured(page)
    box = canvas.bounding_box()
    assert box is not None

    page.get_by_role("button", name="Erase").click()
    page.get_by_label("Brush width").fill("9")
    _drag(page, box, erase)
    expect(page.get_by_text(re.compile(r"^1 edit\(s\): "))).to_be_visible()
    settle(page)
    page.get_by_role("button", name="Add spider vein").click()
    page.get_by_label("Brush width").fill("3")
    box = canvas.bounding_box()
    assert box is not None
    _drag(page, box, add)
    expect(page.get_by_text(re.compile(r"^2 edit\(s\): "))).to_be_visible()
    settle(page)
    after = _measured(page)
    # The figure on the corrected map, measured again at once, is another one.
    assert after != before, (before, after)
    summary = page.get_by_text(re.compile(r"^2 edit\(s\): ")).inner_text()
    added, erased = (int(v) for v in re.findall(r"(\d+) px", summary))
    assert added > 0
    assert erased > 0

    page.get_by_role("button", name="Save the corrected map").click()
    settle(page)
    expect(page.get_by_text(re.compile("Corrected vein map saved as version 2"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"vein map reviewed by anna on "))).to_be_visible()

    repo = open_test_repo(seeded.data_dir)
    try:
        adam = repo.authenticate("adam", PASSWORD)
        anna = repo.authenticate("anna", PASSWORD)
        events = repo.list_audit(adam, action="vein_map_save")
        assert [(e.username, e.detail["kind"]) for e in events] == [
            ("anna", "reviewed"),
            ("anna", "automatic"),
        ]
        assert events[0].detail["summary"]["added_px"] == added
        maps = repo.list_vein_maps(anna, seeded.baseline_a)
        assert [(m.version, m.kind) for m in maps] == [(1, "automatic"), (2, "reviewed")]
        # The figure on the corrected map is the pair's newest saved analysis.
        newest = max(repo.list_analyses(anna, seeded.area_a), key=lambda a: a.id)
        assert newest.result["vein_map"]["version_id"] == maps[1].id
        assert newest.params["baseline_map_version"] == maps[1].id
    finally:
        repo.close()
