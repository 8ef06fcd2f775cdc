"""Accounts: sign-in, the first admin, user accounts and passwords.

Owns the ``users`` rows. Password hashing and the lock-out rules themselves live in
:mod:`vein_tracker.storage.accounts`; this module applies them inside transactions.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ... import policy
from ...errors import AccessDenied, StorageError
from ...policy import Action
from .. import accounts
from .. import models as m
from ..info import ROLES, SYSTEM_ACTOR, Actor, BootstrapResult, UserInfo, utcnow
from .base import RepositoryBase
from .common import DENIED, add_audit, choice, fingerprint, get_or_missing
from .rows import user_info


class AccountRecords(RepositoryBase):
    """Sign-in and user accounts (part of :class:`~vein_tracker.storage.Repository`)."""

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
                add_audit(
                    s,
                    None,
                    "login_failed",
                    ok=False,
                    # The typed name may be a mistyped password: keep only a fingerprint.
                    detail={
                        "username_sha256": fingerprint(str(username)),
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
                add_audit(
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
            add_audit(s, actor, "login", target=("user", u.id), client_id=u.client_id)
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
            u = _add_user(s, username, encoded, "admin", must_change=env_password is None)
            add_audit(
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
        self._require(actor, Action.MANAGE_USERS)
        name = accounts.normalise_username(username)
        choice(role, ROLES, "role")
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
            u = _add_user(
                s, name, encoded, role, client_id=client_id, must_change=must_change_password
            )
            add_audit(
                s,
                actor,
                "user_create",
                target=("user", u.id),
                client_id=client_id,
                detail={"username": name, "role": role},
            )
            return user_info(u)

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
        self._require(actor, Action.MANAGE_USERS)
        if role is not None:
            choice(role, ROLES, "role")

        def body(s: Session) -> UserInfo:
            u = get_or_missing(s, m.User, user_id, "user")
            # So one account that manages users always remains.
            demoted = role is not None and not policy.allows(role, Action.MANAGE_USERS)
            if u.id == actor.user_id and (active is False or demoted):
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
            add_audit(s, actor, "user_update", target=("user", u.id), detail=changes)
            return user_info(u)

        return self._guard(actor, body, write=True)

    def set_password(self, actor: Actor, user_id: int, new_password: str) -> None:
        """Set another account's password (admin only); it must be changed at next sign-in."""
        self._require(actor, Action.MANAGE_USERS)
        accounts.check_new_password(new_password)
        encoded = self.passwords.hash(new_password)

        def body(s: Session) -> None:
            u = get_or_missing(s, m.User, user_id, "user")
            u.password_hash = encoded
            u.must_change_password = u.id != actor.user_id
            u.failed_logins = 0
            u.locked_until = None
            u.updated_at = utcnow()
            add_audit(s, actor, "password_change", target=("user", u.id), detail={"by": "admin"})

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
        self._require(actor, Action.CHANGE_OWN_PASSWORD)
        current = self._guard(
            actor,
            lambda s: get_or_missing(s, m.User, actor.user_id, "user").password_hash,
            write=False,
        )
        if not self.passwords.verify(current, old_password):
            raise AccessDenied("The current password is wrong.")
        encoded = self.passwords.hash(new_password)

        def body(s: Session) -> None:
            u = get_or_missing(s, m.User, actor.user_id, "user")
            u.password_hash = encoded
            u.must_change_password = False
            u.updated_at = utcnow()
            add_audit(s, actor, "password_change", target=("user", u.id), detail={"by": "self"})

        self._guard(actor, body, write=True)

    def get_user(self, actor: Actor, user_id: int) -> UserInfo:
        """One account (admin, or the account itself)."""
        if not policy.permits(actor, Action.MANAGE_USERS) and actor.user_id != user_id:
            raise AccessDenied(DENIED)
        return self._guard(
            actor, lambda s: user_info(get_or_missing(s, m.User, user_id, "user")), write=False
        )

    def list_users(self, actor: Actor, *, role: str | None = None) -> list[UserInfo]:
        """Every account, by username (admin only)."""
        self._require(actor, Action.MANAGE_USERS)

        def body(s: Session) -> list[UserInfo]:
            q = sa.select(m.User).order_by(m.User.username)
            if role is not None:
                q = q.where(m.User.role == choice(role, ROLES, "role"))
            return [user_info(u) for u in s.scalars(q)]

        return self._guard(actor, body, write=False)

    def user_count(self) -> int:
        """Number of accounts (no actor: used at start-up to decide on bootstrap/seed)."""
        n = self._run(lambda s: s.scalar(sa.select(sa.func.count(m.User.id))), write=False)
        return int(n or 0)


def _add_user(
    s: Session,
    username: str,
    password_hash: str,
    role: str,
    *,
    client_id: int | None = None,
    must_change: bool,
) -> m.User:
    """A new active account row, flushed (so it has its id)."""
    now = utcnow()
    u = m.User(
        username=username,
        password_hash=password_hash,
        role=role,
        client_id=client_id,
        active=True,
        must_change_password=must_change,
        failed_logins=0,
        created_at=now,
        updated_at=now,
    )
    s.add(u)
    s.flush()
    return u
