"""The before/after comparison: wipe, side by side, zoom and pan, across sessions, by touch.

A Streamlit custom component (``st.components.v2``) whose JavaScript and CSS ship in
``vein_tracker/ui/static`` and are handed to Streamlit inline: no iframe, nothing fetched
from a CDN, so it renders offline. The photos travel once, as JPEG data URLs, with the
page; everything after that (the wipe, zoom, pan, the choice of sessions) happens in the
browser. The component sends nothing back, so no move causes a Streamlit rerun or a
server round trip.

The pictures are the analysis frame's pixels (10 px/mm, the scale veins are measured at),
capped at :data:`MAX_SIDE_PX` on the long side to keep the page light on a phone.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from vein_tracker.io import as_rgb, encode_image

_STATIC = Path(__file__).resolve().parent / "static"
_NAME = "vein_tracker.compare_view"
#: Longest side of a picture sent to the browser, px (a 200 mm field at 10 px/mm is 2000).
MAX_SIDE_PX = 1600
#: JPEG quality of the pictures: visually clean at 100-400 % zoom, ~150-300 kB a frame.
JPEG_QUALITY = 85
MODES = ("wipe", "side")


@dataclass(frozen=True, eq=False)
class Frame:
    """One picture of the comparison, in the baseline's frame.

    Attributes
    ----------
    label : str
        Shown on the picture and in the session choice (e.g. ``"session 2 · 2026-03-01"``).
    rgb : ndarray, shape (H, W, 3), dtype uint8
        The pixels; every frame of one comparison has the same shape.
    """

    label: str
    rgb: np.ndarray


@functools.cache
def _component() -> Any:
    """Register the component once per process (its JS and CSS read from the package)."""
    js = (_STATIC / "compare_view.js").read_text(encoding="utf-8")
    css = (_STATIC / "compare_view.css").read_text(encoding="utf-8")
    return st.components.v2.component(_NAME, js=js, css=css, isolate_styles=True)


def _fit(rgb: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))


def frame_payload(
    frames: Sequence[Frame], *, max_side: int = MAX_SIDE_PX, quality: int = JPEG_QUALITY
) -> dict[str, Any]:
    """What the browser receives: the frames as JPEG data URLs and their size.

    Parameters
    ----------
    frames : sequence of Frame
        At least one; all of the same shape.
    max_side : int
        Longest side sent, px (>= 64); larger frames are reduced by area averaging.
    quality : int
        JPEG quality 1-95.

    Returns
    -------
    dict
        ``frames`` (``[{label, src}]``), ``width``, ``height`` (px sent) and
        ``generation`` (a digest of the pixels and labels).
    """
    if not frames:
        raise ValueError("frames must hold at least one picture")
    if max_side < 64:
        raise ValueError(f"max_side must be >= 64 px, got {max_side}")
    shape = as_rgb(frames[0].rgb).shape
    out: list[dict[str, str]] = []
    digest = hashlib.sha256()
    height = width = 0
    for f in frames:
        rgb = as_rgb(f.rgb)
        if rgb.shape != shape:
            raise ValueError(
                f"every frame must have the first frame's shape {shape}, got {rgb.shape} for "
                f"{f.label!r}; bring the follow-ups into the baseline's frame first"
            )
        small = _fit(rgb, max_side)
        height, width = small.shape[:2]
        jpeg = encode_image(small, format="JPEG", quality=quality)
        digest.update(f.label.encode("utf-8"))
        digest.update(hashlib.sha256(jpeg).digest())
        out.append(
            {"label": f.label, "src": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()}
        )
    return {"frames": out, "width": width, "height": height, "generation": digest.hexdigest()[:16]}


def compare_view(
    frames: Sequence[Frame],
    *,
    key: str,
    mode: str = "wipe",
    left: int = 0,
    right: int = -1,
    max_side: int = MAX_SIDE_PX,
) -> None:
    """Show the comparison; returns nothing (no value ever comes back from the browser).

    Parameters
    ----------
    frames : sequence of Frame
        The pictures, oldest first, all in the baseline's frame and of one shape. With
        more than two, the viewer chooses the two sessions to compare in the browser.
    key : str
        Streamlit key of the component.
    mode : {"wipe", "side"}
        The view shown first: a wipe line over one picture, or the two side by side
        (stacked on a phone) with synchronised zoom and pan.
    left, right : int
        Indexes of the frames shown first (before, after); negative counts from the end.
    max_side : int
        Longest side sent to the browser, px.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    data = frame_payload(frames, max_side=max_side)
    n = len(frames)
    data.update(mode=mode, left=left % n, right=right % n)
    # No on_*_change callback and a JS side that never sets a value: mounting registers
    # nothing that could trigger a rerun.
    _component()(key=key, data=data, width="stretch", height="content")
