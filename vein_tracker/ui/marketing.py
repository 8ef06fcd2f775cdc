"""Marketing export page (marketing, admin): consented, anonymous before/after pairs.

The page lists what the repository allows (consent checked there, and only the photo
that counts for each visit when it is usable) and hands the choice to
``vein_tracker.export``, which checks consent again pair by pair. A face or a tattoo is
hidden with the blur-box tool before exporting; the face check refuses a pair that
still shows a face.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from vein_tracker import export
from vein_tracker.errors import VeinTrackerError
from vein_tracker.policy import Action
from vein_tracker.storage import Actor
from vein_tracker.storage.info import CHANNELS, MarketingPair
from vein_tracker.ui import blur_boxes, session, widgets

_BOXES = "m_blur_boxes"
_HALVES = "m_halves"
_OPEN = "m_blur_pair"


def _boxes() -> dict[str, list[export.BlurBox]]:
    value = st.session_state.setdefault(_BOXES, {})
    assert isinstance(value, dict)
    return value


def _blur_tool(actor: Actor, pairs: list[MarketingPair]) -> None:
    """Choose a pair, draw boxes over what identifies the client; kept for the export."""
    by_key = {export.pair_key(p): p for p in pairs}
    opened = st.session_state.get(_OPEN)
    with st.expander("Hide a face or a tattoo (blur boxes)", expanded=opened in by_key):
        if st.session_state.get("m_blur_pick") not in by_key:
            st.session_state["m_blur_pick"] = opened if opened in by_key else next(iter(by_key))
        key = st.selectbox(
            "Pair",
            list(by_key),
            format_func=lambda k: export.pair_label(by_key[k]),
            key="m_blur_pick",
        )
        if key is None:
            return
        cache: dict[str, Any] = st.session_state.setdefault(_HALVES, {})
        halves = cache.get(key)
        if halves is None:
            with st.spinner("Aligning the pair…"):
                try:
                    halves = export.pair_halves(session.repo(), actor, by_key[key])
                except VeinTrackerError as exc:
                    st.error(str(exc))
                    return
            cache.clear()  # one pair's pictures at a time in the session
            cache[key] = halves
        saved = _boxes().get(key)
        x0, y0 = halves.crop[0], halves.crop[1]
        start = (
            [(b.x - x0, b.y - y0, b.width, b.height) for b in saved]
            if saved is not None
            else list(halves.faces)
        )
        if halves.faces and saved is None:
            st.warning("A face was found in this pair: its box is drawn; adjust it if needed.")
        drawn, scale = blur_boxes.blur_box_tool(
            halves.before, halves.after, boxes=start, key=f"m_blur_{key}"
        )
        frame = blur_boxes.to_frame(drawn, scale=scale, offset=(x0, y0))
        _boxes()[key] = [export.BlurBox(x=x, y=y, width=w, height=h) for x, y, w, h in frame]
        n = len(frame)
        st.caption(
            f"{n} blur box{'' if n == 1 else 'es'} kept for this pair; they apply to both "
            "photos in the export."
        )


def render() -> None:
    actor = session.require(Action.EXPORT_MARKETING)
    st.title("Marketing export")
    st.caption(
        "Only pairs whose client gave marketing consent for the channel are listed. "
        "Exports are anonymous (no names, no record numbers, no metadata, ids that only "
        "the clinic can trace) and watermarked."
    )
    channel = st.selectbox("Channel", CHANNELS, key="m_channel")
    with session.friendly():
        pairs = session.repo().list_marketing_pairs(actor, channel)
        widgets.table(
            [
                {
                    "pair": export.pair_label(p),
                    "weeks": round(p.weeks, 1),
                    "sessions": max(0, p.session_count - 1),
                    "improvement": widgets.fmt_pct(p.improvement_pct),
                    "consent expires": p.consent_expires_at or "no expiry",
                }
                for p in pairs
            ]
        )
        if not pairs:
            return
        by_key = {export.pair_key(p): p for p in pairs}
        chosen = st.multiselect(
            "Pairs to export",
            list(by_key),
            default=list(by_key),
            format_func=lambda k: export.pair_label(by_key[k]),
            key=f"m_pairs_{channel}",
        )
        _blur_tool(actor, pairs)
        if st.button("Build export (ZIP)", type="primary", key="m_build", disabled=not chosen):
            with st.spinner("Composing anonymous pairs…"):
                result = export.run_export(
                    session.repo(),
                    actor,
                    [by_key[k] for k in chosen],
                    channel=channel,
                    blur_boxes={k: v for k, v in _boxes().items() if k in chosen},
                )
            st.session_state[f"m_zip_{channel}"] = result.zip_bytes
            st.session_state[f"m_skipped_{channel}"] = [
                (s.key, s.label, s.reason) for s in result.skipped
            ]
            n = len(result.rows)
            widgets.flash(f"{n} pair{'' if n == 1 else 's'} exported.")
            st.rerun()
        widgets.show_flash()
        for key, label, reason in st.session_state.get(f"m_skipped_{channel}", []):
            st.warning(f"Left out: {label}: {reason}")
            if (
                "face" in reason
                and key in by_key
                and st.button("Hide it with a blur box", key=f"m_fix_{key}")
            ):
                st.session_state[_OPEN] = key
                st.session_state["m_blur_pick"] = key
                st.rerun()
        data = st.session_state.get(f"m_zip_{channel}")
        if isinstance(data, bytes):
            st.download_button(
                "Download export",
                data=data,
                file_name=f"marketing-export-{channel}.zip",
                mime="application/zip",
                key="m_download",
            )


if __name__ == "__main__":
    render()
