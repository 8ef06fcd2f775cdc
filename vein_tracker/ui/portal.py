"""Client portal: the signed-in client's own areas, photos, visits, care and consents.

The client is always the one of the signed-in account (``actor.client_id``); nothing
in the URL or the widgets can choose another client, and the repository checks it.
"""

from __future__ import annotations

import streamlit as st

from vein_tracker import services
from vein_tracker.policy import Action
from vein_tracker.ui import session, widgets

HONEST = (
    "Sclerotherapy aims at **improvement, not perfection**. The clinic's goal is "
    "about {target:g} % fewer visible spider veins in a treated area; results build up "
    "over weeks to months and several sessions. New veins can still appear over the "
    "years: that is not caused by the treatment."
)
PRE_CARE = [
    "For 5–10 days before a session, avoid aspirin, ibuprofen, antibiotics and "
    "corticosteroids (ask us first if a doctor prescribed them).",
    "On the day: no lotion on your legs and no shaving.",
    "Bring your compression stockings.",
]
AFTER_CARE = [
    "No strenuous exercise for 3–5 days; walk for 30 minutes every day.",
    "Wear your compression stockings as advised.",
    "No hot baths, saunas or sun on the treated legs.",
    "For pain, take paracetamol only.",
    "Keep your follow-up appointments: a late visit lets treated veins re-open.",
]


def render() -> None:
    actor = session.require(Action.VIEW_OWN_RECORDS)
    client_id = actor.client_id
    if client_id is None:
        session.deny()
    target = session.settings().target_pct
    st.title("My progress")
    widgets.show_flash()
    st.markdown(HONEST.format(target=target))
    with session.friendly():
        areas = session.repo().list_areas(actor, client_id)
        if not areas:
            st.info("Your treatment areas will appear here after your first visit.")
        for area in areas:
            st.subheader(widgets.md_escape(widgets.area_label(area).capitalize()))
            view = services.area_progress(session.repo(), actor, area.id, target_pct=target)
            widgets.progress_view(view, target_pct=target, audience="client")
            widgets.sessions_compare(actor, area.id, key=f"p_cmp_{area.id}")

        st.subheader("Visits")
        visits = session.repo().list_visits(actor, client_id)
        widgets.table([{"session": v.session_number, "date": v.visit_date} for v in visits])
        widgets.next_window(visits, audience="client")

        with st.expander("Before a session (pre-care)"):
            for line in PRE_CARE:
                st.write(f"• {line}")
        with st.expander("After a session (after-care)", expanded=True):
            for line in AFTER_CARE:
                st.write(f"• {line}")

        st.subheader("My consents")
        consents = session.repo().list_consents(actor, client_id)
        if not consents:
            st.caption("No consent on record.")
        # One short card per consent rather than a wide table: a phone shows all of it.
        for c in consents:
            with st.container(border=True):
                st.markdown(
                    f"**{widgets.md_escape(widgets.consent_kind_label(c.kind))}** · "
                    f"{widgets.md_escape(c.status())}"
                )
                lines = [f"signed {c.signed_at:%d %b %Y}"]
                lines.append(
                    f"expires {c.expires_at:%d %b %Y}" if c.expires_at else "no expiry date"
                )
                if c.scopes:
                    lines.append("channels: " + ", ".join(c.scopes))
                st.caption(" · ".join(lines))
        marketing = [c for c in consents if c.kind == "marketing" and c.status() == "valid"]
        for c in marketing:
            if st.button(
                "Withdraw my marketing consent",
                key=f"p_revoke_{c.id}",
                help="Your photos will no longer be used in any new marketing material.",
            ):
                session.repo().revoke_consent(actor, c.id, reason="withdrawn by the client")
                widgets.flash("Your marketing consent is withdrawn.")
                st.rerun()
        widgets.report_download(actor, client_id)


if __name__ == "__main__":
    render()
