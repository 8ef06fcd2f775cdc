"""Photos coming in: the capture check of an upload, storing it, thumbnails and status.

Owns :func:`check_upload` (decode and assess against the area's baseline, store
nothing), :func:`store_upload` (store a photo or a retake with its capture report), the
thumbnails of stored photos, the baseline ghost that helps frame the next photo, and
why a photo gives no figure (:func:`photo_status_text`). Records and photo bytes go
through the repository, which checks the role and the client's consent; nothing here
touches SQL or photo files.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import policy
from ..config import get_settings
from ..io import Photo, load_photo
from .renders import ghost, preview

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..storage import Actor, Repository
    from ..storage.info import PhotoInfo

__all__ = [
    "THUMB_MAX_SIDE",
    "UNMATCHED_REASON",
    "StoredUpload",
    "UploadCheck",
    "baseline_ghost",
    "check_upload",
    "photo_status_text",
    "store_upload",
    "thumbnail",
]


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
    from ..capture import assess_capture
    from ..errors import PhotoError

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
    from ..capture import assess_capture

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
