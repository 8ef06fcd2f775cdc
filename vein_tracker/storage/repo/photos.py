"""Photos: upload, scale, baseline, metadata and the verified bytes.

Owns the ``photos`` and ``area_baselines`` rows; the bytes live in the photo store. A
photo's row is committed only after its file is durably stored. Reads of the pixels
are audited (``photo_view``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ... import policy
from ...errors import AccessDenied, ConsentError, PhotoError
from ...policy import Action
from .. import models as m
from ..info import CHANNELS, Actor, PhotoInfo, utcnow
from .base import RepositoryBase
from .common import DENIED, account_id, add_audit, choice, clean_text, get_or_missing, jsonable
from .consent import require_photo_consent, valid_marketing_consent
from .rows import photo_info
from .workflow import add_primary, audit_refusal


class PhotoRecords(RepositoryBase):
    """Photos of treatment areas (part of :class:`~vein_tracker.storage.Repository`)."""

    def add_photo(
        self,
        actor: Actor,
        area_id: int,
        visit_id: int,
        data: bytes,
        *,
        filename: str | None = None,
        px_per_mm: float | None = None,
        capture_report: Mapping[str, Any] | None = None,
        status: str = "ok",
        status_reason: str | None = None,
    ) -> PhotoInfo:
        """Store a photo of an area taken at a visit (staff only).

        The bytes are decoded with :func:`vein_tracker.io.load_photo` first (a bad
        file raises ``PhotoError`` and leaves no row and no file), then written to
        the photo store (atomic, durable), then the row is committed with its audit
        event. The same bytes for the same area and visit return the existing photo
        (deduplicated). The first photo of an area becomes its baseline.

        Parameters
        ----------
        data : bytes
            The file as uploaded (JPEG, PNG, TIFF, WebP, HEIC); stored unchanged.
        filename : str, optional
            Original name, kept for reference only (never used as a path).
        px_per_mm : float, optional
            Scale in pixels per millimetre, if known.
        capture_report : mapping, optional
            ``assess_capture(...).to_dict()``; stored as JSON.
        status : {"ok", "unmatched", "refused"}
            ``"unmatched"`` when the capture check found that the photo does not match
            the area's baseline (kept, flagged, never measured or exported), with
            ``status_reason``.

        The first photo of an area at a visit counts for that visit (its primary
        photo); later ones are alternates. Re-sending the bytes of a deleted photo of
        the same area and visit restores it. Every refusal is audited.

        Raises
        ------
        PhotoError
            Not a usable photo.
        ConsentError
            The client has no treatment-photography consent valid today.
        StorageError
            Disk full or not writable (nothing is stored).
        """
        self._require(actor, Action.UPLOAD_PHOTOS)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("data must be the photo file's bytes")
        try:  # issue 24 (H6): a rejected upload is audited with its reason
            return self._add_photo(
                actor,
                area_id,
                visit_id,
                bytes(data),
                filename=filename,
                px_per_mm=px_per_mm,
                capture_report=capture_report,
                status=status,
                status_reason=status_reason,
            )
        except (PhotoError, ConsentError, ValueError) as exc:
            audit_refusal(
                self,
                actor,
                "photo_upload",
                reason=str(exc),
                detail={
                    "area_id": area_id,
                    "visit_id": visit_id,
                    "file": _safe_filename(filename),
                },
            )
            raise

    def _add_photo(
        self,
        actor: Actor,
        area_id: int,
        visit_id: int,
        blob: bytes,
        *,
        filename: str | None,
        px_per_mm: float | None,
        capture_report: Mapping[str, Any] | None,
        status: str,
        status_reason: str | None,
    ) -> PhotoInfo:
        from ...io import load_photo

        choice(status, m.PHOTO_STATUSES, "status")
        reason = clean_text(status_reason, field="status_reason", max_len=500)
        name = _safe_filename(filename)
        report = jsonable(capture_report) if capture_report is not None else None

        def check(s: Session) -> int:
            return _check_upload_target(s, area_id, visit_id)

        client_id = self._guard(actor, check, write=False)
        photo = load_photo(blob, px_per_mm=px_per_mm, max_pixels=self.settings.max_pixels)
        sha = self.store.put(blob)

        def body(s: Session) -> PhotoInfo:
            # Row lock (PostgreSQL): concurrent uploads to one area agree on the baseline.
            a = get_or_missing(s, m.TreatmentArea, area_id, "treatment area", lock=True)
            require_photo_consent(s, a.client_id)
            existing = s.scalar(
                sa.select(m.Photo).where(
                    m.Photo.area_id == area_id, m.Photo.visit_id == visit_id, m.Photo.sha256 == sha
                )
            )
            if existing is not None:
                if existing.deleted_at is not None:  # issue 24 (H6): sent again: restored
                    existing.deleted_at = existing.deleted_by_id = existing.delete_reason = None
                    _ensure_primary(s, actor, area_id, visit_id, existing.id)
                    s.flush()
                return photo_info(s, existing)
            p = m.Photo(
                client_id=client_id,
                area_id=area_id,
                visit_id=visit_id,
                sha256=sha,
                size_bytes=len(blob),
                width=photo.width,
                height=photo.height,
                format=photo.format,
                original_filename=name,
                capture_time=photo.capture_time,
                px_per_mm=photo.px_per_mm,
                capture_report=report,
                uploaded_at=utcnow(),
                uploaded_by_id=account_id(actor),
                status=status,
                status_reason=reason,
                status_at=utcnow() if status != "ok" else None,
                status_by_id=account_id(actor) if status != "ok" else None,
            )
            s.add(p)
            s.flush()
            _ensure_primary(s, actor, area_id, visit_id, p.id)  # issue 24 (H6)
            if s.get(m.VisitArea, (visit_id, area_id)) is None:
                s.add(m.VisitArea(visit_id=visit_id, area_id=area_id))
            if s.get(m.AreaBaseline, area_id) is None:
                s.add(
                    m.AreaBaseline(
                        area_id=area_id,
                        photo_id=p.id,
                        set_at=utcnow(),
                        set_by_id=account_id(actor),
                    )
                )
            s.flush()
            add_audit(
                s,
                actor,
                "photo_upload",
                target=("photo", p.id),
                client_id=client_id,
                detail={
                    "sha256": sha,
                    "area_id": area_id,
                    "visit_id": visit_id,
                    "status": status,
                    "status_reason": reason,
                },
            )
            return photo_info(s, p)

        return self._guard(actor, body, write=True)

    def update_photo(
        self,
        actor: Actor,
        photo_id: int,
        *,
        px_per_mm: float | None = None,
        capture_report: Mapping[str, Any] | None = None,
    ) -> PhotoInfo:
        """Set a photo's scale and/or capture report (staff only; None leaves a field)."""
        self._require(actor, Action.UPLOAD_PHOTOS)
        if px_per_mm is not None and not (math.isfinite(px_per_mm) and px_per_mm > 0):
            raise ValueError(f"px_per_mm must be a positive number, got {px_per_mm!r}")
        report = jsonable(capture_report) if capture_report is not None else None

        def body(s: Session) -> PhotoInfo:
            p = get_or_missing(s, m.Photo, photo_id, "photo")
            fields = []
            if px_per_mm is not None:
                p.px_per_mm = float(px_per_mm)
                fields.append("px_per_mm")
            if report is not None:
                p.capture_report = report
                fields.append("capture_report")
            add_audit(
                s,
                actor,
                "photo_update",
                target=("photo", p.id),
                client_id=p.client_id,
                detail={"fields": fields},
            )
            return photo_info(s, p)

        return self._guard(actor, body, write=True)

    def set_baseline(self, actor: Actor, photo_id: int) -> PhotoInfo:
        """Make this photo the baseline of its area (staff only)."""
        self._require(actor, Action.UPLOAD_PHOTOS)

        def body(s: Session) -> PhotoInfo:
            p = get_or_missing(s, m.Photo, photo_id, "photo")
            b = s.get(m.AreaBaseline, p.area_id)
            old = b.photo_id if b else None
            if b is None:
                s.add(
                    m.AreaBaseline(
                        area_id=p.area_id,
                        photo_id=p.id,
                        set_at=utcnow(),
                        set_by_id=account_id(actor),
                    )
                )
            else:
                b.photo_id = p.id
                b.set_at = utcnow()
                b.set_by_id = account_id(actor)
            s.flush()
            add_audit(
                s,
                actor,
                "photo_baseline",
                target=("photo", p.id),
                client_id=p.client_id,
                detail={"area_id": p.area_id, "previous": old},
            )
            return photo_info(s, p)

        return self._guard(actor, body, write=True)

    def get_photo(self, actor: Actor, photo_id: int, *, channel: str | None = None) -> PhotoInfo:
        """A photo's metadata (staff; owning client; marketing with a consented ``channel``)."""

        def body(s: Session) -> PhotoInfo:
            p = get_or_missing(s, m.Photo, photo_id, "photo")
            self._require_photo_read(s, actor, p, channel)
            return photo_info(s, p)

        return self._guard(actor, body, write=False)

    def list_photos(
        self,
        actor: Actor,
        *,
        client_id: int | None = None,
        area_id: int | None = None,
        visit_id: int | None = None,
        include_deleted: bool = False,
    ) -> list[PhotoInfo]:
        """Photos (metadata), oldest visit first, filtered by client, area and/or visit.

        Staff may list any; a client account only its own (``client_id`` defaults to
        it); marketing uses :meth:`list_marketing_pairs` instead. Deleted photos (and
        those of deleted visits) are left out unless ``include_deleted`` (staff only).
        """
        if include_deleted:
            self._require(actor, Action.VIEW_CLIENT_RECORDS)
        own = self._own_client_only(actor)
        if own is not None:
            if client_id is not None and client_id != own:
                raise AccessDenied(DENIED)
            client_id = own
        if client_id is None and area_id is None and visit_id is None:
            raise ValueError("give client_id, area_id or visit_id to list photos")

        def body(s: Session) -> list[PhotoInfo]:
            if area_id is not None:
                area = get_or_missing(s, m.TreatmentArea, area_id, "treatment area")
                self._require_client_read(actor, area.client_id)
            if visit_id is not None:
                visit = get_or_missing(s, m.Visit, visit_id, "visit")
                self._require_client_read(actor, visit.client_id)
            q = sa.select(m.Photo).join(m.Visit, m.Visit.id == m.Photo.visit_id)
            if client_id is not None:
                q = q.where(m.Photo.client_id == client_id)
            if area_id is not None:
                q = q.where(m.Photo.area_id == area_id)
            if visit_id is not None:
                q = q.where(m.Photo.visit_id == visit_id)
            if not include_deleted:  # issue 24 (H6)
                q = q.where(m.Photo.deleted_at.is_(None), m.Visit.deleted_at.is_(None))
            rows = list(
                s.scalars(q.order_by(m.Visit.visit_date, m.Visit.session_number, m.Photo.id))
            )
            for p in rows:
                self._require_client_read(actor, p.client_id)
            return [photo_info(s, p) for p in rows]

        return self._guard(actor, body, write=False)

    def baseline_photo(self, actor: Actor, area_id: int) -> PhotoInfo | None:
        """The baseline photo of an area (None before the first upload)."""

        def body(s: Session) -> PhotoInfo | None:
            a = get_or_missing(s, m.TreatmentArea, area_id, "treatment area")
            self._require_client_read(actor, a.client_id)
            b = s.get(m.AreaBaseline, area_id)
            return None if b is None else photo_info(s, s.get_one(m.Photo, b.photo_id))

        return self._guard(actor, body, write=False)

    def get_photo_bytes(self, actor: Actor, photo_id: int, *, channel: str | None = None) -> bytes:
        """The verified original file bytes of a photo; audited as ``photo_view``.

        Staff and the owning client may read; marketing only with ``channel`` for which
        the client's marketing consent is valid today.

        Raises
        ------
        AccessDenied
        StorageError
            The file is missing or damaged.
        """

        def body(s: Session) -> str:
            p = get_or_missing(s, m.Photo, photo_id, "photo")
            self._require_photo_read(s, actor, p, channel)
            add_audit(
                s,
                actor,
                "photo_view",
                target=("photo", p.id),
                client_id=p.client_id,
                detail={"channel": channel} if channel else {},
            )
            return p.sha256

        sha = self._guard(actor, body, write=True)
        return self.store.get(sha)

    def load_photo(self, actor: Actor, photo_id: int, *, channel: str | None = None) -> Any:
        """The decoded :class:`vein_tracker.io.Photo` (upright RGB), with its stored scale.

        Same access rules and audit as :meth:`get_photo_bytes`.
        """
        from ...io import load_photo

        info = self.get_photo(actor, photo_id, channel=channel)
        data = self.get_photo_bytes(actor, photo_id, channel=channel)
        return load_photo(data, px_per_mm=info.px_per_mm, max_pixels=self.settings.max_pixels)

    def _require_photo_read(
        self, s: Session, actor: Actor, p: m.Photo, channel: str | None
    ) -> None:
        if self._reads_client(actor, p.client_id):
            # issue 24 (H6): a deleted photo is the clinic's record only, not the client's.
            if p.deleted_at is not None and self._own_client_only(actor) is not None:
                raise AccessDenied(DENIED)
            return
        # issue 24 (H6): a deleted, unmatched or refused photo is never exported.
        if p.deleted_at is not None or p.status != "ok":
            raise AccessDenied(
                "This photo was deleted or does not match its baseline: it cannot be used."
            )
        # Beyond the clinical records: a consented marketing photo, for its channel only.
        if not policy.permits(actor, Action.EXPORT_MARKETING):
            raise AccessDenied(DENIED)
        if channel is None:
            raise AccessDenied("Name the channel (website, social, print) the photo is for.")
        choice(channel, CHANNELS, "channel")
        if valid_marketing_consent(s, p.client_id, channel, utcnow().date()) is None:
            raise AccessDenied(
                f"This client has no valid marketing consent for {channel}: the photo cannot "
                "be used."
            )


def _check_upload_target(s: Session, area_id: int, visit_id: int) -> int:
    """The area and visit exist, are of one client, the visit is not deleted and the
    client consents to photos; returns the client's id."""
    a = get_or_missing(s, m.TreatmentArea, area_id, "treatment area")
    v = get_or_missing(s, m.Visit, visit_id, "visit")
    if a.client_id != v.client_id:
        raise ValueError("area_id and visit_id belong to different clients")
    if v.deleted_at is not None:  # issue 24 (H6)
        raise ValueError("visit_id: this visit was deleted; start or choose another")
    require_photo_consent(s, a.client_id)
    return a.client_id


def _ensure_primary(s: Session, actor: Actor, area_id: int, visit_id: int, photo_id: int) -> None:
    """Make ``photo_id`` the photo that counts for the area at the visit, unless one does."""
    if s.get(m.PrimaryPhoto, (area_id, visit_id)) is None:
        add_primary(s, area_id, visit_id, photo_id, by=actor)


def _safe_filename(filename: str | None) -> str | None:
    if filename is None:
        return None
    name = str(filename).replace("\x00", "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:255] or None
