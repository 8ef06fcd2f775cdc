"""Visit page (aesthetician, admin): start a visit, upload photos per area, capture feedback.

Uploads are decoded and stored through ``services.store_upload`` and then released:
the uploader's key is rotated so the browser session does not keep the bytes.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import streamlit as st

from vein_tracker import services
from vein_tracker.errors import VeinTrackerError
from vein_tracker.policy import Action
from vein_tracker.storage import Actor
from vein_tracker.storage.info import (
    REGIONS,
    SCLEROSANT_LABELS,
    SCLEROSANTS,
    SIDES,
    VIEWS,
    AreaInfo,
    ClientInfo,
    VisitInfo,
)
from vein_tracker.ui import session, widgets

PHOTO_TYPES = ["jpg", "jpeg", "png", "tif", "tiff", "webp", "heic", "heif"]
#: Largest file accepted by the uploader, MB (a 50 MP phone photo is well under this).
MAX_UPLOAD_MB = 60
_UPLOADER_GEN = "vt_upload_gen"
_REPORTS = "vt_upload_reports"


def _new_area(actor: Actor, client: ClientInfo) -> None:
    with st.expander("Add a treatment area"), st.form("area_new", clear_on_submit=True):
        c1, c2, c3 = st.columns(3)
        side = c1.selectbox("Side", SIDES, key="a_side")
        region = c2.selectbox("Region", REGIONS, index=2, key="a_region")
        view = c3.selectbox("View", VIEWS, index=1, key="a_view")
        note = st.text_input("Note (optional)", key="a_note")
        if st.form_submit_button("Add area"):
            area = session.repo().create_area(
                actor, client.id, side=side, view=view, region=region, note=note.strip() or None
            )
            widgets.flash(f"Area added: {widgets.md_escape(widgets.area_label(area))}.")
            st.rerun()


def _start_visit(
    actor: Actor, client: ClientInfo, areas: list[AreaInfo], *, expanded: bool
) -> None:
    with st.expander("Start a visit", expanded=expanded), st.form("visit_new"):
        c1, c2 = st.columns(2)
        when = c1.date_input("Visit date", value=date.today(), key="v_date")
        sclerosant = c2.selectbox(
            "Sclerosant",
            [None, *SCLEROSANTS],
            format_func=lambda s: "none (photos only)" if s is None else SCLEROSANT_LABELS[s],
            key="v_sclerosant",
        )
        concentration = c1.number_input(
            "Concentration (%)", min_value=0.0, max_value=30.0, value=None, key="v_conc"
        )
        volume = c2.number_input(
            "Volume (ml)", min_value=0.0, max_value=50.0, value=None, key="v_vol"
        )
        area_ids = st.multiselect(
            "Areas treated",
            [a.id for a in areas],
            default=[a.id for a in areas],
            format_func=lambda i: next(widgets.area_label(a) for a in areas if a.id == i),
            # Keyed by the areas, so a newly added area is pre-selected.
            key="v_areas_" + "-".join(str(a.id) for a in areas),
        )
        notes = st.text_area("Notes", key="v_notes")
        if st.form_submit_button("Start visit", type="primary"):
            visit = session.repo().create_visit(
                actor,
                client.id,
                visit_date=when,
                sclerosant=sclerosant,
                concentration_pct=concentration,
                volume_ml=volume,
                area_ids=tuple(area_ids),
                notes=notes.strip() or None,
            )
            st.session_state["vt_visit_id"] = visit.id
            widgets.flash(f"Visit started: session {visit.session_number} on {visit.visit_date}.")
            st.rerun()


def _upload(actor: Actor, visit: VisitInfo, areas: list[AreaInfo]) -> None:
    visit_areas = [a for a in areas if a.id in visit.area_ids] or areas
    if not visit_areas:
        st.info("Add a treatment area first.")
        return
    gen = int(st.session_state.get(_UPLOADER_GEN, 0))
    files = st.file_uploader(
        "Photos of the treated areas (several at once is fine)",
        type=PHOTO_TYPES,
        accept_multiple_files=True,
        max_upload_size=MAX_UPLOAD_MB,
        key=f"uploader_{gen}",
    )
    if files:
        st.caption("Assign each photo to its area:")
        choices: list[int] = []
        ids = [a.id for a in visit_areas]
        for i, f in enumerate(files):
            choices.append(
                st.selectbox(
                    f"Area for {f.name}",
                    ids,
                    index=i % len(ids),
                    format_func=lambda a: next(
                        widgets.area_label(x) for x in visit_areas if x.id == a
                    ),
                    key=f"assign_{gen}_{i}",
                )
            )
        if st.button("Store photos", type="primary", key=f"store_{gen}"):
            reports: list[dict[str, Any]] = []
            with st.status("Storing and checking photos…", expanded=True) as status:
                for f, area_id in zip(files, choices, strict=True):
                    st.write(f"{widgets.md_escape(f.name)}…")
                    item: dict[str, Any] = {
                        "name": f.name,
                        "area": next(widgets.area_label(a) for a in visit_areas if a.id == area_id),
                    }
                    try:
                        stored = services.store_upload(
                            session.repo(),
                            actor,
                            visit_id=visit.id,
                            area_id=area_id,
                            data=f.getvalue(),
                            filename=f.name,
                        )
                    except (VeinTrackerError, ValueError) as exc:
                        item["error"] = str(exc)
                    else:
                        item["report"] = stored.report
                        item["baseline"] = stored.photo.is_baseline
                    reports.append(item)
                stored_n = sum(1 for r in reports if "report" in r)
                status.update(label=f"{stored_n} of {len(files)} photos stored", state="complete")
            st.session_state[_REPORTS] = reports
            st.session_state[_UPLOADER_GEN] = gen + 1  # release the uploaded bytes
            st.rerun()
    for item in st.session_state.get(_REPORTS, []):
        st.markdown(f"**{widgets.md_escape(item['name'])}** → {widgets.md_escape(item['area'])}")
        if "error" in item:
            st.error(f"Not stored: {item['error']}")
            continue
        if item.get("baseline"):
            st.caption("Stored as the baseline of this area.")
        widgets.capture_report(item["report"])


def _ghosts(actor: Actor, visit: VisitInfo, areas: list[AreaInfo]) -> None:
    visit_areas = [a for a in areas if a.id in visit.area_ids]
    with_baseline = [a for a in visit_areas if a.baseline_photo_id is not None]
    if not with_baseline:
        return
    with st.expander("Baseline ghost: frame the new photo like the first one"):
        cols = st.columns(min(3, len(with_baseline)))
        for col, area in zip(cols * 10, with_baseline, strict=False):
            with col:
                ghost = services.baseline_ghost(session.repo(), actor, area.id)
                if ghost is not None:
                    widgets.image(ghost, caption=widgets.area_label(area))


def render() -> None:
    actor = session.require(Action.RECORD_VISITS)
    st.title("Visit")
    widgets.show_flash()
    with session.friendly():
        client = widgets.client_picker(actor)
        if client is None:
            return
        if not client.cleared_for_treatment:
            st.warning(
                "This client is not cleared for treatment (screening missing or positive "
                "without an override). Photos can still be taken."
            )
        areas = session.repo().list_areas(actor, client.id)
        _new_area(actor, client)
        visits = session.repo().list_visits(actor, client.id)
        today = date.today()
        _start_visit(actor, client, areas, expanded=not any(v.visit_date == today for v in visits))
        if not visits:
            st.info("No visit yet: start one above.")
            return
        by_id = {v.id: v for v in visits}
        ids = sorted(by_id, key=lambda i: by_id[i].session_number, reverse=True)
        want = st.session_state.get("vt_visit_id")
        visit_id = st.selectbox(
            "Visit",
            ids,
            index=ids.index(want) if want in by_id else 0,
            format_func=lambda i: f"Session {by_id[i].session_number} · {by_id[i].visit_date}",
            key=f"v_current_{client.id}",
        )
        st.session_state["vt_visit_id"] = visit_id
        visit = by_id[visit_id]
        _ghosts(actor, visit, areas)
        _upload(actor, visit, areas)


if __name__ == "__main__":
    render()
