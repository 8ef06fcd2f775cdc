"""Who is signed in: the sign-in state, the idle timeout and the role check every page runs.

The signed-in user is an ``Actor`` kept in ``st.session_state`` (one browser session);
nothing per-user is ever put in ``st.cache_resource``. The repository object itself
holds no per-user state (every method takes the acting user), so one per database is
shared.
"""

from __future__ import annotations

import contextlib
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
# Issue 24 (H6): the web session of a signed-in browser (vein_tracker.ui.web_auth).
_WEB = "vt_web_session"
_HANDOFF = "vt_web_handoff"
_TOUCHED = "vt_web_touched"
_CLEAR_COOKIE = "vt_web_clear_cookie"
_RESUME_TRIED = "vt_web_resume_tried"
#: The web session's activity is written at most this often, s.
_TOUCH_EVERY_S = 60.0
#: The hand-over is sent until the browser has traded the code, at most this long, s.
_HANDOFF_S = 110.0

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

    Also starts the web session that lets a reload or a link keep the user signed in
    (:mod:`vein_tracker.ui.web_auth`): its one-time code is handed to the browser by
    :func:`cookie_sync`, which the app frame runs on every pass.

    Raises
    ------
    AccessDenied
        Wrong user name or password, or the account is locked.
    """
    actor = repo().authenticate(username, password)
    st.session_state.clear()
    st.session_state[_ACTOR] = actor
    st.session_state[_LAST_SEEN] = time.monotonic()
    web_id, code = repo().start_web_session(actor)
    st.session_state[_WEB] = web_id
    st.session_state[_HANDOFF] = (web_id, code, time.monotonic())
    st.session_state[_TOUCHED] = time.monotonic()
    return actor


def sign_out(notice: str | None = None, *, reason: str = "sign_out") -> None:
    """Forget everything this browser session held and end its web session (the cookie
    then signs nobody in); optionally show ``notice`` on the sign-in page."""
    actor = current_actor()
    web_id = st.session_state.get(_WEB)
    if actor is not None and isinstance(web_id, int):
        with contextlib.suppress(VeinTrackerError):
            repo().end_web_session(actor, web_id, reason=reason)
    st.session_state.clear()
    if notice:
        st.session_state[_NOTICE] = notice
    st.session_state[_CLEAR_COOKIE] = True


def resume() -> None:
    """A new browser connection (reload, link) with a session cookie: sign back in.

    The repository decides (unrevoked, used within the idle timeout, account active);
    the cookie's token itself never appears in the page. A cookie that no longer signs
    in is cleared, and the sign-in page says why.
    """
    if current_actor() is not None or st.session_state.get(_RESUME_TRIED):
        return
    st.session_state[_RESUME_TRIED] = True
    from vein_tracker.ui import web_auth

    token = web_auth.cookie_token()
    if token is None:
        return
    try:
        resumed = repo().resume_web_session(token, idle_timeout_min=get_settings().idle_timeout_min)
    except AccessDenied as exc:
        st.session_state[_NOTICE] = str(exc)
        st.session_state[_CLEAR_COOKIE] = True
        return
    st.session_state[_ACTOR] = resumed.actor
    st.session_state[_LAST_SEEN] = time.monotonic()
    st.session_state[_WEB] = resumed.session_id
    st.session_state[_TOUCHED] = time.monotonic()


def touch() -> None:
    """Record activity on the web session (at most once a minute); sign out when the
    session was ended elsewhere (revoked, expired)."""
    actor = current_actor()
    web_id = st.session_state.get(_WEB)
    if actor is None or not isinstance(web_id, int):
        return
    now = time.monotonic()
    if now - float(st.session_state.get(_TOUCHED, 0.0)) < _TOUCH_EVERY_S:
        return
    st.session_state[_TOUCHED] = now
    if not repo().touch_web_session(actor, web_id):
        sign_out("Your session has ended: please sign in again.", reason="expired")


def cookie_sync() -> None:
    """Hand the session cookie to the browser after a sign-in, or clear it after a
    sign-out (an invisible component; nothing is shown, no rerun)."""
    from vein_tracker.ui import web_auth

    pending = st.session_state.get(_HANDOFF)
    actor = current_actor()
    if pending is not None and actor is not None:
        web_id, code, started = pending
        done = repo().handoff_done(actor, web_id)
        if done or time.monotonic() - float(started) > _HANDOFF_S:
            st.session_state.pop(_HANDOFF, None)
        else:
            web_auth.send_to_browser("session", code=code, generation=f"s{web_id}")
    if st.session_state.pop(_CLEAR_COOKIE, False):
        web_auth.send_to_browser("signout", generation=f"o{time.monotonic_ns()}")


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
        sign_out(f"You were signed out after {minutes:g} minutes without activity.", reason="idle")
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
        sign_out("Your session ended: please sign in again.", reason="account_changed")
        return None
    if not user.active or user.role != actor.role or user.client_id != actor.client_id:
        sign_out(
            "Your account was changed by the administrator: please sign in again.",
            reason="account_changed",
        )
        return None
    return user


def deny(message: str = "This page is not available to your account.") -> NoReturn:
    """Show a friendly refusal and stop the page; a signed-in user's refusal is audited
    (who, which page, why)."""
    actor = current_actor()
    if actor is not None:
        with contextlib.suppress(VeinTrackerError):
            repo().log_refusal(
                actor,
                "access_denied",
                reason=message,
                detail={"page": _page_name()},
            )
    st.error(message)
    st.stop()


def _page_name() -> str:
    """The URL path of the page being run (for the audit of a refusal)."""
    try:
        url = str(st.context.url or "")
    except (AttributeError, RuntimeError):  # no browser connection (tests, bare mode)
        return ""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1][:64]


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
