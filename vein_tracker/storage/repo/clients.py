"""Clients and their contraindication screening.

Owns the ``clients`` rows, screening answers included (a screening is part of the
client record, recorded in the same transaction as the client when given).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ...policy import Action
from .. import models as m
from ..info import (
    SCREENING_QUESTIONS,
    Actor,
    ClientInfo,
    Screening,
    resolve_override,
    utcnow,
)
from .base import RepositoryBase
from .common import add_audit, clean_text, get_or_missing
from .rows import client_info
from .workflow import audit_refusal


class ClientRecords(RepositoryBase):
    """Client records and screening (part of :class:`~vein_tracker.storage.Repository`)."""

    def create_client(
        self,
        actor: Actor,
        *,
        name: str,
        date_of_birth: date | None = None,
        email: str | None = None,
        phone: str | None = None,
        address: str | None = None,
        fitzpatrick: int | None = None,
        notes: str | None = None,
        screening: Screening | None = None,
        override_reason: str | None = None,
        override: bool | None = None,
    ) -> ClientInfo:
        """Register a client (staff only), optionally with the screening in the same
        transaction (see :meth:`record_screening` for ``screening``, ``override_reason``
        and ``override``).
        """
        self._require(actor, Action.EDIT_CLIENTS)
        if screening is not None and not isinstance(screening, Screening):
            raise TypeError("screening must be a Screening or None")
        reason = clean_text(override_reason, field="override_reason")
        if override is not None and screening is not None:  # issue 24 (H6)
            reason = self._override(actor, screening, override, reason, client_id=None)
        values = _client_values(
            name=name,
            date_of_birth=date_of_birth,
            email=email,
            phone=phone,
            address=address,
            fitzpatrick=fitzpatrick,
            notes=notes,
        )
        if not values.get("name"):
            raise ValueError("name is required: enter the client's full name")

        def body(s: Session) -> ClientInfo:
            now = utcnow()
            c = m.Client(**values, created_at=now, updated_at=now)
            s.add(c)
            s.flush()
            add_audit(s, actor, "client_create", target=("client", c.id), client_id=c.id)
            if screening is not None:
                _apply_screening(s, actor, c, screening, now, reason)
            return client_info(c)

        return self._guard(actor, body, write=True)

    def update_client(self, actor: Actor, client_id: int, **changes: Any) -> ClientInfo:
        """Change a client's details (staff only).

        Keyword arguments: any of ``name``, ``date_of_birth``, ``email``, ``phone``,
        ``address``, ``fitzpatrick``, ``notes`` (None clears an optional field), and
        ``screening`` (a :class:`Screening`, recorded anew when it differs from the
        stored answers or ``override_reason`` changes) with ``override_reason``.
        """
        self._require(actor, Action.EDIT_CLIENTS)
        screening = changes.pop("screening", None)
        has_reason = "override_reason" in changes
        reason = clean_text(changes.pop("override_reason", None), field="override_reason")
        if screening is not None and not isinstance(screening, Screening):
            raise TypeError("screening must be a Screening or None")
        values = _client_values(**changes)
        if "name" in changes and not values.get("name"):
            raise ValueError("name must not be empty")

        def body(s: Session) -> ClientInfo:
            c = get_or_missing(s, m.Client, client_id, "client")
            changed = sorted(k for k, v in values.items() if getattr(c, k) != v)
            for k in changed:
                setattr(c, k, values[k])
            now = utcnow()
            c.updated_at = now
            if changed:
                add_audit(
                    s,
                    actor,
                    "client_update",
                    target=("client", c.id),
                    client_id=c.id,
                    detail={"fields": changed},
                )
            if screening is not None:
                current = client_info(c)
                new_reason = reason if has_reason else current.override_reason
                if current.screening != screening or (
                    screening.positives and new_reason != current.override_reason
                ):
                    _apply_screening(s, actor, c, screening, now, new_reason)
            return client_info(c)

        return self._guard(actor, body, write=True)

    def record_screening(
        self,
        actor: Actor,
        client_id: int,
        screening: Screening,
        *,
        screened_at: datetime | None = None,
        override_reason: str | None = None,
        override: bool | None = None,
    ) -> ClientInfo:
        """Record the contraindication screening (staff only).

        A positive answer needs ``override_reason`` (why treatment may still go ahead)
        before the client counts as cleared for treatment; without it the answers are
        still recorded and :attr:`ClientInfo.cleared_for_treatment` stays False.
        ``override=True`` says the user asked for an override: it is refused (and the
        refusal audited) without a reason, so it is never saved as "not cleared" by
        mistake; ``override=False`` records no override whatever the reason says.
        """
        self._require(actor, Action.EDIT_CLIENTS)
        if not isinstance(screening, Screening):
            raise TypeError("screening must be a Screening")
        reason = clean_text(override_reason, field="override_reason")
        if override is not None:  # issue 24 (H6)
            reason = self._override(actor, screening, override, reason, client_id=client_id)
        when = screened_at or utcnow()
        if when.tzinfo is None:
            raise ValueError("screened_at must be timezone-aware (UTC)")

        def body(s: Session) -> ClientInfo:
            c = get_or_missing(s, m.Client, client_id, "client")
            _apply_screening(s, actor, c, screening, when, reason)
            return client_info(c)

        return self._guard(actor, body, write=True)

    def _override(
        self,
        actor: Actor,
        screening: Screening,
        override: bool,
        reason: str | None,
        *,
        client_id: int | None,
    ) -> str | None:
        # issue 24 (H6): one rule (info.resolve_override); a refusal is audited.
        try:
            return resolve_override(screening, override=override, reason=reason)
        except ValueError as exc:
            audit_refusal(self, actor, "screening_record", reason=str(exc), client_id=client_id)
            raise

    def get_client(self, actor: Actor, client_id: int) -> ClientInfo:
        """A client record (staff, or that client's own account)."""
        self._require_client_read(actor, client_id)
        return self._guard(
            actor,
            lambda s: client_info(get_or_missing(s, m.Client, client_id, "client")),
            write=False,
        )

    def search_clients(self, actor: Actor, query: str = "", *, limit: int = 50) -> list[ClientInfo]:
        """Clients whose name, email or phone contains ``query`` (case-insensitive).

        Staff see all; a client account sees only itself; marketing is refused.
        An empty query lists clients by name.
        """
        own = self._own_client_only(actor)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        text = (query or "").strip()

        def body(s: Session) -> list[ClientInfo]:
            q = sa.select(m.Client).order_by(m.Client.name, m.Client.id).limit(limit)
            if own is not None:
                q = q.where(m.Client.id == own)
            if text:
                pattern = (
                    "%" + text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
                )
                q = q.where(
                    sa.or_(
                        m.Client.name.ilike(pattern, escape="\\"),
                        m.Client.email.ilike(pattern, escape="\\"),
                        m.Client.phone.ilike(pattern, escape="\\"),
                    )
                )
            return [client_info(c) for c in s.scalars(q)]

        return self._guard(actor, body, write=False)

    def list_clients(
        self, actor: Actor, *, search: str | None = None, limit: int = 200
    ) -> list[ClientInfo]:
        """Same as :meth:`search_clients` (``search`` None lists all by name)."""
        return self.search_clients(actor, search or "", limit=limit)


def _apply_screening(
    s: Session,
    actor: Actor,
    c: m.Client,
    screening: Screening,
    when: datetime,
    reason: str | None,
) -> None:
    for q in SCREENING_QUESTIONS:
        setattr(c, f"scr_{q}", bool(getattr(screening, q)))
    c.screened_at = when
    c.screened_by = actor.username
    c.screening_override_reason = reason if screening.positives else None
    c.updated_at = utcnow()
    add_audit(
        s,
        actor,
        "screening_record",
        target=("client", c.id),
        client_id=c.id,
        detail={"positives": list(screening.positives), "override": bool(reason)},
    )


def _client_values(**values: Any) -> dict[str, Any]:
    allowed = {"name", "date_of_birth", "email", "phone", "address", "fitzpatrick", "notes"}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"unknown client fields {sorted(unknown)}; use {sorted(allowed)}")
    out: dict[str, Any] = {}
    for k, v in values.items():
        if k == "date_of_birth":
            if v is not None and (not isinstance(v, date) or isinstance(v, datetime)):
                raise ValueError("date_of_birth must be a date")
            if v is not None and v > utcnow().date():
                raise ValueError("date_of_birth must not be in the future")
            out[k] = v
        elif k == "fitzpatrick":
            if v is not None and (isinstance(v, bool) or v not in (1, 2, 3, 4, 5, 6)):
                raise ValueError(f"fitzpatrick must be a skin type 1-6 or None, got {v!r}")
            out[k] = None if v is None else int(v)
        else:
            limit = {"name": 200, "email": 200, "phone": 50}.get(k, 4000)
            out[k] = clean_text(v, field=k, max_len=limit)
    return out
