"""Change-password page (every signed-in role; the only page while a change is required)."""

from __future__ import annotations

import streamlit as st

from vein_tracker.errors import AccessDenied
from vein_tracker.policy import Action
from vein_tracker.ui import session, widgets


def render() -> None:
    actor = session.require(Action.CHANGE_OWN_PASSWORD)
    st.title("Change password")
    widgets.show_flash()
    user = session.repo().get_user(actor, actor.user_id)
    if user.must_change_password:
        st.warning("Please choose a new password before you continue.")
    with st.form("password_change", clear_on_submit=True):
        old = st.text_input("Current password", type="password", key="pw_old")
        new = st.text_input("New password (at least 10 characters)", type="password", key="pw_new")
        again = st.text_input("New password again", type="password", key="pw_again")
        submitted = st.form_submit_button("Change password", type="primary")
    if submitted:
        if new != again:
            st.error("The two new passwords differ.")
            return
        try:
            session.repo().change_password(actor, old, new)
        except AccessDenied as exc:
            st.error(str(exc))
            return
        except ValueError as exc:
            st.error(f"Please choose another password: {exc}")
            return
        widgets.flash("Password changed.")
        st.rerun()


if __name__ == "__main__":
    render()
