"""The clinic's workflow on photos and visits: primary photos, status, delete and retake.

Owns the ``primary_photos`` rows and the status and soft-delete columns of ``photos``
and ``visits`` (migration 0002), and the audit of refusals raised outside the
repository (an upload that cannot be decoded, an export refused). Issue 24.

- One photo of an area counts for a visit: its *primary* photo. Others taken at the same
  visit are alternates, kept and choosable (:meth:`WorkflowRecords.set_primary_photo`).
- A photo's *status* says whether a figure or an export may use it: ``ok``;
  ``unmatched`` (the capture check found it does not match the area's baseline); or
  ``refused`` (its registration onto the baseline was refused). Only ``ok`` photos
  reach Progress, reports or an export; Review shows the others with their status.
- Delete and retake are *soft*: the row stays, hidden, with who, when and why; a retake
  points at the photo that replaced it. The bytes stay in the photo store until the
  retention rule (:meth:`WorkflowRecords.purge_deleted_photos`, :data:`RETENTION`)
  removes them; the row then records when.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ...errors import AccessDenied, StorageError
from ...policy import Action
from .. import models as m
from ..info import SYSTEM_ACTOR, Actor, PhotoInfo, VisitInfo, utcnow
from .base import RepositoryBase
from .common import account_id, add_audit, clean_text, get_or_missing
from .rows import photo_info, visit_info

#: A soft-deleted photo's bytes stay in the store this long (for a mistaken delete to be
#: undone by the clinic, and for the audit trail), then the retention rule removes them.
RETENTION = timedelta(days=30)
#: The photo statuses; only "ok" photos are measured, reported or exported.
PHOTO_STATUSES = m.PHOTO_STATUSES
#: Words for each status, for pages, reports and messages.
STATUS_LABELS: Mapping[str, str] = {
    "ok": "usable",
    "unmatched": "does not match the baseline",
    "refused": "could not be aligned with the baseline",
}


def _reason(reason: str | None, what: str) -> str:
    text = clean_text(reason, field="reason", max_len=500)
    if not text:
        raise ValueError(f"reason: say why the {what} is removed (it is kept in the audit log)")
    return text


def promote_alternate(s: Session, area_id: int, visit_id: int) -> int | None:
    """Make the visit's earliest usable, undeleted photo of the area its primary photo.

    Returns the new primary photo's id (None when none is left). Used when the primary
    is deleted or refused; the caller's transaction holds the change.
    """
    drop_primary(s, area_id, visit_id)
    candidate = s.scalar(
        sa.select(m.Photo)
        .where(
            m.Photo.area_id == area_id,
            m.Photo.visit_id == visit_id,
            m.Photo.deleted_at.is_(None),
        )
        .order_by((m.Photo.status == "ok").desc(), m.Photo.id)
        .limit(1)
    )
    if candidate is None:
        return None
    add_primary(s, area_id, visit_id, candidate.id, by=None)
    s.flush()
    return int(candidate.id)


def drop_primary(s: Session, area_id: int, visit_id: int) -> int | None:
    """Remove the row naming the photo that counts for the area at the visit (flushed,
    so another can take its place); returns that photo's id (None when there was none)."""
    row = s.get(m.PrimaryPhoto, (area_id, visit_id))
    if row is None:
        return None
    previous = row.photo_id
    s.delete(row)
    s.flush()
    return previous


def add_primary(
    s: Session, area_id: int, visit_id: int, photo_id: int, *, by: Actor | None
) -> None:
    """Make ``photo_id`` the photo that counts for the area at the visit; the caller has
    checked that no other does. ``by`` None: chosen by no one (an alternate promoted)."""
    s.add(
        m.PrimaryPhoto(
            area_id=area_id,
            visit_id=visit_id,
            photo_id=photo_id,
            set_at=utcnow(),
            set_by_id=None if by is None else account_id(by),
        )
    )


def audit_refusal(
    repo: RepositoryBase,
    actor: Actor,
    action: str,
    *,
    reason: str,
    client_id: int | None = None,
    target: tuple[str, int] | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Write one "refused" audit event in its own transaction (who, what and why).

    Never hides the refusal it records: if the audit row cannot be written, the caller's
    error still reaches the user.
    """
    text = str(reason)[:300]

    def body(s: Session) -> None:
        add_audit(
            s,
            actor,
            action,
            ok=False,
            target=target,
            client_id=client_id,
            detail={"reason": text, **dict(detail or {})},
        )

    with contextlib.suppress(StorageError, sa.exc.SQLAlchemyError):
        repo._run(body, write=True)


class WorkflowRecords(RepositoryBase):
    """Primary photos, photo status, delete and retake, refusals (part of the Repository)."""

    def log_refusal(
        self,
        actor: Actor,
        action: str,
        *,
        reason: str,
        client_id: int | None = None,
        target: tuple[str, int] | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Audit a refusal decided outside the repository (outcome "refused").

        For what the pages and services refuse before any record is touched: an upload
        that is not a usable photo, a page the role may not open, an export refused.
        The repository audits its own refusals itself. Never raises (the refusal being
        recorded must reach the user); an actor whose account does not check out is
        recorded as the name it claimed, not as that account.

        Parameters
        ----------
        action : str
            The audit action that was refused (``"photo_upload"``, ``"export"``,
            ``"access_denied"``, ``"visit_create"``...).
        reason : str
            Why, in the words shown to the user (at most 300 characters kept).
        """
        text = str(reason)[:300]

        def body(s: Session) -> None:
            who: Actor | None = actor
            extra: dict[str, Any] = {}
            try:
                self._check_actor(s, actor)
            except AccessDenied:
                # Kept, but never in the name of an account that is not (or no longer)
                # what the actor claims: the row says who was claimed.
                who = None
                extra = {"claimed_user": str(actor.username)[:64], "account_checked": False}
            add_audit(
                s,
                who,
                action,
                ok=False,
                target=target,
                client_id=client_id,
                detail={"reason": text, **extra, **dict(detail or {})},
            )

        with contextlib.suppress(StorageError, sa.exc.SQLAlchemyError):
            self._run(body, write=True)

    def set_primary_photo(self, actor: Actor, photo_id: int) -> PhotoInfo:
        """Make a photo the one that counts for its area at its visit (staff)."""
        self._require(actor, Action.UPLOAD_PHOTOS)

        def body(s: Session) -> PhotoInfo:
            p = get_or_missing(s, m.Photo, photo_id, "photo")
            self._require_client_read(actor, p.client_id)
            if p.deleted_at is not None:
                raise ValueError("photo_id: this photo was deleted; it cannot count for the visit")
            previous = drop_primary(s, p.area_id, p.visit_id)
            add_primary(s, p.area_id, p.visit_id, p.id, by=actor)
            s.flush()
            add_audit(
                s,
                actor,
                "photo_primary",
                target=("photo", p.id),
                client_id=p.client_id,
                detail={"area_id": p.area_id, "visit_id": p.visit_id, "previous": previous},
            )
            return photo_info(s, p)

        return self._guard(actor, body, write=True)

    def set_photo_status(
        self, actor: Actor, photo_id: int, status: str, *, reason: str | None = None
    ) -> PhotoInfo:
        """Record whether a photo may be measured and exported (staff).

        ``unmatched`` and ``refused`` need a reason. A primary photo that stops being
        ``ok`` stays primary (so the visit shows *why* it has no figure) until another
        photo is chosen or it is retaken.
        """
        self._require(actor, Action.UPLOAD_PHOTOS)
        if status not in PHOTO_STATUSES:
            raise ValueError(f"status must be one of {PHOTO_STATUSES}, got {status!r}")
        text = clean_text(reason, field="reason", max_len=500)
        if status != "ok" and not text:
            raise ValueError(f"reason: say why the photo is {STATUS_LABELS[status]}")

        def body(s: Session) -> PhotoInfo:
            p = get_or_missing(s, m.Photo, photo_id, "photo")
            self._require_client_read(actor, p.client_id)
            if p.status == status and p.status_reason == text:
                return photo_info(s, p)
            before = p.status
            p.status = status
            p.status_reason = text
            p.status_at = utcnow()
            p.status_by_id = account_id(actor)
            add_audit(
                s,
                actor,
                "photo_status",
                target=("photo", p.id),
                client_id=p.client_id,
                detail={"status": status, "previous": before, "reason": text},
            )
            return photo_info(s, p)

        return self._guard(actor, body, write=True)

    def delete_photo(self, actor: Actor, photo_id: int, *, reason: str) -> PhotoInfo:
        """Soft-delete a photo with the reason (staff): hidden everywhere, kept on record.

        If it counted for its visit, the visit's next photo of the area counts instead.
        The area's baseline cannot be deleted while later photos of the area are kept:
        retake it (:meth:`replace_photo`) instead.

        Raises
        ------
        ValueError
            No reason, already deleted, or the baseline of later photos.
        """
        self._require(actor, Action.UPLOAD_PHOTOS)
        text = _reason(reason, "photo")

        def body(s: Session) -> PhotoInfo:
            p = get_or_missing(s, m.Photo, photo_id, "photo")
            self._require_client_read(actor, p.client_id)
            if p.deleted_at is not None:
                raise ValueError("photo_id: this photo is already deleted")
            base = s.get(m.AreaBaseline, p.area_id)
            if base is not None and base.photo_id == p.id and _later_photos(s, p):
                raise ValueError(
                    "This photo is the area's baseline and later photos are compared with "
                    "it: retake it (upload the new baseline photo with Retake) instead."
                )
            _soft_delete(s, actor, p, text)
            if base is not None and base.photo_id == p.id:
                s.delete(base)
            primary = s.get(m.PrimaryPhoto, (p.area_id, p.visit_id))
            if primary is not None and primary.photo_id == p.id:
                promote_alternate(s, p.area_id, p.visit_id)
            add_audit(
                s,
                actor,
                "photo_delete",
                target=("photo", p.id),
                client_id=p.client_id,
                detail={"reason": text, "area_id": p.area_id, "visit_id": p.visit_id},
            )
            return photo_info(s, p)

        return self._guard(actor, body, write=True)

    def replace_photo(
        self, actor: Actor, old_photo_id: int, new_photo_id: int, *, reason: str
    ) -> PhotoInfo:
        """A retake: ``new_photo_id`` (just stored for the same area and visit) takes the
        old photo's place (primary, and baseline if it was); the old one is soft-deleted
        with ``reason`` and points at its replacement. Returns the new photo."""
        self._require(actor, Action.UPLOAD_PHOTOS)
        text = _reason(reason, "photo")

        def body(s: Session) -> PhotoInfo:
            old = get_or_missing(s, m.Photo, old_photo_id, "photo")
            new = get_or_missing(s, m.Photo, new_photo_id, "photo")
            self._require_client_read(actor, old.client_id)
            if (old.area_id, old.visit_id) != (new.area_id, new.visit_id) or old.id == new.id:
                raise ValueError(
                    "new_photo_id: a retake must be a new photo of the same area at the same visit"
                )
            if old.deleted_at is not None or new.deleted_at is not None:
                raise ValueError("old_photo_id: this photo is already deleted")
            _soft_delete(s, actor, old, text)
            old.replaced_by_id = new.id
            drop_primary(s, old.area_id, old.visit_id)
            add_primary(s, new.area_id, new.visit_id, new.id, by=actor)
            base = s.get(m.AreaBaseline, old.area_id)
            if base is not None and base.photo_id == old.id:
                base.photo_id = new.id
                base.set_at = utcnow()
                base.set_by_id = account_id(actor)
            s.flush()
            add_audit(
                s,
                actor,
                "photo_retake",
                target=("photo", new.id),
                client_id=new.client_id,
                detail={"replaces": old.id, "reason": text},
            )
            return photo_info(s, new)

        return self._guard(actor, body, write=True)

    def delete_visit(self, actor: Actor, visit_id: int, *, reason: str) -> VisitInfo:
        """Soft-delete a visit started by mistake, and its photos, with the reason (staff).

        Refused when the visit holds an area's baseline that later visits' photos are
        compared with.
        """
        self._require(actor, Action.RECORD_VISITS)
        text = _reason(reason, "visit")

        def body(s: Session) -> VisitInfo:
            v = get_or_missing(s, m.Visit, visit_id, "visit")
            self._require_client_read(actor, v.client_id)
            if v.deleted_at is not None:
                raise ValueError("visit_id: this visit is already deleted")
            photos = list(
                s.scalars(
                    sa.select(m.Photo).where(m.Photo.visit_id == v.id, m.Photo.deleted_at.is_(None))
                )
            )
            for p in photos:
                base = s.get(m.AreaBaseline, p.area_id)
                if base is not None and base.photo_id == p.id and _later_photos(s, p):
                    raise ValueError(
                        "This visit holds the baseline photo of an area that later visits are "
                        "compared with: it cannot be deleted. Correct its details instead."
                    )
            for p in photos:
                _soft_delete(s, actor, p, f"visit deleted: {text}")
                base = s.get(m.AreaBaseline, p.area_id)
                if base is not None and base.photo_id == p.id:
                    s.delete(base)
            for row in s.scalars(sa.select(m.PrimaryPhoto).where(m.PrimaryPhoto.visit_id == v.id)):
                s.delete(row)
            v.deleted_at = utcnow()
            v.deleted_by_id = account_id(actor)
            v.delete_reason = text
            number = v.session_number
            # The number is freed (kept in the audit event): the next visit started takes
            # it again when this was the last one, so the sessions read 1, 2, 3 to the client.
            v.session_number = -v.id
            add_audit(
                s,
                actor,
                "visit_delete",
                target=("visit", v.id),
                client_id=v.client_id,
                detail={
                    "reason": text,
                    "session_number": number,
                    "visit_date": v.visit_date,
                    "photos": [p.id for p in photos],
                },
            )
            return visit_info(s, v)

        return self._guard(actor, body, write=True)

    def list_deleted_photos(self, actor: Actor, area_id: int) -> list[PhotoInfo]:
        """The area's soft-deleted photos, newest first (staff: what was removed and why)."""
        self._require(actor, Action.VIEW_CLIENT_RECORDS)

        def body(s: Session) -> list[PhotoInfo]:
            a = get_or_missing(s, m.TreatmentArea, area_id, "treatment area")
            self._require_client_read(actor, a.client_id)
            rows = s.scalars(
                sa.select(m.Photo)
                .where(m.Photo.area_id == area_id, m.Photo.deleted_at.is_not(None))
                .order_by(m.Photo.deleted_at.desc(), m.Photo.id.desc())
            )
            return [photo_info(s, p) for p in rows]

        return self._guard(actor, body, write=False)

    def purge_deleted_photos(
        self, actor: Actor = SYSTEM_ACTOR, *, older_than: timedelta = RETENTION
    ) -> int:
        """The retention rule: remove from the photo store the bytes of photos deleted
        more than ``older_than`` ago (admin or the local operator).

        Bytes that a kept photo or an analysis mask still uses (the store is addressed by
        content) stay. The rows stay, marked ``bytes_purged_at``. Returns how many
        photos' bytes were removed.
        """
        self._require(actor, Action.MANAGE_USERS)
        if older_than < timedelta(0):
            raise ValueError(f"older_than must be >= 0, got {older_than}")
        cutoff = utcnow() - older_than

        def candidates(s: Session) -> list[tuple[int, str]]:
            rows = s.execute(
                sa.select(m.Photo.id, m.Photo.sha256).where(
                    m.Photo.deleted_at.is_not(None),
                    m.Photo.deleted_at < cutoff,
                    m.Photo.bytes_purged_at.is_(None),
                )
            )
            out = []
            for pid, sha in rows:
                kept = s.scalar(
                    sa.select(sa.func.count())
                    .select_from(m.Photo)
                    .where(m.Photo.sha256 == sha, m.Photo.deleted_at.is_(None))
                )
                masks = s.scalar(
                    sa.select(sa.func.count())
                    .select_from(m.AnalysisMask)
                    .where(m.AnalysisMask.sha256 == sha)
                )
                out.append((int(pid), sha if not kept and not masks else ""))
            return out

        todo = self._guard(actor, candidates, write=False)
        removed = 0
        for pid, sha in todo:
            if sha:
                self.store.delete(sha)
            now = utcnow()

            def mark(s: Session, pid: int = pid, now: Any = now, sha: str = sha) -> None:
                p = s.get_one(m.Photo, pid)
                p.bytes_purged_at = now
                add_audit(
                    s,
                    actor,
                    "photo_purge",
                    target=("photo", pid),
                    client_id=p.client_id,
                    detail={"deleted_at": p.deleted_at, "bytes_removed": bool(sha)},
                )

            self._run(mark, write=True)
            removed += 1
        return removed


def _later_photos(s: Session, p: m.Photo) -> bool:
    """True when kept photos of ``p``'s area were taken at a later visit."""
    v = s.get_one(m.Visit, p.visit_id)
    n = s.scalar(
        sa.select(sa.func.count())
        .select_from(m.Photo)
        .join(m.Visit, m.Visit.id == m.Photo.visit_id)
        .where(
            m.Photo.area_id == p.area_id,
            m.Photo.id != p.id,
            m.Photo.deleted_at.is_(None),
            m.Visit.visit_date >= v.visit_date,
            m.Visit.id != v.id,
        )
    )
    return bool(n)


def _soft_delete(s: Session, actor: Actor, p: m.Photo, reason: str) -> None:
    p.deleted_at = utcnow()
    p.deleted_by_id = account_id(actor)
    p.delete_reason = reason
