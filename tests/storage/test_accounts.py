"""Sign-in: argon2id hashes, generic failure, lock-out after 5 failures, first admin."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import sqlalchemy as sa

from vein_tracker.errors import AccessDenied
from vein_tracker.storage import LOGIN_FAILED_MESSAGE, SYSTEM_ACTOR, Actor, accounts
from vein_tracker.storage.info import utcnow
from vein_tracker.storage.repo import accounts as accounts_module

from .conftest import PASSWORD


def _fail(repo, username, password):
    with pytest.raises(AccessDenied) as exc:
        repo.authenticate(username, password)
    return str(exc.value)


def test_good_login_returns_the_actor(clinic):
    actor = clinic.repo.authenticate("ERIN.AESTH ", PASSWORD)  # case and spaces ignored
    assert actor == clinic.aest
    assert clinic.repo.get_user(clinic.admin, clinic.aest.user_id).last_login_at is not None


def test_failure_message_is_the_same_for_every_cause(clinic):
    repo = clinic.repo
    repo.update_user(clinic.admin, clinic.client_b.user_id, active=False)
    messages = {
        _fail(repo, "nobody.here", PASSWORD),
        _fail(repo, "erin.aesth", "wrong password!!"),
        _fail(repo, "bea.client", PASSWORD),  # inactive
        _fail(repo, "", ""),
        _fail(repo, "x" * 500, PASSWORD),
    }
    assert messages == {LOGIN_FAILED_MESSAGE}


def test_lockout_after_five_failures_for_fifteen_minutes(clinic, monkeypatch):
    repo = clinic.repo
    for _ in range(accounts.MAX_FAILED_LOGINS - 1):
        _fail(repo, "erin.aesth", "wrong password!!")
    info = repo.get_user(clinic.admin, clinic.aest.user_id)
    assert info.failed_logins == 4
    assert not info.is_locked()
    _fail(repo, "erin.aesth", "wrong password!!")
    info = repo.get_user(clinic.admin, clinic.aest.user_id)
    assert info.is_locked()
    assert info.locked_until is not None
    lock_s = (info.locked_until - utcnow()).total_seconds()
    assert 14 * 60 < lock_s <= 15 * 60
    # Locked: even the right password fails, with the same message.
    assert _fail(repo, "erin.aesth", PASSWORD) == LOGIN_FAILED_MESSAGE
    # 14 minutes later: still locked; 16 minutes later: open again.
    real = utcnow()
    monkeypatch.setattr(accounts_module, "utcnow", lambda: real + timedelta(minutes=14))
    _fail(repo, "erin.aesth", PASSWORD)
    monkeypatch.setattr(accounts_module, "utcnow", lambda: real + timedelta(minutes=16))
    assert repo.authenticate("erin.aesth", PASSWORD) == clinic.aest
    monkeypatch.undo()
    info = repo.get_user(clinic.admin, clinic.aest.user_id)
    assert info.failed_logins == 0
    assert info.locked_until is None


def test_admin_unlock(clinic):
    repo = clinic.repo
    for _ in range(accounts.MAX_FAILED_LOGINS):
        _fail(repo, "mark.marketing", "nope nope nope")
    _fail(repo, "mark.marketing", PASSWORD)
    repo.update_user(clinic.admin, clinic.mkt.user_id, unlock=True)
    assert repo.authenticate("mark.marketing", PASSWORD) == clinic.mkt


def test_unknown_user_costs_one_hash_like_a_known_one(clinic, monkeypatch):
    repo = clinic.repo
    real = repo.passwords.hasher
    calls: list[str] = []

    class Counting:
        def verify(self, hash_: str, password: str) -> bool:
            calls.append(hash_)
            return real.verify(hash_, password)

        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

    monkeypatch.setattr(repo.passwords, "hasher", Counting())
    _fail(repo, "no.such.user", "whatever password")
    _fail(repo, "erin.aesth", "whatever password")
    assert len(calls) == 2
    assert all(h.startswith("$argon2id$") for h in calls)


def test_passwords_are_never_stored_or_logged_in_clear(clinic):
    repo = clinic.repo
    _fail(repo, "erin.aesth", "my-secret-typo-123")
    repo.authenticate("erin.aesth", PASSWORD)
    repo.change_password(clinic.aest, PASSWORD, "another secret 456")
    with repo.engine.connect() as conn:
        dump = repr([list(r) for r in conn.execute(sa.text("SELECT * FROM users"))])
        dump += repr([list(r) for r in conn.execute(sa.text("SELECT * FROM audit_events"))])
    for secret in (PASSWORD, "my-secret-typo-123", "another secret 456"):
        assert secret not in dump
    with repo.engine.connect() as conn:
        hashes = list(conn.scalars(sa.text("SELECT password_hash FROM users")))
    assert hashes
    assert all(h.startswith("$argon2id$") for h in hashes)


def test_production_hasher_defaults_are_argon2id_rfc9106():
    h = accounts.default_hasher()
    assert h.time_cost >= 3
    assert h.memory_cost >= 65536
    assert h.hash("x" * 12).startswith("$argon2id$")


def test_weak_passwords_and_bad_usernames_are_refused(clinic):
    repo = clinic.repo
    for password, match in [
        ("short", "at least"),
        ("aaaaaaaaaaaa", "too simple"),
        (" padded pw 1 ", "too simple"),
    ]:
        with pytest.raises(ValueError, match=match):
            repo.create_user(clinic.admin, "weak.user", password, "marketing")
    for username in ["ab", "has space", "semi;colon", "x" * 65, "ünï"]:
        with pytest.raises(ValueError, match="username"):
            repo.create_user(clinic.admin, username, "a fine password", "marketing")
    assert len(repo.list_users(clinic.admin)) == 5


def test_user_rules(clinic):
    repo = clinic.repo
    with pytest.raises(ValueError, match="already taken"):
        repo.create_user(clinic.admin, "Erin.Aesth", "a fine password", "marketing")
    with pytest.raises(ValueError, match="client_id is required"):
        repo.create_user(clinic.admin, "c.user", "a fine password", "client")
    with pytest.raises(ValueError, match="client_id must be None"):
        repo.create_user(clinic.admin, "c.user", "a fine password", "admin", client_id=clinic.a.id)
    with pytest.raises(ValueError, match="role must be one of"):
        repo.create_user(clinic.admin, "c.user", "a fine password", "doctor")
    user, one_time = repo.invite_user(clinic.admin, "new.staff", "aesthetician")
    assert user.must_change_password
    assert len(one_time) >= 12
    assert repo.authenticate("new.staff", one_time).role == "aesthetician"
    new = repo.reset_password(clinic.admin, user.id)
    assert new != one_time
    _fail(repo, "new.staff", one_time)
    assert repo.authenticate("new.staff", new).username == "new.staff"


def test_bootstrap_admin_generated_once(repo, monkeypatch):
    monkeypatch.delenv("VEIN_TRACKER_ADMIN_USER", raising=False)
    monkeypatch.delenv("VEIN_TRACKER_ADMIN_PASSWORD", raising=False)
    out = io.StringIO()
    first = repo.bootstrap_admin(stream=out)
    assert first.created
    assert first.source == "generated"
    assert first.password is not None
    assert first.password in out.getvalue()
    actor = repo.authenticate("admin", first.password)
    assert actor.role == "admin"
    assert repo.get_user(actor, actor.user_id).must_change_password
    again = repo.bootstrap_admin(stream=out)
    assert not again.created
    assert again.password is None


def test_bootstrap_admin_from_environment(repo, monkeypatch):
    monkeypatch.setenv("VEIN_TRACKER_ADMIN_USER", "Head.Admin")
    monkeypatch.setenv("VEIN_TRACKER_ADMIN_PASSWORD", "from the environment 1")
    out = io.StringIO()
    result = repo.bootstrap_admin(stream=out)
    assert result.created
    assert result.source == "env"
    assert result.password is None
    assert out.getvalue() == ""
    actor = repo.authenticate("head.admin", "from the environment 1")
    assert not repo.get_user(actor, actor.user_id).must_change_password
    assert repo.list_audit(actor, action="admin_bootstrap")[0].detail["source"] == "env"


def test_bootstrap_refuses_a_weak_env_password(repo, monkeypatch):
    monkeypatch.setenv("VEIN_TRACKER_ADMIN_PASSWORD", "short")
    with pytest.raises(ValueError, match="at least"):
        repo.bootstrap_admin(stream=None)
    assert repo.user_count() == 0


def test_system_actor_cannot_sign_in_or_be_forged(clinic):
    with pytest.raises(AccessDenied):
        clinic.repo.change_password(SYSTEM_ACTOR, "a", "b long enough pw")
    assert clinic.repo.list_users(SYSTEM_ACTOR)
    forged = Actor(user_id=0, username="root", role="admin")
    with pytest.raises(AccessDenied):
        clinic.repo.list_users(forged)


def test_idle_session_expiry():
    t0 = utcnow()
    assert not accounts.session_expired(t0, idle_timeout_min=30, now=t0 + timedelta(minutes=30))
    assert accounts.session_expired(t0, idle_timeout_min=30, now=t0 + timedelta(minutes=30.1))
    with pytest.raises(ValueError, match="idle_timeout_min"):
        accounts.session_expired(t0, idle_timeout_min=0)
    with pytest.raises(ValueError, match="timezone"):
        accounts.session_expired(t0.replace(tzinfo=None), idle_timeout_min=5)
