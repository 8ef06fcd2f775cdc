"""Blind rating page (raters, and aestheticians named raters of a session).

One pair at a time, in the rater's own random order: the before and after photos in a
fixed side-by-side layout (the after photo aligned onto the before one), a clearance
slider with its quartile, and a submit button. Nothing else reaches this page: no client
name, date, visit number, file name or automatic figure (the repository gives a rater
only the pair's place in their order and its pixels). A submitted rating is final; the
page moves to the next pair.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from vein_tracker.outcome import GRADES, quartile
from vein_tracker.policy import Action
from vein_tracker.storage import Actor
from vein_tracker.ui import session, widgets

#: Longest side of each photo sent to the rater's browser, px.
_MAX_SIDE_PX = 900
_CACHE = "rt_blind_images"


def _blind_images(actor: Actor, pair_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The pair's before and aligned after previews, fetched (and audited) once per pair."""
    cached = st.session_state.get(_CACHE)
    if isinstance(cached, tuple) and len(cached) == 3 and cached[0] == pair_id:
        return cached[1], cached[2]
    from vein_tracker import services
    from vein_tracker.report import align_for_display

    photos = session.repo().blind_pair_photos(actor, pair_id)
    if photos.homography is not None:
        before, after = align_for_display(
            photos.before, photos.after, photos.homography, max_side_px=_MAX_SIDE_PX
        )
    else:
        before = services.preview(photos.before, max_side=_MAX_SIDE_PX)
        after = services.preview(photos.after, max_side=_MAX_SIDE_PX)
    # Only the current pair is kept: the browser session holds two small previews at most.
    st.session_state[_CACHE] = (pair_id, before, after)
    return before, after


def render() -> None:
    actor = session.require(Action.RATE)
    st.title("Blind rating")
    widgets.show_flash()
    with session.friendly():
        sessions = [
            s
            for s in session.repo().list_rating_sessions(actor)
            if s.is_rater and s.status == "open"
        ]
        if not sessions:
            st.info("No rating session is waiting for you.")
            return
        by_id = {s.id: s for s in sessions}
        sid = st.selectbox(
            "Rating session",
            list(by_id),
            format_func=lambda i: f"{by_id[i].name} ({by_id[i].rated} of {by_id[i].pairs} rated)",
            key="rt_session",
        )
        pair = session.repo().next_blind_pair(actor, sid)
        if pair is None:
            st.success("You have rated every pair of this session. Thank you.")
            return
        st.subheader(f"Pair {pair.position} of {pair.total}")
        st.caption(
            "Rate how much of the veins visible before have cleared after: 0 % none, "
            "100 % all. Judge the photos only."
        )
        before, after = _blind_images(actor, pair.pair_id)
        left, right = st.columns(2)
        left.image(before, caption="Before", width="stretch")
        right.image(after, caption="After", width="stretch")
        pct = st.slider(
            "Clearance, %",
            min_value=0,
            max_value=100,
            value=50,
            step=1,
            key=f"rt_pct_{pair.pair_id}",
        )
        st.markdown(f"Quartile: **{GRADES[quartile(pct)]} %**")
        if st.button("Submit rating", type="primary", key=f"rt_submit_{pair.pair_id}"):
            session.repo().submit_rating(actor, pair.pair_id, float(pct))
            st.session_state.pop(_CACHE, None)
            widgets.flash(f"Rating of pair {pair.position} saved.")
            st.rerun()


if __name__ == "__main__":
    render()
