"""Progress page (aesthetician): improvement over sessions per area, flags, next visit."""

from __future__ import annotations

import streamlit as st

from vein_tracker import services
from vein_tracker.policy import Action
from vein_tracker.ui import session, widgets


def render() -> None:
    actor = session.require(Action.VIEW_CLIENT_RECORDS)
    st.title("Progress")
    with session.friendly():
        client = widgets.client_picker(actor)
        if client is None:
            return
        areas = session.repo().list_areas(actor, client.id)
        if not areas:
            st.info("No treatment area recorded for this client yet.")
            return
        target = session.settings().target_pct
        for area in areas:
            st.subheader(widgets.md_escape(widgets.area_label(area)))
            view = services.area_progress(session.repo(), actor, area.id, target_pct=target)
            widgets.progress_view(view, target_pct=target, audience="clinic")
            with st.expander("Before / after across sessions"):
                if not widgets.sessions_compare(actor, area.id, key=f"pg_cmp_{area.id}"):
                    st.caption("No analysed follow-up photo yet.")
        visits = session.repo().list_visits(actor, client.id)
        widgets.next_window(visits)
        widgets.report_download(actor, client.id)


if __name__ == "__main__":
    render()
