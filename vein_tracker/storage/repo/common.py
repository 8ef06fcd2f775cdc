"""Helpers every aggregate of the repository shares, inside its transactions.

Owns the audit actions and the audit row (:func:`add_audit`), the lookup that refuses a
missing record like a forbidden one (:func:`get_or_missing`, :data:`DENIED`), and the
input checks of free text, choices and JSON values. No access rule lives here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final, TypeVar

import numpy as np
from sqlalchemy.orm import Session

from ...errors import AccessDenied
from ...hashing import sha256_hex
from .. import models as m
from ..info import Actor, utcnow

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
        # issue 22 (H5): reviewed vein maps and blind rating sessions
        "vein_map_save",
        "rating_session_create",
        "rating_session_close",
        "rating_submit",
        # issue 24 (H6): primary photos, status, soft delete, retention, web sessions, export ids
        "photo_primary",
        "photo_status",
        "photo_delete",
        "photo_retake",
        "photo_purge",
        "visit_delete",
        "session_resume",
        "export_trace",
    }
)
EXTERNAL_EVENTS: Final = frozenset({"logout", "session_timeout", "report", "export"})
# One wording for "missing" and "someone else's": an id must not reveal that a record exists.
DENIED: Final = "This record was not found or is not yours to see."


def jsonable(value: Any) -> Any:
    """JSON-safe copy: non-finite floats -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | bool):
        return value
    raise ValueError(f"value of type {type(value).__name__} cannot be stored as JSON")


def clean_text(value: str | None, *, field: str, max_len: int = 2000) -> str | None:
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


def choice(value: str, allowed: Sequence[str], field: str) -> str:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {tuple(allowed)}, got {value!r}")
    return value


def fingerprint(text: str) -> str:
    """A short, non-reversible tag of ``text`` (for audit details that must not hold it)."""
    return sha256_hex(text.encode("utf-8", "replace"))[:16]


def get_or_missing(s: Session, model: type[T], key: int, what: str, *, lock: bool = False) -> T:
    if not isinstance(key, int) or isinstance(key, bool):
        raise ValueError(f"{what} id must be an integer, got {key!r}")
    row = s.get(model, key, with_for_update=lock or None)
    if row is None:
        # Same wording whether missing or forbidden: ids must not reveal what exists.
        raise AccessDenied(DENIED)
    return row


def account_id(actor: Actor) -> int | None:
    """The ``users`` row of ``actor`` for a record's "by" column (None: the local operator)."""
    return None if actor.is_system else actor.user_id


def add_audit(
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
        uid: int | None = account_id(actor)
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
            detail=jsonable(detail or {}),
        )
    )
