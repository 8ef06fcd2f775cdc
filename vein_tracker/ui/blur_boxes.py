"""The blur-box tool of the marketing export: draw boxes over a face or a tattoo.

A Streamlit custom component (``st.components.v2``) whose JavaScript and CSS ship in
``vein_tracker/ui/static`` (no iframe, nothing from a CDN). It shows a pair's before and
after pictures (the same crop of the baseline frame) and returns the boxes drawn, in
the pictures' pixels; :func:`to_frame` brings them to the baseline frame's pixels for
:class:`vein_tracker.export.BlurBox`. One box hides the same place in both halves.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from vein_tracker import services
from vein_tracker.io import as_rgb, encode_image

_STATIC = Path(__file__).resolve().parent / "static"
_NAME = "vein_tracker.blur_boxes"
#: Longest side of the pictures the boxes are drawn on, px.
MAX_SIDE_PX = 900

Box = tuple[int, int, int, int]


@functools.cache
def _component() -> Any:
    js = (_STATIC / "blur_boxes.js").read_text(encoding="utf-8")
    css = (_STATIC / "blur_boxes.css").read_text(encoding="utf-8")
    return st.components.v2.component(_NAME, js=js, css=css, isolate_styles=True)


def to_frame(
    boxes: Sequence[Sequence[float]], *, scale: float, offset: tuple[int, int]
) -> list[Box]:
    """Boxes drawn on a picture (``x, y, w, h`` px) in the frame it was cut and scaled from.

    Parameters
    ----------
    boxes : sequence of (x, y, w, h)
        Picture px (x right, y down).
    scale : float
        Picture px per frame px (> 0).
    offset : (x, y)
        Where the picture's top-left corner sits in the frame, frame px.

    Returns
    -------
    list of (x, y, w, h)
        Frame px, rounded outwards (a box never shrinks), each at least 1 px.
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    out: list[Box] = []
    for b in boxes:
        if len(b) != 4:
            raise ValueError(f"boxes must be (x, y, w, h), got {b!r}")
        x, y, w, h = (float(v) for v in b)
        if w <= 0 or h <= 0 or not all(np.isfinite((x, y, w, h))):
            continue
        x0, y0 = int(np.floor(x / scale)), int(np.floor(y / scale))
        x1, y1 = int(np.ceil((x + w) / scale)), int(np.ceil((y + h) / scale))
        out.append((x0 + offset[0], y0 + offset[1], max(1, x1 - x0), max(1, y1 - y0)))
    return out


def blur_box_tool(
    before: np.ndarray,
    after: np.ndarray,
    *,
    boxes: Sequence[Box] = (),
    key: str,
) -> tuple[list[Box], float]:
    """Show the tool on the pair's pictures; return the boxes drawn and the picture scale.

    Parameters
    ----------
    before, after : ndarray, shape (H, W, 3), dtype uint8
        The same crop of the baseline frame (the follow-up aligned).
    boxes : sequence of (x, y, w, h)
        Boxes to start from, in ``before``'s px (e.g. the face the check found).
    key : str
        Streamlit key; a new pair (other pixels) starts the tool again from ``boxes``.

    Returns
    -------
    (boxes, scale)
        Boxes in the pictures' px as shown, and their px per ``before`` px: use
        :func:`to_frame` with ``scale`` to get ``before``'s px back.
    """
    b, a = as_rgb(before), as_rgb(after)
    if a.shape != b.shape:
        raise ValueError(f"before and after must have one shape, got {b.shape} and {a.shape}")
    small_b = services.preview(b, max_side=MAX_SIDE_PX)
    small_a = services.preview(a, max_side=MAX_SIDE_PX)
    scale = small_b.shape[1] / b.shape[1]
    shown = [[round(v * scale) for v in box] for box in boxes]
    images = []
    digest = hashlib.sha256()
    for label, rgb in (("Before", small_b), ("After (aligned)", small_a)):
        jpeg = encode_image(rgb, format="JPEG", quality=85)
        digest.update(jpeg)
        images.append(
            {"label": label, "src": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()}
        )
    digest.update(repr(shown).encode())
    result = _component()(
        key=key,
        data={
            "images": images,
            "width": int(small_b.shape[1]),
            "height": int(small_b.shape[0]),
            "boxes": shown,
            "generation": digest.hexdigest()[:16],
        },
        default={"boxes": shown},
        on_boxes_change=lambda: None,
        width="stretch",
        height="content",
    )
    value = getattr(result, "boxes", None)
    drawn = value if isinstance(value, list) else shown
    clean: list[Box] = []
    for item in drawn:
        if isinstance(item, list | tuple) and len(item) == 4:
            try:
                x, y, w, h = (round(float(v)) for v in item)
            except (TypeError, ValueError):
                continue
            clean.append((x, y, w, h))
    return clean, scale
