"""Consents: treatment photography and marketing, with scopes, expiry and revocation.

Owns the ``consents`` rows and the two consent rules other aggregates apply inside
their own transactions: :func:`require_photo_consent` (photos) and
:func:`valid_marketing_consent` (marketing pairs and their photos).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ... import policy
from ...errors import AccessDenied, ConsentError
from ...policy import Action
from .. import models as m
from ..info import CHANNELS, CONSENT_KINDS, Actor, ConsentInfo, utcnow
from .base import RepositoryBase
from .common import DENIED, account_id, add_audit, choice, clean_text, get_or_missing
from .rows import consent_info


class ConsentRecords(RepositoryBase):
    """Consent records (part of :class:`~vein_tracker.storage.Repository`)."""

    def record_consent(
        self,
        actor: Actor,
        client_id: int,
        *,
        kind: str,
        scopes: Iterable[str] = (),
        signed_at: date | None = None,
        expires_at: date | None = None,
        note: str | None = None,
    ) -> ConsentInfo:
        """Record a signed consent (staff only).

        Parameters
        ----------
        kind : {"treatment_photography", "marketing"}
        scopes : iterable of {"website", "social", "print"}
            Required (non-empty) for marketing; must be empty for treatment photography.
        signed_at : date, optional
            Default today (UTC).
        expires_at : date, optional
            First day the consent is no longer valid; after ``signed_at``.
        """
        self._require(actor, Action.MANAGE_CONSENT)
        choice(kind, CONSENT_KINDS, "kind")
        scope_set = set(scopes)
        for sc in scope_set:
            choice(sc, CHANNELS, "scopes")
        if kind == "marketing" and not scope_set:
            raise ValueError("scopes must name at least one channel (website, social, print)")
        if kind == "treatment_photography" and scope_set:
            raise ValueError("scopes apply to marketing consent only; leave them empty")
        signed = signed_at or utcnow().date()
        if expires_at is not None and expires_at <= signed:
            raise ValueError("expires_at must be after signed_at")
        text = clean_text(note, field="note")

        def body(s: Session) -> ConsentInfo:
            get_or_missing(s, m.Client, client_id, "client")
            c = m.Consent(
                client_id=client_id,
                kind=kind,
                scope_website="website" in scope_set,
                scope_social="social" in scope_set,
                scope_print="print" in scope_set,
                signed_at=signed,
                expires_at=expires_at,
                recorded_by_id=account_id(actor),
                recorded_at=utcnow(),
                note=text,
            )
            s.add(c)
            s.flush()
            add_audit(
                s,
                actor,
                "consent_record",
                target=("consent", c.id),
                client_id=client_id,
                detail={
                    "kind": kind,
                    "scopes": sorted(scope_set),
                    "signed_at": signed.isoformat(),
                    "expires_at": expires_at.isoformat() if expires_at else None,
                },
            )
            return consent_info(s, c)

        return self._guard(actor, body, write=True)

    def revoke_consent(
        self,
        actor: Actor,
        consent_id: int,
        *,
        revoked_at: datetime | None = None,
        reason: str | None = None,
    ) -> ConsentInfo:
        """Revoke a consent; the record stays (history) and the effect is immediate.

        Staff may revoke any consent; a client account may revoke its own *marketing*
        consent. ``revoked_at`` (default now) may not be in the future. Revoking an
        already revoked consent returns it unchanged.
        """
        manages = policy.permits(actor, Action.MANAGE_CONSENT)
        if not manages and not policy.permits(actor, Action.WITHDRAW_OWN_MARKETING_CONSENT):
            raise AccessDenied(DENIED)
        when = revoked_at or utcnow()
        if when.tzinfo is None:
            raise ValueError("revoked_at must be timezone-aware (UTC)")
        if when > utcnow() + timedelta(minutes=1):
            raise ValueError("revoked_at must not be in the future")
        text = clean_text(reason, field="reason")

        def body(s: Session) -> ConsentInfo:
            c = get_or_missing(s, m.Consent, consent_id, "consent")
            if not manages:
                if c.client_id != actor.client_id:
                    raise AccessDenied(DENIED)
                if c.kind != "marketing":
                    raise AccessDenied(
                        "Treatment-photography consent is withdrawn with the clinic: ask your "
                        "aesthetician."
                    )
            if c.revoked_at is not None:
                return consent_info(s, c)
            c.revoked_at = when
            c.revoked_by_id = account_id(actor)
            c.revoke_reason = text
            add_audit(
                s,
                actor,
                "consent_revoke",
                target=("consent", c.id),
                client_id=c.client_id,
                detail={"kind": c.kind, "revoked_at": when.isoformat()},
            )
            return consent_info(s, c)

        return self._guard(actor, body, write=True)

    def list_consents(self, actor: Actor, client_id: int) -> list[ConsentInfo]:
        """Every consent of a client, revoked and expired included (staff, or the client)."""
        self._require_client_read(actor, client_id)

        def body(s: Session) -> list[ConsentInfo]:
            q = sa.select(m.Consent).where(m.Consent.client_id == client_id)
            return [consent_info(s, c) for c in s.scalars(q.order_by(m.Consent.id))]

        return self._guard(actor, body, write=False)

    def valid_consent(
        self,
        actor: Actor,
        client_id: int,
        kind: str,
        *,
        channel: str | None = None,
        on: date | None = None,
    ) -> ConsentInfo | None:
        """The consent of ``kind`` (covering ``channel``) valid on ``on`` (default today)."""
        choice(kind, CONSENT_KINDS, "kind")
        if channel is not None:
            choice(channel, CHANNELS, "channel")
        # Whoever exports pairs may ask any client's marketing consent, and nothing else.
        if not (kind == "marketing" and policy.permits(actor, Action.EXPORT_MARKETING)):
            self._require_client_read(actor, client_id)
        day = on or utcnow().date()

        def body(s: Session) -> ConsentInfo | None:
            q = sa.select(m.Consent).where(m.Consent.client_id == client_id, m.Consent.kind == kind)
            for c in s.scalars(q.order_by(m.Consent.signed_at.desc(), m.Consent.id.desc())):
                info = consent_info(s, c)
                if info.is_valid(day, channel=channel):
                    return info
            return None

        return self._guard(actor, body, write=False)

    def marketing_consent_valid(
        self, actor: Actor, client_id: int, channel: str, *, on: date | None = None
    ) -> bool:
        """True if the client's marketing consent covers ``channel`` on ``on`` (default today)."""
        return self.valid_consent(actor, client_id, "marketing", channel=channel, on=on) is not None


def valid_marketing_consent(
    s: Session, client_id: int, channel: str, day: date
) -> m.Consent | None:
    col = {
        "website": m.Consent.scope_website,
        "social": m.Consent.scope_social,
        "print": m.Consent.scope_print,
    }[channel]
    q = (
        sa.select(m.Consent)
        .where(m.Consent.client_id == client_id, m.Consent.kind == "marketing", col.is_(True))
        .order_by(m.Consent.signed_at.desc(), m.Consent.id.desc())
    )
    for c in s.scalars(q):
        if consent_info(s, c).is_valid(day, channel=channel):
            return c
    return None


def require_photo_consent(s: Session, client_id: int) -> None:
    today = utcnow().date()
    q = sa.select(m.Consent).where(
        m.Consent.client_id == client_id, m.Consent.kind == "treatment_photography"
    )
    if not any(consent_info(s, c).is_valid(today) for c in s.scalars(q)):
        raise ConsentError(
            "The client has no valid treatment-photography consent: record the signed consent "
            "before taking or uploading photos."
        )
