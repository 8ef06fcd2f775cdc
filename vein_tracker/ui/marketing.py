"""Marketing export page (marketing, admin): consented, de-identified before/after pairs.

The page lists what the repository allows (consent checked there) and hands the
choice to ``vein_tracker.export``, which checks consent again pair by pair.
"""

from __future__ import annotations

import streamlit as st

from vein_tracker import services
from vein_tracker.policy import Action
from vein_tracker.storage.info import CHANNELS
from vein_tracker.ui import session, widgets


def render() -> None:
    actor = session.require(Action.EXPORT_MARKETING)
    st.title("Marketing export")
    st.caption(
        "Only pairs whose client gave marketing consent for the channel are listed. "
        "Exports are de-identified (no names, no metadata) and watermarked."
    )
    channel = st.selectbox("Channel", CHANNELS, key="m_channel")
    with session.friendly():
        pairs = session.repo().list_marketing_pairs(actor, channel)
        widgets.table(
            [
                {
                    "pair": p.anon_id,
                    "area": p.area_label,
                    "weeks": round(p.weeks, 1),
                    "sessions": p.session_count,
                    "improvement": widgets.fmt_pct(p.improvement_pct),
                    "consent expires": p.consent_expires_at or "no expiry",
                }
                for p in pairs
            ]
        )
        if not pairs:
            return
        chosen = st.multiselect(
            "Pairs to export",
            [p.anon_id for p in pairs],
            default=[p.anon_id for p in pairs],
            key="m_pairs",
        )
        if st.button("Build export (ZIP)", type="primary", key="m_build", disabled=not chosen):
            with st.spinner("Composing de-identified pairs…"):
                result = services.marketing_export(
                    session.repo(),
                    actor,
                    [p for p in pairs if p.anon_id in chosen],
                    channel=channel,
                )
            st.session_state[f"m_zip_{channel}"] = result.zip_bytes
            n = len(result.rows)
            st.success(f"{n} pair{'' if n == 1 else 's'} exported.")
            for skipped in result.skipped:
                st.warning(f"Pair {skipped.anonymous_id} left out: {skipped.reason}")
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
