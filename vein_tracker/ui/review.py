"""Review page (aesthetician): aligned before/after, vein maps, change map, numbers.

The before/after comparison (wipe, side by side, zoom, pan) runs in the browser
(``ui.compare_view``: no rerun per move); the alignment views, vein maps and change map
are rendered on the server (``services.checkerboard`` and friends) from downscaled previews.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from vein_tracker import services
from vein_tracker.errors import RegistrationError
from vein_tracker.policy import Action
from vein_tracker.storage import Actor
from vein_tracker.storage.info import AreaInfo, PhotoInfo
from vein_tracker.ui import session, vein_map_review, widgets


def _pick_pair(actor: Actor, areas: list[AreaInfo]) -> tuple[AreaInfo, PhotoInfo, PhotoInfo] | None:
    ready = [a for a in areas if a.baseline_photo_id is not None]
    if not ready:
        st.info("No area has a baseline photo yet: upload one on the Visit page.")
        return None
    by_id = {a.id: a for a in ready}
    area_id = st.selectbox(
        "Area",
        list(by_id),
        format_func=lambda i: widgets.area_label(by_id[i]),
        key=f"r_area_{ready[0].client_id}",
    )
    area = by_id[area_id]
    photos = session.repo().list_photos(actor, area_id=area.id)
    baseline = next((p for p in photos if p.id == area.baseline_photo_id), None)
    baseline_visit = baseline.visit_id if baseline is not None else None
    followups = sorted(
        (p for p in photos if p.id != area.baseline_photo_id and p.visit_id != baseline_visit),
        key=lambda p: (p.session_number, p.is_primary, p.id),
        reverse=True,
    )
    if baseline is None or not followups:
        st.info("This area has only its baseline photo: upload a follow-up photo to compare.")
        return None
    fmap = {p.id: p for p in followups}
    # Opens on the newest photo that counts for its visit and is usable: never on an
    # unmatched or refused photo, nor on an alternate.
    first = next((p.id for p in followups if p.is_primary and p.usable), followups[0].id)
    key = f"r_followup_{area.id}"
    if st.session_state.get(key) not in fmap:
        st.session_state[key] = first
    fid = st.selectbox(
        "Follow-up photo",
        list(fmap),
        format_func=lambda i: (
            f"session {fmap[i].session_number} · {fmap[i].visit_date} · photo {i} · "
            + widgets.photo_badge(fmap[i])
        ),
        key=key,
    )
    return area, baseline, fmap[fid]


def _controls(area_id: int) -> services.AnalysisParams:
    with st.expander("Region of interest and sensitivity"):
        sensitivity = st.slider(
            "Sensitivity",
            0.1,
            0.9,
            0.5,
            0.05,
            help="Higher finds fainter veins (and more false ones).",
            key=f"r_sens_{area_id}",
        )
        limit = st.checkbox("Limit the analysis to a rectangle", key=f"r_limit_{area_id}")
        include = None
        if limit:
            xs = st.slider("Left–right (% of width)", 0, 100, (10, 90), key=f"r_x_{area_id}")
            ys = st.slider("Top–bottom (% of height)", 0, 100, (10, 90), key=f"r_y_{area_id}")
            include = (xs[0] / 100, ys[0] / 100, xs[1] / 100, ys[1] / 100)
        erase = st.checkbox("Erase a rectangle from the region", key=f"r_erase_{area_id}")
        exclude = None
        if erase:
            ex = st.slider("Erase left–right (%)", 0, 100, (40, 60), key=f"r_ex_{area_id}")
            ey = st.slider("Erase top–bottom (%)", 0, 100, (40, 60), key=f"r_ey_{area_id}")
            exclude = (ex[0] / 100, ey[0] / 100, ex[1] / 100, ey[1] / 100)
    return services.AnalysisParams(
        sensitivity=float(sensitivity),
        include_rect=include,
        exclude_rect=exclude,
        target_pct=session.settings().target_pct,
    )


@st.fragment(run_every=0.8)
def _flicker(before: np.ndarray, after: np.ndarray, *, key: str) -> None:
    """Alternate before and after in place (only this fragment reruns)."""
    n = int(st.session_state.get(key, 0)) + 1
    st.session_state[key] = n
    widgets.image(after if n % 2 else before, caption="After" if n % 2 else "Before")


def _views(actor: Actor, review: services.ReviewData, area_id: int) -> None:
    tabs = widgets.kept_tabs(
        ["Before / after", "Alignment", "Veins", "Change map", "Region"], key=f"r_tabs_{area_id}"
    )
    with tabs[0]:
        widgets.pair_compare(actor, review, key=f"r_cmp_{area_id}")
    with tabs[1]:
        mode = st.radio(
            "View",
            ["Checkerboard", "Flicker", "Before", "After", "Blend"],
            horizontal=True,
            key=f"r_align_{area_id}",
            help="Flicker alternates before and after; skin marks and edges should not jump.",
        )
        img: np.ndarray | None = None
        if mode == "Flicker":
            _flicker(review.baseline, review.followup, key=f"r_flick_{area_id}")
        elif mode == "Checkerboard":
            tiles = st.slider("Tiles", 2, 16, 8, key=f"r_tiles_{area_id}")
            img = services.checkerboard(review.baseline, review.followup, tiles=tiles)
        elif mode == "Before":
            img = review.baseline
        elif mode == "After":
            img = review.followup
        else:
            img = services.blend(review.baseline, review.followup, alpha=0.5)
        if img is not None:
            widgets.image(img)
        reg = review.result.get("registration", {})
        st.caption(
            f"Alignment quality {float(reg.get('quality') or 0):.2f}, "
            f"residual {float(reg.get('residual_px') or 0):.1f} px"
        )
    with tabs[2]:
        c1, c2 = st.columns(2)
        with c1:
            widgets.image(
                services.vein_overlay(review.baseline, review.baseline_labels), caption="Before"
            )
        with c2:
            widgets.image(
                services.vein_overlay(review.followup, review.followup_labels), caption="After"
            )
        widgets.colour_legend("veins")
    with tabs[3]:
        widgets.image(services.change_overlay(review.baseline, review.change_map))
        widgets.colour_legend("change")
    with tabs[4]:
        widgets.image(
            services.roi_overlay(review.baseline, review.region),
            caption="Measured region: the leg seen in both photos, within your rectangle.",
        )


def render() -> None:
    actor = session.require(Action.ANALYSE)
    st.title("Review")
    widgets.show_flash()
    with session.friendly():
        client = widgets.client_picker(actor)
        if client is None:
            return
        picked = _pick_pair(actor, session.repo().list_areas(actor, client.id))
        if picked is None:
            return
        area, baseline, followup = picked
        if not followup.usable:
            # Flagged, never measured: say why and what to do (retake on the Visit page).
            st.error(services.photo_status_text(followup))
            st.caption("Retake it, or make another photo of that visit count, on the Visit page.")
            return
        params = _controls(area.id)
        bar = st.progress(0.0, text="Preparing…")

        def progress(fraction: float, message: str) -> None:
            bar.progress(min(max(fraction, 0.0), 1.0), text=message)

        refused: RegistrationError | None = None
        with st.status("Analysing the pair…", expanded=False) as status:
            try:
                review = services.analyze_pair(
                    session.repo(),
                    actor,
                    baseline_photo_id=baseline.id,
                    followup_photo_id=followup.id,
                    params=params,
                    progress=progress,
                )
            except RegistrationError as exc:
                # The bar and the status end here too, not at "aligning…".
                refused = exc
                status.update(label="The pair could not be aligned", state="error")
            else:
                status.update(
                    label="Result from the saved analysis" if review.cached else "Analysis done",
                    state="complete",
                )
        bar.empty()
        if refused is not None:
            st.error(
                f"{refused} The photo is marked as not aligned: it is left out of Progress, "
                "reports and exports until it is retaken or marked usable."
            )
            return
        widgets.improvement_numbers(review.result)
        if review.saved:
            st.caption("This result is saved in the client's record.")
        elif st.button("Save this result to the record", type="primary", key="r_save"):
            services.save_analysis(session.repo(), actor, review)
            widgets.flash("Result saved.")
            st.rerun()
        # --- issue 22 (H5): correct the baseline vein map; the figure is measured again
        # on it at once, and saving stores it as a new map version.
        vein_map_review.render(actor, baseline=baseline, followup=followup, params=params)
        # --- end issue 22
        _views(actor, review, area.id)
        widgets.report_download(actor, client.id)


if __name__ == "__main__":
    render()
