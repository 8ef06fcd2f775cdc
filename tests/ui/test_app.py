"""AppTest: every page for every role, the sign-in gate, access checks and the forms.

Runs ``app.py`` in-process with ``streamlit.testing.v1.AppTest`` against a seeded
clinic (``conftest.seeded_clinic``). Pages are switched with ``AppTest.switch_page`` on the
files registered by ``st.navigation``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from vt_ui_seed import PASSWORD, Seeded, open_test_repo, photo_jpeg

from vein_tracker.ui import shell, widgets

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
UI = ROOT / "vein_tracker" / "ui"
TIMEOUT = 120

ROLE_USERS = {"admin": "adam", "aesthetician": "anna", "marketing": "mia", "client": "cara"}


def page_path(file: str) -> str:
    return f"vein_tracker/ui/{file}"


def texts(at: AppTest) -> str:
    """All visible text of the last run (markdown, captions, alerts, titles, metrics)."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "text"):
        parts += [str(e.value) for e in getattr(at, kind)]
    for kind in ("error", "warning", "info", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(parts)


def signed_in(username: str) -> AppTest:
    """An AppTest after signing in through the sign-in form."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    at.text_input[0].input(username)
    at.text_input[1].input(PASSWORD)
    at.button[0].click()
    at.run()
    assert not at.exception, at.exception
    return at


def compare_frames(at: AppTest, index: int = 0) -> list[dict[str, str]]:
    """The frames sent to the ``index``-th before/after comparison component of the page."""
    import json

    views = [json.loads(c.proto.json) for c in at.get("bidi_component")]
    views = [v for v in views if "frames" in v]  # not the sign-in hand-over component
    assert len(views) > index, "no comparison component on the page"
    data = views[index]
    assert data["width"] > 0
    assert data["height"] > 0
    return list(data["frames"])


def go(at: AppTest, file: str) -> AppTest:
    at.switch_page(page_path(file))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# ----------------------------------------------------------------------------- gate


def test_anonymous_sees_only_the_sign_in_form(seeded_clinic: Seeded) -> None:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert [t.value for t in at.title] == ["vein_tracker"]
    assert [w.label for w in at.text_input] == ["User name", "Password"]
    for files in shell.PAGES.values():
        for file, *_ in files:
            with pytest.raises(ValueError, match="navigation page"):
                at.switch_page(page_path(file))
    assert "Cara" not in texts(at)


def test_wrong_password_is_refused_with_one_message(seeded_clinic: Seeded) -> None:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    at.text_input[0].input("anna")
    at.text_input[1].input("wrong-password-1")
    at.button[0].click()
    at.run()
    assert not at.exception
    assert len(at.error) == 1
    assert "Sign-in failed" in at.error[0].value
    assert [t.value for t in at.title] == ["vein_tracker"]


@pytest.mark.parametrize(
    "file", ["clients.py", "review.py", "portal.py", "users.py", "audit.py", "marketing.py"]
)
def test_page_scripts_run_directly_show_nothing_when_signed_out(
    seeded_clinic: Seeded, file: str
) -> None:
    at = AppTest.from_file(str(UI / file), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Please sign in."]
    assert not at.title
    assert not at.text_input


# ----------------------------------------------------------------------------- every page


@pytest.mark.parametrize("role", sorted(ROLE_USERS))
def test_every_page_of_every_role_renders(seeded_clinic: Seeded, role: str) -> None:
    at = signed_in(ROLE_USERS[role])
    expected = [*shell.PAGES[role], shell.ACCOUNT_PAGE]
    for file, title, *_ in expected:
        go(at, file)
        assert title in [t.value for t in at.title] or (
            file == "portal.py" and "My progress" in [t.value for t in at.title]
        ), (file, [t.value for t in at.title])
        assert "Traceback" not in texts(at)
    # Pages of other roles are not registered for this session.
    others = {f for r, pages in shell.PAGES.items() if r != role for f, *_ in pages}
    for file in sorted(others - {f for f, *_ in shell.PAGES[role]}):
        with pytest.raises(ValueError, match="navigation page"):
            at.switch_page(page_path(file))


@pytest.mark.parametrize(
    ("username", "file"),
    [
        ("cara", "review.py"),
        ("cara", "clients.py"),
        ("cara", "users.py"),
        ("mia", "visit.py"),
        ("anna", "users.py"),
        ("anna", "portal.py"),
        ("adam", "portal.py"),
    ],
)
def test_page_rechecks_the_role_when_navigation_is_bypassed(
    seeded_clinic: Seeded, username: str, file: str
) -> None:
    repo = open_test_repo(seeded_clinic.data_dir)
    try:
        actor = repo.authenticate(username, PASSWORD)
    finally:
        repo.close()
    at = AppTest.from_file(str(UI / file), default_timeout=TIMEOUT)
    at.session_state["vt_actor"] = actor
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["This page is not available to your account."]
    assert not at.title
    assert "Cara" not in texts(at)
    assert "Dora" not in texts(at)


def test_sign_out_and_idle_timeout(seeded_clinic: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = signed_in("anna")
    assert "Clients" in [t.value for t in at.title]
    at.sidebar.button[0].click()
    at.run()
    assert [t.value for t in at.title] == ["vein_tracker"]
    assert "You are signed out." in [i.value for i in at.info]

    monkeypatch.setenv("VEIN_TRACKER_IDLE_TIMEOUT_MIN", "1")
    at = signed_in("anna")
    at.session_state["vt_last_seen"] = time.monotonic() - 61
    at.run()
    assert [t.value for t in at.title] == ["vein_tracker"]
    assert any("1 minutes without activity" in i.value for i in at.info)


# ----------------------------------------------------------------------------- forms


def test_add_client_with_positive_screening_needs_override(seeded_clinic: Seeded) -> None:
    at = signed_in("anna")
    name = "<script>alert('x')</script> Eve"
    at.text_input(key="editnew_name").input(name)
    at.checkbox(key="editnew_varicose_veins").check()
    at.checkbox(key="editnew_blood_thinners").check()
    at.run()
    shown = texts(at)
    assert "refer the client to a vascular physician" in shown
    assert "Positive screening" in shown
    at.checkbox(key="editnew_override").check()
    at.run()
    at.text_input(key="editnew_reason").input("Cleared by GP letter, low-dose only")
    at.button(key="editnew_save").click()
    at.run()
    assert not at.exception
    assert any("Client added" in s.value for s in at.success)
    repo = open_test_repo(seeded_clinic.data_dir)
    try:
        anna = repo.authenticate("anna", PASSWORD)
        eve = repo.search_clients(anna, "Eve")
    finally:
        repo.close()
    assert len(eve) == 1
    assert eve[0].name == name
    assert eve[0].refer_to_vascular
    assert eve[0].override_reason == "Cleared by GP letter, low-dose only"
    assert eve[0].cleared_for_treatment


def test_record_and_revoke_consent(seeded_clinic: Seeded) -> None:
    at = signed_in("anna")
    go(at, "consent.py")
    at.selectbox(key="vt_client_select").set_value(seeded_clinic.client_b)
    at.run()
    at.radio(key="c_kind").set_value("marketing")
    at.multiselect(key="c_scopes").set_value(["website"])
    submit = next(b for b in at.button if b.label == "Record consent")
    submit.click()
    at.run()
    assert not at.exception
    assert any("Consent recorded (marketing)" in s.value for s in at.success)
    repo = open_test_repo(seeded_clinic.data_dir)
    try:
        anna = repo.authenticate("anna", PASSWORD)
        marketing = [
            c.id
            for c in repo.list_consents(anna, seeded_clinic.client_b)
            if c.kind == "marketing" and c.revoked_at is None
        ]
    finally:
        repo.close()
    assert len(marketing) == 1
    at.selectbox(key="c_revoke_id").set_value(marketing[0])
    revoke = next(b for b in at.button if b.label == "Revoke consent")
    revoke.click()
    at.run()
    assert any("Consent revoked" in s.value for s in at.success)
    repo = open_test_repo(seeded_clinic.data_dir)
    try:
        anna = repo.authenticate("anna", PASSWORD)
        status = {c.id: c.status() for c in repo.list_consents(anna, seeded_clinic.client_b)}
    finally:
        repo.close()
    assert status[marketing[0]] == "revoked"
    assert sorted(status.values()) == ["revoked", "valid"]


def _button(at: AppTest, label: str) -> object:
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r}: {[b.label for b in at.button]}"
    return found[0]


def test_start_visit_and_upload_shows_capture_report(seeded_clinic: Seeded) -> None:
    at = signed_in("anna")
    go(at, "visit.py")
    at.selectbox(key="vt_client_select").set_value(seeded_clinic.client_b)
    at.run()
    # The button names the client the visit is for.
    _button(at, "Start visit for Dora Other").click()  # type: ignore[attr-defined]
    at.run()
    assert not at.exception
    assert any(
        "Visit started for Dora Other" in s.value and "session 3" in s.value for s in at.success
    )
    # The picker follows the visit just started.
    picker = at.selectbox(key=f"v_current_{seeded_clinic.client_b}")
    assert picker.format_func(picker.value).startswith("Session 3")
    at.file_uploader[0].set_value(
        [
            ("followup-2.jpg", photo_jpeg(4, followup=True), "image/jpeg"),
            ("not-a-photo.jpg", b"%PDF-1.4 this is not a photo", "image/jpeg"),
        ]
    )
    at.run()
    labels = [s.label for s in at.selectbox]
    assert labels.index("Area for followup-2.jpg") + 1 == labels.index("Area for not-a-photo.jpg")
    # Checked first, stored after: nothing is stored by the check.
    _button(at, "Check photos").click()  # type: ignore[attr-defined]
    at.run()
    assert not at.exception
    shown = texts(at)
    assert widgets.md_escape("followup-2.jpg") in shown
    assert "Sharpness" in shown
    assert len(at.image) >= 1  # the upload's thumbnail
    assert [e.value for e in at.error] == [
        "Not a usable photo: This file is not a photo vein_tracker can read. "
        "Use JPEG, PNG, TIFF, WebP or HEIC."
    ]
    _button(at, "Store the photos kept").click()  # type: ignore[attr-defined]
    at.run()
    assert not at.exception
    assert any("counts for this visit" in s.value for s in at.success)
    # The uploader was rotated: a new, empty widget.
    assert at.file_uploader[0].key != "uploader_0"
    assert at.file_uploader[0].value in (None, [])
    # The unreadable file's refusal is in the audit log, with who and why.
    repo = open_test_repo(seeded_clinic.data_dir)
    try:
        adam = repo.authenticate("adam", PASSWORD)
        refused = repo.list_audit(adam, action="photo_upload", ok=False)
    finally:
        repo.close()
    assert any(
        e.username == "anna" and "not a photo" in str(e.detail.get("reason")) for e in refused
    )


def test_bad_upload_is_a_friendly_error(seeded_clinic: Seeded) -> None:
    at = signed_in("anna")
    go(at, "visit.py")
    at.selectbox(key="vt_client_select").set_value(seeded_clinic.client_a)
    at.run()
    at.file_uploader[0].set_value(("broken.png", b"\x89PNG\r\n\x1a\n broken", "image/png"))
    at.run()
    _button(at, "Check photos").click()  # type: ignore[attr-defined]
    at.run()
    assert not at.exception
    assert len(at.error) == 1
    assert at.error[0].value.startswith("Not a usable photo: ")
    assert "Traceback" not in texts(at)


def test_second_visit_same_day_is_asked_for(seeded_clinic: Seeded) -> None:
    """Issue 24 item 2: a second visit on a date that has one is refused unless confirmed."""
    at = signed_in("anna")
    go(at, "visit.py")
    at.selectbox(key="vt_client_select").set_value(seeded_clinic.client_a)
    at.run()
    _button(at, "Start visit for Cara Client").click()  # type: ignore[attr-defined]
    at.run()
    assert any("Visit started for Cara Client" in s.value for s in at.success)
    _button(at, "Start visit for Cara Client").click()  # type: ignore[attr-defined]
    at.run()
    assert not at.exception
    assert any("already has session 3" in e.value for e in at.error)
    at.checkbox(key="v_same_day").check()
    _button(at, "Start visit for Cara Client").click()  # type: ignore[attr-defined]
    at.run()
    assert any("session 4" in s.value for s in at.success)
    repo = open_test_repo(seeded_clinic.data_dir)
    try:
        adam = repo.authenticate("adam", PASSWORD)
        refused = repo.list_audit(adam, action="visit_create", ok=False)
    finally:
        repo.close()
    assert any("already has session 3" in str(e.detail.get("reason")) for e in refused)


def test_concentration_outside_the_range_is_refused(seeded_clinic: Seeded) -> None:
    """Issue 24 item 8: 0.5 % hypertonic saline is a typing error, refused with the range."""
    at = signed_in("anna")
    go(at, "visit.py")
    at.selectbox(key="vt_client_select").set_value(seeded_clinic.client_b)
    at.run()
    at.selectbox(key="v_sclerosant").set_value("hypertonic_saline")
    at.number_input(key="v_conc").set_value(0.5)
    at.checkbox(key="v_same_day").check()
    _button(at, "Start visit for Dora Other").click()  # type: ignore[attr-defined]
    at.run()
    assert not at.exception
    assert any("11.7–23.4 %" in e.value for e in at.error)
    assert not any("Visit started" in s.value for s in at.success)
    assert "polidocanol" in at.selectbox(key="v_sclerosant").options


def test_review_shows_saved_improvement_and_views(seeded_clinic: Seeded) -> None:
    at = signed_in("anna")
    go(at, "review.py")
    at.selectbox(key="vt_client_select").set_value(seeded_clinic.client_a)
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    # The seeded phantoms are 640 px wide (about 3 px/mm): the figure is low-confidence,
    # labelled so, and its reason comes first (issue 21).
    assert metrics["Improvement (low confidence)"] == f"{seeded_clinic.improvement_a:.0f} %"
    assert any(w.value.startswith("**Low confidence.**") and "px/mm" in w.value for w in at.warning)
    assert "This result is saved in the client's record." in texts(at)
    # The before/after comparison is the browser-side component with the two aligned frames.
    frames = compare_frames(at)
    assert [f["label"] for f in frames] == ["before", "after (aligned)"]
    at.radio(key=f"r_align_{seeded_clinic.area_a}").set_value("Blend")
    at.run()
    assert not at.exception
    assert len(at.image) >= 4
    at.radio(key=f"r_align_{seeded_clinic.area_a}").set_value("Flicker")
    at.run()
    assert not at.exception
    captions = [c for img in at.image for c in img.proto.imgs for c in [c.caption]]
    assert "Before" in captions or "After" in captions


@pytest.mark.slow
def test_review_of_unsaved_pair_computes_and_saves(seeded_clinic: Seeded) -> None:
    at = signed_in("anna")
    go(at, "review.py")
    at.selectbox(key="vt_client_select").set_value(seeded_clinic.client_b)
    at.run()
    assert not at.exception
    if at.error:  # the pair cannot be aligned: a friendly reason instead of a number
        assert "Traceback" not in texts(at)
        return
    assert any(m.label.startswith("Improvement") for m in at.metric)
    next(b for b in at.button if b.label == "Save this result to the record").click()
    at.run()
    assert any("Result saved" in s.value for s in at.success)
    assert "This result is saved in the client's record." in texts(at)


def test_progress_page_has_chart_and_next_window(seeded_clinic: Seeded) -> None:
    at = signed_in("anna")
    go(at, "progress.py")
    at.selectbox(key="vt_client_select").set_value(seeded_clinic.client_a)
    at.run()
    assert not at.exception
    assert len(at.get("vega_lite_chart")) == 1
    assert any("Next appointment" in i.value for i in at.info)
    # Across sessions: the baseline and the analysed follow-up, labelled by session.
    labels = [f["label"] for f in compare_frames(at)]
    assert len(labels) == 2
    assert labels[0].startswith("session 1 ")
    assert labels[0].endswith("(baseline)")
    assert labels[1].startswith("session 2 ")


def test_override_without_reason_is_refused_and_the_reason_field_stays(
    seeded_clinic: Seeded,
) -> None:
    """Issue 24 item 4: ticking the override and leaving the reason empty saves nothing."""
    at = signed_in("anna")
    at.text_input(key="editnew_name").input("Olga Override")
    at.checkbox(key="editnew_blood_thinners").check()
    at.run()
    # The screening names the answer in words, never the stored name.
    shown = texts(at)
    assert "takes blood thinners" in shown
    assert "blood_thinners" not in shown
    at.checkbox(key="editnew_override").check()
    at.run()
    at.button(key="editnew_save").click()
    at.run()
    assert not at.exception
    assert any("A reason for the override" in e.value for e in at.error)
    assert not any("Client added" in s.value for s in at.success)
    # The form keeps its state: the override is still ticked and its reason field shown.
    assert at.checkbox(key="editnew_override").value
    assert at.text_input(key="editnew_reason") is not None
    repo = open_test_repo(seeded_clinic.data_dir)
    try:
        anna = repo.authenticate("anna", PASSWORD)
        assert repo.search_clients(anna, "Olga") == []
    finally:
        repo.close()
    # With the reason, it is saved with the override.
    at.text_input(key="editnew_reason").input("   GP letter: stopped for 10 days  ")
    at.button(key="editnew_save").click()
    at.run()
    assert any("Client added" in s.value and "override recorded" in s.value for s in at.success)


# ----------------------------------------------------------------------------- client


def test_client_portal_shows_only_own_record(seeded_clinic: Seeded) -> None:
    at = signed_in("cara")
    assert [t.value for t in at.title] == ["My progress"]
    shown = texts(at)
    assert "improvement, not perfection" in shown
    assert "Dora" not in shown
    assert len(at.get("vega_lite_chart")) == 1
    assert len(compare_frames(at)) == 2
    # Another client's record named in the URL changes nothing.
    at.query_params["client"] = str(seeded_clinic.client_b)
    at.query_params["area"] = str(seeded_clinic.area_b)
    at.run()
    assert not at.exception
    assert texts(at) == shown


def test_client_can_withdraw_marketing_consent(seeded_clinic: Seeded) -> None:
    at = signed_in("cara")
    withdraw = [b for b in at.button if b.label == "Withdraw my marketing consent"]
    assert len(withdraw) == 1
    withdraw[0].click()
    at.run()
    assert not at.exception
    assert any("withdrawn" in s.value for s in at.success)
    assert not [b for b in at.button if b.label == "Withdraw my marketing consent"]


def test_client_without_measurements_sees_honest_empty_state(seeded_clinic: Seeded) -> None:
    at = signed_in("dora")
    assert not at.exception
    assert "Cara" not in texts(at)


# ----------------------------------------------------------------------------- admin


def test_admin_adds_user_and_filters_audit(seeded_clinic: Seeded) -> None:
    at = signed_in("adam")
    at.text_input(key="u_name").input("bella")
    at.selectbox(key="u_role").set_value("aesthetician")
    next(b for b in at.button if b.label == "Add user").click()
    at.run()
    assert not at.exception
    assert any("User bella added as aesthetician" in s.value for s in at.success)
    go(at, "audit.py")
    at.text_input(key="au_action").input("login")
    at.run()
    assert not at.exception
    assert "events" in texts(at)


def test_no_page_renders_html_from_user_text() -> None:
    for path in [*UI.glob("*.py"), APP]:
        assert "unsafe_allow_html" not in path.read_text(encoding="utf-8"), path


# ----------------------------------------------------------------------------- marketing


@pytest.mark.slow
def test_marketing_lists_only_consented_pairs_and_exports(seeded_clinic: Seeded) -> None:
    repo = open_test_repo(seeded_clinic.data_dir)
    try:  # the portal test may have withdrawn it: consent again, for the website only
        anna = repo.authenticate("anna", PASSWORD)
        if not repo.marketing_consent_valid(anna, seeded_clinic.client_a, "website"):
            repo.record_consent(anna, seeded_clinic.client_a, kind="marketing", scopes=("website",))
    finally:
        repo.close()
    at = signed_in("mia")
    assert [t.value for t in at.title] == ["Marketing export"]
    table = at.dataframe[0].value
    assert len(table) == 1  # only client A gave marketing consent
    assert "Cara" not in texts(at)
    next(b for b in at.button if b.label == "Build export (ZIP)").click()
    at.run()
    assert not at.exception
    assert any(s.value == "1 pair exported." for s in at.success)
    assert any(b.label == "Download export" for b in at.get("download_button"))


def test_pdf_report_button_on_portal_and_progress(seeded_clinic: Seeded) -> None:
    at = signed_in("cara")
    assert [b.label for b in at.get("download_button")] == ["Download progress report (PDF)"]


def test_reset_password_forces_a_change_before_anything_else(seeded_clinic: Seeded) -> None:
    repo = open_test_repo(seeded_clinic.data_dir)
    try:
        admin = repo.authenticate("adam", PASSWORD)
        user = next(u for u in repo.list_users(admin) if u.username == "mia")
        one_time = repo.reset_password(admin, user.id)
    finally:
        repo.close()
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    at.text_input[0].input("mia")
    at.text_input[1].input(one_time)
    at.button[0].click()
    at.run()
    assert [t.value for t in at.title] == ["Change password"]
    with pytest.raises(ValueError, match="navigation page"):
        at.switch_page(page_path("marketing.py"))
    at.text_input(key="pw_old").input(one_time)
    at.text_input(key="pw_new").input(PASSWORD + "-new")
    at.text_input(key="pw_again").input(PASSWORD + "-new")
    next(b for b in at.button if b.label == "Change password").click()
    at.run()
    assert not at.exception
    go(at, "marketing.py")
    assert [t.value for t in at.title] == ["Marketing export"]
    repo = open_test_repo(seeded_clinic.data_dir)
    try:  # put the seeded password back for the other tests
        mia = repo.authenticate("mia", PASSWORD + "-new")
        repo.change_password(mia, PASSWORD + "-new", PASSWORD)
    finally:
        repo.close()


def test_disabled_account_is_signed_out_at_its_next_click(seeded_clinic: Seeded) -> None:
    at = signed_in("dora")
    assert [t.value for t in at.title] == ["My progress"]
    repo = open_test_repo(seeded_clinic.data_dir)
    try:
        admin = repo.authenticate("adam", PASSWORD)
        user = next(u for u in repo.list_users(admin) if u.username == "dora")
        repo.update_user(admin, user.id, active=False)
        at.run()
        assert [t.value for t in at.title] == ["vein_tracker"]
        assert any("sign in again" in i.value for i in at.info)
    finally:
        repo.update_user(admin, user.id, active=True)
        repo.close()
