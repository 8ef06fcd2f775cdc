"""Visit page (aesthetician): start a visit, check and store photos, the photo grid.

A visit is started for the client named on its button (never silently for whoever was
selected on another page); a second visit on the same date must be confirmed. Photos
are checked before anything is stored (thumbnail, sharpness, exposure, framing, whether
they match the area's baseline); the aesthetician then stores them. The first photo of
an area at a visit counts for that visit; others are alternates that can be chosen
instead. Photos and visits are deleted or retaken with a reason (soft: kept on record).

Uploads are decoded by ``services.check_upload``/``store_upload`` and then released: the
uploader's key is rotated so the browser session does not keep the bytes.
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
    SCLEROSANT_RANGES_PCT,
    SCLEROSANTS,
    SIDES,
    VIEWS,
    AreaInfo,
    ClientInfo,
    PhotoInfo,
    VisitInfo,
    check_concentration,
)
from vein_tracker.ui import session, widgets

PHOTO_TYPES = ["jpg", "jpeg", "png", "tif", "tiff", "webp", "heic", "heif"]
#: Largest file accepted by the uploader, MB (a 50 MP phone photo is well under this).
MAX_UPLOAD_MB = 60
_UPLOADER_GEN = "vt_upload_gen"
_REPORTS = "vt_upload_reports"
_CHECKS = "vt_upload_checks"
#: The visit picker's widget key (per client); set it to follow a visit just started.
VISIT_KEY = "v_current_{client}"


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


def _sclerosant_help() -> str:
    return "Usual concentrations for leg veins: " + "; ".join(
        f"{SCLEROSANT_LABELS[s]} {lo:g}–{hi:g} %" for s, (lo, hi) in SCLEROSANT_RANGES_PCT.items()
    )


def _start_visit(
    actor: Actor, client: ClientInfo, areas: list[AreaInfo], *, expanded: bool
) -> None:
    who = f"{client.name} (record {client.id})"
    with st.expander("Start a visit", expanded=expanded), st.form(f"visit_new_{client.id}"):
        # The client is named in the form and on its button: a client chosen on another
        # page never receives a visit without the aesthetician seeing whose it is.
        st.markdown(f"New visit for **{widgets.md_escape(who)}**")
        c1, c2 = st.columns(2)
        when = c1.date_input("Visit date", value=date.today(), key="v_date")
        sclerosant = c2.selectbox(
            "Sclerosant",
            [None, *SCLEROSANTS],
            format_func=lambda s: "none (photos only)" if s is None else SCLEROSANT_LABELS[s],
            key="v_sclerosant",
        )
        concentration = c1.number_input(
            "Concentration (%)",
            min_value=0.0,
            max_value=30.0,
            value=None,
            step=0.05,
            key="v_conc",
            help=_sclerosant_help(),
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
        same_day = st.checkbox(
            "This is a second visit on a date that already has one (only if meant)",
            key="v_same_day",
        )
        submitted = st.form_submit_button(f"Start visit for {client.name}", type="primary")
    if not submitted:
        return
    try:
        check_concentration(sclerosant, concentration)
    except ValueError as exc:
        st.error(str(exc))
        return
    visit = session.repo().create_visit(
        actor,
        client.id,
        visit_date=when,
        sclerosant=sclerosant,
        concentration_pct=concentration,
        volume_ml=volume,
        area_ids=tuple(area_ids),
        notes=notes.strip() or None,
        same_day=bool(same_day),
    )
    # The picker follows the new visit: its widget state is set, not only a default.
    st.session_state[VISIT_KEY.format(client=client.id)] = visit.id
    st.session_state[_CHECKS] = []
    st.session_state[_REPORTS] = []
    widgets.flash(
        f"Visit started for {widgets.md_escape(who)}: session {visit.session_number} on "
        f"{visit.visit_date:%d %b %Y}. Photos you store now go to this visit."
    )
    st.rerun()


def _uploader(actor: Actor, visit: VisitInfo, visit_areas: list[AreaInfo]) -> None:
    """Step 1: choose files and their areas, check them (nothing stored yet)."""
    gen = int(st.session_state.get(_UPLOADER_GEN, 0))
    files = st.file_uploader(
        "Photos of the treated areas (several at once is fine)",
        type=PHOTO_TYPES,
        accept_multiple_files=True,
        max_upload_size=MAX_UPLOAD_MB,
        key=f"uploader_{gen}",
    )
    if not files:
        return
    st.caption("Assign each photo to its area, then check them before storing:")
    ids = [a.id for a in visit_areas]
    choices: list[int] = []
    for i, f in enumerate(files):
        choices.append(
            st.selectbox(
                f"Area for {f.name}",
                ids,
                index=i % len(ids),
                format_func=lambda a: next(widgets.area_label(x) for x in visit_areas if x.id == a),
                key=f"assign_{gen}_{i}",
            )
        )
    if st.button("Check photos", type="primary", key=f"check_{gen}"):
        checks: list[dict[str, Any]] = []
        with st.status("Checking the photos…", expanded=False) as status:
            for i, (f, area_id) in enumerate(zip(files, choices, strict=True)):
                result = services.check_upload(
                    session.repo(), actor, area_id=area_id, data=f.getvalue(), filename=f.name
                )
                checks.append({"index": i, "check": result})
            status.update(label=f"{len(files)} photos checked", state="complete")
        st.session_state[_CHECKS] = checks
        st.session_state["vt_check_visit"] = visit.id
        st.rerun()


def _store_checked(actor: Actor, visit: VisitInfo, visit_areas: list[AreaInfo]) -> None:
    """Step 2: the checks with thumbnails; store what the aesthetician keeps."""
    checks = st.session_state.get(_CHECKS) or []
    if not checks or st.session_state.get("vt_check_visit") != visit.id:
        return
    gen = int(st.session_state.get(_UPLOADER_GEN, 0))
    files = st.session_state.get(f"uploader_{gen}") or []
    labels = {a.id: widgets.area_label(a) for a in visit_areas}
    decisions: list[tuple[int, str]] = []
    st.markdown("**Capture check** (nothing is stored yet)")
    for item in checks:
        chk: services.UploadCheck = item["check"]
        with st.container(border=True):
            c1, c2 = st.columns([1, 3])
            if chk.thumbnail is not None:
                c1.image(chk.thumbnail, width="stretch")
            with c2:
                st.markdown(
                    f"**{widgets.md_escape(chk.name)}** → "
                    f"{widgets.md_escape(labels.get(chk.area_id, 'area'))}"
                )
                if chk.error is not None:
                    st.error(f"Not a usable photo: {chk.error}")
                    continue
                widgets.capture_report(chk.report or {})
                options = ["store", "skip"]
                if chk.matches_baseline is False:
                    st.error(
                        "This photo does not match the area's baseline (another leg, area or "
                        "pose?). Retake it; or keep it apart, marked unmatched: it is then "
                        "never measured or exported."
                    )
                    options = ["skip", "store_unmatched"]
                choice = st.radio(
                    "Keep this photo?",
                    options,
                    format_func={
                        "store": "Store it",
                        "skip": "Do not store (retake)",
                        "store_unmatched": "Store it apart, marked unmatched",
                    }.get,
                    horizontal=True,
                    key=f"keep_{gen}_{item['index']}",
                )
                decisions.append((int(item["index"]), str(choice)))
    if st.button("Store the photos kept", type="primary", key=f"store_{gen}"):
        reports: list[dict[str, Any]] = []
        by_index = {int(i["index"]): i["check"] for i in checks}
        for index, choice in decisions:
            if choice == "skip" or index >= len(files):
                continue
            chk = by_index[index]
            f = files[index]
            row: dict[str, Any] = {"name": chk.name, "area": labels.get(chk.area_id, "")}
            try:
                stored = services.store_upload(
                    session.repo(),
                    actor,
                    visit_id=visit.id,
                    area_id=chk.area_id,
                    data=f.getvalue(),
                    filename=f.name,
                    report=chk.report,
                    status="unmatched" if choice == "store_unmatched" else "ok",
                )
            except (VeinTrackerError, ValueError) as exc:
                row["error"] = str(exc)
            else:
                row["report"] = stored.report
                row["baseline"] = stored.photo.is_baseline
                row["primary"] = stored.photo.is_primary
                row["status"] = stored.photo.status
            reports.append(row)
        st.session_state[_REPORTS] = reports
        st.session_state[_CHECKS] = []
        st.session_state[_UPLOADER_GEN] = gen + 1  # release the uploaded bytes
        st.rerun()


def _reports() -> None:
    for item in st.session_state.get(_REPORTS, []):
        st.markdown(f"**{widgets.md_escape(item['name'])}** → {widgets.md_escape(item['area'])}")
        if "error" in item:
            st.error(f"Not stored: {item['error']}")
            continue
        if item.get("baseline"):
            st.caption("Stored as the baseline of this area.")
        elif item.get("status") == "unmatched":
            st.warning("Stored apart, marked unmatched: never measured or exported.")
        elif not item.get("primary"):
            st.info(
                "Stored as an alternate: this visit already has a photo of this area that "
                "counts. Choose which one counts in the photo grid below."
            )
        else:
            st.success("Stored; it counts for this visit.")


def _make_primary(actor: Actor, photo: PhotoInfo, *, key: str) -> None:
    repo = session.repo()
    if photo.usable and not photo.is_primary and st.button("Make it count", key=f"{key}_primary"):
        repo.set_primary_photo(actor, photo.id)
        widgets.flash("This photo now counts for its visit.")
        st.rerun()
    if photo.status != "ok" and st.button("Mark as usable", key=f"{key}_ok"):
        repo.set_photo_status(actor, photo.id, "ok")
        widgets.flash("The photo is marked usable again.")
        st.rerun()


def _retake_or_delete(actor: Actor, photos: list[PhotoInfo], *, key: str) -> None:
    """Retake or delete one photo of an area, with the reason (soft: kept on record)."""
    by_id = {p.id: p for p in photos}
    with st.popover("Retake or delete a photo…"):
        pid = st.selectbox(
            "Photo",
            list(by_id),
            format_func=lambda i: (
                f"session {by_id[i].session_number} · photo {i} · " + widgets.photo_badge(by_id[i])
            ),
            key=f"{key}_pick",
        )
        reason = st.text_input("Reason (required, kept in the audit log)", key=f"{key}_why")
        gen = int(st.session_state.get(_UPLOADER_GEN, 0))
        new = st.file_uploader(
            "For a retake: the new photo",
            type=PHOTO_TYPES,
            max_upload_size=MAX_UPLOAD_MB,
            key=f"{key}_new_{gen}",
        )
        c1, c2 = st.columns(2)
        retake = c1.button("Retake", key=f"{key}_retake", disabled=new is None)
        delete = c2.button("Delete", key=f"{key}_delete")
    if not (retake or delete) or pid is None:
        return
    if not reason.strip():
        st.error("Write the reason first: why is the photo retaken or deleted?")
        return
    photo = by_id[pid]
    repo = session.repo()
    if retake and new is not None:
        stored = services.store_upload(
            repo,
            actor,
            visit_id=photo.visit_id,
            area_id=photo.area_id,
            data=new.getvalue(),
            filename=new.name,
            replaces=photo.id,
            reason=reason,
        )
        st.session_state[_UPLOADER_GEN] = gen + 1  # release the uploaded bytes
        widgets.flash(
            "Photo retaken"
            + (" (marked unmatched)" if stored.photo.status == "unmatched" else "")
            + "; the old one is kept on record with the reason."
        )
    else:
        repo.delete_photo(actor, photo.id, reason=reason)
        widgets.flash("Photo deleted (kept on record with the reason).")
    st.rerun()


def _photo_grid(actor: Actor, areas: list[AreaInfo], visits: list[VisitInfo]) -> None:
    """Per area, every session's photos side by side, newest session last."""
    if not areas:
        return
    st.subheader("Photos by area and session")
    # Off until asked: the grid reads every photo of the client (thumbnails are cached).
    if not st.toggle("Show the photos, choose which counts, retake or delete", key="v_grid"):
        return
    order = {v.id: i for i, v in enumerate(sorted(visits, key=lambda v: v.session_number))}
    for area in areas:
        photos = session.repo().list_photos(actor, area_id=area.id)
        with st.expander(
            f"{widgets.area_label(area)} · {len(photos)} photo{'' if len(photos) == 1 else 's'}",
            expanded=False,
        ):
            if not photos:
                st.caption("No photo of this area yet.")
                continue
            by_visit: dict[int, list[PhotoInfo]] = {}
            for p in photos:
                by_visit.setdefault(p.visit_id, []).append(p)
            cols = st.columns(max(1, min(4, len(by_visit))))
            for i, (_vid, group) in enumerate(
                sorted(by_visit.items(), key=lambda kv: order.get(kv[0], 0))
            ):
                with cols[i % len(cols)]:
                    first = group[0]
                    st.markdown(f"**Session {first.session_number}** · {first.visit_date}")
                    for p in sorted(group, key=lambda p: (not p.is_primary, p.id)):
                        st.image(services.thumbnail(session.repo(), actor, p.id), width="stretch")
                        st.caption(widgets.photo_badge(p))
                        _make_primary(actor, p, key=f"ph_{p.id}")
            _retake_or_delete(actor, photos, key=f"rd_{area.id}")


def _visit_admin(actor: Actor, client: ClientInfo, visit: VisitInfo) -> None:
    with st.expander(f"Delete session {visit.session_number} (started by mistake)"):
        reason = st.text_input(
            "Reason (required, kept in the audit log)", key=f"vdel_why_{visit.id}"
        )
        if st.button(f"Delete session {visit.session_number}", key=f"vdel_{visit.id}"):
            if not reason.strip():
                st.error("Write why the visit is deleted.")
                return
            session.repo().delete_visit(actor, visit.id, reason=reason)
            st.session_state.pop(VISIT_KEY.format(client=client.id), None)
            widgets.flash(
                f"Session {visit.session_number} of {widgets.md_escape(client.name)} deleted "
                "(kept on record with the reason)."
            )
            st.rerun()


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
        key = VISIT_KEY.format(client=client.id)
        if st.session_state.get(key) not in by_id:
            st.session_state[key] = ids[0]  # the newest visit, unless one was chosen
        visit_id = st.selectbox(
            f"Visit of {client.name}",
            ids,
            format_func=lambda i: f"Session {by_id[i].session_number} · {by_id[i].visit_date}",
            key=key,
        )
        visit = by_id[visit_id]
        st.caption(
            f"Photos stored below go to **session {visit.session_number}** "
            f"({visit.visit_date:%d %b %Y}) of **{widgets.md_escape(client.name)}**."
        )
        visit_areas = [a for a in areas if a.id in visit.area_ids] or areas
        _ghosts(actor, visit, areas)
        if not visit_areas:
            st.info("Add a treatment area first.")
        else:
            _uploader(actor, visit, visit_areas)
            _store_checked(actor, visit, visit_areas)
        _reports()
        _photo_grid(actor, areas, visits)
        _visit_admin(actor, client, visit)


if __name__ == "__main__":
    render()
