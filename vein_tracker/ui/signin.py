"""Sign-in page: the only page a signed-out browser can reach."""

from __future__ import annotations

import streamlit as st

from vein_tracker.errors import AccessDenied
from vein_tracker.ui import session


def render() -> None:
    st.title("vein_tracker")
    st.caption(f"{session.settings().clinic_name} · spider-vein treatment progress")
    notice = session.pop_notice()
    if notice:
        st.info(notice)
    if session.current_actor() is not None:
        st.success("You are signed in. Choose a page in the menu.")
        return
    with st.form("signin", clear_on_submit=False, enter_to_submit=True):
        username = st.text_input("User name", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        if not username or not password:
            st.error("Enter your user name and password.")
            return
        try:
            session.sign_in(username.strip(), password)
        except AccessDenied as exc:
            st.error(str(exc) or "Wrong user name or password.")
            return
        st.rerun()


if __name__ == "__main__":
    render()
