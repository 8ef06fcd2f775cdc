"""The comparison component's Python side: what the browser receives, and that it returns
nothing (so a move in the browser has nothing to send back and cannot rerun the page).

The moves themselves are tested in Chromium (tests/ui/test_compare_view.py).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vein_tracker.ui.compare_view import Frame, frame_payload

STATIC = Path(__file__).resolve().parents[2] / "vein_tracker" / "ui" / "static"


def _rgb(h: int, w: int, value: int) -> np.ndarray:
    rgb = np.full((h, w, 3), value, np.uint8)
    rgb[:, : w // 2, 0] = 255 - value
    return rgb


def _decode(src: str) -> Image.Image:
    head, _, payload = src.partition(",")
    assert head == "data:image/jpeg;base64"
    return Image.open(io.BytesIO(base64.b64decode(payload)))


def test_frames_are_jpeg_data_urls_capped_at_max_side() -> None:
    frames = [Frame("session 1", _rgb(1500, 2000, 90)), Frame("session 2", _rgb(1500, 2000, 160))]
    data = frame_payload(frames, max_side=800)
    assert (data["width"], data["height"]) == (800, 600)
    assert [f["label"] for f in data["frames"]] == ["session 1", "session 2"]
    for f, frame in zip(data["frames"], frames, strict=True):
        img = _decode(f["src"])
        assert img.format == "JPEG"
        assert img.size == (800, 600)
        assert not img.getexif()  # pixels only: no metadata travels with the picture
        # the picture is the frame's pixels, reduced (JPEG at quality 85: within a few levels)
        small = np.asarray(img.convert("RGB"), np.float32)
        assert abs(float(small[300, 600, 1]) - frame.rgb[0, -1, 1]) <= 4
        assert abs(float(small[300, 100, 0]) - frame.rgb[0, 0, 0]) <= 4


def test_small_frames_are_sent_at_their_own_size() -> None:
    data = frame_payload([Frame("a", _rgb(300, 400, 100))], max_side=1600)
    assert (data["width"], data["height"]) == (400, 300)


def test_generation_follows_the_pixels_and_labels() -> None:
    a = frame_payload([Frame("a", _rgb(60, 80, 100)), Frame("b", _rgb(60, 80, 120))])
    same = frame_payload([Frame("a", _rgb(60, 80, 100)), Frame("b", _rgb(60, 80, 120))])
    other = frame_payload([Frame("a", _rgb(60, 80, 100)), Frame("b", _rgb(60, 80, 200))])
    renamed = frame_payload([Frame("a", _rgb(60, 80, 100)), Frame("c", _rgb(60, 80, 120))])
    assert a["generation"] == same["generation"]
    assert len({a["generation"], other["generation"], renamed["generation"]}) == 3


def test_bad_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="frames"):
        frame_payload([])
    with pytest.raises(ValueError, match="shape"):
        frame_payload([Frame("a", _rgb(60, 80, 1)), Frame("b", _rgb(61, 80, 1))])
    with pytest.raises(ValueError, match="max_side"):
        frame_payload([Frame("a", _rgb(60, 80, 1))], max_side=10)


def test_the_component_returns_nothing_and_its_script_sends_nothing_back() -> None:
    """No value can come back: mounting registers no callback, and the browser code never
    calls the component API's setters (the browser test counts runs while dragging)."""
    from streamlit.testing.v1 import AppTest

    def app() -> None:
        import numpy as np
        import streamlit as st

        from vein_tracker.ui.compare_view import Frame, compare_view

        rgb = np.zeros((40, 60, 3), np.uint8)
        st.session_state["returned"] = compare_view(
            [Frame("before", rgb), Frame("after", rgb + 50)], key="cmp", mode="side"
        )

    at = AppTest.from_function(app, default_timeout=60)
    at.run()
    assert not at.exception
    assert "returned" in at.session_state
    assert at.session_state["returned"] is None
    js = (STATIC / "compare_view.js").read_text(encoding="utf-8")
    assert "setStateValue(" not in js
    assert "setTriggerValue(" not in js
    assert "fetch(" not in js
    assert "XMLHttpRequest" not in js


def test_mode_must_be_known() -> None:
    from vein_tracker.ui.compare_view import compare_view

    with pytest.raises(ValueError, match="mode must be one of"):
        compare_view([Frame("a", np.zeros((20, 20, 3), np.uint8))], key="k", mode="flicker")
