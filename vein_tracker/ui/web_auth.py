"""Signed-in browsers across reloads and links: the session cookie and its two HTTP routes.

How it works (the design, and why a stolen link or token signs nobody in):

1. The sign-in form checks the password (``Repository.authenticate``); the repository
   then starts a web session and returns a one-time *code* (256 random bits; only its
   SHA-256 is stored; valid 2 minutes, once).
2. The page hands the code to the browser's JavaScript (:func:`cookie_handoff`), which
   POSTs it, as JSON, to this app's own route ``/vt-auth/session``. The route trades it
   for the session *token* (256 random bits; only its SHA-256 is stored) and sets it as
   the cookie ``vt_session``: ``HttpOnly`` (page JavaScript cannot read it),
   ``SameSite=Strict`` (no other site's page or link can make the browser send it with
   a request that changes anything), ``Path=/``, ``Secure`` when served over HTTPS, and
   no expiry date (the browser drops it when it closes).
3. A reload or a link opens a new connection; Streamlit hands the script that request's
   cookies (``st.context.cookies``) and :func:`resume` asks the repository for the
   session: it must be unrevoked, used within the idle timeout
   (``VEIN_TRACKER_IDLE_TIMEOUT_MIN``) and younger than 12 hours, and the account
   active and unlocked. The role is read from the account as it is now.
4. Sign-out, the idle time-out, or an account change revoke the session in the database
   (the cookie then opens nothing), and ``/vt-auth/signout`` deletes the cookie.

No token ever travels in a URL: page URLs hold only the page (``/review``) and, for staff,
a client record number that the repository checks against the signed-in user. So a copied
link, browser history, a server log or a ``Referer`` header carry nothing that signs
anyone in. A copy of the database holds digests only. The routes take JSON only (a plain
cross-site form cannot send it) and check the ``Origin`` header.

Streamlit runs this app through :class:`streamlit.App` (``app.py``), whose routes are the
two here; the pages never see the token.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
from pathlib import Path
from typing import Any

import streamlit as st
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vein_tracker.config import get_settings
from vein_tracker.errors import AccessDenied, StorageError
from vein_tracker.storage import Repository, open_repository

COOKIE = "vt_session"
SESSION_PATH = "/vt-auth/session"
SIGNOUT_PATH = "/vt-auth/signout"
_STATIC = Path(__file__).resolve().parent / "static"
_NAME = "vein_tracker.web_auth"
_LOG = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- routes


@functools.cache
def _route_repository(db_url: str, data_dir: str) -> Repository:
    # One per configuration for the server process (the pages' is in ui.session).
    del db_url, data_dir
    return open_repository(get_settings())


def _repository() -> Repository:
    s = get_settings()
    return _route_repository(s.db_url, str(s.data_dir))


def _same_origin(request: Request) -> bool:
    """True when the request comes from a page of this app (or names no origin)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return any(hmac.compare_digest(origin, f"{scheme}://{host}") for scheme in ("http", "https"))


def _json_body(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw.decode("utf-8")) if raw else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


async def session_route(request: Request) -> Response:
    """``POST /vt-auth/session`` ``{"code": ...}``: trade a one-time code for the cookie."""
    if not _same_origin(request) or "json" not in request.headers.get("content-type", ""):
        return _no_store(Response(status_code=403))
    data = _json_body(await request.body())
    code = data.get("code") if data else None
    if not isinstance(code, str):
        return _no_store(Response(status_code=400))
    try:
        token = _repository().redeem_web_session(code)
    except AccessDenied:
        return _no_store(Response(status_code=403))
    except StorageError:
        _LOG.exception("session hand-over failed")
        return _no_store(Response(status_code=503))
    response = Response(status_code=204)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return _no_store(response)


async def signout_route(request: Request) -> Response:
    """``POST /vt-auth/signout``: revoke the cookie's session (if any) and delete the cookie."""
    if not _same_origin(request) or "json" not in request.headers.get("content-type", ""):
        return _no_store(Response(status_code=403))
    token = request.cookies.get(COOKIE)
    if token:
        try:
            _repository().end_web_session_by_token(token)
        except StorageError:
            _LOG.exception("sign-out could not revoke the session")
    response = Response(status_code=204)
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return _no_store(response)


def routes() -> list[Route]:
    """The two routes ``app.py`` gives :class:`streamlit.App`."""
    return [
        Route(SESSION_PATH, session_route, methods=["POST"]),
        Route(SIGNOUT_PATH, signout_route, methods=["POST"]),
    ]


# ----------------------------------------------------------------------------- page side


@functools.cache
def _component() -> Any:
    js = (_STATIC / "web_auth.js").read_text(encoding="utf-8")
    return st.components.v2.component(_NAME, js=js)


def send_to_browser(action: str, *, code: str = "", generation: str) -> None:
    """Render the invisible hand-over: the browser POSTs to one of the routes once.

    Parameters
    ----------
    action : {"session", "signout"}
    code : str
        The one-time code (``"session"`` only).
    generation : str
        A new value sends again; the same value is sent once per page.
    """
    if action not in ("session", "signout"):
        raise ValueError(f"action must be 'session' or 'signout', got {action!r}")
    _component()(
        key=f"vt-auth-{action}",
        data={"action": action, "code": code, "generation": generation},
        height=0,
    )


def cookie_token() -> str | None:
    """The session cookie of the browser connection that runs this script, if any."""
    try:
        value = st.context.cookies.get(COOKIE)
    except (AttributeError, RuntimeError):  # no browser connection (tests, bare mode)
        return None
    return value if isinstance(value, str) and value else None
