"""Signed-in browsers (issue 24 item 7): the repository side of the session cookie.

A sign-in starts a web session and gives a one-time code; the code is traded once, within
two minutes, for the cookie's token; the token resumes the session while it is unrevoked,
used within the idle timeout, younger than 12 hours and its account active. Only
SHA-256 digests are stored; every refusal is audited; sign-out and idle time-out end it.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa

from vein_tracker.errors import AccessDenied
from vein_tracker.storage import models as m
from vein_tracker.storage.info import utcnow
from vein_tracker.storage.repo.web_sessions import HANDOFF_TTL, MAX_AGE, RESUME_REFUSED


def _rows(repo: object) -> list[m.WebSession]:
    from sqlalchemy.orm import Session

    with Session(repo.engine) as s:  # type: ignore[attr-defined]
        return list(s.scalars(sa.select(m.WebSession)))


def _age(repo: object, session_id: int, **deltas: timedelta) -> None:
    """Move a session's clocks back (``last_seen_at=...``, ``created_at=...``)."""
    from sqlalchemy.orm import Session

    engine = repo.engine.execution_options(vt_write=True)  # type: ignore[attr-defined]
    with Session(engine) as s, s.begin():
        row = s.get_one(m.WebSession, session_id)
        for name, delta in deltas.items():
            setattr(row, name, getattr(row, name) - delta)


def test_code_once_then_token_resumes_the_account(clinic) -> None:
    repo = clinic.repo
    sid, code = repo.start_web_session(clinic.aest)
    assert len(code) >= 43  # 32 random bytes, URL-safe text
    assert not repo.handoff_done(clinic.aest, sid)
    token = repo.redeem_web_session(code)
    assert repo.handoff_done(clinic.aest, sid)
    assert token != code
    # Used once: the same code again is refused.
    with pytest.raises(AccessDenied, match="session has ended"):
        repo.redeem_web_session(code)
    resumed = repo.resume_web_session(token, idle_timeout_min=30)
    assert resumed.actor == clinic.aest
    assert resumed.session_id == sid
    # Only digests are stored: neither secret is in the database.
    (row,) = _rows(repo)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.handoff_hash is None
    with repo.engine.connect() as conn:
        dump = " ".join(
            str(v) for r in conn.execute(sa.text("SELECT * FROM web_sessions")) for v in r
        )
    assert token not in dump
    assert code not in dump


def test_an_expired_code_or_a_wrong_one_is_refused_and_audited(clinic) -> None:
    repo = clinic.repo
    sid, code = repo.start_web_session(clinic.client_a)
    _age(repo, sid, handoff_expires_at=HANDOFF_TTL + timedelta(seconds=1))
    with pytest.raises(AccessDenied):
        repo.redeem_web_session(code)
    with pytest.raises(AccessDenied):
        repo.redeem_web_session("x" * 43)
    with pytest.raises(AccessDenied):
        repo.redeem_web_session("short")
    refused = repo.list_audit(clinic.admin, action="session_resume", ok=False)
    assert len(refused) == 2  # the malformed one is refused before any lookup
    assert all("code" in e.detail["reason"] for e in refused)


@pytest.mark.parametrize(
    ("clock", "reason"),
    [
        ({"last_seen_at": timedelta(minutes=31)}, "idle"),
        ({"created_at": MAX_AGE + timedelta(minutes=1)}, "expired"),
    ],
)
def test_an_idle_or_old_session_ends(clinic, clock: dict[str, timedelta], reason: str) -> None:
    repo = clinic.repo
    sid, code = repo.start_web_session(clinic.aest)
    token = repo.redeem_web_session(code)
    _age(repo, sid, **clock)
    with pytest.raises(AccessDenied) as info:
        repo.resume_web_session(token, idle_timeout_min=30)
    assert str(info.value) == RESUME_REFUSED
    (row,) = _rows(repo)
    assert row.revoked_at is not None
    assert row.revoke_reason == reason
    # Once ended, always ended.
    with pytest.raises(AccessDenied):
        repo.resume_web_session(token, idle_timeout_min=10_000)
    assert not repo.touch_web_session(clinic.aest, sid)


def test_activity_keeps_it_alive(clinic) -> None:
    repo = clinic.repo
    sid, code = repo.start_web_session(clinic.aest)
    token = repo.redeem_web_session(code)
    _age(repo, sid, last_seen_at=timedelta(minutes=25))
    assert repo.touch_web_session(clinic.aest, sid)
    _age(repo, sid, last_seen_at=timedelta(minutes=25))  # 25 min since the touch
    assert repo.resume_web_session(token, idle_timeout_min=30).actor == clinic.aest
    # Someone else's session is not theirs to touch.
    assert not repo.touch_web_session(clinic.client_a, sid)


def test_sign_out_revokes_and_audits(clinic) -> None:
    repo = clinic.repo
    sid, code = repo.start_web_session(clinic.client_a)
    token = repo.redeem_web_session(code)
    repo.end_web_session(clinic.client_a, sid, reason="sign_out")
    with pytest.raises(AccessDenied):
        repo.resume_web_session(token, idle_timeout_min=30)
    events = repo.list_audit(clinic.admin, action="logout")
    assert [(e.username, e.detail["reason"]) for e in events] == [
        (clinic.client_a.username, "sign_out")
    ]
    # Another user's session cannot be ended (nothing happens).
    sid2, code2 = repo.start_web_session(clinic.aest)
    token2 = repo.redeem_web_session(code2)
    repo.end_web_session(clinic.client_a, sid2, reason="sign_out")
    assert repo.resume_web_session(token2, idle_timeout_min=30).actor == clinic.aest
    # The sign-out route ends a session by its cookie's token.
    repo.end_web_session_by_token(token2)
    with pytest.raises(AccessDenied):
        repo.resume_web_session(token2, idle_timeout_min=30)
    with pytest.raises(ValueError, match="reason"):
        repo.end_web_session(clinic.aest, sid2, reason="bored")


def test_a_deactivated_account_or_changed_role_signs_nobody_in(clinic) -> None:
    repo = clinic.repo
    sid, code = repo.start_web_session(clinic.aest)
    token = repo.redeem_web_session(code)
    repo.update_user(clinic.admin, clinic.aest.user_id, active=False)
    with pytest.raises(AccessDenied):
        repo.resume_web_session(token, idle_timeout_min=30)
    (row,) = _rows(repo)
    assert row.revoke_reason == "account_changed"
    # A role change: the resumed actor carries the account's role as it is now.
    sid2, code2 = repo.start_web_session(clinic.mkt)
    token2 = repo.redeem_web_session(code2)
    repo.update_user(clinic.admin, clinic.mkt.user_id, role="aesthetician")
    assert repo.resume_web_session(token2, idle_timeout_min=30).actor.role == "aesthetician"
    del sid, sid2


def test_the_local_operator_has_no_browser_session(clinic) -> None:
    with pytest.raises(AccessDenied):
        clinic.repo.start_web_session(clinic.system)
    assert utcnow().tzinfo is not None  # the clock the sessions use is aware UTC
