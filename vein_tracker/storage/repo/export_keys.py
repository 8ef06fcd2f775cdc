"""Anonymous export ids: the clinic's private key and the mapping of published ids.

Owns the ``export_keys`` and ``exported_pairs`` rows (migration 0002). Issue 24.

A published pair's id is ``HMAC-SHA256(key, "<baseline photo id>:<follow-up photo id>")``
(hex, :data:`PUBLIC_ID_HEX` digits) with a 256-bit key that exists only in this database.
So the id is distinct per pair and stable across exports, the clinic can trace a
published image back (:meth:`ExportKeyRecords.trace_public_id`, or by recomputing), and
an outsider, even one holding an original photo, a client's name or a consent record,
cannot link it to anything: without the key the id is indistinguishable from random.
Neither the key nor the mapping ever leaves in an export.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ...policy import Action
from .. import models as m
from ..info import CHANNELS, Actor, MarketingPair, utcnow
from .base import RepositoryBase
from .common import account_id, add_audit, choice

#: Hex digits of a public id (96 bits: no collision among a clinic's pairs, short to read).
PUBLIC_ID_HEX = 24


def public_id(secret: bytes, baseline_photo_id: int, followup_photo_id: int) -> str:
    """The published id of a pair under ``secret`` (HMAC-SHA256, hex, truncated)."""
    msg = f"{int(baseline_photo_id)}:{int(followup_photo_id)}".encode("ascii")
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()[:PUBLIC_ID_HEX]


def pair_key(pair: MarketingPair) -> str:
    """``"<baseline photo id>-<follow-up photo id>"``: a pair's key inside the clinic."""
    return f"{pair.baseline_photo_id}-{pair.followup_photo_id}"


@dataclass(frozen=True)
class ExportTrace:
    """Where a published pair came from (for the clinic only).

    Attributes
    ----------
    public_id : str
    client_id, area_id, baseline_photo_id, followup_photo_id : int
    channel : str
    exported_at : datetime
    exported_by : str or None
    """

    public_id: str
    client_id: int
    area_id: int
    baseline_photo_id: int
    followup_photo_id: int
    channel: str
    exported_at: datetime
    exported_by: str | None


def _current_key(s: Session, actor: Actor) -> m.ExportKey:
    key = s.scalar(sa.select(m.ExportKey).order_by(m.ExportKey.id.desc()).limit(1))
    if key is None:
        key = m.ExportKey(
            secret=secrets.token_bytes(32), created_at=utcnow(), created_by_id=account_id(actor)
        )
        s.add(key)
        s.flush()
    return key


class ExportKeyRecords(RepositoryBase):
    """Anonymous export ids (part of :class:`~vein_tracker.storage.Repository`)."""

    def export_public_ids(self, actor: Actor, pairs: Sequence[MarketingPair]) -> dict[str, str]:
        """The published id of each pair, by :func:`pair_key` (creates the key on first use)."""
        self._require(actor, Action.EXPORT_MARKETING)

        def body(s: Session) -> dict[str, str]:
            key = _current_key(s, actor)
            return {
                pair_key(p): public_id(key.secret, p.baseline_photo_id, p.followup_photo_id)
                for p in pairs
            }

        return self._guard(actor, body, write=True)

    def record_exported_pairs(
        self,
        actor: Actor,
        pairs: Sequence[MarketingPair],
        *,
        channel: str,
        public_ids: dict[str, str],
    ) -> None:
        """Keep the private mapping of each exported pair's published id to its records."""
        self._require(actor, Action.EXPORT_MARKETING)
        choice(channel, CHANNELS, "channel")

        def body(s: Session) -> None:
            key = _current_key(s, actor)
            now = utcnow()
            for p in pairs:
                pid = public_ids[pair_key(p)]
                if pid != public_id(key.secret, p.baseline_photo_id, p.followup_photo_id):
                    raise ValueError("public_ids: an id was not made with the current key")
                s.add(
                    m.ExportedPair(
                        public_id=pid,
                        key_id=key.id,
                        client_id=p.client_id,
                        area_id=p.area_id,
                        baseline_photo_id=p.baseline_photo_id,
                        followup_photo_id=p.followup_photo_id,
                        channel=channel,
                        exported_at=now,
                        exported_by_id=account_id(actor),
                    )
                )

        self._guard(actor, body, write=True)

    def trace_public_id(self, actor: Actor, public_id_text: str) -> list[ExportTrace]:
        """Where a published pair id came from (admin): every export of it, newest first.

        An id that no export of this clinic made gives an empty list.
        """
        self._require(actor, Action.VIEW_AUDIT)
        text = (public_id_text or "").strip().lower()

        def body(s: Session) -> list[ExportTrace]:
            rows = s.scalars(
                sa.select(m.ExportedPair)
                .where(m.ExportedPair.public_id == text)
                .order_by(m.ExportedPair.exported_at.desc(), m.ExportedPair.id.desc())
            )
            out = []
            for r in rows:
                who = s.get(m.User, r.exported_by_id) if r.exported_by_id else None
                out.append(
                    ExportTrace(
                        public_id=r.public_id,
                        client_id=r.client_id,
                        area_id=r.area_id,
                        baseline_photo_id=r.baseline_photo_id,
                        followup_photo_id=r.followup_photo_id,
                        channel=r.channel,
                        exported_at=r.exported_at,
                        exported_by=who.username if who else None,
                    )
                )
            add_audit(s, actor, "export_trace", detail={"public_id": text, "found": len(out)})
            return out

        return self._guard(actor, body, write=True)
