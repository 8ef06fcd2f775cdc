"""Consent page (aesthetician): record and revoke photography and marketing consent."""

from __future__ import annotations

from datetime import date, timedelta

import streamlit as st

from vein_tracker.policy import Action
from vein_tracker.storage.info import CHANNELS, CONSENT_KINDS
from vein_tracker.ui import session, widgets

KIND_LABELS = widgets.CONSENT_KIND_LABELS


def render() -> None:
    actor = session.require(Action.MANAGE_CONSENT)
    st.title("Consent")
    widgets.show_flash()
    with session.friendly():
        client = widgets.client_picker(actor)
        if client is None:
            return
        consents = session.repo().list_consents(actor, client.id)
        st.subheader("Consents on record")
        widgets.table(
            [
                {
                    "id": c.id,
                    "kind": widgets.consent_kind_label(c.kind),
                    "channels": ", ".join(c.scopes) or "—",
                    "signed": c.signed_at,
                    "expires": c.expires_at,
                    "status": c.status(),
                }
                for c in consents
            ]
        )

        st.subheader("Record a consent")
        with st.form("consent_new", clear_on_submit=True):
            kind = st.radio(
                "Kind", CONSENT_KINDS, format_func=lambda k: KIND_LABELS.get(k, k), key="c_kind"
            )
            scopes = st.multiselect(
                "Channels (marketing only)", CHANNELS, default=list(CHANNELS), key="c_scopes"
            )
            c1, c2 = st.columns(2)
            signed = c1.date_input("Signed on", value=date.today(), key="c_signed")
            expires = c2.date_input(
                "Expires on (optional)",
                value=date.today() + timedelta(days=365 * 2),
                key="c_expires",
            )
            note = st.text_input("Note (optional)", key="c_note")
            submitted = st.form_submit_button("Record consent", type="primary")
        if submitted:
            consent = session.repo().record_consent(
                actor,
                client.id,
                kind=kind,
                scopes=tuple(scopes) if kind == "marketing" else (),
                signed_at=signed,
                expires_at=expires,
                note=note.strip() or None,
            )
            widgets.flash(f"Consent recorded ({consent.kind.replace('_', ' ')}).")
            st.rerun()

        active = [c for c in consents if c.revoked_at is None]
        if active:
            st.subheader("Revoke a consent")
            with st.form("consent_revoke", clear_on_submit=True):
                which = st.selectbox(
                    "Consent",
                    [c.id for c in active],
                    format_func=lambda i: next(
                        f"{c.kind.replace('_', ' ')} signed {c.signed_at}"
                        for c in active
                        if c.id == i
                    ),
                    key="c_revoke_id",
                )
                reason = st.text_input("Reason (optional)", key="c_revoke_reason")
                revoke = st.form_submit_button("Revoke consent")
            if revoke and which is not None:
                session.repo().revoke_consent(actor, which, reason=reason.strip() or None)
                widgets.flash("Consent revoked; it takes effect at once.")
                st.rerun()


if __name__ == "__main__":
    render()
