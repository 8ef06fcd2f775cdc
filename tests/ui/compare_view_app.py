"""A one-page Streamlit app around the comparison component, for tests/ui/test_compare_view.py.

Three frames of 600 x 400 px (a dark left half / light right half in the first, the
reverse in the others, so the wipe is visible in the pixels) and a counter of the
script's runs, printed on the page: the browser test reads it before and after
dragging, pinching and choosing sessions.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from vein_tracker.ui.compare_view import Frame, compare_view

H, W = 400, 600


def _frame(value_left: int, value_right: int) -> np.ndarray:
    rgb = np.empty((H, W, 3), np.uint8)
    rgb[:, : W // 2] = value_left
    rgb[:, W // 2 :] = value_right
    rgb[H // 2 - 2 : H // 2 + 2, :, 0] = 255  # a red line to zoom in on
    return rgb


runs = int(st.session_state.get("runs", 0)) + 1
st.session_state["runs"] = runs
st.title("Comparison")
st.button("Rerun the page", key="rerun")  # a control: a real rerun does bump the counter
compare_view(
    [
        Frame("session 1 · baseline", _frame(40, 220)),
        Frame("session 2", _frame(220, 40)),
        Frame("session 3", _frame(200, 60)),
    ],
    key="cmp",
)
st.text(f"script runs: {runs}")
