"""Who is signed in: the sign-in state, the idle timeout and the role check every page runs.

The signed-in user is an ``Actor`` kept in ``st.session_state`` (one browser session);
nothing per-user is ever put in ``st.cache_resource``. The repository object itself
holds no per-user state (every method takes the acting user), so one per database is
shared.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import streamlit as st

from vein_tracker import policy
from vein_tracker.config import Settings, get_settings
from vein_tracker.errors import AccessDenied, VeinTrackerError
from vein_tracker.policy import ROLE_LABELS, Action
from vein_tracker.storage import Actor, Repository, UserInfo, open_repository

_ACTOR = "vt_actor"
_LAST_SEEN = "vt_last_seen"
_NOTICE = "vt_notice"

#: How each role is named on screen (from the policy, where roles are defined).
ROLE_NAMES = ROLE_LABELS


@st.cache_resource(show_spinner=False)
def _repository(db_url: str, data_dir: str, key_set: bool) -> Repository:
    # Keyed by the configuration so tests with different data folders never share one.
    del db_url, data_dir, key_set
    repo = open_repository(get_settings())
    # A fresh installation gets its first admin (one-time password on the server's stderr,
    # or VEIN_TRACKER_ADMIN_PASSWORD); nothing happens when an admin exists.
    repo.bootstrap_admin()
    return repo


def settings() -> Settings:
    """The configuration, read now."""
    return get_settings()


def repo() -> Repository:
    """The repository for the configured database and photo store."""
    s = get_settings()
    return _repository(s.db_url, str(s.data_dir), s.encryption_key is not None)


def current_actor() -> Actor | None:
    """The signed-in user of this browser session, or None."""
    actor = st.session_state.get(_ACTOR)
    return actor if isinstance(actor, Actor) else None


def sign_in(username: str, password: str) -> Actor:
    """Check the credentials with the repository and start the session.

    Raises
    ------
    AccessDenied
        Wrong user name or password, or the account is locked.
    """
    actor = repo().authenticate(username, password)
    st.session_state.clear()
    st.session_state[_ACTOR] = actor
    st.session_state[_LAST_SEEN] = time.monotonic()
    return actor


def sign_out(notice: str | None = None) -> None:
    """Forget everything this browser session held; optionally show ``notice`` on sign-in."""
    st.session_state.clear()
    if notice:
        st.session_state[_NOTICE] = notice


def pop_notice() -> str | None:
    """A message left by a sign-out (idle timeout), shown once on the sign-in page."""
    notice = st.session_state.pop(_NOTICE, None)
    return notice if isinstance(notice, str) else None


def check_idle() -> None:
    """Sign out a session idle for longer than ``VEIN_TRACKER_IDLE_TIMEOUT_MIN``; else touch it."""
    if current_actor() is None:
        return
    now = time.monotonic()
    last = st.session_state.get(_LAST_SEEN, now)
    limit_s = get_settings().idle_timeout_min * 60.0
    if now - float(last) > limit_s:
        minutes = get_settings().idle_timeout_min
        sign_out(f"You were signed out after {minutes:g} minutes without activity.")
        return
    st.session_state[_LAST_SEEN] = now


def refresh() -> UserInfo | None:
    """Re-read the signed-in account; sign out if it was disabled or its role changed.

    Returns the account, or None when nobody is (any longer) signed in.
    """
    actor = current_actor()
    if actor is None:
        return None
    try:
        user = repo().get_user(actor, actor.user_id)
    except VeinTrackerError:
        sign_out("Your session ended: please sign in again.")
        return None
    if not user.active or user.role != actor.role or user.client_id != actor.client_id:
        sign_out("Your account was changed by the administrator: please sign in again.")
        return None
    return user


def deny(message: str = "This page is not available to your account.") -> NoReturn:
    """Show a friendly refusal and stop the page."""
    st.error(message)
    st.stop()


def admits(actor: Actor | None, action: Action) -> bool:
    """True if a browser session signed in as ``actor`` may do ``action``.

    The answer is the policy table's (:mod:`vein_tracker.policy`), the one the
    navigation is built from. A browser session is never the local operator
    (``SYSTEM_ACTOR``), whatever its stored actor says.
    """
    return actor is not None and not actor.is_system and policy.allows(actor.role, action)


def require(action: Action) -> Actor:
    """Re-check, at the top of a page, that the signed-in user may do ``action``.

    A signed-out session or a user :func:`admits` refuses sees a short refusal and
    nothing of the page.
    """
    actor = current_actor()
    if actor is None:
        deny("Please sign in.")
    if not admits(actor, action):
        deny()
    return actor


@contextmanager
def friendly() -> Iterator[None]:
    """Show errors a clinic user can cause as a message instead of a traceback."""
    try:
        yield
    except AccessDenied as exc:
        st.error(f"Not allowed: {exc}")
    except VeinTrackerError as exc:
        st.error(str(exc))
    except ValueError as exc:
        # Input the repository refused (empty name, weak password...): say so, no traceback.
        st.error(f"Please check the form: {exc}")


def widget_key(name: str, *parts: Any) -> str:
    """A widget key namespaced by page and record, so switching records resets the widget."""
    return ":".join([name, *(str(p) for p in parts)])
