"""Agreement page (aesthetician): how well raters agree, and agree with the figure.

For a rating session: ICC(2,1) with its 95 % CI on clearance, quadratic-weighted kappa
on the quartile grades and the mean absolute difference for every two raters ("auto"
is the automatic figure), a Bland-Altman plot per two raters, and the same as CSV and
PDF. The statistics are :mod:`vein_tracker.agreement`'s; this page only shows them.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from vein_tracker.agreement import (
    RatingsError,
    agreement_csv,
    agreement_pdf,
    bland_altman_png,
    compute_agreement,
    icc_reading,
)
from vein_tracker.policy import Action
from vein_tracker.ui import session


def render() -> None:
    actor = session.require(Action.VIEW_AGREEMENT)
    st.title("Agreement")
    with session.friendly():
        repo = session.repo()
        sessions = repo.list_rating_sessions(actor)
        if not sessions:
            st.info("No rating session yet: make one on the Rating sessions page.")
            return
        by_id = {s.id: s for s in sessions}
        sid = st.selectbox(
            "Rating session",
            list(by_id),
            format_func=lambda i: f"{by_id[i].name} ({by_id[i].status})",
            key="ag_session",
        )
        rows = repo.session_ratings(actor, sid)
        try:
            result = compute_agreement(rows)
        except RatingsError as exc:
            st.info(f"Not enough ratings yet to measure agreement. {exc}")
            return
        icc = result.icc
        c1, c2, c3 = st.columns(3)
        c1.metric(
            "ICC(2,1)",
            "—" if icc.value is None else f"{icc.value:.2f}",
            help="Two-way random effects, absolute agreement, single rater, on clearance %",
        )
        c2.metric("95 % CI", "—" if icc.ci95 is None else f"{icc.ci95[0]:.2f} – {icc.ci95[1]:.2f}")
        c3.metric("Pairs rated by everyone", str(icc.pairs))
        st.caption(
            f"Agreement is {icc_reading(icc.value)} (Koo and Li). Raters: "
            f"{', '.join(result.raters)}; 'auto' is the automatic figure."
        )
        st.subheader("Every two raters")
        # A static table: a handful of rows, readable and copyable as text.
        st.table(
            pd.DataFrame(
                [
                    {
                        "raters": f"{rp.raters[0]} vs {rp.raters[1]}",
                        "pairs": rp.pairs,
                        "kappa (quartiles)": "—" if rp.kappa is None else f"{rp.kappa:.2f}",
                        "mean |difference|, points": f"{rp.mean_abs_diff:.1f}",
                        "bias, points": f"{rp.bland_altman.mean_diff:+.1f}",
                        "95 % limits, points": (
                            f"{rp.bland_altman.loa[0]:+.1f} to {rp.bland_altman.loa[1]:+.1f}"
                            if rp.bland_altman.loa
                            else "—"
                        ),
                    }
                    for rp in result.rater_pairs
                ]
            ).set_index("raters")
        )
        st.subheader("Bland–Altman")
        cols = st.columns(2)
        for i, rp in enumerate(result.rater_pairs):
            cols[i % 2].image(
                bland_altman_png(rp.bland_altman, dpi=110),
                caption=f"{rp.raters[0]} − {rp.raters[1]} against their mean",
                width="stretch",
            )
        name = by_id[sid].name
        d1, d2 = st.columns(2)
        d1.download_button(
            "Download CSV",
            agreement_csv(result),
            file_name=f"agreement-session-{sid}.csv",
            mime="text/csv",
            key="ag_csv",
        )
        d2.download_button(
            "Download PDF",
            agreement_pdf(
                result,
                subtitle=f"Rating session: {name}",
                clinic_name=session.settings().clinic_name,
                generated_on=dt.date.today(),
            ),
            file_name=f"agreement-session-{sid}.pdf",
            mime="application/pdf",
            key="ag_pdf",
        )


if __name__ == "__main__":
    render()
