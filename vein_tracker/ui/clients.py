"""Clients page (aesthetician): search, add and edit, contraindication screening."""

from __future__ import annotations

from datetime import date

import streamlit as st

from vein_tracker import services
from vein_tracker.policy import Action
from vein_tracker.storage import Actor
from vein_tracker.storage.info import SCREENING_LABELS, SCREENING_QUESTIONS, ClientInfo, Screening
from vein_tracker.ui import session, widgets

REFER_TEXT = (
    "Varicose veins (over 3 mm, bulging) are not treated here: "
    "refer the client to a vascular physician."
)


def _screening_form(k: str, client: ClientInfo | None) -> tuple[Screening, bool, str]:
    """The screening questions, with live warnings: (answers, override, override reason)."""
    st.markdown("**Contraindication screening** (tick every answer that is *yes*)")
    prev = client.screening if client and client.screening else Screening()
    answers = {
        q: st.checkbox(SCREENING_LABELS[q], value=bool(getattr(prev, q)), key=f"{k}_{q}")
        for q in SCREENING_QUESTIONS
    }
    screening = Screening(**answers)
    override = False
    reason_text = ""
    if screening.varicose_veins:
        st.error(REFER_TEXT, icon=":material/local_hospital:")
    if screening.positives:
        st.warning(
            "Positive screening: "
            + ", ".join(SCREENING_LABELS[q] for q in screening.positives)
            + ". Sclerotherapy is contraindicated unless you record why it may go ahead.",
            icon=":material/warning:",
        )
        override = st.checkbox(
            "Override: treatment may go ahead",
            value=bool(client and client.override_reason),
            key=f"{k}_override",
        )
        if override:
            reason_text = st.text_input(
                "Reason for the override (required)",
                value=(client.override_reason or "") if client else "",
                key=f"{k}_reason",
                placeholder="e.g. GP letter of 3 March: low-dose only, no anticoagulant",
            )
    return screening, override, reason_text


def _editor(actor: Actor, client: ClientInfo | None) -> None:
    """Add (client None) or edit a client; live warnings for positive screening answers."""
    k = k_prefix = f"edit{client.id if client else 'new'}"
    name = st.text_input("Full name", value=client.name if client else "", key=f"{k}_name")
    c1, c2 = st.columns(2)
    dob = c1.date_input(
        "Date of birth",
        value=client.date_of_birth if client else None,
        min_value=date(1900, 1, 1),
        max_value=date.today(),
        key=f"{k}_dob",
    )
    fitz_options = [None, 1, 2, 3, 4, 5, 6]
    fitz = c2.selectbox(
        "Fitzpatrick skin type",
        fitz_options,
        index=fitz_options.index(client.fitzpatrick) if client else 0,
        format_func=lambda v: "not recorded" if v is None else f"type {v}",
        key=f"{k}_fitz",
    )
    email = c1.text_input("Email", value=(client.email or "") if client else "", key=f"{k}_email")
    phone = c2.text_input("Phone", value=(client.phone or "") if client else "", key=f"{k}_phone")
    notes = st.text_area("Notes", value=(client.notes or "") if client else "", key=f"{k}_notes")

    screening, override, reason_text = _screening_form(k, client)
    label = "Save changes" if client else "Add client"
    if st.button(label, type="primary", key=f"{k}_save"):
        if not name.strip():
            st.error("Enter the client's name.")
            return
        try:
            override_reason = services.override_reason(
                screening, override=override, reason=reason_text
            )
        except ValueError as exc:
            # Nothing is saved and the form keeps what was typed, the reason field with it.
            st.error(str(exc))
            return
        if screening.positives and override_reason is None:
            st.info("Saved without override: the client is marked not cleared for treatment.")
        details = {
            "name": name.strip(),
            "date_of_birth": dob,
            "email": email.strip() or None,
            "phone": phone.strip() or None,
            "fitzpatrick": fitz,
            "notes": notes.strip() or None,
        }
        repo = session.repo()
        with session.friendly():
            if client is None:
                saved = repo.create_client(
                    actor,
                    name=name.strip(),
                    date_of_birth=dob,
                    email=email.strip() or None,
                    phone=phone.strip() or None,
                    fitzpatrick=fitz,
                    notes=notes.strip() or None,
                    screening=screening,
                    override_reason=override_reason,
                    override=override,
                )
            else:
                saved = repo.update_client(actor, client.id, **details)
                if screening != client.screening or override_reason != client.override_reason:
                    saved = repo.record_screening(
                        actor,
                        saved.id,
                        screening,
                        override_reason=override_reason,
                        override=override,
                    )
            st.session_state[widgets.PENDING_CLIENT_KEY] = saved.id
            for key in [k for k in st.session_state if str(k).startswith(f"{k_prefix}_")]:
                del st.session_state[key]
            widgets.flash(
                f"Client {'added' if client is None else 'saved'} (record {saved.id}): "
                + widgets.screening_status(saved)
                + "."
            )
            st.rerun()


def render() -> None:
    actor = session.require(Action.EDIT_CLIENTS)
    st.title("Clients")
    widgets.show_flash()
    query = st.text_input("Search by name, email or phone", key="clients_search")
    with session.friendly():
        clients = session.repo().search_clients(actor, query.strip())
        widgets.table(
            [
                {
                    "record": c.id,
                    "name": c.name,
                    "born": c.date_of_birth,
                    "screening": widgets.screening_status(c),
                }
                for c in clients
            ]
        )
        tab_edit, tab_add = widgets.kept_tabs(["Selected client", "Add client"], key="clients_tab")
        with tab_edit:
            chosen = widgets.client_picker(actor, clients=clients)
            if chosen is not None:
                if chosen.refer_to_vascular:
                    st.error(REFER_TEXT, icon=":material/local_hospital:")
                _editor(actor, chosen)
        with tab_add:
            _editor(actor, None)


if __name__ == "__main__":
    render()
