"""Corrections of a baseline vein map: brush, eraser, per-vein accept/reject, free-hand region.

A vein map is a label image ``(H, W) uint8`` in the analysis frame of the baseline
(0 no vein, 1 spider, 2 reticular; ``Segmentation.labels``). An aesthetician corrects
the automatic map with a list of edits made in the review page's editor; this module
checks that list (it comes from a browser: untrusted) and replays it on the map:

- ``{"op": "add", "cls": 1 | 2, "width_px": w, "points": [[x, y], ...]}``: paint a
  vein of that class along a free-hand stroke;
- ``{"op": "erase", "width_px": w, "points": [[x, y], ...]}``: clear the stroke;
- ``{"op": "toggle", "x": x, "y": y}``: click a vein: the whole connected vein under
  (or within a few pixels of) the point is rejected (cleared); a click where a rejected
  vein lay accepts it again;
- ``{"op": "roi", "points": [[x, y], ...]}``: the region of interest becomes this
  free-hand polygon (three points or more); ``{"op": "roi_clear"}`` removes it.

Coordinates are map pixels, ``(x, y)`` with x to the right and y down. The same edits
replayed on the same map give the same result (the editor sends the whole list after
every stroke; undo drops the last one), so the server keeps no editing state.

No streamlit, no database: the review page and the storage layer call these functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

#: The label codes of a vein map.
SPIDER: Final[int] = 1
RETICULAR: Final[int] = 2
VEIN_CLASSES: Final[dict[int, str]] = {SPIDER: "spider", RETICULAR: "reticular"}
#: Limits on an edit list from the browser (a day's careful work stays far below them).
MAX_EDITS: Final[int] = 5000
MAX_POINTS: Final[int] = 20000
MAX_WIDTH_PX: Final[float] = 400.0
#: A click this close to a vein (map pixels) picks it.
PICK_TOLERANCE_PX: Final[float] = 6.0

EditOp = Literal["add", "erase", "toggle", "roi", "roi_clear"]


@dataclass(frozen=True)
class MapEdit:
    """One checked edit; see the module docstring for the operations.

    Attributes
    ----------
    op : {"add", "erase", "toggle", "roi", "roi_clear"}
    points : tuple of (x, y)
        Map pixels (floats), for strokes and the region; ``(x, y)`` of a toggle's click.
    width_px : float
        Brush width for ``add`` and ``erase``.
    cls : int
        1 spider or 2 reticular, for ``add``.
    """

    op: EditOp
    points: tuple[tuple[float, float], ...] = ()
    width_px: float = 0.0
    cls: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the editor sends (and :func:`parse_edits` reads)."""
        pts = [[x, y] for x, y in self.points]
        if self.op == "add":
            return {"op": "add", "cls": self.cls, "width_px": self.width_px, "points": pts}
        if self.op == "erase":
            return {"op": "erase", "width_px": self.width_px, "points": pts}
        if self.op == "toggle":
            return {"op": "toggle", "x": self.points[0][0], "y": self.points[0][1]}
        if self.op == "roi":
            return {"op": "roi", "points": pts}
        return {"op": "roi_clear"}


@dataclass(frozen=True, eq=False)
class EditedMap:
    """A vein map after edits.

    Attributes
    ----------
    labels : ndarray, shape (H, W), dtype uint8
        0 none, 1 spider, 2 reticular.
    roi : ndarray, shape (H, W), dtype bool, or None
        The free-hand region of interest; None when none was drawn (or it was cleared).
    added_px, erased_px : int
        Pixels that are vein now and were not in the original map, and the reverse.
    reclassified_px : int
        Vein pixels whose class changed.
    rejected_veins : int
        Veins rejected by a click and not accepted again.
    edits : tuple of MapEdit
        The edits replayed.
    """

    labels: np.ndarray
    roi: np.ndarray | None
    added_px: int
    erased_px: int
    reclassified_px: int
    rejected_veins: int
    edits: tuple[MapEdit, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return bool(self.added_px or self.erased_px or self.reclassified_px or self.roi is not None)

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts (for the audit log and the page)."""
        return {
            "edits": len(self.edits),
            "added_px": self.added_px,
            "erased_px": self.erased_px,
            "reclassified_px": self.reclassified_px,
            "rejected_veins": self.rejected_veins,
            "roi": self.roi is not None,
        }


# --------------------------------------------------------------------------- checking


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"edits: {what} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"edits: {what} must be finite, got {value!r}")
    return v


def _points(raw: Any, shape: tuple[int, int], what: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(raw, list | tuple) or not raw:
        raise ValueError(f"edits: {what} needs a non-empty list of [x, y] points")
    h, w = shape
    out = []
    for p in raw:
        if not isinstance(p, list | tuple) or len(p) != 2:
            raise ValueError(f"edits: {what} points must be [x, y] pairs, got {p!r}")
        # A stroke may leave the picture: keep its points on the map's edge.
        x = min(max(_num(p[0], f"{what} x"), 0.0), w - 1.0)
        y = min(max(_num(p[1], f"{what} y"), 0.0), h - 1.0)
        out.append((x, y))
    return tuple(out)


def _width(raw: Any) -> float:
    v = _num(raw, "width_px")
    if not 0.5 <= v <= MAX_WIDTH_PX:
        raise ValueError(f"edits: width_px must be in [0.5, {MAX_WIDTH_PX:g}], got {v:g}")
    return v


def parse_edits(raw: Any, *, shape: tuple[int, int]) -> tuple[MapEdit, ...]:
    """Check an edit list from the editor (JSON) against a map of ``shape``.

    Parameters
    ----------
    raw : list of dict, or None
        The editor's edits (None or an empty list: no edit).
    shape : (H, W)
        The map's shape; points outside it are moved onto its edge.

    Returns
    -------
    tuple of MapEdit

    Raises
    ------
    ValueError
        Naming ``edits``: not a list, an unknown operation, a bad class, width or point,
        too many edits or points.
    """
    if raw is None:
        return ()
    if isinstance(raw, MapEdit):
        raw = [raw]
    if not isinstance(raw, list | tuple):
        raise ValueError(f"edits must be a list of edits, got {type(raw).__name__}")
    if len(raw) > MAX_EDITS:
        raise ValueError(f"edits: at most {MAX_EDITS} edits, got {len(raw)}")
    out: list[MapEdit] = []
    n_points = 0
    for i, e in enumerate(raw):
        if isinstance(e, MapEdit):
            e = e.to_dict()
        if not isinstance(e, Mapping):
            raise ValueError(f"edits: edit {i} must be an object, got {type(e).__name__}")
        op = e.get("op")
        if op == "add":
            cls = e.get("cls")
            if isinstance(cls, bool) or cls not in VEIN_CLASSES:
                raise ValueError(f"edits: edit {i} cls must be 1 (spider) or 2 (reticular)")
            pts = _points(e.get("points"), shape, f"edit {i}")
            out.append(MapEdit("add", pts, _width(e.get("width_px")), int(cls)))
        elif op == "erase":
            pts = _points(e.get("points"), shape, f"edit {i}")
            out.append(MapEdit("erase", pts, _width(e.get("width_px"))))
        elif op == "toggle":
            pts = _points([[e.get("x"), e.get("y")]], shape, f"edit {i}")
            out.append(MapEdit("toggle", pts))
        elif op == "roi":
            pts = _points(e.get("points"), shape, f"edit {i}")
            if len(pts) < 3:
                raise ValueError(f"edits: edit {i}: a region needs at least 3 points")
            out.append(MapEdit("roi", pts))
        elif op == "roi_clear":
            out.append(MapEdit("roi_clear"))
        else:
            raise ValueError(
                f"edits: edit {i} has an unknown op {op!r} (add, erase, toggle, roi or roi_clear)"
            )
        n_points += len(out[-1].points)
        if n_points > MAX_POINTS:
            raise ValueError(f"edits: at most {MAX_POINTS} points in all")
    return tuple(out)


# --------------------------------------------------------------------------- replay


def _check_labels(labels: np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 2 or arr.dtype != np.uint8 or arr.size == 0:
        raise ValueError(
            f"labels must be a non-empty (H, W) uint8 label map, got {arr.dtype} {arr.shape}"
        )
    if int(arr.max(initial=0)) > RETICULAR:
        raise ValueError("labels must hold 0 (none), 1 (spider) or 2 (reticular) only")
    return arr


def _stroke_mask(edit: MapEdit, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    canvas = np.zeros(shape, np.uint8)
    pts = np.round(np.asarray(edit.points, np.float64)).astype(np.int32)
    thickness = max(1, round(edit.width_px))
    if len(pts) > 1:
        cv2.polylines(canvas, [pts.reshape(-1, 1, 2)], False, 1, thickness, cv2.LINE_8)
    # Round caps and single clicks: a disc at every point.
    radius = max(0, round(edit.width_px / 2.0 - 0.01))
    for x, y in pts:
        cv2.circle(canvas, (int(x), int(y)), radius, 1, -1, cv2.LINE_8)
    return canvas.astype(bool)


def _component_at(vein: np.ndarray, x: float, y: float, tol: float) -> np.ndarray | None:
    """The 8-connected piece of ``vein`` nearest to (x, y) within ``tol`` px, or None."""
    import cv2

    h, w = vein.shape
    r = math.ceil(tol)
    x0, x1 = max(0, round(x) - r), min(w, round(x) + r + 1)
    y0, y1 = max(0, round(y) - r), min(h, round(y) + r + 1)
    ys, xs = np.nonzero(vein[y0:y1, x0:x1])
    if ys.size == 0:
        return None
    d2 = (xs + x0 - x) ** 2 + (ys + y0 - y) ** 2
    k = int(np.argmin(d2))
    if d2[k] > tol * tol:
        return None
    seed = (int(xs[k] + x0), int(ys[k] + y0))
    flood = np.zeros((h + 2, w + 2), np.uint8)
    src = vein.astype(np.uint8)
    cv2.floodFill(src, flood, seed, 2, 0, 0, 8 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
    return flood[1:-1, 1:-1].astype(bool)


def _polygon_mask(points: Sequence[tuple[float, float]], shape: tuple[int, int]) -> np.ndarray:
    import cv2

    canvas = np.zeros(shape, np.uint8)
    pts = np.round(np.asarray(points, np.float64)).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(canvas, [pts], 1, cv2.LINE_8)
    return canvas.astype(bool)


def apply_edits(
    labels: np.ndarray,
    edits: Any,
    *,
    roi: np.ndarray | None = None,
    pick_tolerance_px: float = PICK_TOLERANCE_PX,
) -> EditedMap:
    """Replay edits on a vein map; the input is not modified.

    Parameters
    ----------
    labels : ndarray, shape (H, W), dtype uint8
        The map edited (0 none, 1 spider, 2 reticular).
    edits : list of dict or of MapEdit
        Checked with :func:`parse_edits`, replayed in order.
    roi : ndarray, shape (H, W), dtype bool, optional
        The region of interest before the edits (kept unless an edit replaces it).
    pick_tolerance_px : float
        How near (map pixels) a click must be to a vein to pick it.

    Returns
    -------
    EditedMap

    Raises
    ------
    ValueError
        Bad ``labels``, ``roi`` or ``edits``.
    """
    base = _check_labels(labels)
    shape = (int(base.shape[0]), int(base.shape[1]))
    if roi is not None:
        roi = np.asarray(roi)
        if roi.shape != shape or roi.dtype != bool:
            raise ValueError(
                f"roi must be a bool mask of shape {shape}, got {roi.dtype} {roi.shape}"
            )
    checked = parse_edits(edits, shape=shape)
    out = base.copy()
    region = None if roi is None else roi.copy()
    # Rejected veins: their pixels and classes, most recent last (a click restores it).
    rejected: list[tuple[np.ndarray, np.ndarray]] = []
    for e in checked:
        if e.op == "add":
            out[_stroke_mask(e, shape)] = e.cls
        elif e.op == "erase":
            out[_stroke_mask(e, shape)] = 0
        elif e.op == "toggle":
            x, y = e.points[0]
            piece = _component_at(out > 0, x, y, pick_tolerance_px)
            if piece is not None:
                rejected.append((piece, out[piece].copy()))
                out[piece] = 0
                continue
            for i in range(len(rejected) - 1, -1, -1):
                pix, cls = rejected[i]
                if _component_at(pix, x, y, pick_tolerance_px) is not None:
                    free = out[pix] == 0  # what later strokes painted stays
                    restored = out[pix]
                    restored[free] = cls[free]
                    out[pix] = restored
                    del rejected[i]
                    break
        elif e.op == "roi":
            region = _polygon_mask(e.points, shape)
        else:  # roi_clear
            region = None
    was, now = base > 0, out > 0
    return EditedMap(
        labels=out,
        roi=region,
        added_px=int(np.count_nonzero(now & ~was)),
        erased_px=int(np.count_nonzero(was & ~now)),
        reclassified_px=int(np.count_nonzero(was & now & (base != out))),
        rejected_veins=len(rejected),
        edits=checked,
    )


def scale_edits(
    edits: Any, *, src_shape: tuple[int, int], dst_shape: tuple[int, int]
) -> list[dict[str, Any]]:
    """The edits drawn on a map of ``src_shape`` (H, W), for a map of ``dst_shape``.

    Points scale with each axis; brush widths with the mean of the two factors.
    """
    sy = dst_shape[0] / src_shape[0]
    sx = dst_shape[1] / src_shape[1]
    out = []
    for e in parse_edits(edits, shape=src_shape):
        pts = tuple((x * sx, y * sy) for x, y in e.points)
        width = min(MAX_WIDTH_PX, max(0.5, e.width_px * (sx + sy) / 2.0)) if e.width_px else 0.0
        out.append(MapEdit(e.op, pts, width, e.cls).to_dict())
    return out


def reviewed_note(result: Mapping[str, Any]) -> str | None:
    """``"vein map reviewed by anna on 2026-12-04"`` for an analysis measured on a
    reviewed baseline map (its result's ``vein_map``, written by the Review page), else
    None. Reports, Progress and the export print it beside the figure."""
    info = result.get("vein_map")
    if not isinstance(info, Mapping):
        return None
    who = info.get("reviewed_by") or "the clinic"
    when = str(info.get("reviewed_at") or "")[:10]
    return f"vein map reviewed by {who}" + (f" on {when}" if when else "")
