"""Audit log page (admin): who did what, when, to which record, with filters."""

from __future__ import annotations

from datetime import date, timedelta

import streamlit as st

from vein_tracker.policy import Action
from vein_tracker.ui import session, widgets


def render() -> None:
    actor = session.require(Action.VIEW_AUDIT)
    st.title("Audit log")
    c1, c2, c3 = st.columns(3)
    since = c1.date_input("From", value=date.today() - timedelta(days=30), key="au_from")
    until = c2.date_input("To", value=date.today(), key="au_to")
    outcome = c3.selectbox("Outcome", ["all", "succeeded", "refused"], key="au_ok")
    c4, c5, c6 = st.columns(3)
    username = c4.text_input("User", key="au_user")
    action = c5.text_input("Action contains", key="au_action")
    client_id = c6.number_input("Client record", min_value=0, step=1, value=0, key="au_client")
    with session.friendly():
        events = session.repo().list_audit(
            actor,
            since=since if isinstance(since, date) else None,
            until=until if isinstance(until, date) else None,
            username=username.strip() or None,
            action=action.strip() or None,
            client_id=int(client_id) or None,
            ok={"all": None, "succeeded": True, "refused": False}[outcome],
            limit=500,
        )
        st.caption(f"{len(events)} events (newest first, at most 500).")
        widgets.table(
            [
                {
                    "when (UTC)": e.at.strftime("%Y-%m-%d %H:%M:%S"),
                    "user": e.username,
                    "role": e.role,
                    "action": e.action,
                    "record": f"{e.target_type} {e.target_id}" if e.target_type else "",
                    "client": e.client_id,
                    "ok": e.ok,
                }
                for e in events
            ]
        )


if __name__ == "__main__":
    render()
