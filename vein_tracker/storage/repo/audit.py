"""The audit log: events raised outside storage, the admin's view and system actions.

Every write of the other aggregates adds its own audit row in its transaction
(:func:`.common.add_audit`); this module reads the log and records the events that
happen outside storage (sign-out, time-out, report, export) and the local operator's
maintenance (backup, restore, fsck, seed).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ...policy import Action
from .. import models as m
from ..info import SYSTEM_ACTOR, Actor, AuditInfo
from .base import RepositoryBase
from .common import AUDIT_ACTIONS, EXTERNAL_EVENTS, add_audit, choice, jsonable
from .rows import audit_info


class AuditRecords(RepositoryBase):
    """The audit log (part of :class:`~vein_tracker.storage.Repository`)."""

    def log_event(
        self,
        actor: Actor,
        action: str,
        *,
        client_id: int | None = None,
        target_type: str | None = None,
        target_id: int | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append an audit event raised outside storage: ``logout``, ``session_timeout``,
        ``report`` (a client's PDF was produced: staff or that client) or ``export``.
        """
        choice(action, sorted(EXTERNAL_EVENTS), "action")
        if action == "report":
            self._require(actor, Action.PROGRESS_REPORT)
            if client_id is not None:
                self._require_client_read(actor, client_id)
        if action == "export":
            self._require(actor, Action.EXPORT_MARKETING)
        extra = jsonable(detail or {})

        def body(s: Session) -> None:
            add_audit(
                s,
                actor,
                action,
                client_id=client_id,
                target=(target_type, target_id) if target_type else None,
                detail=extra,
            )

        self._guard(actor, body, write=True)

    def list_audit(
        self,
        actor: Actor,
        *,
        action: str | None = None,
        username: str | None = None,
        client_id: int | None = None,
        since: datetime | date | None = None,
        until: datetime | date | None = None,
        ok: bool | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> list[AuditInfo]:
        """Audit events, newest first, with filters (admin only).

        ``action`` is an action name of :data:`AUDIT_ACTIONS` (exact match) or part of
        one (e.g. ``"photo"`` matches every photo action); ``username`` is exact.
        ``since`` is inclusive, ``until`` exclusive (aware datetimes); a plain date
        means that whole day (UTC), so ``until=date`` includes that day.
        """
        self._require(actor, Action.VIEW_AUDIT)
        since = _as_utc_start(since, inclusive_day=False)
        until = _as_utc_start(until, inclusive_day=True)
        action = (action or "").strip().lower() or None
        if limit < 1 or offset < 0:
            raise ValueError("limit must be >= 1 and offset >= 0")

        def body(s: Session) -> list[AuditInfo]:
            q = sa.select(m.AuditEvent)
            if action is not None and action in AUDIT_ACTIONS:
                q = q.where(m.AuditEvent.action == action)
            elif action is not None:
                q = q.where(m.AuditEvent.action.contains(action, autoescape=True))
            if username is not None:
                q = q.where(m.AuditEvent.username == username.strip().lower())
            if client_id is not None:
                q = q.where(m.AuditEvent.client_id == client_id)
            if since is not None:
                q = q.where(m.AuditEvent.at >= since)
            if until is not None:
                q = q.where(m.AuditEvent.at < until)
            if ok is not None:
                q = q.where(m.AuditEvent.ok == ok)
            q = q.order_by(m.AuditEvent.id.desc()).limit(limit).offset(offset)
            return [audit_info(e) for e in s.scalars(q)]

        return self._guard(actor, body, write=False)

    def audit_log(self, actor: Actor, **filters: Any) -> list[AuditInfo]:
        """Same as :meth:`list_audit`."""
        return self.list_audit(actor, **filters)

    def audit_system(self, action: str, *, detail: Mapping[str, Any] | None = None) -> None:
        """Audit a maintenance action of the local operator (backup, restore, fsck, seed)."""
        choice(action, sorted(AUDIT_ACTIONS), "action")
        extra = jsonable(detail or {})
        self._run(lambda s: add_audit(s, SYSTEM_ACTOR, action, detail=extra), write=True)


def _as_utc_start(value: datetime | date | None, *, inclusive_day: bool) -> datetime | None:
    if value is None or isinstance(value, datetime):
        if value is not None and value.tzinfo is None:
            raise ValueError("since/until datetimes must be timezone-aware (UTC)")
        return value
    day = value + timedelta(days=1) if inclusive_day else value
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
