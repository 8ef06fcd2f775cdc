"""Rating sessions page (aesthetician): make a blind rating session, follow it, close it.

Staff pick measured pairs (saved analyses) and the raters; the repository gives each pair
a blind code and each rater a random order. Raters rate on the Blind rating page; the
Agreement page compares them with each other and with the automatic figure.
"""

from __future__ import annotations

import streamlit as st

from vein_tracker.policy import Action
from vein_tracker.ui import session, widgets


def render() -> None:
    actor = session.require(Action.CREATE_RATING_SESSION)
    st.title("Rating sessions")
    widgets.show_flash()
    with session.friendly():
        repo = session.repo()
        sessions = repo.list_rating_sessions(actor)
        widgets.table(
            [
                {
                    "session": s.name,
                    "status": s.status,
                    "pairs": s.pairs,
                    "raters": ", ".join(s.raters),
                    "created": s.created_at.strftime("%Y-%m-%d"),
                    "by": s.created_by,
                }
                for s in sessions
            ]
        )
        open_sessions = [s for s in sessions if s.status == "open"]
        if open_sessions:
            by_id = {s.id: s for s in open_sessions}
            c1, c2 = st.columns([3, 1])
            sid = c1.selectbox(
                "Close a session to new ratings",
                list(by_id),
                format_func=lambda i: by_id[i].name,
                key="rs_close_pick",
            )
            if c2.button("Close session", key="rs_close"):
                repo.close_rating_session(actor, sid)
                widgets.flash(f"Session {by_id[sid].name!r} closed.")
                st.rerun()

        st.subheader("New rating session")
        pairs = repo.list_measured_pairs(actor)
        raters = repo.list_raters(actor)
        if len(pairs) < 3:
            st.info("A rating session needs at least 3 measured pairs: save more analyses first.")
            return
        pair_by_id = {p.analysis_id: p for p in pairs}
        rater_by_id = {r.id: r for r in raters}
        with st.form("rs_new", clear_on_submit=True):
            name = st.text_input("Session name (raters see it: no client names)", key="rs_name")
            chosen = st.multiselect(
                "Measured pairs",
                list(pair_by_id),
                format_func=lambda i: (
                    f"{pair_by_id[i].client_name} · {pair_by_id[i].area} · "
                    f"{pair_by_id[i].baseline_date} → {pair_by_id[i].followup_date} "
                    f"(session {pair_by_id[i].session_number}, "
                    f"{pair_by_id[i].improvement_pct:.0f} %)"
                ),
                key="rs_pairs",
            )
            who = st.multiselect(
                "Raters",
                list(rater_by_id),
                format_func=lambda i: f"{rater_by_id[i].username} ({rater_by_id[i].role})",
                key="rs_raters",
            )
            submitted = st.form_submit_button("Create session", type="primary")
        if submitted:
            made = repo.create_rating_session(
                actor, name=name, analysis_ids=list(chosen), rater_ids=list(who)
            )
            widgets.flash(
                f"Session {made.name!r} created: {made.pairs} pairs for "
                f"{len(made.raters)} rater(s)."
            )
            st.rerun()


if __name__ == "__main__":
    render()
