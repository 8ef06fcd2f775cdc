"""The base every aggregate of the repository builds on: one transaction per call.

Owns the engine, the photo store, the settings and the password hasher; how a call
becomes one database transaction (:meth:`RepositoryBase._run`, retried while SQLite is
locked or PostgreSQL reports a serialisation failure); how the acting user is checked
against their account and a refusal audited (:meth:`RepositoryBase._guard`); and the role
guards each public method calls before it touches anything (role rules read from
:mod:`vein_tracker.policy`, owner rules here). Holds no SQL of any aggregate: those live
in the sibling modules, one per aggregate.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ... import policy
from ...config import Settings
from ...errors import AccessDenied, StorageError
from ...policy import Action
from .. import accounts
from .. import models as m
from ..db import WRITE_OPTION
from ..info import SYSTEM_ACTOR, Actor
from ..photostore import PhotoStore
from .common import DENIED, add_audit

T = TypeVar("T")


@dataclass(frozen=True)
class Retry:
    """How a call is retried while the database is busy (SQLite locked, PostgreSQL
    serialisation failure or deadlock): ``attempts`` tries in all, waiting
    ``first_wait_s`` seconds, then twice as long each time. ``sleep`` does the waiting
    (tests pass one that records the waits instead of sleeping)."""

    attempts: int = 4
    first_wait_s: float = 0.05
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if not self.first_wait_s >= 0:
            raise ValueError(f"first_wait_s must be >= 0 s, got {self.first_wait_s}")

    def waits(self) -> tuple[float, ...]:
        """The waits between the attempts, s."""
        return tuple(self.first_wait_s * 2**i for i in range(self.attempts - 1))


class RepositoryBase:
    """Engine, store, settings and the transaction and guard helpers of every aggregate.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        Engine from :func:`vein_tracker.storage.db.create_db_engine` (schema migrated).
    store : PhotoStore
        Where photo and mask bytes live.
    settings : Settings
    passwords : accounts.Passwords, optional
        Hashing; the default uses production argon2id parameters.
    retry : Retry, optional
        Retries while the database is busy; default :class:`Retry` ``()``.

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
        retry: Retry | None = None,
    ) -> None:
        self.engine = engine
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self.store = store
        self.settings = settings
        self.passwords = passwords or accounts.Passwords()
        self.retry = retry or Retry()

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return str(self.engine.dialect.name)

    def _run(self, fn: Callable[[Session], T], *, write: bool) -> T:
        """Run ``fn`` in one transaction, retrying when the database is busy."""
        engine = self._write_engine if write else self.engine
        waits = self.retry.waits()
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            try:
                with Session(engine, expire_on_commit=False) as s, s.begin():
                    return fn(s)
            except sa.exc.OperationalError as exc:
                if not _is_busy(exc) or last:
                    raise _storage_error(exc) from exc
            except sa.exc.DBAPIError as exc:
                if not _is_serialization(exc) or last:
                    raise
            self.retry.sleep(waits[attempt])
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
            add_audit(s, actor, "access_denied", ok=False, detail={"message": message[:200]})

        # The denial itself must still reach the caller if its audit row cannot be written.
        with contextlib.suppress(StorageError, sa.exc.SQLAlchemyError):
            self._run(body, write=True)

    def _check_actor(self, s: Session, actor: Actor) -> None:
        if not isinstance(actor, Actor):
            raise TypeError(f"actor must be an Actor, got {type(actor).__name__}")
        if actor.is_system:
            if actor != SYSTEM_ACTOR:
                raise AccessDenied(DENIED)
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

    # Role rules come from the policy table; what is checked here on top of it is which
    # client a record belongs to.

    @staticmethod
    def _require(actor: Actor, action: Action) -> None:
        """Refuse unless the policy lets ``actor`` do ``action``."""
        policy.require(actor, action)

    @staticmethod
    def _own_client_only(actor: Actor) -> int | None:
        """Whose clinical records ``actor`` reads: None for every client's, else the id of
        the only client they may read; ``AccessDenied`` for someone who reads none."""
        if policy.permits(actor, Action.VIEW_CLIENT_RECORDS):
            return None
        if policy.permits(actor, Action.VIEW_OWN_RECORDS) and actor.client_id is not None:
            return actor.client_id
        raise AccessDenied(DENIED)

    @staticmethod
    def _reads_client(actor: Actor, client_id: int) -> bool:
        """True if ``actor`` may read the clinical records of client ``client_id``."""
        if policy.permits(actor, Action.VIEW_CLIENT_RECORDS):
            return True
        return policy.permits(actor, Action.VIEW_OWN_RECORDS) and actor.client_id == client_id

    @classmethod
    def _require_client_read(cls, actor: Actor, client_id: int) -> None:
        if not cls._reads_client(actor, client_id):
            raise AccessDenied(DENIED)


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
