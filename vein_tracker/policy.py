"""Who may do what: the one table of roles × actions that every layer reads.

The navigation (``ui.shell``), each page's ``session.require``, the services, the
repository's guards and the role checks of ``export`` and ``report`` all ask this module
(:func:`allows`, :func:`require`); none of them compares role names itself.

========================================  =====  ============  ======  =========  =====
action                                    admin  aesthetician  client  marketing  rater
========================================  =====  ============  ======  =========  =====
``manage_users``                            x
``view_audit``                              x
``manage_settings``                         x
``export_marketing``                        x                              x
``view_client_records``                            x
``edit_clients``                                   x
``record_visits``                                  x
``upload_photos``                                  x
``analyse``                                        x
``manage_consent``                                 x
``progress_report``                                x            x
``view_own_records``                                            x
``withdraw_own_marketing_consent``                              x
``change_own_password``                     x      x            x          x        x
``correct_vein_map``                               x
``create_rating_session``                          x
``rate``                                           x                                x
``view_agreement``                                 x
========================================  =====  ============  ======  =========  =====

The administrator runs the installation (accounts, audit log, settings) and the
marketing export; clinical records (screening answers, treatment notes, photos) are
health data, read only by the treating staff and by the client they belong to, so the
admin sees none of the clinical pages. Someone who both administers and treats gets an
aesthetician account as well, and the audit log shows in which capacity they acted. A
``rater`` (issue 22) is a clinician who grades before/after pairs blind: their only page
is the rating page, which shows a pair's two photos and nothing that names it; rating
sessions and the agreement statistics are the treating staff's (the administrator sees no
clinical photo, so makes no session either).

The table says what a role may do at all. What a role may do *to which record* is the
repository's work on top of it: ``client`` actions reach only the account's own client
record; marketing photos and pairs need a marketing consent valid today for the channel;
treatment photos need a valid treatment-photography consent. The local operator of a
CLI command (``SYSTEM_ACTOR``: backup, seed, re-analysis) has no account and may do
every action.

To add a role: name it in :data:`ROLES` and :data:`ROLE_LABELS`, then in the rows it may
do (the database's check on ``users.role`` needs a migration too). To add an action: a
member of :class:`Action` and its row in :data:`POLICY` (the agreement tests fail until
the row exists).

This module imports nothing of the app: no streamlit, no storage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Protocol

from .errors import AccessDenied

#: Roles of a user account, in the order forms list them.
ROLES: Final = ("admin", "aesthetician", "client", "marketing", "rater")
#: How each role is named to people.
ROLE_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "admin": "Administrator",
        "aesthetician": "Aesthetician",
        "client": "Client",
        "marketing": "Marketing",
        "rater": "Rater",
    }
)


class Action(StrEnum):
    """Something a signed-in user may be allowed to do (a row of :data:`POLICY`)."""

    MANAGE_USERS = "manage_users"
    VIEW_AUDIT = "view_audit"
    MANAGE_SETTINGS = "manage_settings"
    EXPORT_MARKETING = "export_marketing"
    VIEW_CLIENT_RECORDS = "view_client_records"
    EDIT_CLIENTS = "edit_clients"
    RECORD_VISITS = "record_visits"
    UPLOAD_PHOTOS = "upload_photos"
    ANALYSE = "analyse"
    MANAGE_CONSENT = "manage_consent"
    PROGRESS_REPORT = "progress_report"
    VIEW_OWN_RECORDS = "view_own_records"
    WITHDRAW_OWN_MARKETING_CONSENT = "withdraw_own_marketing_consent"
    CHANGE_OWN_PASSWORD = "change_own_password"
    # issue 22 (H5): the clinician in the loop
    CORRECT_VEIN_MAP = "correct_vein_map"
    CREATE_RATING_SESSION = "create_rating_session"
    RATE = "rate"
    VIEW_AGREEMENT = "view_agreement"


#: What each action lets a user do, as a refusal names it ("... can <text>").
ACTION_TEXT: Final[Mapping[Action, str]] = MappingProxyType(
    {
        Action.MANAGE_USERS: "manage user accounts",
        Action.VIEW_AUDIT: "read the audit log",
        Action.MANAGE_SETTINGS: "change the installation's settings",
        Action.EXPORT_MARKETING: "see and export consented before/after pairs",
        Action.VIEW_CLIENT_RECORDS: "see clients' records",
        Action.EDIT_CLIENTS: "register clients and record their screening",
        Action.RECORD_VISITS: "record treatment areas and visits",
        Action.UPLOAD_PHOTOS: "upload photos and set their scale or baseline",
        Action.ANALYSE: "analyse photo pairs",
        Action.MANAGE_CONSENT: "record or revoke consents",
        Action.PROGRESS_REPORT: "produce progress reports",
        Action.VIEW_OWN_RECORDS: "see their own progress",
        Action.WITHDRAW_OWN_MARKETING_CONSENT: "withdraw their own marketing consent",
        Action.CHANGE_OWN_PASSWORD: "change their password",
        Action.CORRECT_VEIN_MAP: "correct vein maps",
        Action.CREATE_RATING_SESSION: "create blind rating sessions",
        Action.RATE: "rate before/after pairs blind",
        Action.VIEW_AGREEMENT: "see how raters agree",
    }
)

_EVERYONE = frozenset(ROLES)

#: The table: action -> the roles that may do it.
POLICY: Final[Mapping[Action, frozenset[str]]] = MappingProxyType(
    {
        Action.MANAGE_USERS: frozenset({"admin"}),
        Action.VIEW_AUDIT: frozenset({"admin"}),
        Action.MANAGE_SETTINGS: frozenset({"admin"}),
        Action.EXPORT_MARKETING: frozenset({"admin", "marketing"}),
        Action.VIEW_CLIENT_RECORDS: frozenset({"aesthetician"}),
        Action.EDIT_CLIENTS: frozenset({"aesthetician"}),
        Action.RECORD_VISITS: frozenset({"aesthetician"}),
        Action.UPLOAD_PHOTOS: frozenset({"aesthetician"}),
        Action.ANALYSE: frozenset({"aesthetician"}),
        Action.MANAGE_CONSENT: frozenset({"aesthetician"}),
        Action.PROGRESS_REPORT: frozenset({"aesthetician", "client"}),
        Action.VIEW_OWN_RECORDS: frozenset({"client"}),
        Action.WITHDRAW_OWN_MARKETING_CONSENT: frozenset({"client"}),
        Action.CHANGE_OWN_PASSWORD: _EVERYONE,
        Action.CORRECT_VEIN_MAP: frozenset({"aesthetician"}),
        Action.CREATE_RATING_SESSION: frozenset({"aesthetician"}),
        Action.RATE: frozenset({"aesthetician", "rater"}),
        Action.VIEW_AGREEMENT: frozenset({"aesthetician"}),
    }
)


class ActingUser(Protocol):
    """What the checks need of an actor (``vein_tracker.storage.Actor`` has it)."""

    @property
    def role(self) -> str: ...

    @property
    def is_system(self) -> bool: ...


def allows(role: str | None, action: Action) -> bool:
    """True if the table lets ``role`` do ``action`` (None, signed out: never)."""
    return role is not None and role in POLICY[action]


def permits(actor: ActingUser, action: Action) -> bool:
    """True if ``actor`` may do ``action``: the local operator always, others by role."""
    return actor.is_system or allows(actor.role, action)


def permits_any(actor: ActingUser, actions: Iterable[Action]) -> bool:
    """True if ``actor`` may do at least one of ``actions``."""
    return any(permits(actor, a) for a in actions)


def require(actor: ActingUser, action: Action) -> None:
    """Raise :class:`AccessDenied` unless ``actor`` may do ``action``.

    The message names the roles that may (never a person or a record).
    """
    if not permits(actor, action):
        raise AccessDenied(refusal(action))


def refusal(action: Action) -> str:
    """The one-line refusal of ``action``: who may do it."""
    labels = [ROLE_LABELS[r].lower() for r in ROLES if r in POLICY[action]]
    who = " and ".join(labels) if len(labels) < 3 else ", ".join(labels)
    return f"Only {who} accounts can {ACTION_TEXT[action]}."


def roles_for(action: Action) -> frozenset[str]:
    """The roles that may do ``action``."""
    return POLICY[action]


def actions_for(role: str) -> frozenset[Action]:
    """Every action ``role`` may do."""
    return frozenset(a for a in Action if allows(role, a))


def table() -> str:
    """The policy as a text table (actions down, roles across), for docs and reports."""
    width = max(len(a) for a in Action)
    head = " ".join([f"{'action':<{width}}", *(f"{r:^{len(r)}}" for r in ROLES)])
    lines = [head]
    for a in Action:
        marks = [f"{'x' if allows(r, a) else '.':^{len(r)}}" for r in ROLES]
        lines.append(" ".join([f"{a.value:<{width}}", *marks]))
    return "\n".join(lines)
