"""Back-end functions the Streamlit pages call: previews, comparison renders, cached analysis.

Owns the glue between the pages (``vein_tracker.ui``) and the library: downscaled
previews, the wipe / blend / checkerboard / overlay renders of the review page, the
analysis of a before/after pair with its cache, and the frames behind the charts.
It must not import streamlit, hold per-user state, or touch SQL or photo files
directly: records and photos go through the repository, which checks access.

Every render function is pure: it never modifies its inputs and returns a new
``(H, W, 3) uint8`` RGB array.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from . import ALGORITHM_VERSION, policy
from .config import get_settings
from .io import Photo, as_rgb, load_photo

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .export import ExportResult
    from .measure import Comparison
    from .progress import Progress
    from .storage import Actor, Repository
    from .storage.info import AnalysisInfo, MarketingPair, PhotoInfo, Screening, VisitInfo

#: Longest side of an image sent to the browser, px. Keeps memory flat over a long day.
PREVIEW_MAX_SIDE = 1024

#: Overlay colours, RGB uint8. Spider veins red-magenta, reticular (feeder) veins cyan-blue.
VEIN_COLOURS: Mapping[int, tuple[int, int, int]] = {
    1: (255, 40, 120),  # spider / telangiectasia
    2: (0, 170, 255),  # reticular / feeder
}
VEIN_LABELS: Mapping[int, str] = {1: "spider (< 1 mm)", 2: "reticular / feeder (1–3 mm)"}
VEIN_COLOUR_NAMES: Mapping[int, str] = {1: "pink", 2: "blue"}

#: Change-map codes of ``measure.Comparison.change_map`` and their colours (RGB) and names.
CHANGE_COLOURS: Mapping[int, tuple[int, int, int]] = {
    1: (40, 200, 80),  # cleared: green
    2: (250, 210, 40),  # faded: yellow
    3: (235, 50, 50),  # persisting: red
    4: (170, 80, 255),  # new: violet
    5: (255, 130, 0),  # recanalised: orange
}
CHANGE_LABELS: Mapping[int, str] = {
    1: "cleared",
    2: "faded",
    3: "persisting",
    4: "new",
    5: "recanalised",
}
CHANGE_COLOUR_NAMES: Mapping[int, str] = {
    1: "green",
    2: "yellow",
    3: "red",
    4: "violet",
    5: "orange",
}


# ----------------------------------------------------------------------------- forms


def override_reason(screening: Screening, *, override: bool, reason: str | None) -> str | None:
    """The override reason to record with a screening, or None for no override.

    The rule is :func:`vein_tracker.storage.info.resolve_override` (the repository applies
    it too): an override is never recorded without its reason.

    Raises
    ------
    ValueError
        ``override`` without a reason, or an override of a screening with no positive
        answer.
    """
    from .storage.info import resolve_override

    return resolve_override(screening, override=override, reason=reason)


# ----------------------------------------------------------------------------- renders


def _check_pair(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b = as_rgb(before)
    a = as_rgb(after)
    if b.shape != a.shape:
        raise ValueError(
            f"before and after must have the same shape, got {b.shape} and {a.shape}; "
            "compare the follow-up warped into the baseline frame"
        )
    return b, a


def preview(image: np.ndarray, *, max_side: int = PREVIEW_MAX_SIDE) -> np.ndarray:
    """Downscale an RGB image (or a 2-D mask/label image) so its longest side is ``max_side``.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3) uint8, or (H, W) bool/uint8
        Photo, or a mask / label image (resized with nearest neighbour).
    max_side : int
        Longest side of the result in px (>= 16). Smaller images are returned as a copy.

    Returns
    -------
    ndarray
        Same dtype and channel count, at most ``max_side`` px on its longest side.
    """
    if max_side < 16:
        raise ValueError(f"max_side must be >= 16 px, got {max_side}")
    if image.ndim == 3:
        as_rgb(image)
    elif image.ndim != 2:
        raise ValueError(f"image must be (H, W, 3) RGB or (H, W), got shape {image.shape}")
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return image.copy()
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if image.ndim == 2:
        src = image.astype(np.uint8) if image.dtype == bool else image
        out = cv2.resize(src, size, interpolation=cv2.INTER_NEAREST)
        return out.astype(bool) if image.dtype == bool else out
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def wipe(before: np.ndarray, after: np.ndarray, *, position: float) -> np.ndarray:
    """Before on the left of a vertical line, after on the right (a wipe comparison).

    Parameters
    ----------
    before, after : ndarray, shape (H, W, 3), dtype uint8
        Aligned images in the same (baseline) frame.
    position : float
        Where the line sits, as a fraction of the width in [0, 1]; 0 shows only after.

    Returns
    -------
    ndarray, shape (H, W, 3), dtype uint8
        With a 2-px white divider line.
    """
    b, a = _check_pair(before, after)
    if not 0.0 <= position <= 1.0:
        raise ValueError(f"position must be in [0, 1], got {position}")
    w = b.shape[1]
    x = round(position * w)
    out = a.copy()
    out[:, :x] = b[:, :x]
    lo, hi = max(0, x - 1), min(w, x + 1)
    out[:, lo:hi] = 255
    return out


def blend(before: np.ndarray, after: np.ndarray, *, alpha: float) -> np.ndarray:
    """Cross-fade: ``(1 - alpha) * before + alpha * after``.

    Parameters
    ----------
    before, after : ndarray, shape (H, W, 3), dtype uint8
    alpha : float
        Weight of ``after`` in [0, 1].
    """
    b, a = _check_pair(before, after)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return cv2.addWeighted(b, 1.0 - alpha, a, alpha, 0.0)


def checkerboard(before: np.ndarray, after: np.ndarray, *, tiles: int = 8) -> np.ndarray:
    """Alternate square tiles of before and after; misalignment shows as broken lines.

    Parameters
    ----------
    before, after : ndarray, shape (H, W, 3), dtype uint8
    tiles : int
        Number of tiles along the longer side (>= 2).
    """
    b, a = _check_pair(before, after)
    if tiles < 2:
        raise ValueError(f"tiles must be >= 2, got {tiles}")
    h, w = b.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / tiles)))
    yy = (np.arange(h) // step)[:, None]
    xx = (np.arange(w) // step)[None, :]
    use_after = ((yy + xx) % 2).astype(bool)
    return np.where(use_after[:, :, None], a, b)


def _paint(
    rgb: np.ndarray,
    labels: np.ndarray,
    colours: Mapping[int, tuple[int, int, int]],
    *,
    opacity: float,
) -> np.ndarray:
    img = as_rgb(rgb)
    if labels.shape != img.shape[:2]:
        raise ValueError(
            f"labels must have the image's shape {img.shape[:2]}, got {labels.shape}; "
            "resize both with preview() first"
        )
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    out = img.astype(np.float32)
    for code, colour in colours.items():
        m = labels == code
        if m.any():
            out[m] = (1.0 - opacity) * out[m] + opacity * np.asarray(colour, np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def vein_overlay(rgb: np.ndarray, labels: np.ndarray, *, opacity: float = 0.75) -> np.ndarray:
    """Paint segmented veins on a photo: spider and reticular veins in two colours.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), dtype uint8
    labels : ndarray, shape (H, W), dtype uint8
        0 background, 1 spider, 2 reticular (``Segmentation.labels``).
    opacity : float
        Colour weight in [0, 1] on vein pixels.
    """
    return _paint(rgb, labels, VEIN_COLOURS, opacity=opacity)


def change_overlay(rgb: np.ndarray, change_map: np.ndarray, *, opacity: float = 0.8) -> np.ndarray:
    """Paint the per-pixel change map (cleared, faded, persisting, new, recanalised).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), dtype uint8
        Usually the baseline photo (the change map lives in the baseline frame).
    change_map : ndarray, shape (H, W), dtype uint8
        Codes 0-5 of ``Comparison.change_map``.
    opacity : float
        Colour weight in [0, 1].
    """
    return _paint(rgb, change_map, CHANGE_COLOURS, opacity=opacity)


def roi_overlay(rgb: np.ndarray, roi: np.ndarray, *, dim: float = 0.55) -> np.ndarray:
    """Darken what lies outside the region of interest and outline it in white.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), dtype uint8
    roi : ndarray, shape (H, W), dtype bool
    dim : float
        Brightness factor in [0, 1] applied outside the region.
    """
    img = as_rgb(rgb)
    if roi.shape != img.shape[:2] or roi.dtype != bool:
        raise ValueError(f"roi must be a bool mask of shape {img.shape[:2]}, got {roi.shape}")
    out = img.copy()
    out[~roi] = (out[~roi].astype(np.float32) * dim).astype(np.uint8)
    contours, _ = cv2.findContours(roi.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    thick = max(1, round(max(img.shape[:2]) / 400))
    cv2.drawContours(out, contours, -1, (255, 255, 255), thick)
    return out


def ghost(baseline: np.ndarray, *, opacity: float = 0.45) -> np.ndarray:
    """A faded baseline with its strong edges outlined, to help frame the next photo.

    Parameters
    ----------
    baseline : ndarray, shape (H, W, 3), dtype uint8
    opacity : float
        How much of the baseline shows through a white veil, in [0, 1].

    Returns
    -------
    ndarray, shape (H, W, 3), dtype uint8
        White-veiled baseline with the leg outline and large structures in dark teal.
    """
    img = as_rgb(baseline)
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    out = cv2.addWeighted(img, opacity, np.full_like(img, 255), 1.0 - opacity, 0.0)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    k = max(3, (max(img.shape[:2]) // 200) | 1)
    grey = cv2.GaussianBlur(grey, (k, k), 0)
    edges = cv2.Canny(grey, 30, 90) > 0
    edges = cv2.dilate(edges.astype(np.uint8), np.ones((2, 2), np.uint8)) > 0
    out[edges] = (0, 110, 120)
    return out


def side_by_side(before: np.ndarray, after: np.ndarray, *, gap_px: int = 8) -> np.ndarray:
    """Before and after next to each other, separated by a white gap."""
    b, a = _check_pair(before, after)
    if gap_px < 0:
        raise ValueError(f"gap_px must be >= 0, got {gap_px}")
    gap = np.full((b.shape[0], gap_px, 3), 255, np.uint8)
    return np.concatenate([b, gap, a], axis=1)


def legend(kind: str) -> list[tuple[str, str, str]]:
    """Colour legend as ``(hex colour, colour name, label)``; ``kind`` is "veins" or "change"."""
    if kind == "veins":
        table, colour_names, names = VEIN_COLOURS, VEIN_COLOUR_NAMES, VEIN_LABELS
    elif kind == "change":
        table, colour_names, names = CHANGE_COLOURS, CHANGE_COLOUR_NAMES, CHANGE_LABELS
    else:
        raise ValueError(f"kind must be 'veins' or 'change', got {kind!r}")
    return [
        ("#{:02x}{:02x}{:02x}".format(*table[k]), colour_names[k], names[k]) for k in sorted(table)
    ]


# ----------------------------------------------------------------------------- uploads


@dataclass(frozen=True)
class StoredUpload:
    """A stored upload and its capture feedback.

    Attributes
    ----------
    photo : PhotoInfo
        The stored photo's record.
    report : dict
        ``CaptureReport.to_dict()``: sharpness, exposure, framing against the baseline,
        ``ok`` and plain ``advice`` lines.
    """

    photo: PhotoInfo
    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the photo record and the capture report."""
        return {"photo": self.photo.to_dict(), "report": dict(self.report)}


#: Why an upload that does not match the baseline is kept apart (shown on every page).
UNMATCHED_REASON = (
    "does not align with the area's baseline photo (another leg, area or pose?): retake "
    "it, or keep it apart"
)


@dataclass(frozen=True, eq=False)
class UploadCheck:
    """The capture check of one upload, made before anything is stored.

    Attributes
    ----------
    name : str
        The uploaded file's name (metadata only).
    area_id : int
    report : dict or None
        ``CaptureReport.to_dict()``; None when the file is not a usable photo.
    thumbnail : ndarray, shape (h, w, 3), dtype uint8, or None
        A small picture of the upload (at most :data:`THUMB_MAX_SIDE` px).
    error : str or None
        Why the file cannot be stored (not a photo, too large...).
    """

    name: str
    area_id: int
    report: dict[str, Any] | None
    thumbnail: np.ndarray | None
    error: str | None = None

    @property
    def matches_baseline(self) -> bool | None:
        """False when the photo could not be aligned with the area's baseline."""
        if self.report is None:
            return None
        value = self.report.get("matches_baseline")
        return None if value is None else bool(value)

    @property
    def status(self) -> str:
        """The status the photo is stored with: ``"unmatched"`` or ``"ok"``."""
        return "unmatched" if self.matches_baseline is False else "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (no pixels)."""
        return {
            "name": self.name,
            "area_id": self.area_id,
            "report": self.report,
            "error": self.error,
            "status": self.status if self.error is None else None,
        }


#: Longest side of a thumbnail, px.
THUMB_MAX_SIDE = 240


def check_upload(
    repo: Repository, actor: Actor, *, area_id: int, data: bytes, filename: str
) -> UploadCheck:
    """Decode an upload and assess the capture against the area's baseline; store nothing.

    The page shows the result (thumbnail, sharpness, exposure, framing, whether it
    matches the baseline) before the aesthetician stores the photo. A file that is not
    a usable photo is refused here, and the refusal audited.
    """
    from .capture import assess_capture
    from .errors import PhotoError

    policy.require(actor, policy.Action.UPLOAD_PHOTOS)
    area = repo.get_area(actor, area_id)
    try:
        photo = load_photo(bytes(data), max_pixels=get_settings().max_pixels)
    except PhotoError as exc:
        repo.log_refusal(
            actor,
            "photo_upload",
            reason=str(exc),
            client_id=area.client_id,
            target=("area", area_id),
            detail={"file": str(filename)[:200], "step": "capture check"},
        )
        return UploadCheck(
            name=filename, area_id=area_id, report=None, thumbnail=None, error=str(exc)
        )
    baseline: Photo | None = None
    if area.baseline_photo_id is not None:
        baseline = repo.load_photo(actor, area.baseline_photo_id)
    report = assess_capture(photo, baseline).to_dict()
    thumb = preview(photo.rgb, max_side=THUMB_MAX_SIDE)
    return UploadCheck(name=filename, area_id=area_id, report=report, thumbnail=thumb)


def store_upload(
    repo: Repository,
    actor: Actor,
    *,
    visit_id: int,
    area_id: int,
    data: bytes,
    filename: str,
    report: Mapping[str, Any] | None = None,
    status: str | None = None,
    replaces: int | None = None,
    reason: str | None = None,
) -> StoredUpload:
    """Decode an uploaded photo, assess the capture against the area's baseline, store both.

    Parameters
    ----------
    repo : Repository
    actor : Actor
        The signed-in user (the repository checks the role and the client's consent).
    visit_id, area_id : int
        Where the photo belongs.
    data : bytes
        The file as uploaded.
    filename : str
        The uploaded name (kept as metadata only; never used as a path).
    report : mapping, optional
        The capture check already made (:func:`check_upload`); made here otherwise.
    status : {"ok", "unmatched"}, optional
        Default: "unmatched" when the check found it does not match the baseline (kept,
        flagged, never measured or exported), else "ok".
    replaces : int, optional
        A retake: the photo of the same area and visit this one replaces (soft-deleted
        with ``reason``; the new photo takes its place as primary, and as baseline).
    reason : str, optional
        Why the old photo is retaken (required with ``replaces``).

    Raises
    ------
    PhotoError
        Not a readable photo, too large or too small.
    AccessDenied, ConsentError, StorageError
        From the repository.
    """
    from .capture import assess_capture

    # Refused before the photo is decoded and assessed, not after.
    policy.require(actor, policy.Action.UPLOAD_PHOTOS)
    if replaces is not None and not (reason or "").strip():
        raise ValueError("reason: say why the photo is retaken (it is kept in the audit log)")
    if report is None:
        photo = load_photo(bytes(data), max_pixels=get_settings().max_pixels)
        area = repo.get_area(actor, area_id)
        baseline: Photo | None = None
        if area.baseline_photo_id is not None and area.baseline_photo_id != replaces:
            baseline = repo.load_photo(actor, area.baseline_photo_id)
        report = assess_capture(photo, baseline).to_dict()
        del photo, baseline
    chosen = status or ("unmatched" if report.get("matches_baseline") is False else "ok")
    info = repo.add_photo(
        actor,
        area_id,
        visit_id,
        bytes(data),
        filename=filename,
        capture_report=report,
        status=chosen,
        status_reason=UNMATCHED_REASON if chosen == "unmatched" else None,
    )
    if replaces is not None:
        info = repo.replace_photo(actor, replaces, info.id, reason=str(reason))
    return StoredUpload(photo=info, report=dict(report))


_thumbs: OrderedDict[tuple[str, str, int], np.ndarray] = OrderedDict()
_thumbs_lock = threading.Lock()
_THUMB_CACHE_SIZE = 256


def thumbnail(
    repo: Repository, actor: Actor, photo_id: int, *, max_side: int = THUMB_MAX_SIDE
) -> np.ndarray:
    """A small picture of a stored photo (cached by content, after the access check)."""
    info = repo.get_photo(actor, photo_id)
    key = (repo.settings.db_url, info.sha256, int(max_side))
    with _thumbs_lock:
        hit = _thumbs.get(key)
        if hit is not None:
            _thumbs.move_to_end(key)
            return hit
    small = preview(repo.load_photo(actor, photo_id).rgb, max_side=max_side)
    small.setflags(write=False)
    with _thumbs_lock:
        _thumbs[key] = small
        while len(_thumbs) > _THUMB_CACHE_SIZE:
            _thumbs.popitem(last=False)
    return small


def baseline_ghost(repo: Repository, actor: Actor, area_id: int) -> np.ndarray | None:
    """The faded, outlined baseline of an area (a preview), or None without a baseline."""
    area = repo.get_area(actor, area_id)
    if area.baseline_photo_id is None:
        return None
    return ghost(preview(repo.load_photo(actor, area.baseline_photo_id).rgb))


def photo_status_text(info: PhotoInfo) -> str:
    """Why a photo gives no figure, in a clinic user's words (empty for a usable photo)."""
    if info.deleted_at is not None:
        return f"This photo was deleted ({info.delete_reason or 'no reason given'})."
    if info.status == "unmatched":
        return (
            "This photo does not match the area's baseline: "
            f"{info.status_reason or UNMATCHED_REASON}. Retake it or choose another photo."
        )
    if info.status == "refused":
        return (
            "This photo could not be aligned with the baseline"
            f"{': ' + info.status_reason if info.status_reason else ''}. Retake it or choose "
            "another photo."
        )
    return ""


# ----------------------------------------------------------------------------- analysis

Rect = tuple[float, float, float, float]


def _check_rect(name: str, rect: Rect | None) -> Rect | None:
    if rect is None:
        return None
    if len(rect) != 4:
        raise ValueError(f"{name} must be (x0, y0, x1, y1) fractions, got {rect!r}")
    x0, y0, x1, y1 = (float(v) for v in rect)
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
        raise ValueError(
            f"{name} must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {rect!r}"
        )
    return (x0, y0, x1, y1)


@dataclass(frozen=True)
class AnalysisParams:
    """What the aesthetician chose on the review page.

    Attributes
    ----------
    sensitivity : float
        Segmentation sensitivity in [0, 1].
    include_rect : (x0, y0, x1, y1) or None
        Keep only this rectangle of the baseline, as fractions of width and height
        (x right, y down); None keeps the whole overlap.
    exclude_rect : (x0, y0, x1, y1) or None
        Erase this rectangle from the region, same convention.
    target_pct : float
        The clinic's target, percent.
    """

    sensitivity: float = 0.5
    include_rect: Rect | None = None
    exclude_rect: Rect | None = None
    target_pct: float = 75.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.sensitivity <= 1.0:
            raise ValueError(f"sensitivity must be in [0, 1], got {self.sensitivity}")
        if not 0.0 < self.target_pct <= 100.0:
            raise ValueError(f"target_pct must be in (0, 100], got {self.target_pct}")
        object.__setattr__(self, "include_rect", _check_rect("include_rect", self.include_rect))
        object.__setattr__(self, "exclude_rect", _check_rect("exclude_rect", self.exclude_rect))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (stored with the analysis)."""
        return {
            "sensitivity": round(self.sensitivity, 4),
            "include_rect": list(self.include_rect) if self.include_rect else None,
            "exclude_rect": list(self.exclude_rect) if self.exclude_rect else None,
            "target_pct": self.target_pct,
        }

    def key(self) -> str:
        """sha256 of the canonical JSON of :meth:`to_dict`."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def roi_mask(self, shape: tuple[int, int]) -> np.ndarray | None:
        """The region of interest at ``shape`` ``(H, W)`` as bool, or None for no limit."""
        if self.include_rect is None and self.exclude_rect is None:
            return None
        h, w = shape
        roi = np.zeros((h, w), bool) if self.include_rect else np.ones((h, w), bool)
        if self.include_rect:
            x0, y0, x1, y1 = self.include_rect
            roi[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)] = True
        if self.exclude_rect:
            x0, y0, x1, y1 = self.exclude_rect
            roi[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)] = False
        return roi


@dataclass(frozen=True, eq=False)
class ReviewData:
    """What the review page shows for one pair: numbers and downscaled images.

    Every image is a preview in the *baseline* frame, at most ``PREVIEW_MAX_SIDE`` px.

    Attributes
    ----------
    result : dict
        ``Comparison.to_dict()``.
    baseline, followup : ndarray, shape (h, w, 3), uint8
        Baseline and the follow-up warped onto it.
    baseline_labels, followup_labels : ndarray, shape (h, w), uint8
        0 none, 1 spider, 2 reticular.
    change_map : ndarray, shape (h, w), uint8
        Codes of :data:`CHANGE_LABELS`.
    region : ndarray, shape (h, w), bool
        The measured region.
    baseline_photo_id, followup_photo_id : int
    params : AnalysisParams
    cached : bool
        True when the result came from the cache (no computation on this call).
    saved : bool
        True when this result is stored in the client's record.
    masks_png : dict of str to bytes
        Full-resolution masks (change map, labels, region) as PNG, for saving.
    source_analysis_id : int or None
        The saved analysis this review was rebuilt from (its masks are reused on saving).
    """

    result: dict[str, Any]
    baseline: np.ndarray
    followup: np.ndarray
    baseline_labels: np.ndarray
    followup_labels: np.ndarray
    change_map: np.ndarray
    region: np.ndarray
    baseline_photo_id: int
    followup_photo_id: int
    params: AnalysisParams
    cached: bool = False
    saved: bool = False
    masks_png: Mapping[str, bytes] = field(default_factory=dict)
    source_analysis_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no pixels): the result, the pair, the parameters, the state."""
        return {
            "result": self.result,
            "baseline_photo_id": self.baseline_photo_id,
            "followup_photo_id": self.followup_photo_id,
            "params": self.params.to_dict(),
            "preview_shape": list(self.baseline.shape[:2]),
            "cached": self.cached,
            "saved": self.saved,
        }


_CACHE_SIZE = 12
_cache: OrderedDict[tuple[str, str, str, str, str], ReviewData] = OrderedDict()
_cache_lock = threading.Lock()


def _cache_get(key: tuple[str, str, str, str, str]) -> ReviewData | None:
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
        return hit


def _cache_put(key: tuple[str, str, str, str, str], value: ReviewData) -> None:
    with _cache_lock:
        _cache[key] = value
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def clear_analysis_cache() -> None:
    """Forget every cached review (tests; after a re-analysis)."""
    with _cache_lock:
        _cache.clear()


def _png(mask: np.ndarray, name: str) -> bytes:
    from .storage import encode_mask_png

    return encode_mask_png(mask, name=name)


def _to_size(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A picture (area-averaged) or a mask / label map (nearest neighbour, dtype kept)
    at ``size`` = (w, h); returned as it is when already that size."""
    if (arr.shape[1], arr.shape[0]) == size:
        return arr
    if arr.ndim == 3:
        return np.asarray(cv2.resize(arr, size, interpolation=cv2.INTER_AREA))
    src = arr.astype(np.uint8) if arr.dtype == bool else arr
    out = cv2.resize(src, size, interpolation=cv2.INTER_NEAREST)
    return out.astype(bool) if arr.dtype == bool else np.asarray(out)


def review_from_comparison(
    comparison: Comparison,
    baseline_rgb: np.ndarray,
    *,
    baseline_photo_id: int,
    followup_photo_id: int,
    params: AnalysisParams,
) -> ReviewData:
    """Downscale a :class:`~vein_tracker.measure.Comparison` into what the page shows.

    The comparison's maps may be at the analysis scale (smaller than the photo): every
    picture of the page is brought to the size of the baseline's preview.
    """
    base = preview(baseline_rgb)
    size = (base.shape[1], base.shape[0])

    def fit(arr: np.ndarray) -> np.ndarray:
        return _to_size(preview(arr), size)

    return ReviewData(
        result=comparison.to_dict(),
        baseline=base,
        followup=fit(comparison.registration.warped),
        baseline_labels=fit(comparison.baseline_seg.labels),
        followup_labels=fit(comparison.followup_seg.labels),
        change_map=fit(comparison.change_map),
        region=fit(comparison.region),
        baseline_photo_id=baseline_photo_id,
        followup_photo_id=followup_photo_id,
        params=params,
        masks_png={
            "change_map": _png(comparison.change_map, "change_map"),
            "baseline_labels": _png(comparison.baseline_seg.labels, "baseline_labels"),
            "followup_labels": _png(comparison.followup_seg.labels, "followup_labels"),
            "region": _png(comparison.region, "region"),
        },
    )


ProgressCallback = Callable[[float, str], None]


def analyze_pair(
    repo: Repository,
    actor: Actor,
    *,
    baseline_photo_id: int,
    followup_photo_id: int,
    params: AnalysisParams,
    progress: ProgressCallback | None = None,
) -> ReviewData:
    """Compare a follow-up photo with its baseline, or return the cached result.

    The cache key is (database, baseline sha256, follow-up sha256, parameters hash,
    ``ALGORITHM_VERSION``). The photos' records are read through the repository
    first, so the access check runs on every call, cached or not.

    Parameters
    ----------
    repo : Repository
    actor : Actor
    baseline_photo_id, followup_photo_id : int
    params : AnalysisParams
    progress : callable(fraction, message), optional
        Called as the work advances (fraction in [0, 1]).

    Returns
    -------
    ReviewData

    Raises
    ------
    RegistrationError
        The pair cannot be aligned; the message says why and what to retake.
    AccessDenied
        The user may not analyse pairs (:mod:`vein_tracker.policy`) or read these photos.
    """
    from .errors import RegistrationError
    from .measure import compare

    # Analysing is a clinic job: refused before any photo is read or compared.
    policy.require(actor, policy.Action.ANALYSE)
    b_info = repo.get_photo(actor, baseline_photo_id)
    f_info = repo.get_photo(actor, followup_photo_id)
    for info in (b_info, f_info):
        # Issue 24: a photo marked unmatched or refused (or deleted) is never measured.
        if not info.usable:
            raise RegistrationError(photo_status_text(info))
    # The database is part of the key: a saved analysis id means nothing in another one.
    key = (repo.settings.db_url, b_info.sha256, f_info.sha256, params.key(), ALGORITHM_VERSION)
    stored = repo.get_analysis(
        actor,
        baseline_photo_id,
        followup_photo_id,
        params=params.to_dict(),
        algorithm_version=ALGORITHM_VERSION,
    )
    hit = _cache_get(key)
    if hit is not None:
        if progress is not None:
            progress(1.0, "Result from the cache")
        # The same photo bytes may sit under other records: answer with this pair's ids.
        return replace(
            hit,
            cached=True,
            saved=stored is not None,
            baseline_photo_id=baseline_photo_id,
            followup_photo_id=followup_photo_id,
        )
    if stored is not None:
        review = _review_from_stored(repo, actor, stored, params=params)
        if review is not None:
            _cache_put(key, review)
            if progress is not None:
                progress(1.0, "Result from the saved analysis")
            return replace(review, cached=True, saved=True)
    if progress is not None:
        progress(0.02, "Loading the photos")
    baseline = repo.load_photo(actor, baseline_photo_id)
    followup = repo.load_photo(actor, followup_photo_id)
    try:
        comparison = compare(
            baseline,
            followup,
            roi=params.roi_mask(baseline.shape),
            sensitivity=params.sensitivity,
            target_pct=params.target_pct,
            progress=progress,
        )
    except RegistrationError as exc:
        # Issue 24: the photo is marked "refused" in the record, so Progress, reports and
        # exports flag it and never use it, and Review opens on a usable photo next time.
        repo.set_photo_status(actor, followup_photo_id, "refused", reason=str(exc))
        raise
    review = review_from_comparison(
        comparison,
        baseline.rgb,
        baseline_photo_id=baseline_photo_id,
        followup_photo_id=followup_photo_id,
        params=params,
    )
    _cache_put(key, review)
    return replace(review, saved=stored is not None)


_MASK_NAMES = ("change_map", "baseline_labels", "followup_labels", "region")


def _review_from_stored(
    repo: Repository, actor: Actor, stored: AnalysisInfo, *, params: AnalysisParams
) -> ReviewData | None:
    """Rebuild the review of a saved analysis from its masks and homography (no re-analysis).

    Returns None when the saved analysis lacks what the page needs (then it is recomputed).
    """
    h = (stored.result.get("registration") or {}).get("homography")
    if h is None or not set(_MASK_NAMES) <= set(stored.masks):
        return None
    masks = repo.load_analysis_masks(actor, stored.id)
    b = repo.load_photo(actor, stored.baseline_photo_id).rgb
    f = repo.load_photo(actor, stored.followup_photo_id).rgb
    bp, fp = preview(b), preview(f)
    hp = _scaled_homography(
        np.asarray(h, np.float64), fp.shape[1] / f.shape[1], bp.shape[1] / b.shape[1]
    )
    warped = cv2.warpPerspective(fp, hp, (bp.shape[1], bp.shape[0]), flags=cv2.INTER_LINEAR)
    size = (bp.shape[1], bp.shape[0])

    def small(name: str) -> np.ndarray:
        return _to_size(np.asarray(masks[name]), size)

    return ReviewData(
        result=dict(stored.result),
        baseline=bp,
        followup=warped,
        baseline_labels=small("baseline_labels"),
        followup_labels=small("followup_labels"),
        change_map=small("change_map"),
        region=small("region").astype(bool),
        baseline_photo_id=stored.baseline_photo_id,
        followup_photo_id=stored.followup_photo_id,
        params=params,
        cached=True,
        saved=True,
        source_analysis_id=stored.id,
    )


def save_analysis(repo: Repository, actor: Actor, review: ReviewData) -> AnalysisInfo:
    """Store a reviewed result (numbers, parameters, masks) in the client's record."""
    masks: dict[str, np.ndarray | bytes] = dict(review.masks_png)
    if not masks and review.source_analysis_id is not None:
        masks.update(repo.load_analysis_masks(actor, review.source_analysis_id))
    return repo.save_analysis(
        actor,
        review.baseline_photo_id,
        review.followup_photo_id,
        params=review.params.to_dict(),
        result=review.result,
        masks=masks,
    )


# ----------------------------------------------------------------------------- progress


def _latest_analyses(analyses: Sequence[AnalysisInfo], baseline_id: int) -> dict[int, AnalysisInfo]:
    """Latest analysis per follow-up photo against ``baseline_id`` (current algorithm first)."""
    best: dict[int, AnalysisInfo] = {}
    for a in analyses:
        if a.baseline_photo_id != baseline_id:
            continue
        cur = best.get(a.followup_photo_id)
        rank = (a.algorithm_version == ALGORITHM_VERSION, a.created_at, a.id)
        if cur is None or rank > (
            cur.algorithm_version == ALGORITHM_VERSION,
            cur.created_at,
            cur.id,
        ):
            best[a.followup_photo_id] = a
    return best


def primary_photos(
    photos: Iterable[PhotoInfo], *, exclude_visit: int | None = None
) -> dict[int, PhotoInfo]:
    """The photo that counts for each visit (its primary photo), by visit id.

    A visit whose primary photo is missing from ``photos`` (deleted) falls back on its
    earliest usable photo, so a visit never shows an alternate as if it counted unless
    it has nothing else.
    """
    best: dict[int, PhotoInfo] = {}
    for p in sorted(photos, key=lambda p: p.id):
        if p.visit_id == exclude_visit or p.deleted_at is not None:
            continue
        cur = best.get(p.visit_id)
        better = cur is None or (p.is_primary and not cur.is_primary)
        if better or (cur is not None and not cur.is_primary and not cur.usable and p.usable):
            best[p.visit_id] = p
    return best


def area_progress(
    repo: Repository, actor: Actor, area_id: int, *, target_pct: float = 75.0
) -> Progress | None:
    """Improvement of one area over its sessions, from the saved analyses.

    Returns None when the area has no baseline photo. Sessions whose follow-up photo
    has no saved analysis yet appear without a number.
    """
    from .progress import Visit, summarise

    area = repo.get_area(actor, area_id)
    if area.baseline_photo_id is None:
        return None
    photos = {p.id: p for p in repo.list_photos(actor, area_id=area_id)}
    baseline = photos.get(area.baseline_photo_id)
    if baseline is None:
        return None
    visits = {v.id: v for v in repo.list_visits(actor, area.client_id)}
    latest = _latest_analyses(repo.list_analyses(actor, area_id), baseline.id)
    # One point per later visit: the photo that counts for it (its primary photo); a
    # second photo of the same visit is an alternate and changes nothing here. A primary
    # photo marked unmatched or refused gives a flagged point without a figure.
    per_visit = primary_photos(photos.values(), exclude_visit=baseline.visit_id)
    series = [Visit(date=baseline.visit_date, treated=_treated(visits.get(baseline.visit_id)))]
    for p in sorted(per_visit.values(), key=lambda p: (p.visit_date, p.session_number)):
        if p.visit_date < baseline.visit_date:
            continue
        if not p.usable:
            series.append(
                Visit(
                    date=p.visit_date,
                    treated=_treated(visits.get(p.visit_id)),
                    photo_status=p.status,
                )
            )
            continue
        a = latest.get(p.id)
        res = a.result if a is not None else {}
        band = res.get("improvement_band_pct") or None
        series.append(
            Visit(
                date=p.visit_date,
                improvement_pct=_float_or_none(res.get("improvement_pct")),
                band_pct=(float(band[0]), float(band[1]))
                if band and None not in band[:2]
                else None,
                by_class_pct={
                    k: _float_or_none(v)
                    for k, v in (res.get("improvement_by_class_pct") or {}).items()
                },
                vein_counts={k: int(v) for k, v in (res.get("veins") or {}).items()},
                warnings=tuple(str(w) for w in res.get("warnings") or ()),
                treated=_treated(visits.get(p.visit_id)),
            )
        )
    return summarise(series, target_pct=target_pct)


def _treated(visit: VisitInfo | None) -> bool:
    return visit is None or visit.sclerosant is not None


def _float_or_none(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


@dataclass(frozen=True, eq=False)
class PairPreview:
    """Baseline and the latest analysed follow-up of an area, aligned, as previews."""

    baseline: np.ndarray
    followup: np.ndarray
    baseline_date: date
    followup_date: date
    improvement_pct: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no pixels)."""
        return {
            "baseline_date": self.baseline_date.isoformat(),
            "followup_date": self.followup_date.isoformat(),
            "improvement_pct": self.improvement_pct,
            "preview_shape": list(self.baseline.shape[:2]),
        }


def _scaled_homography(h: np.ndarray, s_from: float, s_to: float) -> np.ndarray:
    """A full-resolution homography re-expressed between images scaled by s_from / s_to."""
    a = np.diag([s_to, s_to, 1.0])
    b = np.diag([1.0 / s_from, 1.0 / s_from, 1.0])
    return a @ h @ b


def latest_pair_preview(repo: Repository, actor: Actor, area_id: int) -> PairPreview | None:
    """The area's baseline and latest analysed follow-up, aligned with the saved homography."""
    area = repo.get_area(actor, area_id)
    if area.baseline_photo_id is None:
        return None
    photos = {p.id: p for p in repo.list_photos(actor, area_id=area_id)}
    counted = {p.id for p in primary_photos(photos.values()).values() if p.usable}
    latest = {
        pid: a
        for pid, a in _latest_analyses(
            repo.list_analyses(actor, area_id), area.baseline_photo_id
        ).items()
        if pid in counted
    }
    if not latest:
        return None
    newest = max(
        latest.values(),
        key=lambda a: (
            (photos[a.followup_photo_id].visit_date, a.followup_photo_id)
            if a.followup_photo_id in photos
            else (date.min, 0)
        ),
    )
    h = (newest.result.get("registration") or {}).get("homography")
    if h is None:
        return None
    b = repo.load_photo(actor, area.baseline_photo_id).rgb
    f = repo.load_photo(actor, newest.followup_photo_id).rgb
    bp, fp = preview(b), preview(f)
    hp = _scaled_homography(
        np.asarray(h, np.float64), fp.shape[1] / f.shape[1], bp.shape[1] / b.shape[1]
    )
    warped = cv2.warpPerspective(fp, hp, (bp.shape[1], bp.shape[0]), flags=cv2.INTER_LINEAR)
    return PairPreview(
        baseline=bp,
        followup=warped,
        baseline_date=photos[area.baseline_photo_id].visit_date,
        followup_date=photos[newest.followup_photo_id].visit_date,
        improvement_pct=newest.improvement_pct,
    )


# ----------------------------------------------------------------------------- comparison

#: Longest side of the pictures of the before/after comparison, px: the analysis frame's
#: own pixels (10 px/mm; a 200 mm field is 2000 px) capped to keep a phone's page light.
COMPARE_MAX_SIDE = 1600
_FRAME_CACHE_SIZE = 16
_frames: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
_frames_lock = threading.Lock()


def compare_size(
    photo_shape: tuple[int, int],
    analysis_shape: Sequence[int] | None = None,
    *,
    max_side: int = COMPARE_MAX_SIDE,
) -> tuple[int, int]:
    """``(w, h)`` of the comparison's pictures: the analysis frame, at most ``max_side``.

    Parameters
    ----------
    photo_shape : (H, W)
        The baseline photo's size, px.
    analysis_shape : (H, W) or None
        The size the pair was analysed at (``result["analysis"]["baseline_shape"]``);
        None when unknown (the photo's size is used).
    max_side : int
        Longest side, px (>= 64).
    """
    if max_side < 64:
        raise ValueError(f"max_side must be >= 64 px, got {max_side}")
    h, w = (int(v) for v in (analysis_shape or photo_shape)[:2])
    if h <= 0 or w <= 0:
        raise ValueError(f"analysis_shape must be a positive (H, W), got {analysis_shape!r}")
    scale = min(1.0, max_side / max(h, w))
    # Keep the photo's aspect ratio exactly (the analysis frame rounds its sides).
    ph, pw = photo_shape[:2]
    long = max(1, round(max(h, w) * scale))
    if pw >= ph:
        return long, max(1, round(long * ph / pw))
    return max(1, round(long * pw / ph)), long


def align_followup(
    followup: np.ndarray,
    homography: np.ndarray,
    *,
    baseline_shape: tuple[int, int],
    size: tuple[int, int],
) -> np.ndarray:
    """The follow-up photo brought into the baseline's frame at ``size``.

    Parameters
    ----------
    followup : ndarray, shape (H', W', 3), dtype uint8
        The follow-up photo as stored (any size).
    homography : ndarray, shape (3, 3)
        Maps follow-up photo pixel (x, y) to baseline photo pixel (x, y).
    baseline_shape : (H, W)
        The baseline photo's size, px.
    size : (w, h)
        The result's size, px (the baseline photo scaled).

    Returns
    -------
    ndarray, shape (h, w, 3), dtype uint8
        Black where the follow-up does not reach.
    """
    f = as_rgb(followup)
    hmat = np.asarray(homography, np.float64)
    if hmat.shape != (3, 3) or not np.all(np.isfinite(hmat)):
        raise ValueError("homography must be a finite 3x3 matrix")
    s_to = size[0] / baseline_shape[1]
    # Reduce the follow-up first (area averaging), then warp: a warp that also shrinks
    # 2-3x would alias fine veins.
    small = preview(f, max_side=max(16, math.ceil(max(f.shape[:2]) * min(1.0, 1.25 * s_to))))
    s_from = small.shape[1] / f.shape[1]
    hp = _scaled_homography(hmat, s_from, s_to)
    return np.asarray(cv2.warpPerspective(small, hp, size, flags=cv2.INTER_LINEAR))


def _frame_cached(key: tuple[Any, ...], make: Callable[[], np.ndarray]) -> np.ndarray:
    with _frames_lock:
        hit = _frames.get(key)
        if hit is not None:
            _frames.move_to_end(key)
            return hit
    value = make()
    value.setflags(write=False)
    with _frames_lock:
        _frames[key] = value
        while len(_frames) > _FRAME_CACHE_SIZE:
            _frames.popitem(last=False)
    return value


def pair_frames(
    repo: Repository,
    actor: Actor,
    *,
    baseline_photo_id: int,
    followup_photo_id: int,
    result: Mapping[str, Any],
    max_side: int = COMPARE_MAX_SIDE,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Baseline and follow-up in the baseline's frame, at the analysis frame's resolution.

    Parameters
    ----------
    result : dict
        The pair's analysis (``Comparison.to_dict()``): its homography and analysis size.
    max_side : int
        Longest side of the pictures, px.

    Returns
    -------
    (baseline, followup) : two ndarrays, shape (h, w, 3), uint8, or None
        None when the result carries no homography (the pair did not register).

    Raises
    ------
    AccessDenied
        The user may not read these photos (checked before any cached picture is used).
    """
    h = (result.get("registration") or {}).get("homography")
    if h is None:
        return None
    b_info = repo.get_photo(actor, baseline_photo_id)
    f_info = repo.get_photo(actor, followup_photo_id)
    analysis = (result.get("analysis") or {}).get("baseline_shape")
    size = compare_size((b_info.height, b_info.width), analysis, max_side=max_side)
    hkey = tuple(round(float(v), 9) for row in h for v in row)
    db = repo.settings.db_url

    def base() -> np.ndarray:
        rgb = repo.load_photo(actor, baseline_photo_id).rgb
        return _to_size(preview(rgb, max_side=max(16, max(size))), size)

    def follow() -> np.ndarray:
        rgb = repo.load_photo(actor, followup_photo_id).rgb
        return align_followup(
            rgb, np.asarray(h), baseline_shape=(b_info.height, b_info.width), size=size
        )

    b = _frame_cached((db, "b", b_info.sha256, size), base)
    f = _frame_cached((db, "f", b_info.sha256, f_info.sha256, hkey, size), follow)
    return b, f


@dataclass(frozen=True, eq=False)
class SessionFrame:
    """One session's picture of an area, in the baseline's frame.

    Attributes
    ----------
    label : str
        ``"session 2 · 2026-03-01"`` (plus "baseline" for the first).
    rgb : ndarray, shape (h, w, 3), dtype uint8
    photo_id : int
    visit_date : date
    session_number : int
    improvement_pct : float or None
        The saved analysis' figure (None for the baseline).
    """

    label: str
    rgb: np.ndarray
    photo_id: int
    visit_date: date
    session_number: int
    improvement_pct: float | None = None


def session_frames(
    repo: Repository, actor: Actor, area_id: int, *, max_side: int = COMPARE_MAX_SIDE
) -> list[SessionFrame]:
    """The area's baseline and each later session's analysed photo, aligned, oldest first.

    One picture per session: the photo Progress measures for that visit (its primary
    photo, when usable, with its latest saved analysis against the baseline). Sessions
    without a saved, registered analysis are left out. Empty when the area has no
    baseline or no such session.
    """
    area = repo.get_area(actor, area_id)
    if area.baseline_photo_id is None:
        return []
    photos = {p.id: p for p in repo.list_photos(actor, area_id=area_id)}
    baseline = photos.get(area.baseline_photo_id)
    if baseline is None:
        return []
    latest = _latest_analyses(repo.list_analyses(actor, area_id), baseline.id)
    per_visit: dict[int, tuple[PhotoInfo, AnalysisInfo]] = {}
    for p in primary_photos(photos.values(), exclude_visit=baseline.visit_id).values():
        analysis = latest.get(p.id)
        if not p.usable or analysis is None:
            continue
        if (analysis.result.get("registration") or {}).get("homography") is None:
            continue
        per_visit[p.visit_id] = (p, analysis)
    frames: list[SessionFrame] = []
    for p, analysis in sorted(per_visit.values(), key=lambda t: (t[0].visit_date, t[0].id)):
        pair = pair_frames(
            repo,
            actor,
            baseline_photo_id=baseline.id,
            followup_photo_id=p.id,
            result=analysis.result,
            max_side=max_side,
        )
        if pair is None:
            continue
        if not frames:
            frames.append(
                SessionFrame(
                    label=f"session {baseline.session_number} · {baseline.visit_date} (baseline)",
                    rgb=pair[0],
                    photo_id=baseline.id,
                    visit_date=baseline.visit_date,
                    session_number=baseline.session_number,
                )
            )
        frames.append(
            SessionFrame(
                label=f"session {p.session_number} · {p.visit_date}",
                rgb=pair[1],
                photo_id=p.id,
                visit_date=p.visit_date,
                session_number=p.session_number,
                improvement_pct=analysis.improvement_pct,
            )
        )
    return frames


# ----------------------------------------------------------------------------- hooks


def progress_report_pdf(repo: Repository, actor: Actor, client_id: int) -> bytes:
    """The client's PDF progress report (``vein_tracker.report``; access checked there)."""
    from .report import progress_report_pdf as build

    return build(repo, actor, client_id)


def marketing_export(
    repo: Repository, actor: Actor, pairs: Sequence[MarketingPair], *, channel: str
) -> ExportResult:
    """De-identified, watermarked composites and a manifest as a ZIP (``export.run_export``).

    Consent is re-checked pair by pair inside the export; pairs left out are listed in
    ``ExportResult.skipped`` with the reason.
    """
    from .export import run_export

    return run_export(repo, actor, list(pairs), channel=channel)
