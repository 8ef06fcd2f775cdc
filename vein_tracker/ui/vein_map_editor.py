"""The vein map editor of the review page: brush, eraser, per-vein reject/accept, region.

A Streamlit custom component (``st.components.v2``) whose JavaScript and CSS ship in
``vein_tracker/ui/static`` and are handed to Streamlit inline: no iframe, nothing
fetched from a CDN, so it works offline. The browser only records the aesthetician's
edits (map pixels) and draws the stroke in progress; the server replays the whole edit
list on the map (:func:`vein_tracker.vein_map.apply_edits`) after every stroke and
sends back the painted overlay, so one rerun per stroke and no map state in the browser.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from vein_tracker import services
from vein_tracker.vein_map import VEIN_CLASSES

_STATIC = Path(__file__).resolve().parent / "static"
_NAME = "vein_tracker.vein_map_editor"
#: Darkening outside the region of interest on the overlay (alpha, 0-255).
_OUTSIDE_ALPHA = 110


@functools.cache
def _component() -> Any:
    """Register the component once per process (its JS and CSS read from the package)."""
    js = (_STATIC / "vein_map_editor.js").read_text(encoding="utf-8")
    css = (_STATIC / "vein_map_editor.css").read_text(encoding="utf-8")
    return st.components.v2.component(_NAME, js=js, css=css, isolate_styles=True)


def _data_url(mime: str, payload: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def overlay_rgba(labels: np.ndarray, roi: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    """The map painted for the editor: ``(h, w, 4) uint8`` RGBA at ``size`` = (w, h).

    Veins in their class colours (``services.VEIN_COLOURS``), a vein thinner than a
    display pixel still shown (each class is reduced by area, any coverage painted);
    outside the region of interest darkened, its edge in white.
    """
    import cv2

    w, h = size
    out = np.zeros((h, w, 4), np.uint8)
    if roi is not None:
        inside = cv2.resize(roi.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_AREA)
        out[inside < 128, 3] = _OUTSIDE_ALPHA
        edge = cv2.morphologyEx(
            (inside >= 128).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)
        ).astype(bool)
        out[edge] = (255, 255, 255, 255)
    for code in VEIN_CLASSES:
        cover = cv2.resize(
            (labels == code).astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_AREA
        )
        m = cover > 0
        out[m, :3] = services.VEIN_COLOURS[code]
        out[m, 3] = 235
    return out


def _png_rgba(rgba: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG")
    return buf.getvalue()


def vein_map_editor(
    photo_rgb: np.ndarray,
    labels: np.ndarray,
    *,
    roi: np.ndarray | None,
    edits: Sequence[dict[str, Any]],
    generation: str,
    key: str,
    width_px: int = 4,
) -> list[dict[str, Any]]:
    """Show the editor and return the aesthetician's edit list (map pixels).

    Parameters
    ----------
    photo_rgb : ndarray, shape (H, W, 3), dtype uint8
        The baseline (any size; a preview is sent).
    labels : ndarray, shape (h, w), dtype uint8
        The map as it stands after ``edits`` (0 none, 1 spider, 2 reticular).
    roi : ndarray, shape (h, w), dtype bool, or None
        The region of interest after ``edits``.
    edits : sequence of dict
        The edit list ``labels`` shows (the server's copy).
    generation : str
        Changes whenever the server starts a new edit list (another map, after saving):
        the editor then starts again from ``edits``.
    key : str
        Streamlit key of the component (with ``generation`` appended).
    width_px : int
        Initial brush width, map pixels.

    Returns
    -------
    list of dict
        The editor's edit list; ``edits`` until the aesthetician changes something.
    """
    preview = services.preview(photo_rgb)
    size = (int(preview.shape[1]), int(preview.shape[0]))
    from vein_tracker.io import encode_image

    data = {
        "image": _data_url("image/jpeg", encode_image(preview, format="JPEG", quality=85)),
        "overlay": _data_url("image/png", _png_rgba(overlay_rgba(labels, roi, size))),
        "map_w": int(labels.shape[1]),
        "map_h": int(labels.shape[0]),
        "edits": list(edits),
        "generation": generation,
        "width_px": int(width_px),
    }
    # A new generation mounts a new instance (the key changes): its state starts from
    # `edits`, not from the previous list the browser held.
    result = _component()(
        key=f"{key}-{generation}",
        data=data,
        default={"edits": list(edits)},
        on_edits_change=lambda: None,
        width="stretch",
        height="content",
    )
    value = getattr(result, "edits", None)
    return list(value) if isinstance(value, list) else list(edits)
