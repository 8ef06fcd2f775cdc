"""The repository: the one door to clinic records and photos, with access rules inside.

Owns every read and write of the database and the photo store, the access rules
(role, owner, consent) and the audit log. Pages, the CLI, export and report code
call these methods with the acting :class:`~vein_tracker.storage.info.Actor` and
get frozen dataclasses back; they never see SQL, ORM objects or file paths.

Rules enforced here (``AccessDenied`` otherwise):

- ``client`` accounts read only their own client record, areas, visits, photos,
  analyses and consents, and may revoke only their own *marketing* consent;
- ``marketing`` accounts read only before/after pairs whose client holds a
  marketing consent valid today for the channel asked for, and those photos;
- only staff (``admin``, ``aesthetician``) write clinic records;
- only ``admin`` manages users and reads the audit log.

Every write is one database transaction; the audit event of a write is part of it.
A photo's row is committed only after its file is durably in the photo store.
Reads of photo pixels are audited (``photo_view``): callers should cache the bytes
per page render rather than re-reading them on every Streamlit rerun.

SQLite "database is locked" and PostgreSQL serialisation failures are retried a few
times, then reported as ``StorageError`` with a clear message.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final, TypeVar

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import ALGORITHM_VERSION
from ..config import Settings, get_settings
from ..errors import AccessDenied, ConsentError, StorageError
from . import accounts
from . import models as m
from .db import WRITE_OPTION, create_db_engine, upgrade
from .info import (
    CHANNELS,
    CONSENT_KINDS,
    REGIONS,
    ROLES,
    SCLEROSANTS,
    SCREENING_QUESTIONS,
    SIDES,
    STAFF_ROLES,
    SYSTEM_ACTOR,
    VIEWS,
    Actor,
    AnalysisInfo,
    AreaInfo,
    AuditInfo,
    BootstrapResult,
    ClientInfo,
    ConsentInfo,
    MarketingPair,
    PhotoInfo,
    Screening,
    UserInfo,
    VisitInfo,
    default_next_window,
    utcnow,
)
from .photostore import Cipher, LocalPhotoStore, PhotoStore

T = TypeVar("T")

#: Audit actions. ``log_event`` accepts only the ones callers outside storage produce.
AUDIT_ACTIONS: Final = frozenset(
    {
        "login",
        "login_failed",
        "logout",
        "session_timeout",
        "password_change",
        "admin_bootstrap",
        "user_create",
        "user_update",
        "client_create",
        "client_update",
        "screening_record",
        "area_create",
        "area_update",
        "visit_create",
        "visit_update",
        "photo_upload",
        "photo_view",
        "photo_update",
        "photo_baseline",
        "analysis_save",
        "consent_record",
        "consent_revoke",
        "export",
        "report",
        "backup",
        "restore",
        "fsck_clean",
        "seed",
        "access_denied",
    }
)
EXTERNAL_EVENTS: Final = frozenset({"logout", "session_timeout", "report", "export"})
_RETRIES = 4
# One wording for "missing" and "someone else's": an id must not reveal that a record exists.
_DENIED = "This record was not found or is not yours to see."


def params_hash(params: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of analysis parameters (sorted keys, no spaces)."""
    return hashlib.sha256(
        json.dumps(_jsonable(params), sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def version_key(version: str) -> tuple[int, ...]:
    """``"1.10.0"`` -> ``(1, 10, 0)`` for ordering algorithm versions (non-digits ignored)."""
    parts = []
    for piece in str(version).split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _jsonable(value: Any) -> Any:
    """JSON-safe copy: non-finite floats -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | bool):
        return value
    raise ValueError(f"value of type {type(value).__name__} cannot be stored as JSON")


def _clean_text(value: str | None, *, field: str, max_len: int = 2000) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field} must be text")
    text = value.strip()
    if "\x00" in text:
        raise ValueError(f"{field} must not contain NUL characters")
    if len(text) > max_len:
        raise ValueError(f"{field} is too long ({len(text)} characters, at most {max_len})")
    return text or None


def _choice(value: str, allowed: Sequence[str], field: str) -> str:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {tuple(allowed)}, got {value!r}")
    return value


class Repository:
    """Clinic records and photos behind access rules. Build it with :func:`open_repository`.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        Engine from :func:`vein_tracker.storage.db.create_db_engine` (schema migrated).
    store : PhotoStore
        Where photo and mask bytes live.
    settings : Settings
    passwords : accounts.Passwords, optional
        Hashing; the default uses production argon2id parameters.

    Thread safety: one instance may serve every user and thread (each call opens
    its own session).
    """

    def __init__(
        self,
        engine: sa.Engine,
        store: PhotoStore,
        *,
        settings: Settings,
        passwords: accounts.Passwords | None = None,
    ) -> None:
        self.engine = engine
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self.store = store
        self.settings = settings
        self.passwords = passwords or accounts.Passwords()

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return str(self.engine.dialect.name)

    # ------------------------------------------------------------------ transactions

    def _run(self, fn: Callable[[Session], T], *, write: bool) -> T:
        """Run ``fn`` in one transaction, retrying when the database is busy."""
        engine = self._write_engine if write else self.engine
        delay = 0.05
        for attempt in range(_RETRIES):
            try:
                with Session(engine, expire_on_commit=False) as s, s.begin():
                    return fn(s)
            except sa.exc.OperationalError as exc:
                if not _is_busy(exc) or attempt == _RETRIES - 1:
                    raise _storage_error(exc) from exc
            except sa.exc.DBAPIError as exc:
                if not _is_serialization(exc) or attempt == _RETRIES - 1:
                    raise
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _guard(self, actor: Actor, fn: Callable[[Session], T], *, write: bool) -> T:
        """Check the actor's account, run ``fn``; audit an ``AccessDenied`` before re-raising."""

        def body(s: Session) -> T:
            self._check_actor(s, actor)
            return fn(s)

        try:
            return self._run(body, write=write)
        except AccessDenied as exc:
            self._audit_denied(actor, str(exc))
            raise

    def _audit_denied(self, actor: Actor, message: str) -> None:
        def body(s: Session) -> None:
            _add_audit(s, actor, "access_denied", ok=False, detail={"message": message[:200]})

        # The denial itself must still reach the caller if its audit row cannot be written.
        with contextlib.suppress(StorageError, sa.exc.SQLAlchemyError):
            self._run(body, write=True)

    def _check_actor(self, s: Session, actor: Actor) -> None:
        if not isinstance(actor, Actor):
            raise TypeError(f"actor must be an Actor, got {type(actor).__name__}")
        if actor.is_system:
            if actor != SYSTEM_ACTOR:
                raise AccessDenied(_DENIED)
            return
        user = s.get(m.User, actor.user_id)
        if (
            user is None
            or not user.active
            or user.role != actor.role
            or user.client_id != actor.client_id
            or user.username != actor.username
        ):
            raise AccessDenied(
                "Your account was changed or deactivated: sign in again to continue."
            )

    @staticmethod
    def _require_staff(actor: Actor) -> None:
        if actor.role not in STAFF_ROLES:
            raise AccessDenied("Only clinic staff (aesthetician or admin) can change records.")

    @staticmethod
    def _require_admin(actor: Actor) -> None:
        if actor.role != "admin":
            raise AccessDenied("Only an administrator can do this.")

    @staticmethod
    def _require_client_read(actor: Actor, client_id: int) -> None:
        if actor.role in STAFF_ROLES:
            return
        if actor.role == "client" and actor.client_id == client_id:
            return
        raise AccessDenied(_DENIED)

    # ------------------------------------------------------------------ accounts

    def authenticate(self, username: str, password: str) -> Actor:
        """Check a sign-in and return the :class:`Actor`; every attempt is audited.

        The failure message is the same whatever went wrong (unknown user, wrong
        password, locked, inactive), and an unknown user costs one argon2 hash too.
        After :data:`accounts.MAX_FAILED_LOGINS` failures in a row the account locks
        for :data:`accounts.LOCKOUT` (a correct password is refused meanwhile).

        Raises
        ------
        AccessDenied
            With :data:`accounts.LOGIN_FAILED_MESSAGE`.
        """
        try:
            name = accounts.normalise_username(username)
        except ValueError:
            name = None
        password = password if isinstance(password, str) else ""

        def lookup(s: Session) -> tuple[int, str, bool, datetime | None] | None:
            if name is None:
                return None
            u = s.scalar(sa.select(m.User).where(m.User.username == name))
            return None if u is None else (u.id, u.password_hash, u.active, u.locked_until)

        row = self._run(lookup, write=False)
        ok = self.passwords.verify(row[1] if row else None, password)
        now = utcnow()

        def record(s: Session) -> Actor | str:
            u = s.scalar(sa.select(m.User).where(m.User.username == name)) if name else None
            if u is None:
                _add_audit(
                    s,
                    None,
                    "login_failed",
                    ok=False,
                    # The typed name may be a mistyped password: keep only a fingerprint.
                    detail={
                        "username_sha256": _fingerprint(str(username)),
                        "reason": "unknown user",
                    },
                )
                return "unknown user"
            reason = None
            if u.locked_until is not None and u.locked_until > now:
                reason = "locked"
            elif not u.active:
                reason = "inactive"
            elif not ok or row is None or u.password_hash != row[1]:
                reason = "wrong password"
            if reason is not None:
                if reason == "wrong password":
                    u.failed_logins += 1
                    if u.failed_logins >= accounts.MAX_FAILED_LOGINS:
                        u.locked_until = now + accounts.LOCKOUT
                        u.failed_logins = 0
                        reason = "wrong password; account locked"
                u.updated_at = now
                _add_audit(
                    s,
                    None,
                    "login_failed",
                    ok=False,
                    target=("user", u.id),
                    detail={"username": u.username, "reason": reason},
                    user=u,
                )
                return reason
            u.failed_logins = 0
            u.locked_until = None
            u.last_login_at = now
            if self.passwords.needs_rehash(u.password_hash):
                u.password_hash = self.passwords.hash(password)
            actor = Actor(user_id=u.id, username=u.username, role=u.role, client_id=u.client_id)
            _add_audit(s, actor, "login", target=("user", u.id), client_id=u.client_id)
            return actor

        result = self._run(record, write=True)
        if isinstance(result, Actor):
            return result
        raise AccessDenied(accounts.LOGIN_FAILED_MESSAGE)

    def bootstrap_admin(self, *, stream: IO[str] | None = sys.stderr) -> BootstrapResult:
        """Create the first admin account if no admin exists yet.

        The username and password come from ``VEIN_TRACKER_ADMIN_USER`` /
        ``VEIN_TRACKER_ADMIN_PASSWORD``; without a password a random one-time
        password is generated, printed once on ``stream`` and must be changed at the
        first sign-in (``must_change_password``). Does nothing when an admin exists.
        """
        import os

        username = accounts.normalise_username(os.environ.get("VEIN_TRACKER_ADMIN_USER", "admin"))
        env_password = os.environ.get("VEIN_TRACKER_ADMIN_PASSWORD") or None
        if env_password is not None:
            accounts.check_new_password(env_password)
        password = env_password or accounts.generate_password()
        encoded = self.passwords.hash(password)

        def body(s: Session) -> bool:
            if s.scalar(sa.select(sa.func.count()).where(m.User.role == "admin")):
                return False
            if s.scalar(sa.select(m.User.id).where(m.User.username == username)) is not None:
                raise StorageError(
                    f"No admin account exists but the name {username!r} is taken: set "
                    "VEIN_TRACKER_ADMIN_USER to another name."
                )
            now = utcnow()
            u = m.User(
                username=username,
                password_hash=encoded,
                role="admin",
                active=True,
                must_change_password=env_password is None,
                failed_logins=0,
                created_at=now,
                updated_at=now,
            )
            s.add(u)
            s.flush()
            _add_audit(
                s,
                SYSTEM_ACTOR,
                "admin_bootstrap",
                target=("user", u.id),
                detail={"username": username, "source": "env" if env_password else "generated"},
            )
            return True

        created = self._run(body, write=True)
        if not created:
            return BootstrapResult(False, None, None, "existing")
        if env_password is not None:
            return BootstrapResult(True, username, None, "env")
        if stream is not None:
            print(
                f"vein-tracker: created admin account {username!r} with one-time password "
                f"{password}  (change it at first sign-in; it is not shown again)",
                file=stream,
            )
        return BootstrapResult(True, username, password, "generated")

    def create_user(
        self,
        actor: Actor,
        username: str,
        password: str,
        role: str,
        *,
        client_id: int | None = None,
        must_change_password: bool = False,
    ) -> UserInfo:
        """Create an account (admin only). ``client_id`` is required for role ``client``."""
        self._require_admin(actor)
        name = accounts.normalise_username(username)
        _choice(role, ROLES, "role")
        if role == "client" and client_id is None:
            raise ValueError("client_id is required for a client account: link it to a client")
        if role != "client" and client_id is not None:
            raise ValueError("client_id must be None unless role is 'client'")
        accounts.check_new_password(password)
        encoded = self.passwords.hash(password)

        def body(s: Session) -> UserInfo:
            if s.scalar(sa.select(m.User.id).where(m.User.username == name)) is not None:
                raise ValueError(f"username {name!r} is already taken: choose another")
            if client_id is not None and s.get(m.Client, client_id) is None:
                raise ValueError(f"client_id {client_id} does not exist")
            now = utcnow()
            u = m.User(
                username=name,
                password_hash=encoded,
                role=role,
                client_id=client_id,
                active=True,
                must_change_password=must_change_password,
                failed_logins=0,
                created_at=now,
                updated_at=now,
            )
            s.add(u)
            s.flush()
            _add_audit(
                s,
                actor,
                "user_create",
                target=("user", u.id),
                client_id=client_id,
                detail={"username": name, "role": role},
            )
            return _user_info(u)

        return self._guard(actor, body, write=True)

    def update_user(
        self,
        actor: Actor,
        user_id: int,
        *,
        role: str | None = None,
        active: bool | None = None,
        client_id: int | None = None,
        unlock: bool = False,
    ) -> UserInfo:
        """Change an account's role, active flag or client link, or unlock it (admin only).

        An admin cannot deactivate or demote their own account (so one admin remains).
        """
        self._require_admin(actor)
        if role is not None:
            _choice(role, ROLES, "role")

        def body(s: Session) -> UserInfo:
            u = _get_or_missing(s, m.User, user_id, "user")
            if u.id == actor.user_id and (active is False or (role and role != "admin")):
                raise ValueError("an admin cannot deactivate or demote their own account")
            changes: dict[str, Any] = {}
            new_role = role or u.role
            new_client = client_id if client_id is not None else u.client_id
            if new_role != "client":
                new_client = None
            if new_role == "client" and new_client is None:
                raise ValueError("client_id is required for a client account")
            if new_client is not None and s.get(m.Client, new_client) is None:
                raise ValueError(f"client_id {new_client} does not exist")
            if new_role != u.role:
                changes["role"] = [u.role, new_role]
                u.role = new_role
            if new_client != u.client_id:
                changes["client_id"] = [u.client_id, new_client]
                u.client_id = new_client
            if active is not None and active != u.active:
                changes["active"] = [u.active, active]
                u.active = active
            if unlock and (u.locked_until is not None or u.failed_logins):
                changes["unlock"] = True
                u.locked_until = None
                u.failed_logins = 0
            u.updated_at = utcnow()
            _add_audit(s, actor, "user_update", target=("user", u.id), detail=changes)
            return _user_info(u)

        return self._guard(actor, body, write=True)

    def set_password(self, actor: Actor, user_id: int, new_password: str) -> None:
        """Set another account's password (admin only); it must be changed at next sign-in."""
        self._require_admin(actor)
        accounts.check_new_password(new_password)
        encoded = self.passwords.hash(new_password)

        def body(s: Session) -> None:
            u = _get_or_missing(s, m.User, user_id, "user")
            u.password_hash = encoded
            u.must_change_password = u.id != actor.user_id
            u.failed_logins = 0
            u.locked_until = None
            u.updated_at = utcnow()
            _add_audit(s, actor, "password_change", target=("user", u.id), detail={"by": "admin"})

        self._guard(actor, body, write=True)

    def reset_password(self, actor: Actor, user_id: int) -> str:
        """Give an account a random one-time password (admin only) and return it.

        Show it once; the user must change it at the next sign-in. Unlocks the account.
        """
        password = accounts.generate_password()
        self.set_password(actor, user_id, password)
        return password

    def invite_user(
        self, actor: Actor, username: str, role: str, *, client_id: int | None = None
    ) -> tuple[UserInfo, str]:
        """Create an account with a random one-time password (admin only).

        Returns the account and the password to hand over once; it must be changed
        at the first sign-in.
        """
        password = accounts.generate_password()
        user = self.create_user(
            actor, username, password, role, client_id=client_id, must_change_password=True
        )
        return user, password

    def change_password(self, actor: Actor, old_password: str, new_password: str) -> None:
        """Change one's own password (any role); the old password must be right.

        Raises
        ------
        AccessDenied
            The old password is wrong.
        ValueError
            The new password is too weak or equal to the old one.
        """
        accounts.check_new_password(new_password)
        if new_password == old_password:
            raise ValueError("new_password must differ from the old password")
        if actor.is_system:
            raise AccessDenied("The system operator has no password.")
        current = self._guard(
            actor,
            lambda s: _get_or_missing(s, m.User, actor.user_id, "user").password_hash,
            write=False,
        )
        if not self.passwords.verify(current, old_password):
            raise AccessDenied("The current password is wrong.")
        encoded = self.passwords.hash(new_password)

        def body(s: Session) -> None:
            u = _get_or_missing(s, m.User, actor.user_id, "user")
            u.password_hash = encoded
            u.must_change_password = False
            u.updated_at = utcnow()
            _add_audit(s, actor, "password_change", target=("user", u.id), detail={"by": "self"})

        self._guard(actor, body, write=True)

    def get_user(self, actor: Actor, user_id: int) -> UserInfo:
        """One account (admin, or the account itself)."""
        if actor.role != "admin" and actor.user_id != user_id:
            raise AccessDenied(_DENIED)
        return self._guard(
            actor, lambda s: _user_info(_get_or_missing(s, m.User, user_id, "user")), write=False
        )

    def list_users(self, actor: Actor, *, role: str | None = None) -> list[UserInfo]:
        """Every account, by username (admin only)."""
        self._require_admin(actor)

        def body(s: Session) -> list[UserInfo]:
            q = sa.select(m.User).order_by(m.User.username)
            if role is not None:
                q = q.where(m.User.role == _choice(role, ROLES, "role"))
            return [_user_info(u) for u in s.scalars(q)]

        return self._guard(actor, body, write=False)

    def user_count(self) -> int:
        """Number of accounts (no actor: used at start-up to decide on bootstrap/seed)."""
        n = self._run(lambda s: s.scalar(sa.select(sa.func.count(m.User.id))), write=False)
        return int(n or 0)

    # ------------------------------------------------------------------ clients

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
    ) -> ClientInfo:
        """Register a client (staff only), optionally with the screening in the same
        transaction (see :meth:`record_screening` for ``screening``/``override_reason``).
        """
        self._require_staff(actor)
        if screening is not None and not isinstance(screening, Screening):
            raise TypeError("screening must be a Screening or None")
        reason = _clean_text(override_reason, field="override_reason")
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
            _add_audit(s, actor, "client_create", target=("client", c.id), client_id=c.id)
            if screening is not None:
                _apply_screening(s, actor, c, screening, now, reason)
            return _client_info(c)

        return self._guard(actor, body, write=True)

    def update_client(self, actor: Actor, client_id: int, **changes: Any) -> ClientInfo:
        """Change a client's details (staff only).

        Keyword arguments: any of ``name``, ``date_of_birth``, ``email``, ``phone``,
        ``address``, ``fitzpatrick``, ``notes`` (None clears an optional field), and
        ``screening`` (a :class:`Screening`, recorded anew when it differs from the
        stored answers or ``override_reason`` changes) with ``override_reason``.
        """
        self._require_staff(actor)
        screening = changes.pop("screening", None)
        has_reason = "override_reason" in changes
        reason = _clean_text(changes.pop("override_reason", None), field="override_reason")
        if screening is not None and not isinstance(screening, Screening):
            raise TypeError("screening must be a Screening or None")
        values = _client_values(**changes)
        if "name" in changes and not values.get("name"):
            raise ValueError("name must not be empty")

        def body(s: Session) -> ClientInfo:
            c = _get_or_missing(s, m.Client, client_id, "client")
            changed = sorted(k for k, v in values.items() if getattr(c, k) != v)
            for k in changed:
                setattr(c, k, values[k])
            now = utcnow()
            c.updated_at = now
            if changed:
                _add_audit(
                    s,
                    actor,
                    "client_update",
                    target=("client", c.id),
                    client_id=c.id,
                    detail={"fields": changed},
                )
            if screening is not None:
                current = _client_info(c)
                new_reason = reason if has_reason else current.override_reason
                if current.screening != screening or (
                    screening.positives and new_reason != current.override_reason
                ):
                    _apply_screening(s, actor, c, screening, now, new_reason)
            return _client_info(c)

        return self._guard(actor, body, write=True)

    def record_screening(
        self,
        actor: Actor,
        client_id: int,
        screening: Screening,
        *,
        screened_at: datetime | None = None,
        override_reason: str | None = None,
    ) -> ClientInfo:
        """Record the contraindication screening (staff only).

        A positive answer needs ``override_reason`` (why treatment may still go ahead)
        before the client counts as cleared for treatment; without it the answers are
        still recorded and :attr:`ClientInfo.cleared_for_treatment` stays False.
        """
        self._require_staff(actor)
        if not isinstance(screening, Screening):
            raise TypeError("screening must be a Screening")
        reason = _clean_text(override_reason, field="override_reason")
        when = screened_at or utcnow()
        if when.tzinfo is None:
            raise ValueError("screened_at must be timezone-aware (UTC)")

        def body(s: Session) -> ClientInfo:
            c = _get_or_missing(s, m.Client, client_id, "client")
            _apply_screening(s, actor, c, screening, when, reason)
            return _client_info(c)

        return self._guard(actor, body, write=True)

    def get_client(self, actor: Actor, client_id: int) -> ClientInfo:
        """A client record (staff, or that client's own account)."""
        self._require_client_read(actor, client_id)
        return self._guard(
            actor,
            lambda s: _client_info(_get_or_missing(s, m.Client, client_id, "client")),
            write=False,
        )

    def search_clients(self, actor: Actor, query: str = "", *, limit: int = 50) -> list[ClientInfo]:
        """Clients whose name, email or phone contains ``query`` (case-insensitive).

        Staff see all; a client account sees only itself; marketing is refused.
        An empty query lists clients by name.
        """
        if actor.role not in STAFF_ROLES and actor.role != "client":
            raise AccessDenied(_DENIED)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        text = (query or "").strip()

        def body(s: Session) -> list[ClientInfo]:
            q = sa.select(m.Client).order_by(m.Client.name, m.Client.id).limit(limit)
            if actor.role == "client":
                q = q.where(m.Client.id == actor.client_id)
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
            return [_client_info(c) for c in s.scalars(q)]

        return self._guard(actor, body, write=False)

    def list_clients(
        self, actor: Actor, *, search: str | None = None, limit: int = 200
    ) -> list[ClientInfo]:
        """Same as :meth:`search_clients` (``search`` None lists all by name)."""
        return self.search_clients(actor, search or "", limit=limit)

    # ------------------------------------------------------------------ treatment areas

    def create_area(
        self,
        actor: Actor,
        client_id: int,
        *,
        side: str,
        view: str,
        region: str,
        note: str | None = None,
    ) -> AreaInfo:
        """Add a treatment area to a client (staff only)."""
        self._require_staff(actor)
        _choice(side, SIDES, "side")
        _choice(view, VIEWS, "view")
        _choice(region, REGIONS, "region")
        text = _clean_text(note, field="note")

        def body(s: Session) -> AreaInfo:
            _get_or_missing(s, m.Client, client_id, "client")
            a = m.TreatmentArea(
                client_id=client_id,
                side=side,
                view=view,
                region=region,
                note=text,
                anon_id=uuid.uuid4().hex,
                created_at=utcnow(),
            )
            s.add(a)
            s.flush()
            _add_audit(
                s,
                actor,
                "area_create",
                target=("area", a.id),
                client_id=client_id,
                detail={"side": side, "view": view, "region": region},
            )
            return _area_info(s, a)

        return self._guard(actor, body, write=True)

    def update_area(self, actor: Actor, area_id: int, *, note: str | None) -> AreaInfo:
        """Change an area's free-text note (staff only)."""
        self._require_staff(actor)
        text = _clean_text(note, field="note")

        def body(s: Session) -> AreaInfo:
            a = _get_or_missing(s, m.TreatmentArea, area_id, "treatment area")
            a.note = text
            _add_audit(s, actor, "area_update", target=("area", a.id), client_id=a.client_id)
            return _area_info(s, a)

        return self._guard(actor, body, write=True)

    def get_area(self, actor: Actor, area_id: int) -> AreaInfo:
        """One treatment area (staff, or the owning client)."""

        def body(s: Session) -> AreaInfo:
            a = _get_or_missing(s, m.TreatmentArea, area_id, "treatment area")
            self._require_client_read(actor, a.client_id)
            return _area_info(s, a)

        return self._guard(actor, body, write=False)

    def list_areas(self, actor: Actor, client_id: int) -> list[AreaInfo]:
        """A client's treatment areas (staff, or the owning client)."""
        self._require_client_read(actor, client_id)

        def body(s: Session) -> list[AreaInfo]:
            q = sa.select(m.TreatmentArea).where(m.TreatmentArea.client_id == client_id)
            return [_area_info(s, a) for a in s.scalars(q.order_by(m.TreatmentArea.id))]

        return self._guard(actor, body, write=False)

    # ------------------------------------------------------------------ visits

    def create_visit(
        self,
        actor: Actor,
        client_id: int,
        *,
        visit_date: date | None = None,
        sclerosant: str | None = None,
        concentration_pct: float | None = None,
        volume_ml: float | None = None,
        area_ids: Iterable[int] = (),
        notes: str | None = None,
        next_window_start: date | None = None,
        next_window_end: date | None = None,
    ) -> VisitInfo:
        """Start a visit (staff only); the session number is the client's next one.

        The client must be screened and cleared for treatment (no positive answer, or
        an override reason). The next-appointment window defaults to 1–4 weeks after
        ``visit_date`` (default today, UTC).

        Raises
        ------
        ValueError
            Not screened / not cleared, bad sclerosant, negative amounts, an area of
            another client, or a window that ends before it starts.
        """
        self._require_staff(actor)
        day = visit_date or utcnow().date()
        fields = _visit_values(
            sclerosant=sclerosant,
            concentration_pct=concentration_pct,
            volume_ml=volume_ml,
            notes=notes,
        )
        start, end = next_window_start, next_window_end
        if start is None and end is None:
            start, end = default_next_window(day)
        if start is not None and end is not None and end < start:
            raise ValueError("next_window_end must be on or after next_window_start")
        wanted = sorted(set(int(a) for a in area_ids))

        def body(s: Session) -> VisitInfo:
            # Row lock (PostgreSQL): two visits started at once get consecutive numbers.
            c = _get_or_missing(s, m.Client, client_id, "client", lock=True)
            info = _client_info(c)
            if info.screening is None:
                raise ValueError(
                    "The client has not been screened for contraindications: record the "
                    "screening before the first session."
                )
            if not info.cleared_for_treatment:
                raise ValueError(
                    "The screening has a positive answer ("
                    + ", ".join(info.contraindications)
                    + "): record an override reason before treating."
                )
            _check_areas(s, client_id, wanted)
            number = (
                s.scalar(
                    sa.select(sa.func.max(m.Visit.session_number)).where(
                        m.Visit.client_id == client_id
                    )
                )
                or 0
            ) + 1
            now = utcnow()
            v = m.Visit(
                client_id=client_id,
                session_number=number,
                visit_date=day,
                aesthetician_id=None if actor.is_system else actor.user_id,
                next_window_start=start,
                next_window_end=end,
                created_at=now,
                updated_at=now,
                **fields,
            )
            s.add(v)
            s.flush()
            for a in wanted:
                s.add(m.VisitArea(visit_id=v.id, area_id=a))
            s.flush()
            _add_audit(
                s,
                actor,
                "visit_create",
                target=("visit", v.id),
                client_id=client_id,
                detail={"session_number": number, "visit_date": day.isoformat()},
            )
            return _visit_info(s, v)

        return self._guard(actor, body, write=True)

    def update_visit(self, actor: Actor, visit_id: int, **changes: Any) -> VisitInfo:
        """Change a visit (staff only).

        Keyword arguments: any of ``visit_date``, ``sclerosant``, ``concentration_pct``,
        ``volume_ml``, ``notes``, ``area_ids`` (replaces the set), ``next_window_start``,
        ``next_window_end``.
        """
        self._require_staff(actor)
        allowed = {
            "visit_date",
            "sclerosant",
            "concentration_pct",
            "volume_ml",
            "notes",
            "area_ids",
            "next_window_start",
            "next_window_end",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(
                f"update_visit got unknown fields {sorted(unknown)}; use {sorted(allowed)}"
            )
        simple = {
            k: changes[k]
            for k in ("sclerosant", "concentration_pct", "volume_ml", "notes")
            if k in changes
        }
        values = _visit_values(**simple)

        def body(s: Session) -> VisitInfo:
            v = _get_or_missing(s, m.Visit, visit_id, "visit")
            for k, val in values.items():
                setattr(v, k, val)
            for k in ("visit_date", "next_window_start", "next_window_end"):
                if k in changes:
                    setattr(v, k, changes[k])
            if v.visit_date is None:
                raise ValueError("visit_date must not be None")
            if (
                v.next_window_start is not None
                and v.next_window_end is not None
                and v.next_window_end < v.next_window_start
            ):
                raise ValueError("next_window_end must be on or after next_window_start")
            if "area_ids" in changes:
                wanted = sorted(set(int(a) for a in changes["area_ids"]))
                _check_areas(s, v.client_id, wanted)
                photographed = set(
                    s.scalars(sa.select(m.Photo.area_id).where(m.Photo.visit_id == v.id))
                )
                s.execute(sa.delete(m.VisitArea).where(m.VisitArea.visit_id == v.id))
                for a in sorted(set(wanted) | photographed):
                    s.add(m.VisitArea(visit_id=v.id, area_id=a))
            v.updated_at = utcnow()
            s.flush()
            _add_audit(
                s,
                actor,
                "visit_update",
                target=("visit", v.id),
                client_id=v.client_id,
                detail={"fields": sorted(changes)},
            )
            return _visit_info(s, v)

        return self._guard(actor, body, write=True)

    def get_visit(self, actor: Actor, visit_id: int) -> VisitInfo:
        """One visit (staff, or the owning client)."""

        def body(s: Session) -> VisitInfo:
            v = _get_or_missing(s, m.Visit, visit_id, "visit")
            self._require_client_read(actor, v.client_id)
            return _visit_info(s, v)

        return self._guard(actor, body, write=False)

    def list_visits(self, actor: Actor, client_id: int) -> list[VisitInfo]:
        """A client's visits by session number (staff, or the owning client)."""
        self._require_client_read(actor, client_id)

        def body(s: Session) -> list[VisitInfo]:
            q = (
                sa.select(m.Visit)
                .where(m.Visit.client_id == client_id)
                .order_by(m.Visit.session_number)
            )
            return [_visit_info(s, v) for v in s.scalars(q)]

        return self._guard(actor, body, write=False)

    # ------------------------------------------------------------------ photos

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

        Raises
        ------
        PhotoError
            Not a usable photo.
        ConsentError
            The client has no treatment-photography consent valid today.
        StorageError
            Disk full or not writable (nothing is stored).
        """
        from ..io import load_photo

        self._require_staff(actor)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("data must be the photo file's bytes")
        blob = bytes(data)
        name = _safe_filename(filename)
        report = _jsonable(capture_report) if capture_report is not None else None

        def check(s: Session) -> int:
            a = _get_or_missing(s, m.TreatmentArea, area_id, "treatment area")
            v = _get_or_missing(s, m.Visit, visit_id, "visit")
            if a.client_id != v.client_id:
                raise ValueError("area_id and visit_id belong to different clients")
            _require_photo_consent(s, a.client_id)
            return a.client_id

        client_id = self._guard(actor, check, write=False)
        photo = load_photo(blob, px_per_mm=px_per_mm, max_pixels=self.settings.max_pixels)
        sha = self.store.put(blob)

        def body(s: Session) -> PhotoInfo:
            # Row lock (PostgreSQL): concurrent uploads to one area agree on the baseline.
            a = _get_or_missing(s, m.TreatmentArea, area_id, "treatment area", lock=True)
            _require_photo_consent(s, a.client_id)
            existing = s.scalar(
                sa.select(m.Photo).where(
                    m.Photo.area_id == area_id, m.Photo.visit_id == visit_id, m.Photo.sha256 == sha
                )
            )
            if existing is not None:
                return _photo_info(s, existing)
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
                uploaded_by_id=None if actor.is_system else actor.user_id,
            )
            s.add(p)
            s.flush()
            if s.get(m.VisitArea, (visit_id, area_id)) is None:
                s.add(m.VisitArea(visit_id=visit_id, area_id=area_id))
            if s.get(m.AreaBaseline, area_id) is None:
                s.add(
                    m.AreaBaseline(
                        area_id=area_id,
                        photo_id=p.id,
                        set_at=utcnow(),
                        set_by_id=None if actor.is_system else actor.user_id,
                    )
                )
            s.flush()
            _add_audit(
                s,
                actor,
                "photo_upload",
                target=("photo", p.id),
                client_id=client_id,
                detail={"sha256": sha, "area_id": area_id, "visit_id": visit_id},
            )
            return _photo_info(s, p)

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
        self._require_staff(actor)
        if px_per_mm is not None and not (math.isfinite(px_per_mm) and px_per_mm > 0):
            raise ValueError(f"px_per_mm must be a positive number, got {px_per_mm!r}")
        report = _jsonable(capture_report) if capture_report is not None else None

        def body(s: Session) -> PhotoInfo:
            p = _get_or_missing(s, m.Photo, photo_id, "photo")
            fields = []
            if px_per_mm is not None:
                p.px_per_mm = float(px_per_mm)
                fields.append("px_per_mm")
            if report is not None:
                p.capture_report = report
                fields.append("capture_report")
            _add_audit(
                s,
                actor,
                "photo_update",
                target=("photo", p.id),
                client_id=p.client_id,
                detail={"fields": fields},
            )
            return _photo_info(s, p)

        return self._guard(actor, body, write=True)

    def set_baseline(self, actor: Actor, photo_id: int) -> PhotoInfo:
        """Make this photo the baseline of its area (staff only)."""
        self._require_staff(actor)

        def body(s: Session) -> PhotoInfo:
            p = _get_or_missing(s, m.Photo, photo_id, "photo")
            b = s.get(m.AreaBaseline, p.area_id)
            old = b.photo_id if b else None
            if b is None:
                s.add(
                    m.AreaBaseline(
                        area_id=p.area_id,
                        photo_id=p.id,
                        set_at=utcnow(),
                        set_by_id=None if actor.is_system else actor.user_id,
                    )
                )
            else:
                b.photo_id = p.id
                b.set_at = utcnow()
                b.set_by_id = None if actor.is_system else actor.user_id
            s.flush()
            _add_audit(
                s,
                actor,
                "photo_baseline",
                target=("photo", p.id),
                client_id=p.client_id,
                detail={"area_id": p.area_id, "previous": old},
            )
            return _photo_info(s, p)

        return self._guard(actor, body, write=True)

    def get_photo(self, actor: Actor, photo_id: int, *, channel: str | None = None) -> PhotoInfo:
        """A photo's metadata (staff; owning client; marketing with a consented ``channel``)."""

        def body(s: Session) -> PhotoInfo:
            p = _get_or_missing(s, m.Photo, photo_id, "photo")
            self._require_photo_read(s, actor, p, channel)
            return _photo_info(s, p)

        return self._guard(actor, body, write=False)

    def list_photos(
        self,
        actor: Actor,
        *,
        client_id: int | None = None,
        area_id: int | None = None,
        visit_id: int | None = None,
    ) -> list[PhotoInfo]:
        """Photos (metadata), oldest visit first, filtered by client, area and/or visit.

        Staff may list any; a client account only its own (``client_id`` defaults to
        it); marketing uses :meth:`list_marketing_pairs` instead.
        """
        if actor.role == "marketing":
            raise AccessDenied("Marketing accounts see consented before/after pairs only.")
        if actor.role == "client":
            if client_id is not None and client_id != actor.client_id:
                raise AccessDenied(_DENIED)
            client_id = actor.client_id
        if client_id is None and area_id is None and visit_id is None:
            raise ValueError("give client_id, area_id or visit_id to list photos")

        def body(s: Session) -> list[PhotoInfo]:
            if area_id is not None:
                area = _get_or_missing(s, m.TreatmentArea, area_id, "treatment area")
                self._require_client_read(actor, area.client_id)
            if visit_id is not None:
                visit = _get_or_missing(s, m.Visit, visit_id, "visit")
                self._require_client_read(actor, visit.client_id)
            q = sa.select(m.Photo).join(m.Visit, m.Visit.id == m.Photo.visit_id)
            if client_id is not None:
                q = q.where(m.Photo.client_id == client_id)
            if area_id is not None:
                q = q.where(m.Photo.area_id == area_id)
            if visit_id is not None:
                q = q.where(m.Photo.visit_id == visit_id)
            rows = list(
                s.scalars(q.order_by(m.Visit.visit_date, m.Visit.session_number, m.Photo.id))
            )
            for p in rows:
                self._require_client_read(actor, p.client_id)
            return [_photo_info(s, p) for p in rows]

        return self._guard(actor, body, write=False)

    def baseline_photo(self, actor: Actor, area_id: int) -> PhotoInfo | None:
        """The baseline photo of an area (None before the first upload)."""

        def body(s: Session) -> PhotoInfo | None:
            a = _get_or_missing(s, m.TreatmentArea, area_id, "treatment area")
            self._require_client_read(actor, a.client_id)
            b = s.get(m.AreaBaseline, area_id)
            return None if b is None else _photo_info(s, s.get_one(m.Photo, b.photo_id))

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
            p = _get_or_missing(s, m.Photo, photo_id, "photo")
            self._require_photo_read(s, actor, p, channel)
            _add_audit(
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
        from ..io import load_photo

        info = self.get_photo(actor, photo_id, channel=channel)
        data = self.get_photo_bytes(actor, photo_id, channel=channel)
        return load_photo(data, px_per_mm=info.px_per_mm, max_pixels=self.settings.max_pixels)

    def _require_photo_read(
        self, s: Session, actor: Actor, p: m.Photo, channel: str | None
    ) -> None:
        if actor.role == "marketing":
            if channel is None:
                raise AccessDenied(
                    "Marketing accounts must name the channel (website, social, print)."
                )
            _choice(channel, CHANNELS, "channel")
            if _valid_marketing_consent(s, p.client_id, channel, utcnow().date()) is None:
                raise AccessDenied(
                    "This client has no valid marketing consent for "
                    f"{channel}: the photo cannot be used."
                )
            return
        self._require_client_read(actor, p.client_id)

    # ------------------------------------------------------------------ analyses

    def save_analysis(
        self,
        actor: Actor,
        baseline_photo_id: int,
        followup_photo_id: int,
        *,
        params: Mapping[str, Any],
        result: Mapping[str, Any],
        masks: Mapping[str, np.ndarray | bytes] | None = None,
        algorithm_version: str = ALGORITHM_VERSION,
        params_hash: str | None = None,
    ) -> AnalysisInfo:
        """Store the analysis of a pair (staff only); one row per (pair, params, version).

        Saving again with the same key replaces that row's result and masks (the same
        algorithm on the same input); a different ``algorithm_version`` adds a row and
        keeps the old one.

        Parameters
        ----------
        params : mapping
            Parameters given to ``metrics.compare`` (JSON-able).
        result : mapping
            ``Comparison.to_dict()``; ``improvement_pct`` and ``meets_target`` are copied
            for listing. Non-finite numbers are stored as None.
        masks : mapping of str to ndarray or bytes, optional
            2-D ``bool`` masks or ``uint8`` label images (e.g. ``"region"``,
            ``"change_map"``), or PNG bytes already encoded; stored as PNG in the
            photo store.
        params_hash : str, optional
            The caller's own cache key for ``params``; default :func:`params_hash`.
        """
        self._require_staff(actor)
        if baseline_photo_id == followup_photo_id:
            raise ValueError("baseline_photo_id and followup_photo_id must differ")
        params_json = _jsonable(params)
        result_json = _jsonable(result)
        phash = _params_key(params, params_hash)
        improvement = result_json.get("improvement_pct")
        meets = result_json.get("meets_target")
        improvement = float(improvement) if isinstance(improvement, int | float) else None
        meets = bool(meets) if isinstance(meets, bool) else None

        def check(s: Session) -> None:
            b = _get_or_missing(s, m.Photo, baseline_photo_id, "photo")
            f = _get_or_missing(s, m.Photo, followup_photo_id, "photo")
            if b.area_id != f.area_id:
                raise ValueError("the two photos are of different treatment areas")

        self._guard(actor, check, write=False)
        stored: dict[str, tuple[str, int]] = {}
        for name, arr in (masks or {}).items():
            png = _mask_png(arr, name)
            stored[_clean_mask_name(name)] = (self.store.put(png), len(png))

        def body(s: Session) -> AnalysisInfo:
            b = _get_or_missing(s, m.Photo, baseline_photo_id, "photo")
            row = s.scalar(
                sa.select(m.Analysis).where(
                    m.Analysis.baseline_photo_id == baseline_photo_id,
                    m.Analysis.followup_photo_id == followup_photo_id,
                    m.Analysis.params_hash == phash,
                    m.Analysis.algorithm_version == algorithm_version,
                )
            )
            now = utcnow()
            if row is None:
                row = m.Analysis(
                    client_id=b.client_id,
                    area_id=b.area_id,
                    baseline_photo_id=baseline_photo_id,
                    followup_photo_id=followup_photo_id,
                    params_hash=phash,
                    algorithm_version=algorithm_version,
                    params=params_json,
                    result=result_json,
                    improvement_pct=improvement,
                    meets_target=meets,
                    created_at=now,
                    created_by_id=None if actor.is_system else actor.user_id,
                )
                s.add(row)
                s.flush()
            else:
                row.params = params_json
                row.result = result_json
                row.improvement_pct = improvement
                row.meets_target = meets
                row.created_at = now
                row.created_by_id = None if actor.is_system else actor.user_id
                s.execute(sa.delete(m.AnalysisMask).where(m.AnalysisMask.analysis_id == row.id))
            for name, (sha, size) in stored.items():
                s.add(m.AnalysisMask(analysis_id=row.id, name=name, sha256=sha, size_bytes=size))
            s.flush()
            _add_audit(
                s,
                actor,
                "analysis_save",
                target=("analysis", row.id),
                client_id=row.client_id,
                detail={
                    "baseline_photo_id": baseline_photo_id,
                    "followup_photo_id": followup_photo_id,
                    "algorithm_version": algorithm_version,
                    "improvement_pct": improvement,
                },
            )
            return _analysis_info(s, row)

        return self._guard(actor, body, write=True)

    def get_analysis(
        self,
        actor: Actor,
        baseline_photo_id: int,
        followup_photo_id: int,
        *,
        params: Mapping[str, Any] | None = None,
        algorithm_version: str | None = ALGORITHM_VERSION,
        params_hash: str | None = None,
    ) -> AnalysisInfo | None:
        """The stored analysis of a pair, or None (cache lookup).

        ``params`` (or the caller's ``params_hash``) None matches any parameters (the
        newest is returned); ``algorithm_version`` None matches any version (the newest
        version wins).
        """
        phash = _params_key(params, params_hash) if (params or params_hash) else None

        def body(s: Session) -> AnalysisInfo | None:
            b = _get_or_missing(s, m.Photo, baseline_photo_id, "photo")
            self._require_client_read(actor, b.client_id)
            q = sa.select(m.Analysis).where(
                m.Analysis.baseline_photo_id == baseline_photo_id,
                m.Analysis.followup_photo_id == followup_photo_id,
            )
            if phash is not None:
                q = q.where(m.Analysis.params_hash == phash)
            if algorithm_version is not None:
                q = q.where(m.Analysis.algorithm_version == algorithm_version)
            rows = list(s.scalars(q))
            if not rows:
                return None
            best = max(rows, key=lambda r: (version_key(r.algorithm_version), r.created_at, r.id))
            return _analysis_info(s, best)

        return self._guard(actor, body, write=False)

    def find_analysis(
        self,
        actor: Actor,
        *,
        baseline_photo_id: int,
        followup_photo_id: int,
        params_hash: str | None = None,
        algorithm_version: str | None = ALGORITHM_VERSION,
    ) -> AnalysisInfo | None:
        """Keyword form of :meth:`get_analysis` with the caller's ``params_hash``."""
        return self.get_analysis(
            actor,
            baseline_photo_id,
            followup_photo_id,
            params_hash=params_hash,
            algorithm_version=algorithm_version,
        )

    def get_analysis_by_id(self, actor: Actor, analysis_id: int) -> AnalysisInfo:
        """One analysis (staff, or the owning client)."""

        def body(s: Session) -> AnalysisInfo:
            row = _get_or_missing(s, m.Analysis, analysis_id, "analysis")
            self._require_client_read(actor, row.client_id)
            return _analysis_info(s, row)

        return self._guard(actor, body, write=False)

    def list_analyses(
        self,
        actor: Actor,
        area_id: int,
        *,
        algorithm_version: str | None = None,
        latest_only: bool = True,
    ) -> list[AnalysisInfo]:
        """Analyses of an area, by follow-up visit date (staff, or the owning client).

        With ``latest_only`` one analysis per (baseline, follow-up) pair: the newest
        algorithm version, then the newest run. ``algorithm_version`` restricts to one
        version.
        """

        def body(s: Session) -> list[AnalysisInfo]:
            a = _get_or_missing(s, m.TreatmentArea, area_id, "treatment area")
            self._require_client_read(actor, a.client_id)
            q = sa.select(m.Analysis).where(m.Analysis.area_id == area_id)
            if algorithm_version is not None:
                q = q.where(m.Analysis.algorithm_version == algorithm_version)
            rows = list(s.scalars(q))
            if latest_only:
                best: dict[tuple[int, int], m.Analysis] = {}
                for r in rows:
                    k = (r.baseline_photo_id, r.followup_photo_id)
                    cur = best.get(k)
                    if cur is None or (version_key(r.algorithm_version), r.created_at, r.id) > (
                        version_key(cur.algorithm_version),
                        cur.created_at,
                        cur.id,
                    ):
                        best[k] = r
                rows = list(best.values())
            infos = [_analysis_info(s, r) for r in rows]
            dates = {
                p.id: (v.visit_date, v.session_number)
                for p, v in s.execute(
                    sa.select(m.Photo, m.Visit)
                    .join(m.Visit, m.Visit.id == m.Photo.visit_id)
                    .where(m.Photo.area_id == area_id)
                )
            }
            infos.sort(key=lambda i: (dates.get(i.followup_photo_id, (date.min, 0)), i.id))
            return infos

        return self._guard(actor, body, write=False)

    def load_analysis_masks(self, actor: Actor, analysis_id: int) -> dict[str, np.ndarray]:
        """The masks of an analysis by name (bool or uint8 arrays), verified from the store."""

        def body(s: Session) -> dict[str, str]:
            row = _get_or_missing(s, m.Analysis, analysis_id, "analysis")
            self._require_client_read(actor, row.client_id)
            q = sa.select(m.AnalysisMask).where(m.AnalysisMask.analysis_id == analysis_id)
            return {mk.name: mk.sha256 for mk in s.scalars(q)}

        names = self._guard(actor, body, write=False)
        return {name: decode_mask_png(self.store.get(sha)) for name, sha in names.items()}

    def list_stale_analyses(
        self,
        actor: Actor,
        *,
        since: date | None = None,
        area_id: int | None = None,
        current_version: str = ALGORITHM_VERSION,
    ) -> list[AnalysisInfo]:
        """Analyses to re-run: made with an algorithm older than ``current_version`` and
        with no analysis of the same pair and parameters at ``current_version`` yet
        (staff only).

        One entry (the newest old version) per (baseline, follow-up, params); a finished
        re-run drops out of this list, so an interrupted batch resumes where it stopped.
        ``since`` keeps pairs whose follow-up visit is on or after that date.
        """
        self._require_staff(actor)
        current = version_key(current_version)

        def body(s: Session) -> list[AnalysisInfo]:
            q = sa.select(m.Analysis)
            if area_id is not None:
                q = q.where(m.Analysis.area_id == area_id)
            if since is not None:
                q = (
                    q.join(m.Photo, m.Photo.id == m.Analysis.followup_photo_id)
                    .join(m.Visit, m.Visit.id == m.Photo.visit_id)
                    .where(m.Visit.visit_date >= since)
                )
            groups: dict[tuple[int, int, str], list[m.Analysis]] = {}
            for r in s.scalars(q):
                groups.setdefault(
                    (r.baseline_photo_id, r.followup_photo_id, r.params_hash), []
                ).append(r)
            out = []
            for rows in groups.values():
                if any(version_key(r.algorithm_version) >= current for r in rows):
                    continue
                newest = max(rows, key=lambda r: (version_key(r.algorithm_version), r.id))
                out.append(_analysis_info(s, newest))
            out.sort(key=lambda i: i.id)
            return out

        return self._guard(actor, body, write=False)

    def list_unanalysed_pairs(
        self, actor: Actor, *, area_id: int | None = None
    ) -> list[tuple[int, int]]:
        """(baseline photo id, follow-up photo id) pairs with no analysis at all (staff only).

        Follow-ups are the area's photos at other visits than its baseline's.
        """
        self._require_staff(actor)

        def body(s: Session) -> list[tuple[int, int]]:
            q = sa.select(m.AreaBaseline, m.Photo).join(
                m.Photo, m.Photo.id == m.AreaBaseline.photo_id
            )
            if area_id is not None:
                q = q.where(m.AreaBaseline.area_id == area_id)
            done = set(
                s.execute(sa.select(m.Analysis.baseline_photo_id, m.Analysis.followup_photo_id))
            )
            out: list[tuple[int, int]] = []
            for b, bp in s.execute(q):
                follow = s.scalars(
                    sa.select(m.Photo.id).where(
                        m.Photo.area_id == b.area_id, m.Photo.visit_id != bp.visit_id
                    )
                )
                out.extend((bp.id, f) for f in follow if (bp.id, f) not in done)
            return sorted(out)

        return self._guard(actor, body, write=False)

    # ------------------------------------------------------------------ consents

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
        self._require_staff(actor)
        _choice(kind, CONSENT_KINDS, "kind")
        scope_set = set(scopes)
        for sc in scope_set:
            _choice(sc, CHANNELS, "scopes")
        if kind == "marketing" and not scope_set:
            raise ValueError("scopes must name at least one channel (website, social, print)")
        if kind == "treatment_photography" and scope_set:
            raise ValueError("scopes apply to marketing consent only; leave them empty")
        signed = signed_at or utcnow().date()
        if expires_at is not None and expires_at <= signed:
            raise ValueError("expires_at must be after signed_at")
        text = _clean_text(note, field="note")

        def body(s: Session) -> ConsentInfo:
            _get_or_missing(s, m.Client, client_id, "client")
            c = m.Consent(
                client_id=client_id,
                kind=kind,
                scope_website="website" in scope_set,
                scope_social="social" in scope_set,
                scope_print="print" in scope_set,
                signed_at=signed,
                expires_at=expires_at,
                recorded_by_id=None if actor.is_system else actor.user_id,
                recorded_at=utcnow(),
                note=text,
            )
            s.add(c)
            s.flush()
            _add_audit(
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
            return _consent_info(s, c)

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
        if actor.role not in STAFF_ROLES and actor.role != "client":
            raise AccessDenied(_DENIED)
        when = revoked_at or utcnow()
        if when.tzinfo is None:
            raise ValueError("revoked_at must be timezone-aware (UTC)")
        if when > utcnow() + timedelta(minutes=1):
            raise ValueError("revoked_at must not be in the future")
        text = _clean_text(reason, field="reason")

        def body(s: Session) -> ConsentInfo:
            c = _get_or_missing(s, m.Consent, consent_id, "consent")
            if actor.role == "client":
                if c.client_id != actor.client_id:
                    raise AccessDenied(_DENIED)
                if c.kind != "marketing":
                    raise AccessDenied(
                        "Treatment-photography consent is withdrawn with the clinic: ask your "
                        "aesthetician."
                    )
            if c.revoked_at is not None:
                return _consent_info(s, c)
            c.revoked_at = when
            c.revoked_by_id = None if actor.is_system else actor.user_id
            c.revoke_reason = text
            _add_audit(
                s,
                actor,
                "consent_revoke",
                target=("consent", c.id),
                client_id=c.client_id,
                detail={"kind": c.kind, "revoked_at": when.isoformat()},
            )
            return _consent_info(s, c)

        return self._guard(actor, body, write=True)

    def list_consents(self, actor: Actor, client_id: int) -> list[ConsentInfo]:
        """Every consent of a client, revoked and expired included (staff, or the client)."""
        self._require_client_read(actor, client_id)

        def body(s: Session) -> list[ConsentInfo]:
            q = sa.select(m.Consent).where(m.Consent.client_id == client_id)
            return [_consent_info(s, c) for c in s.scalars(q.order_by(m.Consent.id))]

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
        _choice(kind, CONSENT_KINDS, "kind")
        if channel is not None:
            _choice(channel, CHANNELS, "channel")
        if actor.role == "marketing" and kind != "marketing":
            raise AccessDenied(_DENIED)
        if actor.role != "marketing":
            self._require_client_read(actor, client_id)
        day = on or utcnow().date()

        def body(s: Session) -> ConsentInfo | None:
            q = sa.select(m.Consent).where(m.Consent.client_id == client_id, m.Consent.kind == kind)
            for c in s.scalars(q.order_by(m.Consent.signed_at.desc(), m.Consent.id.desc())):
                info = _consent_info(s, c)
                if info.is_valid(day, channel=channel):
                    return info
            return None

        return self._guard(actor, body, write=False)

    def marketing_consent_valid(
        self, actor: Actor, client_id: int, channel: str, *, on: date | None = None
    ) -> bool:
        """True if the client's marketing consent covers ``channel`` on ``on`` (default today)."""
        return self.valid_consent(actor, client_id, "marketing", channel=channel, on=on) is not None

    # ------------------------------------------------------------------ marketing

    def list_marketing_pairs(
        self,
        actor: Actor,
        channel: str,
        *,
        on: date | None = None,
        region: str | None = None,
        min_improvement: float | None = None,
        since: date | None = None,
        until: date | None = None,
        latest_only: bool = False,
    ) -> list[MarketingPair]:
        """Before/after pairs whose client's marketing consent covers ``channel`` on ``on``.

        For marketing and admin only. A pair is (area baseline, a later photo of the
        same area). ``region`` filters the body region; ``min_improvement`` (percent)
        keeps analysed pairs at or above it; ``since``/``until`` bound the follow-up
        date; ``latest_only`` keeps the newest follow-up per area. Run
        :meth:`recheck_marketing_pairs` again right before exporting.
        """
        if actor.role not in ("marketing", "admin"):
            raise AccessDenied("Only marketing and admin accounts can list marketing pairs.")
        _choice(channel, CHANNELS, "channel")
        if region is not None:
            _choice(region, REGIONS, "region")
        day = on or utcnow().date()

        def body(s: Session) -> list[MarketingPair]:
            return _marketing_pairs(
                s,
                channel,
                day,
                region=region,
                min_improvement=min_improvement,
                since=since,
                until=until,
                latest_only=latest_only,
            )

        return self._guard(actor, body, write=False)

    def marketing_pairs(self, actor: Actor, channel: str, **filters: Any) -> list[MarketingPair]:
        """Same as :meth:`list_marketing_pairs`."""
        return self.list_marketing_pairs(actor, channel, **filters)

    def recheck_marketing_pairs(
        self,
        actor: Actor,
        pairs: Sequence[MarketingPair],
        *,
        on: date | None = None,
    ) -> list[MarketingPair]:
        """The subset of ``pairs`` whose marketing consent is still valid now for their
        channel (a revocation since they were listed removes them). Marketing/admin only.
        """
        if actor.role not in ("marketing", "admin"):
            raise AccessDenied("Only marketing and admin accounts can export pairs.")
        day = on or utcnow().date()

        def body(s: Session) -> list[MarketingPair]:
            out = []
            for p in pairs:
                c = _valid_marketing_consent(s, p.client_id, p.channel, day)
                if c is None:
                    continue
                photo_b = s.get(m.Photo, p.baseline_photo_id)
                photo_f = s.get(m.Photo, p.followup_photo_id)
                if (
                    photo_b is None
                    or photo_f is None
                    or photo_b.client_id != p.client_id
                    or photo_f.client_id != p.client_id
                ):
                    continue
                out.append(p)
            return out

        return self._guard(actor, body, write=False)

    def record_export(
        self,
        actor: Actor,
        pairs: Sequence[MarketingPair],
        *,
        channel: str,
        filename: str,
        sha256s: Mapping[str, str] | None = None,
    ) -> None:
        """Audit a marketing export; re-checks every pair's consent in the same transaction.

        Raises
        ------
        ConsentError
            A pair's consent is no longer valid (nothing is recorded): drop it and
            export again.
        """
        if actor.role not in ("marketing", "admin"):
            raise AccessDenied("Only marketing and admin accounts can export pairs.")
        _choice(channel, CHANNELS, "channel")
        today = utcnow().date()

        def body(s: Session) -> None:
            for p in pairs:
                if (
                    p.channel != channel
                    or _valid_marketing_consent(s, p.client_id, channel, today) is None
                ):
                    raise ConsentError(
                        f"The marketing consent for pair {p.anon_id[:8]} is no longer valid for "
                        f"{channel}: it was removed; export again without it."
                    )
            for p in pairs:
                _add_audit(
                    s,
                    actor,
                    "export",
                    target=("area", p.area_id),
                    client_id=p.client_id,
                    detail={
                        "channel": channel,
                        "file": Path(filename).name[:200],
                        "anon_id": p.anon_id,
                        "consent_id": p.consent_id,
                        "photos": [p.baseline_photo_id, p.followup_photo_id],
                        "sha256": dict(sha256s or {}).get(p.anon_id),
                    },
                )
            if not pairs:
                _add_audit(
                    s, actor, "export", detail={"channel": channel, "file": Path(filename).name}
                )

        self._guard(actor, body, write=True)

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
        _choice(action, sorted(EXTERNAL_EVENTS), "action")
        if action == "report" and client_id is not None:
            self._require_client_read(actor, client_id)
        if action == "export" and actor.role not in ("marketing", "admin"):
            raise AccessDenied("Only marketing and admin accounts can export pairs.")
        extra = _jsonable(detail or {})

        def body(s: Session) -> None:
            _add_audit(
                s,
                actor,
                action,
                client_id=client_id,
                target=(target_type, target_id) if target_type else None,
                detail=extra,
            )

        self._guard(actor, body, write=True)

    # ------------------------------------------------------------------ audit

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
        self._require_admin(actor)
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
            return [_audit_info(e) for e in s.scalars(q)]

        return self._guard(actor, body, write=False)

    def audit_log(self, actor: Actor, **filters: Any) -> list[AuditInfo]:
        """Same as :meth:`list_audit`."""
        return self.list_audit(actor, **filters)

    # ------------------------------------------------------------------ maintenance

    def referenced_hashes(self) -> dict[str, str]:
        """Every store address the database refers to -> what refers to it (for fsck)."""

        def body(s: Session) -> dict[str, str]:
            refs = {
                sha: f"photo {pid}" for pid, sha in s.execute(sa.select(m.Photo.id, m.Photo.sha256))
            }
            for aid, name, sha in s.execute(
                sa.select(m.AnalysisMask.analysis_id, m.AnalysisMask.name, m.AnalysisMask.sha256)
            ):
                refs.setdefault(sha, f"analysis {aid} mask {name}")
            return refs

        return self._run(body, write=False)

    def get_setting(self, key: str) -> str | None:
        """An installation fact (e.g. ``"demo_seeded_at"``); None if unset."""
        return self._run(lambda s: r.value if (r := s.get(m.Setting, key)) else None, write=False)

    def set_setting(self, actor: Actor, key: str, value: str) -> None:
        """Set an installation fact (admin or system only)."""
        self._require_admin(actor)

        def body(s: Session) -> None:
            row = s.get(m.Setting, key)
            if row is None:
                s.add(m.Setting(key=key, value=value))
            else:
                row.value = value

        self._guard(actor, body, write=True)

    def audit_system(self, action: str, *, detail: Mapping[str, Any] | None = None) -> None:
        """Audit a maintenance action of the local operator (backup, restore, fsck, seed)."""
        _choice(action, sorted(AUDIT_ACTIONS), "action")
        extra = _jsonable(detail or {})
        self._run(lambda s: _add_audit(s, SYSTEM_ACTOR, action, detail=extra), write=True)

    def integrity_check(self) -> list[str]:
        """Database-level problems (SQLite ``integrity_check`` and FK check); empty if fine."""
        problems: list[str] = []
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                rows = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]
                if rows != ["ok"]:
                    problems.extend(f"sqlite: {r}" for r in rows)
                problems.extend(
                    f"foreign key: {tuple(r)}"
                    for r in conn.exec_driver_sql("PRAGMA foreign_key_check")
                )
            else:
                conn.execute(sa.text("SELECT 1"))
            conn.rollback()
        return problems


# ---------------------------------------------------------------------- opening


def open_repository(
    settings: Settings | None = None,
    *,
    store: PhotoStore | None = None,
    passwords: accounts.Passwords | None = None,
    migrate: bool = True,
) -> Repository:
    """Open (and on an empty database, create) the clinic records.

    Parameters
    ----------
    settings : Settings, optional
        Default :func:`vein_tracker.config.get_settings` (``VEIN_TRACKER_DATA``,
        ``VEIN_TRACKER_DB_URL``, ``VEIN_TRACKER_ENCRYPTION_KEY``).
    store : PhotoStore, optional
        Default a :class:`LocalPhotoStore` in ``<data_dir>/photos`` (encrypted when a
        key is set).
    passwords : accounts.Passwords, optional
        Default production argon2id; tests pass cheaper parameters.
    migrate : bool
        Bring the schema to the latest migration first (default True).
    """
    settings = settings or get_settings()
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"The data folder {str(settings.data_dir)!r} cannot be created ({exc.strerror})."
        ) from exc
    engine = create_db_engine(settings.db_url)
    try:
        if migrate:
            upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    if store is None:
        store = LocalPhotoStore(
            settings.data_dir / "photos", cipher=Cipher.from_setting(settings.encryption_key)
        )
    return Repository(engine, store, settings=settings, passwords=passwords)


# ---------------------------------------------------------------------- helpers


def _is_busy(exc: sa.exc.OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text


def _is_serialization(exc: sa.exc.DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40001", "40P01")


def _storage_error(exc: sa.exc.OperationalError) -> StorageError:
    if _is_busy(exc):
        return StorageError(
            "The database is busy with another change and did not answer in time: "
            "nothing was saved. Try again in a moment."
        )
    return StorageError(
        f"The database could not be reached or written ({str(exc.orig)[:200]}): nothing was "
        "saved. Check the data folder or database server, then retry."
    )


def _fingerprint(text: str) -> str:
    """A short, non-reversible tag of ``text`` (for audit details that must not hold it)."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def _get_or_missing(s: Session, model: type[T], key: int, what: str, *, lock: bool = False) -> T:
    if not isinstance(key, int) or isinstance(key, bool):
        raise ValueError(f"{what} id must be an integer, got {key!r}")
    row = s.get(model, key, with_for_update=lock or None)
    if row is None:
        # Same wording whether missing or forbidden: ids must not reveal what exists.
        raise AccessDenied(_DENIED)
    return row


def _add_audit(
    s: Session,
    actor: Actor | None,
    action: str,
    *,
    ok: bool = True,
    target: tuple[str | None, int | None] | None = None,
    client_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
    user: m.User | None = None,
) -> None:
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if actor is not None:
        uid: int | None = None if actor.is_system else actor.user_id
        uname: str | None = actor.username
        role: str | None = actor.role
    elif user is not None:
        uid, uname, role = user.id, user.username, user.role
    else:
        uid = uname = role = None
    s.add(
        m.AuditEvent(
            at=utcnow(),
            user_id=uid,
            username=uname,
            role=role,
            action=action,
            target_type=target[0] if target else None,
            target_id=target[1] if target else None,
            client_id=client_id,
            ok=ok,
            detail=_jsonable(detail or {}),
        )
    )


def _as_utc_start(value: datetime | date | None, *, inclusive_day: bool) -> datetime | None:
    if value is None or isinstance(value, datetime):
        if value is not None and value.tzinfo is None:
            raise ValueError("since/until datetimes must be timezone-aware (UTC)")
        return value
    day = value + timedelta(days=1) if inclusive_day else value
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


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
    _add_audit(
        s,
        actor,
        "screening_record",
        target=("client", c.id),
        client_id=c.id,
        detail={"positives": list(screening.positives), "override": bool(reason)},
    )


def _valid_marketing_consent(
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
        if _consent_info(s, c).is_valid(day, channel=channel):
            return c
    return None


def _require_photo_consent(s: Session, client_id: int) -> None:
    today = utcnow().date()
    q = sa.select(m.Consent).where(
        m.Consent.client_id == client_id, m.Consent.kind == "treatment_photography"
    )
    if not any(_consent_info(s, c).is_valid(today) for c in s.scalars(q)):
        raise ConsentError(
            "The client has no valid treatment-photography consent: record the signed consent "
            "before taking or uploading photos."
        )


def _check_areas(s: Session, client_id: int, area_ids: Sequence[int]) -> None:
    for a in area_ids:
        area = s.get(m.TreatmentArea, a)
        if area is None or area.client_id != client_id:
            raise ValueError(f"area_ids: area {a} is not a treatment area of this client")


def _marketing_pairs(
    s: Session,
    channel: str,
    day: date,
    *,
    region: str | None,
    min_improvement: float | None,
    since: date | None,
    until: date | None,
    latest_only: bool,
) -> list[MarketingPair]:
    out: list[MarketingPair] = []
    client_ids = s.scalars(
        sa.select(m.Consent.client_id).where(m.Consent.kind == "marketing").distinct()
    )
    for cid in sorted(client_ids):
        consent = _valid_marketing_consent(s, cid, channel, day)
        if consent is None:
            continue
        cinfo = _consent_info(s, consent)
        areas = s.scalars(
            sa.select(m.TreatmentArea)
            .where(m.TreatmentArea.client_id == cid)
            .order_by(m.TreatmentArea.id)
        )
        for area in areas:
            if region is not None and area.region != region:
                continue
            base = s.get(m.AreaBaseline, area.id)
            if base is None:
                continue
            bp = s.get_one(m.Photo, base.photo_id)
            bv = s.get_one(m.Visit, bp.visit_id)
            rows = s.execute(
                sa.select(m.Photo, m.Visit)
                .join(m.Visit, m.Visit.id == m.Photo.visit_id)
                .where(m.Photo.area_id == area.id, m.Visit.visit_date > bv.visit_date)
                .order_by(m.Visit.visit_date, m.Photo.id)
            )
            area_pairs = []
            for fp, fv in rows:
                if since is not None and fv.visit_date < since:
                    continue
                if until is not None and fv.visit_date > until:
                    continue
                analyses = list(
                    s.scalars(
                        sa.select(m.Analysis).where(
                            m.Analysis.baseline_photo_id == bp.id,
                            m.Analysis.followup_photo_id == fp.id,
                        )
                    )
                )
                best = (
                    max(
                        analyses,
                        key=lambda r: (version_key(r.algorithm_version), r.created_at, r.id),
                    )
                    if analyses
                    else None
                )
                improvement = best.improvement_pct if best else None
                if min_improvement is not None and (
                    improvement is None or improvement < min_improvement
                ):
                    continue
                area_pairs.append(
                    MarketingPair(
                        anon_id=area.anon_id,
                        client_id=cid,
                        area_id=area.id,
                        area_label=f"{area.side} {area.region}, {area.view}",
                        channel=channel,
                        baseline_photo_id=bp.id,
                        followup_photo_id=fp.id,
                        baseline_sha256=bp.sha256,
                        followup_sha256=fp.sha256,
                        baseline_date=bv.visit_date,
                        followup_date=fv.visit_date,
                        weeks=round((fv.visit_date - bv.visit_date).days / 7.0, 1),
                        session_count=fv.session_number,
                        improvement_pct=improvement,
                        analysis_id=best.id if best else None,
                        algorithm_version=best.algorithm_version if best else None,
                        consent_id=cinfo.id,
                        consent_scopes=cinfo.scopes,
                        consent_expires_at=cinfo.expires_at,
                    )
                )
            if latest_only and area_pairs:
                area_pairs = area_pairs[-1:]
            out.extend(area_pairs)
    return out


def _safe_filename(filename: str | None) -> str | None:
    if filename is None:
        return None
    name = str(filename).replace("\x00", "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:255] or None


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
            out[k] = _clean_text(v, field=k, max_len=limit)
    return out


def _visit_values(**values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "sclerosant" in values:
        v = values["sclerosant"]
        out["sclerosant"] = None if v is None else _choice(v, SCLEROSANTS, "sclerosant")
    for k, hi in (("concentration_pct", 100.0), ("volume_ml", 100.0)):
        if k in values:
            v = values[k]
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= hi
            ):
                raise ValueError(f"{k} must be a number between 0 and {hi:g}, got {v!r}")
            out[k] = None if v is None else float(v)
    if "notes" in values:
        out["notes"] = _clean_text(values["notes"], field="notes", max_len=8000)
    return out


def _clean_mask_name(name: str) -> str:
    if (
        not isinstance(name, str)
        or not name
        or len(name) > 64
        or not name.replace("_", "").isalnum()
    ):
        raise ValueError(f"mask names must be 1-64 letters, digits or '_', got {name!r}")
    return name


def _params_key(params: Mapping[str, Any] | None, given: str | None) -> str:
    if given is not None:
        if not isinstance(given, str) or not 1 <= len(given) <= 64:
            raise ValueError("params_hash must be a string of 1-64 characters")
        return given
    return params_hash(params or {})


def _mask_png(value: np.ndarray | bytes, name: str) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        if not data.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ValueError(f"mask {name!r} bytes must be a PNG file")
        return data
    return encode_mask_png(value, name=name)


def encode_mask_png(mask: np.ndarray, *, name: str = "mask") -> bytes:
    """PNG bytes of a 2-D ``bool`` mask (1-bit) or ``uint8`` label image (8-bit grey)."""
    from PIL import Image

    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"mask {name!r} must be 2-D, got shape {arr.shape}")
    buf = io.BytesIO()
    if arr.dtype == bool:
        Image.fromarray(arr).convert("1").save(buf, format="PNG")
    elif arr.dtype == np.uint8:
        Image.fromarray(arr, mode="L").save(buf, format="PNG")
    else:
        raise ValueError(f"mask {name!r} must be bool or uint8, got {arr.dtype}")
    return buf.getvalue()


def decode_mask_png(data: bytes) -> np.ndarray:
    """Inverse of :func:`encode_mask_png`: ``bool`` for 1-bit PNGs, else ``uint8``."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if img.mode == "1":
            return np.asarray(img, dtype=bool).copy()
        return np.asarray(img.convert("L"), dtype=np.uint8).copy()


def _user_info(u: m.User) -> UserInfo:
    return UserInfo(
        id=u.id,
        username=u.username,
        role=u.role,
        client_id=u.client_id,
        active=bool(u.active),
        must_change_password=bool(u.must_change_password),
        failed_logins=int(u.failed_logins),
        locked_until=u.locked_until,
        last_login_at=u.last_login_at,
        created_at=u.created_at,
    )


def _client_info(c: m.Client) -> ClientInfo:
    screening = None
    if c.screened_at is not None:
        screening = Screening(**{q: bool(getattr(c, f"scr_{q}")) for q in SCREENING_QUESTIONS})
    return ClientInfo(
        id=c.id,
        name=c.name,
        date_of_birth=c.date_of_birth,
        email=c.email,
        phone=c.phone,
        address=c.address,
        fitzpatrick=c.fitzpatrick,
        notes=c.notes,
        screening=screening,
        screened_at=c.screened_at,
        screened_by=c.screened_by,
        override_reason=c.screening_override_reason,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


def _area_info(s: Session, a: m.TreatmentArea) -> AreaInfo:
    b = s.get(m.AreaBaseline, a.id)
    return AreaInfo(
        id=a.id,
        client_id=a.client_id,
        side=a.side,
        view=a.view,
        region=a.region,
        note=a.note,
        anon_id=a.anon_id,
        baseline_photo_id=b.photo_id if b else None,
        created_at=a.created_at,
    )


def _username(s: Session, user_id: int | None) -> str | None:
    if user_id is None:
        return "system"
    u = s.get(m.User, user_id)
    return u.username if u else None


def _visit_info(s: Session, v: m.Visit) -> VisitInfo:
    areas = tuple(
        sorted(s.scalars(sa.select(m.VisitArea.area_id).where(m.VisitArea.visit_id == v.id)))
    )
    return VisitInfo(
        id=v.id,
        client_id=v.client_id,
        session_number=v.session_number,
        visit_date=v.visit_date,
        aesthetician_id=v.aesthetician_id,
        aesthetician=_username(s, v.aesthetician_id),
        sclerosant=v.sclerosant,
        concentration_pct=v.concentration_pct,
        volume_ml=v.volume_ml,
        area_ids=areas,
        notes=v.notes,
        next_window_start=v.next_window_start,
        next_window_end=v.next_window_end,
        created_at=v.created_at,
    )


def _photo_info(s: Session, p: m.Photo) -> PhotoInfo:
    v = s.get_one(m.Visit, p.visit_id)
    b = s.get(m.AreaBaseline, p.area_id)
    return PhotoInfo(
        id=p.id,
        client_id=p.client_id,
        area_id=p.area_id,
        visit_id=p.visit_id,
        visit_date=v.visit_date,
        session_number=v.session_number,
        sha256=p.sha256,
        size_bytes=int(p.size_bytes),
        width=p.width,
        height=p.height,
        format=p.format,
        original_filename=p.original_filename,
        capture_time=p.capture_time,
        px_per_mm=p.px_per_mm,
        capture_report=dict(p.capture_report) if p.capture_report is not None else None,
        is_baseline=b is not None and b.photo_id == p.id,
        uploaded_at=p.uploaded_at,
        uploaded_by=_username(s, p.uploaded_by_id),
    )


def _consent_info(s: Session, c: m.Consent) -> ConsentInfo:
    scopes = tuple(
        ch
        for ch, flag in (
            ("website", c.scope_website),
            ("social", c.scope_social),
            ("print", c.scope_print),
        )
        if flag
    )
    return ConsentInfo(
        id=c.id,
        client_id=c.client_id,
        kind=c.kind,
        scopes=scopes,
        signed_at=c.signed_at,
        expires_at=c.expires_at,
        recorded_by=_username(s, c.recorded_by_id),
        recorded_at=c.recorded_at,
        revoked_at=c.revoked_at,
        revoked_by=_username(s, c.revoked_by_id) if c.revoked_at else None,
        revoke_reason=c.revoke_reason,
        note=c.note,
    )


def _analysis_info(s: Session, r: m.Analysis) -> AnalysisInfo:
    masks = {
        mk.name: mk.sha256
        for mk in s.scalars(sa.select(m.AnalysisMask).where(m.AnalysisMask.analysis_id == r.id))
    }
    return AnalysisInfo(
        id=r.id,
        client_id=r.client_id,
        area_id=r.area_id,
        baseline_photo_id=r.baseline_photo_id,
        followup_photo_id=r.followup_photo_id,
        params_hash=r.params_hash,
        params=dict(r.params),
        algorithm_version=r.algorithm_version,
        result=dict(r.result),
        improvement_pct=r.improvement_pct,
        meets_target=r.meets_target,
        masks=masks,
        created_at=r.created_at,
        created_by=_username(s, r.created_by_id),
    )


def _audit_info(e: m.AuditEvent) -> AuditInfo:
    return AuditInfo(
        id=e.id,
        at=e.at,
        user_id=e.user_id,
        username=e.username,
        role=e.role,
        action=e.action,
        target_type=e.target_type,
        target_id=e.target_id,
        client_id=e.client_id,
        ok=bool(e.ok),
        detail=dict(e.detail or {}),
    )


def new_anon_id() -> str:
    """A random 32-hex id (used for areas' anonymous ids)."""
    return secrets.token_hex(16)
