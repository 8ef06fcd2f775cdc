"""Users and roles page (admin): list accounts, create one, change role or status."""

from __future__ import annotations

import streamlit as st

from vein_tracker.policy import Action
from vein_tracker.storage.info import ROLES
from vein_tracker.ui import session, widgets


def render() -> None:
    actor = session.require(Action.MANAGE_USERS)
    st.title("Users and roles")
    widgets.show_flash()
    with session.friendly():
        users = session.repo().list_users(actor)
        widgets.table(
            [
                {
                    "id": u.id,
                    "user": u.username,
                    "role": u.role,
                    "client record": u.client_id,
                    "active": u.active,
                    "locked until": u.locked_until,
                    "last sign-in": u.last_login_at,
                }
                for u in users
            ]
        )

        st.subheader("Add a user")
        with st.form("user_new", clear_on_submit=True):
            username = st.text_input("User name", key="u_name")
            role = st.selectbox("Role", ROLES, index=1, key="u_role")
            client_id = st.number_input(
                "Client record (client accounts only)", min_value=0, step=1, value=0, key="u_cid"
            )
            password = st.text_input(
                "Initial password (leave empty to generate one)", type="password", key="u_pw"
            )
            submitted = st.form_submit_button("Add user", type="primary")
        if submitted:
            link = (int(client_id) or None) if role == "client" else None
            if password:
                user = session.repo().create_user(
                    actor,
                    username.strip(),
                    password,
                    role,
                    client_id=link,
                    must_change_password=True,
                )
                msg = f"User {user.username} added as {user.role}."
            else:
                user, initial = session.repo().invite_user(
                    actor, username.strip(), role, client_id=link
                )
                msg = (
                    f"User {user.username} added as {user.role}. One-time password "
                    f"(shown once, must be changed at first sign-in): {initial}"
                )
            widgets.flash(msg)
            st.rerun()

        if users:
            st.subheader("Change a user")
            by_id = {u.id: u for u in users}
            uid = st.selectbox(
                "User", list(by_id), format_func=lambda i: by_id[i].username, key="u_pick"
            )
            user = by_id[uid]
            c1, c2 = st.columns(2)
            new_role = c1.selectbox(
                "Role", ROLES, index=ROLES.index(user.role), key=f"u_role_{uid}"
            )
            active = c2.checkbox("Active", value=user.active, key=f"u_active_{uid}")
            if st.button("Save user", key=f"u_save_{uid}"):
                session.repo().update_user(actor, uid, role=new_role, active=active)
                widgets.flash(f"User {user.username} updated.")
                st.rerun()
            if st.button("Reset password", key=f"u_reset_{uid}"):
                new_password = session.repo().reset_password(actor, uid)
                widgets.flash(
                    f"New password for {user.username} (shown once, must be changed): "
                    f"{new_password}"
                )
                st.rerun()


if __name__ == "__main__":
    render()
