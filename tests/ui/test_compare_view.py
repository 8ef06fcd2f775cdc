"""The before/after comparison in Debian's Chromium: client-side moves, no reruns, touch.

Runs tests/ui/compare_view_app.py (the component over three known frames and a counter
of the script's runs) with ``streamlit run`` on a free port. Every move (mouse drag,
range input, zoom buttons, session choice, touch drag, pinch) must change the view and
leave the run counter, the script state and the WebSocket alone: no rerun, no message
to the server. The photos are data URLs: no request leaves the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_util import TIMEOUT_MS, settle, streamlit_app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
APP = Path(__file__).resolve().parent / "compare_view_app.py"
ROOT_SEL = "[data-testid='vt-compare']"
VIEW_SEL = "[data-testid='vt-compare-view']"


@pytest.fixture(scope="module")
def compare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The component's test page served by Streamlit (``tests/browser_util.streamlit_app``)."""
    with streamlit_app(
        tmp_path_factory.mktemp("compare-log-data"),
        tmp_path_factory.mktemp("compare-log") / "streamlit.log",
        script=APP,
        env={"PYTHONPATH": str(ROOT)},
    ) as base:
        yield base


class Watch:
    """What the page sends and requests, and every change of the script state."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.foreign: list[str] = []
        self.sent: list[str] = []
        page.on("request", self._request)
        page.on("websocket", lambda ws: ws.on("framesent", self._frame))

    def _request(self, request: Any) -> None:
        url = str(request.url)
        # The page's own server, the pictures' data URLs, and the component's code that
        # Streamlit hands to the browser as a same-origin blob.
        if not url.startswith((self.base, "data:", f"blob:{self.base}")):
            self.foreign.append(url)

    def _frame(self, payload: Any) -> None:
        self.sent.append(repr(payload)[:80])

    def open(self) -> None:
        self.page.goto(self.base)
        settle(self.page)
        self.page.wait_for_selector(VIEW_SEL, state="visible", timeout=TIMEOUT_MS)
        # every picture decoded
        self.page.wait_for_function(
            """() => {
                const root = document.querySelector('[data-testid="stApp"]');
                const imgs = [];
                const walk = (n) => {
                    if (n.shadowRoot) walk(n.shadowRoot);
                    for (const c of n.children || []) walk(c);
                    if (n.tagName === 'IMG' && n.classList.contains('vt-cmp-img')) imgs.push(n);
                };
                walk(root);
                return imgs.length === 4 && imgs.every((i) => i.complete && i.naturalWidth > 0);
            }""",
            timeout=TIMEOUT_MS,
        )
        settle(self.page)
        # Record every change of the script state from here on (a rerun flips it).
        self.page.evaluate(
            """() => {
                const app = document.querySelector('[data-testid="stApp"]');
                window.__vtStates = [];
                new MutationObserver(() => window.__vtStates.push(
                    app.getAttribute('data-test-script-state'))
                ).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
            }"""
        )
        self.sent.clear()

    def runs(self) -> int:
        text = self.page.get_by_text("script runs:").inner_text()
        return int(text.rsplit(" ", 1)[1])

    def state(self) -> dict[str, str]:
        return dict(self.page.locator(ROOT_SEL).evaluate("(e) => Object.assign({}, e.dataset)"))

    def assert_no_rerun(self, runs_before: int) -> None:
        self.page.wait_for_timeout(600)  # a rerun, if any, would have started by now
        assert self.page.evaluate("() => window.__vtStates") == []
        assert self.sent == [], f"messages sent to the server: {self.sent}"
        assert self.runs() == runs_before
        assert self.foreign == []


def _box(page: Any) -> dict[str, float]:
    box = page.locator(VIEW_SEL).first.bounding_box()
    assert box is not None
    return dict(box)


def test_mouse_wipe_zoom_pan_and_sessions_run_no_script(compare_server: str, browser: Any) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = ctx.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        watch = Watch(page, compare_server)
        watch.open()
        runs = watch.runs()
        assert watch.state()["wipe"] == "50"
        assert watch.state()["left"] == "0"
        assert watch.state()["right"] == "2"

        # Drag the wipe line from the middle to 20 % of the width.
        box = _box(page)
        y = box["y"] + box["height"] * 0.7
        page.mouse.move(box["x"] + box["width"] * 0.5, y)
        page.mouse.down()
        for f in (0.45, 0.35, 0.25, 0.2):
            page.mouse.move(box["x"] + box["width"] * f, y, steps=4)
        page.mouse.up()
        assert abs(float(watch.state()["wipe"]) - 20.0) < 1.5
        # The before picture is clipped at the line: what shows at 10 % is before, at 30 %
        # after (the frames' halves differ, the wipe is seen in the pixels).
        clip = page.locator(".vt-cmp-clip").first.evaluate("(e) => e.style.clipPath")
        assert "80%" in clip

        # Zoom with the button, then drag to pan: the scale and the offset change.
        page.get_by_role("button", name="Zoom in").click()
        page.get_by_role("button", name="Zoom in").click()
        assert float(watch.state()["scale"]) == pytest.approx(2.25, abs=0.01)
        before = page.locator(".vt-cmp-layer").first.evaluate("(e) => e.style.transform")
        page.mouse.move(box["x"] + box["width"] * 0.8, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, y - 40, steps=5)
        page.mouse.up()
        after = page.locator(".vt-cmp-layer").first.evaluate("(e) => e.style.transform")
        assert before != after

        # The range under the picture moves the wipe too.
        page.get_by_label("Wipe: before ◀ ▶ after").fill("75")
        assert watch.state()["wipe"] == "75"

        # Side by side, and another pair of sessions: still the same script run.
        page.get_by_role("button", name="Side by side").click()
        assert watch.state()["mode"] == "side"
        assert page.locator(VIEW_SEL).nth(1).is_visible()
        assert page.locator(VIEW_SEL).nth(2).is_visible()
        page.get_by_label("After: session").select_option("1")
        assert watch.state()["right"] == "1"
        # Synchronised: both pictures carry the same zoom and offset.
        transforms = page.locator(".vt-cmp-pair .vt-cmp-layer").evaluate_all(
            "(els) => els.map((e) => e.style.transform)"
        )
        assert len(set(transforms)) == 1
        assert "scale(2.25)" in transforms[0]
        watch.assert_no_rerun(runs)

        # Control: a real rerun is seen by the same watch.
        page.get_by_role("button", name="Rerun the page").click()
        settle(page)
        assert watch.runs() == runs + 1
        assert watch.sent
        assert len(page.locator(ROOT_SEL).all()) == 1
    finally:
        ctx.close()


def _touch(cdp: Any, kind: str, points: list[tuple[float, float]]) -> None:
    cdp.send(
        "Input.dispatchTouchEvent",
        {
            "type": kind,
            "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)],
        },
    )


def test_phone_touch_drag_and_pinch_run_no_script(compare_server: str, browser: Any) -> None:
    ctx = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    try:
        page = ctx.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        watch = Watch(page, compare_server)
        watch.open()
        runs = watch.runs()
        page.locator(VIEW_SEL).first.scroll_into_view_if_needed()
        box = _box(page)
        # The picture fills the phone's width, and the wipe's range sits right under it.
        assert box["width"] > 300
        rng = page.get_by_label("Wipe: before ◀ ▶ after").bounding_box()
        assert rng is not None
        assert 0 <= rng["y"] - (box["y"] + box["height"]) < 40

        cdp = ctx.new_cdp_session(page)
        y = box["y"] + box["height"] * 0.5
        x0 = box["x"] + box["width"] * 0.5
        # One finger, horizontally across the picture: the wipe follows it.
        _touch(cdp, "touchStart", [(x0, y)])
        for k in range(1, 9):
            _touch(cdp, "touchMove", [(x0 + k * box["width"] * 0.04, y)])
        _touch(cdp, "touchEnd", [])
        assert abs(float(watch.state()["wipe"]) - 82.0) < 2.0

        # Two fingers apart: a pinch zooms in about 2x around their middle.
        cx, d = box["x"] + box["width"] * 0.5, box["width"] * 0.15
        _touch(cdp, "touchStart", [(cx - d, y), (cx + d, y)])
        for k in range(1, 9):
            s = d * (1 + k / 8)
            _touch(cdp, "touchMove", [(cx - s, y), (cx + s, y)])
        _touch(cdp, "touchEnd", [])
        assert float(watch.state()["scale"]) == pytest.approx(2.0, abs=0.1)

        # Zoomed, one finger away from the line pans the picture.
        before = page.locator(".vt-cmp-layer").first.evaluate("(e) => e.style.transform")
        xp = box["x"] + box["width"] * 0.2
        _touch(cdp, "touchStart", [(xp, y)])
        for k in range(1, 6):
            _touch(cdp, "touchMove", [(xp + 12 * k, y + 6 * k)])
        _touch(cdp, "touchEnd", [])
        after = page.locator(".vt-cmp-layer").first.evaluate("(e) => e.style.transform")
        assert before != after
        assert abs(float(watch.state()["wipe"]) - 82.0) < 2.0  # the pan left the wipe alone

        # A double tap goes back to the whole picture; another one zooms in 2.5x there.
        for expected in (1.0, 2.5):
            for _ in range(2):
                _touch(cdp, "touchStart", [(xp, y)])
                _touch(cdp, "touchEnd", [])
            assert float(watch.state()["scale"]) == pytest.approx(expected, abs=0.01)

        # Side by side on a phone: the two pictures stacked, each the screen's width.
        page.get_by_role("button", name="Side by side").tap()
        views = page.locator(".vt-cmp-pair [data-testid='vt-compare-view']")
        a, b = views.nth(0).bounding_box(), views.nth(1).bounding_box()
        assert a is not None
        assert b is not None
        assert b["y"] >= a["y"] + a["height"] - 1
        assert a["width"] > 300
        watch.assert_no_rerun(runs)
    finally:
        ctx.close()
