"""The app frame: page config, sign-in gate, idle timeout, and the pages of each role.

A signed-out session registers only the sign-in page, so no other URL can render
anything. Signed-in users get the pages of their role; each page re-checks the role
itself (``session.require``) in case the navigation is bypassed.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from vein_tracker.ui import session

_HERE = Path(__file__).resolve().parent

#: (file in vein_tracker/ui, title, url path, icon) per role, in menu order.
PAGES: dict[str, list[tuple[str, str, str, str]]] = {
    "aesthetician": [
        ("clients.py", "Clients", "clients", ":material/group:"),
        ("consent.py", "Consent", "consent", ":material/verified_user:"),
        ("visit.py", "Visit", "visit", ":material/photo_camera:"),
        ("review.py", "Review", "review", ":material/compare:"),
        ("progress.py", "Progress", "progress", ":material/monitoring:"),
    ],
    "client": [
        ("portal.py", "My progress", "my-progress", ":material/monitoring:"),
    ],
    "admin": [
        ("users.py", "Users and roles", "users", ":material/manage_accounts:"),
        ("audit.py", "Audit log", "audit", ":material/history:"),
        ("marketing.py", "Marketing export", "marketing", ":material/ios_share:"),
    ],
    "marketing": [
        ("marketing.py", "Marketing export", "marketing", ":material/ios_share:"),
    ],
}


def _page(file: str, title: str, url_path: str, icon: str, *, default: bool) -> st.Page:
    return st.Page(_HERE / file, title=title, url_path=url_path, icon=icon, default=default)


ACCOUNT_PAGE = ("account.py", "Change password", "account", ":material/key:")


def pages_for(role: str | None, *, must_change_password: bool = False) -> list[st.Page]:
    """The pages registered for ``role`` (None: signed out, sign-in page only).

    An account that must change its password gets only the password page.
    """
    if role is None or role not in PAGES:
        return [_page("signin.py", "Sign in", "signin", ":material/login:", default=True)]
    if must_change_password:
        return [_page(*ACCOUNT_PAGE, default=True)]
    entries = [*PAGES[role], ACCOUNT_PAGE]
    return [
        _page(f, title, url, icon, default=(i == 0))
        for i, (f, title, url, icon) in enumerate(entries)
    ]


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
    session.check_idle()
    user = session.refresh()
    role = user.role if user is not None else None
    must_change = bool(user and user.must_change_password)
    nav = st.navigation(pages_for(role, must_change_password=must_change))
    if role is not None:
        _sidebar(role)
    nav.run()
