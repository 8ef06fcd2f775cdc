"""A one-page Streamlit app around the vein map editor, for tests/ui/test_vein_map_editor.py.

A plain skin-coloured photo with two known veins: a spider vein along y = 60 (x 40-260)
and a reticular vein along x = 300 (y 40-200), on a 400 x 240 map shown at the same size.
The page prints the replayed edits' counts, so the browser test reads what the server
made of the strokes.
"""

from __future__ import annotations

import json

import numpy as np
import streamlit as st

from vein_tracker.ui.vein_map_editor import vein_map_editor
from vein_tracker.vein_map import apply_edits

H, W = 240, 400


def _scene() -> tuple[np.ndarray, np.ndarray]:
    rgb = np.empty((H, W, 3), np.uint8)
    rgb[:] = (214, 170, 150)
    labels = np.zeros((H, W), np.uint8)
    labels[59:62, 40:261] = 1
    labels[40:201, 298:303] = 2
    return rgb, labels


rgb, base = _scene()
generation = st.session_state.setdefault("gen", "g1")
edits = st.session_state.get("edits", [])
edited = apply_edits(base, edits)
new_edits = vein_map_editor(
    rgb, edited.labels, roi=edited.roi, edits=edits, generation=generation, key="editor"
)
if new_edits != edits:
    st.session_state["edits"] = new_edits
    st.rerun()
st.text(f"summary: {json.dumps(edited.summary(), sort_keys=True)}")
st.text(f"spider px: {int((edited.labels == 1).sum())}")
st.text(f"reticular px: {int((edited.labels == 2).sum())}")
if st.button("Start again"):
    st.session_state["edits"] = []
    st.session_state["gen"] = generation + "x"
    st.rerun()
