"""Signed-in browsers: what lets a reload or a link keep the user signed in.

Owns the ``web_sessions`` table (migration 0002). A sign-in starts a web session and
hands the browser a one-time code; the browser trades the code, once and within
:data:`HANDOFF_TTL`, for a 256-bit token that the server sets as an HttpOnly,
SameSite=Strict cookie (``vein_tracker.ui.web_auth``). A new browser connection with
that cookie resumes the session while it is neither revoked, idle longer than the idle
timeout, nor older than :data:`MAX_AGE`; the account must still be active and unlocked,
and the role is the account's as it is now.

Only SHA-256 digests of the code and the token are stored, so a copy of the database
signs nobody in. Nothing here ever goes into a URL. Every start, resume, refusal and
end is audited.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ...errors import AccessDenied
from .. import models as m
from ..info import Actor, utcnow
from .base import RepositoryBase
from .common import add_audit

#: How long the one-time code that hands the cookie over stays valid.
HANDOFF_TTL = timedelta(minutes=2)
#: Longest life of a web session however active (a working day): a stolen cookie does
#: not live for ever even in a browser that is never idle.
MAX_AGE = timedelta(hours=12)
#: A resumed session's last activity is written at most this often (each script run of
#: an active user would otherwise be a database write).
TOUCH_EVERY = timedelta(seconds=60)
#: The one refusal message (an unknown, expired or revoked token all read the same).
RESUME_REFUSED = "Your session has ended: please sign in again."
_REASONS = ("sign_out", "idle", "account_changed", "expired", "replaced")


def digest(secret: str) -> str:
    """SHA-256 (hex) of a code or token: what the database keeps instead of the secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _secret() -> str:
    # 32 random bytes (256 bits), URL-safe text.
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ResumedSession:
    """A web session resumed from its cookie.

    Attributes
    ----------
    actor : Actor
        The account as it is now.
    session_id : int
        The web session (to touch or end it).
    """

    actor: Actor
    session_id: int


class WebSessionRecords(RepositoryBase):
    """Signed-in browsers (part of :class:`~vein_tracker.storage.Repository`)."""

    def start_web_session(self, actor: Actor) -> tuple[int, str]:
        """Start a web session for a user who has just signed in.

        Returns
        -------
        (session_id, code)
            The session, and the one-time code the browser trades for its cookie
            (valid :data:`HANDOFF_TTL`, once). The code is not stored, only its digest.
        """
        if actor.is_system:
            raise AccessDenied("The local operator has no browser session.")
        code = _secret()
        now = utcnow()

        def body(s: Session) -> int:
            row = m.WebSession(
                user_id=actor.user_id,
                handoff_hash=digest(code),
                handoff_expires_at=now + HANDOFF_TTL,
                created_at=now,
                last_seen_at=now,
            )
            s.add(row)
            s.flush()
            return int(row.id)

        return self._guard(actor, body, write=True), code

    def redeem_web_session(self, code: str) -> str:
        """Trade a one-time code for the session's token (the cookie's value).

        Called by the sign-in route, which has no actor: the code is the proof. A code
        works once, within :data:`HANDOFF_TTL`, for a session not revoked.

        Raises
        ------
        AccessDenied
            Unknown, used or expired code (audited).
        """
        if not isinstance(code, str) or not 20 <= len(code) <= 100:
            raise AccessDenied(RESUME_REFUSED)
        token = _secret()
        now = utcnow()

        def body(s: Session) -> str | None:
            row = s.scalar(sa.select(m.WebSession).where(m.WebSession.handoff_hash == digest(code)))
            if row is None:
                return None
            expires = row.handoff_expires_at
            row.handoff_hash = None  # used once, whatever happens next
            if row.revoked_at is not None or expires is None or expires < now:
                return None
            row.token_hash = digest(token)
            row.handoff_expires_at = None
            row.last_seen_at = now
            return token

        result = self._run(body, write=True)
        if result is None:
            self._refused("handoff: unknown, used or expired code")
            raise AccessDenied(RESUME_REFUSED)
        return result

    def handoff_done(self, actor: Actor, session_id: int) -> bool:
        """True once the browser has traded the session's code for its cookie."""

        def body(s: Session) -> bool:
            row = s.get(m.WebSession, session_id)
            return bool(row and row.user_id == actor.user_id and row.token_hash is not None)

        return self._guard(actor, body, write=False)

    def resume_web_session(self, token: str, *, idle_timeout_min: float) -> ResumedSession:
        """The signed-in user of a browser's cookie, if the session is still good.

        Parameters
        ----------
        token : str
            The cookie's value.
        idle_timeout_min : float
            Minutes without activity after which the session has ended.

        Raises
        ------
        AccessDenied
            Unknown, revoked, idle or too old session, or the account is inactive or
            locked (audited, with the same message for all).
        """
        if not isinstance(token, str) or not 20 <= len(token) <= 100:
            raise AccessDenied(RESUME_REFUSED)
        if not idle_timeout_min > 0:
            raise ValueError(f"idle_timeout_min must be > 0, got {idle_timeout_min}")
        now = utcnow()
        idle = timedelta(minutes=float(idle_timeout_min))

        def body(s: Session) -> ResumedSession | str:
            row = s.scalar(sa.select(m.WebSession).where(m.WebSession.token_hash == digest(token)))
            if row is None:
                return "unknown token"
            if row.revoked_at is not None:
                return f"revoked ({row.revoke_reason})"
            reason = _ended(row, now, idle)
            if reason is not None:
                row.revoked_at = now
                row.revoke_reason = reason
                return reason
            user = s.get(m.User, row.user_id)
            if user is None or not user.active or (user.locked_until or now) > now:
                row.revoked_at = now
                row.revoke_reason = "account_changed"
                return "account inactive or locked"
            row.last_seen_at = now
            actor = Actor(
                user_id=user.id, username=user.username, role=user.role, client_id=user.client_id
            )
            add_audit(
                s,
                actor,
                "session_resume",
                target=("web_session", row.id),
                client_id=user.client_id,
            )
            return ResumedSession(actor=actor, session_id=int(row.id))

        result = self._run(body, write=True)
        if isinstance(result, str):
            self._refused(f"resume: {result}")
            raise AccessDenied(RESUME_REFUSED)
        return result

    def touch_web_session(self, actor: Actor, session_id: int) -> bool:
        """Record activity on the session (call at most every :data:`TOUCH_EVERY`).

        Returns False when the session has ended meanwhile (revoked elsewhere, idle,
        too old): the page should sign the user out.
        """
        now = utcnow()
        idle = timedelta(minutes=float(self.settings.idle_timeout_min))

        def body(s: Session) -> bool:
            row = s.get(m.WebSession, session_id)
            if row is None or row.user_id != actor.user_id or row.revoked_at is not None:
                return False
            if _ended(row, now, idle) is not None:
                return False
            row.last_seen_at = now
            return True

        return self._guard(actor, body, write=True)

    def end_web_session(self, actor: Actor, session_id: int, *, reason: str) -> None:
        """Revoke a session: its cookie signs nobody in any more (audited as a sign-out
        or an idle time-out).

        Parameters
        ----------
        reason : {"sign_out", "idle", "account_changed", "expired", "replaced"}
        """
        if reason not in _REASONS:
            raise ValueError(f"reason must be one of {_REASONS}, got {reason!r}")
        now = utcnow()

        def body(s: Session) -> None:
            row = s.get(m.WebSession, session_id)
            if row is None or row.user_id != actor.user_id:
                return
            if row.revoked_at is None:
                row.revoked_at = now
                row.revoke_reason = reason
                row.handoff_hash = None
            add_audit(
                s,
                actor,
                "session_timeout" if reason == "idle" else "logout",
                target=("web_session", row.id),
                client_id=actor.client_id,
                detail={"reason": reason},
            )

        # No account check: a deactivated account must still be able to end its session.
        self._run(body, write=True)

    def end_web_session_by_token(self, token: str) -> None:
        """Revoke the session of a cookie (the sign-out route; unknown tokens are ignored)."""
        if not isinstance(token, str) or not 20 <= len(token) <= 100:
            return
        now = utcnow()

        def body(s: Session) -> None:
            row = s.scalar(sa.select(m.WebSession).where(m.WebSession.token_hash == digest(token)))
            if row is not None and row.revoked_at is None:
                row.revoked_at = now
                row.revoke_reason = "sign_out"

        self._run(body, write=True)

    def _refused(self, reason: str) -> None:
        def body(s: Session) -> None:
            add_audit(s, None, "session_resume", ok=False, detail={"reason": reason})

        self._run(body, write=True)


def _ended(row: m.WebSession, now: datetime, idle: timedelta) -> str | None:
    """Why a session has ended by the clock (None while it is good)."""
    if now - row.last_seen_at > idle:
        return "idle"
    if now - row.created_at > MAX_AGE:
        return "expired"
    return None
