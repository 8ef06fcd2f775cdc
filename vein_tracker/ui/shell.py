"""The app frame: page config, sign-in gate, idle timeout, and the pages of each role.

A signed-out session registers only the sign-in page, so no other URL can render
anything. Signed-in users get the pages whose action the policy table
(:mod:`vein_tracker.policy`) allows their role; each page re-checks that same action
itself (``session.require``) in case the navigation is bypassed.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import streamlit as st

from vein_tracker import policy
from vein_tracker.policy import Action
from vein_tracker.ui import session

_HERE = Path(__file__).resolve().parent


class NavPage(NamedTuple):
    """A page of the app: its script in vein_tracker/ui, title, URL path, icon, and the
    policy action it serves (the one its ``session.require`` asks for)."""

    file: str
    title: str
    url_path: str
    icon: str
    action: Action


#: Every page behind the sign-in, in menu order. A role's menu holds the pages whose
#: action the policy table allows it (:func:`menu`); nothing else decides.
NAV_PAGES: tuple[NavPage, ...] = (
    NavPage("clients.py", "Clients", "clients", ":material/group:", Action.EDIT_CLIENTS),
    NavPage("consent.py", "Consent", "consent", ":material/verified_user:", Action.MANAGE_CONSENT),
    NavPage("visit.py", "Visit", "visit", ":material/photo_camera:", Action.RECORD_VISITS),
    NavPage("review.py", "Review", "review", ":material/compare:", Action.ANALYSE),
    NavPage(
        "progress.py", "Progress", "progress", ":material/monitoring:", Action.VIEW_CLIENT_RECORDS
    ),
    NavPage(
        "portal.py", "My progress", "my-progress", ":material/monitoring:", Action.VIEW_OWN_RECORDS
    ),
    NavPage(
        "users.py", "Users and roles", "users", ":material/manage_accounts:", Action.MANAGE_USERS
    ),
    NavPage("audit.py", "Audit log", "audit", ":material/history:", Action.VIEW_AUDIT),
    NavPage(
        "marketing.py",
        "Marketing export",
        "marketing",
        ":material/ios_share:",
        Action.EXPORT_MARKETING,
    ),
    # issue 22 (H5): blind rating sessions and agreement
    NavPage(
        "rating_sessions.py",
        "Rating sessions",
        "rating-sessions",
        ":material/rule:",
        Action.CREATE_RATING_SESSION,
    ),
    NavPage("rating.py", "Blind rating", "rating", ":material/grading:", Action.RATE),
    NavPage(
        "agreement.py",
        "Agreement",
        "agreement",
        ":material/query_stats:",
        Action.VIEW_AGREEMENT,
    ),
)
#: The password page: every role, and the only page while a password change is due.
ACCOUNT = NavPage(
    "account.py", "Change password", "account", ":material/key:", Action.CHANGE_OWN_PASSWORD
)


def menu(role: str) -> list[NavPage]:
    """The pages of ``role``'s menu (the password page apart), in menu order."""
    return [p for p in NAV_PAGES if policy.allows(role, p.action)]


#: (file, title, url path, icon) per role, in menu order: :func:`menu` as plain tuples.
PAGES: dict[str, list[tuple[str, str, str, str]]] = {
    role: [(p.file, p.title, p.url_path, p.icon) for p in menu(role)] for role in policy.ROLES
}


def _page(file: str, title: str, url_path: str, icon: str, *, default: bool) -> st.Page:
    return st.Page(_HERE / file, title=title, url_path=url_path, icon=icon, default=default)


#: The password page as a plain tuple, like the entries of :data:`PAGES`.
ACCOUNT_PAGE = (ACCOUNT.file, ACCOUNT.title, ACCOUNT.url_path, ACCOUNT.icon)


#: The only page of a signed-out browser.
SIGN_IN_PAGE = ("signin.py", "Sign in", "signin", ":material/login:")


def entries_for(
    role: str | None, *, must_change_password: bool = False
) -> list[tuple[str, str, str, str]]:
    """The pages (file, title, url path, icon) registered for ``role``, default first:
    the sign-in page for None (signed out), only the password page while a password
    change is due, else the pages whose action the policy allows ``role``."""
    if role is None or role not in policy.ROLES:
        return [SIGN_IN_PAGE]
    if must_change_password:
        return [ACCOUNT_PAGE]
    pages = [p for p in (*menu(role), ACCOUNT) if policy.allows(role, p.action)]
    return [(p.file, p.title, p.url_path, p.icon) for p in pages]


def pages_for(role: str | None, *, must_change_password: bool = False) -> list[st.Page]:
    """The ``st.Page`` objects of :func:`entries_for` (the first is the default page),
    then every other page's URL, hidden from the menu (:func:`_stand_ins`)."""
    entries = entries_for(role, must_change_password=must_change_password)
    pages = [_page(*entry, default=(i == 0)) for i, entry in enumerate(entries)]
    return pages + _stand_ins({e[2] for e in entries}, signed_in=role is not None)


# --- issue 24 (H6): every page has a stable URL that opens after the sign-in check ---


def _signin_here() -> None:
    from vein_tracker.ui import signin

    signin.render()


def _not_for_you() -> None:
    session.deny()


def _stand_ins(taken: set[str], *, signed_in: bool) -> list[st.Page]:
    """Hidden pages at every other page's URL, so a link or a reload never meets
    "page not found": signed out, the URL shows the sign-in form and, once signed in,
    the page itself (the URL stays); signed in, a page the role may not open shows a
    refusal (audited) instead of another page."""
    out = []
    for p in (*NAV_PAGES, ACCOUNT):
        if p.url_path in taken:
            continue
        out.append(
            st.Page(
                _not_for_you if signed_in else _signin_here,
                title=p.title if signed_in else "Sign in",
                url_path=p.url_path,
                icon=p.icon,
                visibility="hidden",
            )
        )
    return out


def _sidebar(role: str) -> None:
    actor = session.current_actor()
    if actor is None:
        return
    with st.sidebar:
        st.caption(f"Signed in as **{actor.username}** ({session.ROLE_NAMES.get(role, role)})")
        if st.button("Sign out", key="vt_sign_out", icon=":material/logout:"):
            session.sign_out("You are signed out.")
            st.rerun()


def main() -> None:
    """Run one script pass of the app."""
    st.set_page_config(
        page_title="vein_tracker",
        page_icon=":material/healing:",
        layout="wide",
        initial_sidebar_state="auto",
    )
    session.resume()  # a reload or a link: the session cookie signs the user back in
    session.check_idle()
    session.touch()
    user = session.refresh()
    role = user.role if user is not None else None
    must_change = bool(user and user.must_change_password)
    nav = st.navigation(
        pages_for(role, must_change_password=must_change),
        position="sidebar" if role is not None else "hidden",
    )
    if role is not None:
        _sidebar(role)
    session.cookie_sync()
    nav.run()
