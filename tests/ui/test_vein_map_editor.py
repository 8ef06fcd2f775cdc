"""The vein map editor component in Debian's Chromium: strokes reach the server as map edits.

Runs tests/ui/vein_map_editor_app.py (a page with only the editor and a known map) with
``streamlit run`` on a free port. Checks that the component renders with no request
leaving the server (no CDN), and that erasing, painting and clicking a vein change the
map the server replays.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_util import settle, streamlit_app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
APP = Path(__file__).resolve().parent / "vein_map_editor_app.py"
MAP_W, MAP_H = 400, 240


@pytest.fixture(scope="module")
def editor_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The component's test page served by Streamlit (``tests/browser_util.streamlit_app``)."""
    with streamlit_app(
        tmp_path_factory.mktemp("editor-log-data"),
        tmp_path_factory.mktemp("editor-log") / "streamlit.log",
        script=APP,
        env={"PYTHONPATH": str(ROOT)},
    ) as base:
        yield base


def _summary(page: Any) -> dict[str, int]:
    text = page.get_by_text(re.compile(r"^summary: ")).inner_text()
    return dict(json.loads(text.split("summary: ", 1)[1]))


def _px(page: Any, name: str) -> int:
    text = page.get_by_text(re.compile(rf"^{name} px: ")).inner_text()
    return int(text.rsplit(" ", 1)[1])


def _screen(box: dict[str, float], x: float, y: float) -> tuple[float, float]:
    """Screen point of map pixel (x, y) on the editor's canvas."""
    return box["x"] + (x + 0.5) * box["width"] / MAP_W, box["y"] + (y + 0.5) * box["height"] / MAP_H


def _drag(page: Any, box: dict[str, float], points: list[tuple[float, float]]) -> None:
    page.mouse.move(*_screen(box, *points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*_screen(box, *p), steps=8)
    page.mouse.up()


def _wait_edits(page: Any, n: int) -> None:
    page.wait_for_function(
        "n => { const s = document.querySelector('[data-testid=stApp]'); "
        "return s && s.innerText.includes('\"edits\": ' + n); }",
        arg=n,
    )
    settle(page)


def test_editor_renders_offline_and_edits_reach_the_server(
    editor_server: str, page_factory: Any
) -> None:
    from playwright.sync_api import expect

    page = page_factory()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(editor_server)
    settle(page)
    canvas = page.locator("[data-testid='vt-vein-map-canvas']")
    expect(canvas).to_be_visible()
    # The photo and the overlay are loaded (data URLs, nothing fetched).
    page.wait_for_function(
        "() => { const hosts = '[data-testid=stBidiComponentIsolated]';"
        " for (const h of document.querySelectorAll(hosts)) {"
        " const r = h.shadowRoot; if (!r) continue;"
        " const i = r.querySelector('.vt-photo'); const o = r.querySelector('.vt-overlay');"
        " if (i && o && i.complete && i.naturalWidth > 0 && o.complete && o.naturalWidth > 0)"
        " return true; } return false; }"
    )
    assert _summary(page)["edits"] == 0
    spider0, reticular0 = _px(page, "spider"), _px(page, "reticular")
    assert (spider0, reticular0) == (3 * 221, 5 * 161)
    box = canvas.bounding_box()
    assert box is not None

    # Erase the middle of the reticular vein (map x = 300, y 100-140).
    page.get_by_role("button", name="Erase").click()
    page.get_by_label("Brush width").fill("12")
    _drag(page, box, [(300, 100), (300, 120), (300, 140)])
    _wait_edits(page, 1)
    s = _summary(page)
    assert s["erased_px"] > 5 * 35
    assert _px(page, "reticular") < reticular0 - 5 * 35
    assert _px(page, "spider") == spider0

    # Paint a missed spider vein along y = 180, x 40-200.
    page.get_by_role("button", name="Add spider vein").click()
    page.get_by_label("Brush width").fill("3")
    _drag(page, box, [(40, 180), (120, 180), (200, 180)])
    _wait_edits(page, 2)
    assert _summary(page)["added_px"] >= 3 * 150
    spider_added = _px(page, "spider")
    assert spider_added >= spider0 + 3 * 150

    # Reject the original spider vein with one click on it; the painted one stays.
    page.get_by_role("button", name="Reject / accept vein").click()
    page.mouse.click(*_screen(box, 150, 60))
    _wait_edits(page, 3)
    s = _summary(page)
    assert s["rejected_veins"] == 1
    assert _px(page, "spider") == spider_added - spider0

    # Undo brings the vein back.
    page.get_by_role("button", name="Undo", exact=True).click()
    _wait_edits(page, 2)
    assert _summary(page)["rejected_veins"] == 0

    # A free-hand region.
    page.get_by_role("button", name="Draw region").click()
    _drag(page, box, [(20, 20), (380, 20), (380, 220), (20, 220), (20, 30)])
    _wait_edits(page, 3)
    assert _summary(page)["roi"] is True

    # Nothing left the server: no CDN, no font or script host (the component's inline
    # module is a blob of the page's own origin).
    local = (editor_server, f"blob:{editor_server}", "data:")
    assert requests
    assert [u for u in requests if not u.startswith(local)] == []
