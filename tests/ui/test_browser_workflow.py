"""Issue 24's journeys in Debian's Chromium against ``streamlit run app.py`` (items 1-4, 7).

One seeded clinic per module (its own server, so these journeys do not change what the
other browser tests see). Each test replays a defect of the issue and checks it is gone:

- item 7: a reload and a deep link keep the user signed in (HttpOnly, SameSite=Strict
  session cookie; no token in any URL); a signed-out deep link opens its page after the
  sign-in; sign-out ends the session for good;
- item 4: an override is refused without its reason, and the reason field stays;
- items 1 and 2: the Visit picker follows a visit just started (named for its client), a
  second visit on the same date must be confirmed, and a second photo of an area in one
  visit keeps Progress's figure;
- item 3: a photo of another leg is flagged, kept apart, never measured or exported.
"""

from __future__ import annotations

import io
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from vt_ui_seed import PASSWORD, Seeded, photo_jpeg, seed_temp_clinic

from tests.browser_util import TIMEOUT_MS, body_text, settle, sign_in_page_text, streamlit_app
from tests.browser_util import sign_in as _sign_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Seeded]]:
    seeded = seed_temp_clinic(tmp_path_factory, "workflow-clinic")
    with streamlit_app(
        seeded.data_dir,
        tmp_path_factory.mktemp("workflow-log") / "streamlit.log",
        env={"VEIN_TRACKER_IDLE_TIMEOUT_MIN": "30"},
    ) as base:
        yield base, seeded


def sign_in(page: Any, base: str, username: str, path: str = "") -> None:
    _sign_in(page, base, username, PASSWORD, path)


def session_cookie(page: Any, *, wait_s: float = 30.0) -> dict[str, Any]:
    """The ``vt_session`` cookie once the browser has it (the hand-over is asynchronous)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for c in page.context.cookies():
            if c["name"] == "vt_session":
                return dict(c)
        page.wait_for_timeout(200)
    raise AssertionError("the session cookie never arrived")


def choose(page: Any, label: str, text: str) -> None:
    """Pick the first option of a select box whose label contains ``text`` (typed, Enter)."""
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.fill(text)
    page.keyboard.press("Enter")
    settle(page)


# ----------------------------------------------------------------------------- item 7


def test_reload_and_deep_links_keep_the_user_signed_in(
    server: tuple[str, Seeded], browser: Any
) -> None:
    from playwright.sync_api import expect

    base, seeded = server
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = ctx.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        urls: list[str] = []
        page.on("request", lambda r: urls.append(str(r.url)))
        # A signed-out deep link: the sign-in form at that URL (no "page not found"), then
        # the page itself once signed in; the URL stays the page's.
        page.goto(f"{base}/progress?client={seeded.client_a}")
        settle(page)
        assert page.get_by_role("dialog").count() == 0
        assert "Password" in sign_in_page_text(page)
        sign_in(page, base, "anna", path=f"progress?client={seeded.client_a}")
        expect(page.get_by_role("heading", name="Progress")).to_be_visible()
        assert page.url.startswith(f"{base}/progress")
        cookie = session_cookie(page)
        # HttpOnly (page scripts cannot read it), SameSite=Strict, the whole app.
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/"
        assert cookie["expires"] == -1  # gone when the browser closes
        assert "vt_session" not in str(page.evaluate("() => document.cookie"))
        # A reload keeps the user signed in, on the same page.
        page.reload()
        settle(page)
        expect(page.get_by_text("Signed in as anna")).to_be_visible()
        expect(page.get_by_role("heading", name="Progress")).to_be_visible()
        # A deep link in a new tab of the same browser opens its page directly.
        tab = ctx.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        tab.goto(f"{base}/review?client={seeded.client_a}")
        settle(tab)
        expect(tab.get_by_role("heading", name="Review")).to_be_visible()
        expect(tab.get_by_text("Signed in as anna")).to_be_visible()
        # The token never appears in a URL (requests, page URLs).
        token = cookie["value"]
        assert all(token not in u for u in urls)
        assert token not in tab.url
        # Another browser with the link only: the sign-in form, nothing of the record.
        other = browser.new_context()
        try:
            stranger = other.new_page()
            stranger.goto(tab.url)
            settle(stranger)
            text = sign_in_page_text(stranger)
            assert "Password" in text
            assert "Cara" not in text
        finally:
            other.close()
        # Sign-out ends the session: the cookie is cleared and, copied before, signs
        # nobody in any more.
        tab.get_by_role("button", name="Sign out").click()
        settle(tab)
        expect(tab.get_by_role("button", name="Sign in")).to_be_visible()
        thief = browser.new_context()
        try:
            thief.add_cookies(
                [{"name": "vt_session", "value": token, "url": base, "sameSite": "Strict"}]
            )
            page2 = thief.new_page()
            page2.goto(f"{base}/clients")
            settle(page2)
            text = sign_in_page_text(page2)
            assert "Password" in text
            assert "Signed in as" not in text
            assert "session has ended" in text
        finally:
            thief.close()
        page.reload()
        settle(page)
        assert "Password" in sign_in_page_text(page)
    finally:
        ctx.close()


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - localhost only
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_session_routes_refuse_forms_other_sites_and_wrong_codes(
    server: tuple[str, Seeded],
) -> None:
    base, _ = server
    url = f"{base}/vt-auth/session"
    code = json.dumps({"code": "A" * 43}).encode()
    # A cross-site form cannot send JSON; a page of another site is refused by its Origin.
    assert _post(url, b"code=abc", {"Content-Type": "application/x-www-form-urlencoded"}) == 403
    assert (
        _post(url, code, {"Content-Type": "application/json", "Origin": "https://evil.example"})
        == 403
    )
    # A code that was never issued.
    assert _post(url, code, {"Content-Type": "application/json"}) == 403
    assert _post(url, b"[]", {"Content-Type": "application/json"}) == 400


# ----------------------------------------------------------------------------- item 4


def test_override_needs_its_reason_and_the_field_stays(
    server: tuple[str, Seeded], page_factory: Any
) -> None:
    from playwright.sync_api import expect

    base, _ = server
    page = page_factory()
    sign_in(page, base, "anna")
    page.get_by_role("tab", name="Add client").click()
    settle(page)
    page.get_by_role("textbox", name="Full name").last.fill("Olga Override")
    page.get_by_text("takes blood thinners").last.click()
    settle(page)
    page.get_by_text("Override: treatment may go ahead").last.click()
    settle(page)
    page.get_by_role("button", name="Add client").click()
    settle(page)
    expect(page.get_by_text("A reason for the override")).to_be_visible()
    assert "Client added" not in body_text(page)
    reason = page.get_by_role("textbox", name="Reason for the override (required)").last
    expect(reason).to_be_visible()
    reason.fill("GP letter: stopped for 10 days")
    page.get_by_role("button", name="Add client").click()
    # The message, not the clients table (whose cell says the same once it renders).
    expect(page.get_by_text("Client added").filter(has_text="override recorded")).to_be_visible()


# ----------------------------------------------------------------------------- items 1, 2, 3


def _open_visit_page(page: Any, base: str, client_id: int) -> None:
    page.goto(f"{base}/visit?client={client_id}")
    settle(page)


def _store(page: Any, path: Path, *, keep: str | None = None) -> None:
    from playwright.sync_api import expect

    page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(path))
    expect(page.get_by_role("button", name="Check photos")).to_be_visible()
    settle(page)
    page.get_by_role("button", name="Check photos").click()
    expect(page.get_by_text("Capture check")).to_be_visible()
    settle(page)
    if keep is not None:
        page.get_by_text(keep).click()
        settle(page)
    page.get_by_role("button", name="Store the photos kept").click()
    settle(page)


def test_new_visit_is_followed_and_a_second_photo_keeps_progress(
    server: tuple[str, Seeded], page_factory: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    base, seeded = server
    page = page_factory()
    sign_in(page, base, "anna")
    _open_visit_page(page, base, seeded.client_a)
    # Item 1: a second photo of the area in session 2 (which has the measured follow-up).
    choose(page, "Visit of Cara Client", "Session 2")
    extra = tmp_path / "second.jpg"
    # The same leg saved again at another JPEG quality: other bytes (the store is
    # content-addressed, so the same bytes would be the same photo).
    with Image.open(io.BytesIO(photo_jpeg(3, followup=True))) as img:
        img.save(extra, format="JPEG", quality=80)
    _store(page, extra)
    expect(page.get_by_text("Stored as an alternate")).to_be_visible()
    page.goto(f"{base}/progress?client={seeded.client_a}")
    settle(page)
    expect(page.locator("[data-testid='stVegaLiteChart']").first).to_be_visible()
    text = body_text(page)
    assert "No follow-up has been measured" not in text
    # Item 2: the picker follows a visit just started, named for its client.
    _open_visit_page(page, base, seeded.client_a)
    page.get_by_role("button", name="Start visit for Cara Client").click()
    expect(page.get_by_text("Visit started for Cara Client")).to_be_visible()
    settle(page)
    picker = page.get_by_role("combobox", name="Visit of Cara Client")
    assert "Session 3" in picker.aria_snapshot()
    # A second visit on the same date is refused until confirmed (the form is folded
    # once the day has a visit).
    page.get_by_text("Start a visit").click()
    settle(page)
    page.get_by_role("button", name="Start visit for Cara Client").click()
    expect(page.get_by_text("already has session 3")).to_be_visible()


def test_a_photo_of_another_leg_is_flagged_and_never_exported(
    server: tuple[str, Seeded], page_factory: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    base, seeded = server
    page = page_factory()
    sign_in(page, base, "anna")
    _open_visit_page(page, base, seeded.client_a)
    if "Session 3" not in page.get_by_role("combobox", name="Visit of Cara Client").aria_snapshot():
        page.get_by_role("button", name="Start visit for Cara Client").click()
        expect(page.get_by_text("Visit started for Cara Client")).to_be_visible()
        settle(page)
    wrong = tmp_path / "dora-leg.jpg"
    wrong.write_bytes(photo_jpeg(4, followup=True))  # the other client's leg
    page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(wrong))
    expect(page.get_by_role("button", name="Check photos")).to_be_visible()
    settle(page)
    page.get_by_role("button", name="Check photos").click()
    expect(page.get_by_text("does not match the area's baseline")).to_be_visible()
    settle(page)
    page.get_by_text("Store it apart, marked unmatched").click()
    settle(page)
    page.get_by_role("button", name="Store the photos kept").click()
    expect(page.get_by_text("Stored apart, marked unmatched")).to_be_visible()
    # Review opens on the usable measured photo, and says why the unmatched one has no figure.
    page.goto(f"{base}/review?client={seeded.client_a}")
    settle(page)
    headline = re.compile(r"^Improvement( \(low confidence\))?$")
    expect(page.get_by_text(headline).first).to_be_visible()
    follow = page.get_by_role("combobox", name="Follow-up photo")
    assert "session 2" in follow.aria_snapshot()
    choose(page, "Follow-up photo", "does not match")
    expect(page.get_by_text("This photo does not match the area's baseline")).to_be_visible()
    assert page.get_by_role("progressbar").count() == 0  # no bar left at "aligning…"
    # Progress flags the session.
    page.goto(f"{base}/progress?client={seeded.client_a}")
    settle(page)
    expect(page.get_by_text("Session 3: the photo that counts does not match")).to_be_visible()
    # Marketing cannot select it: only the measured session-2 pair of Cara is listed.
    mkt = page_factory()
    sign_in(mkt, base, "mia")
    expect(mkt.get_by_role("heading", name="Marketing export")).to_be_visible()
    # Every listed pair is pre-selected: the chips of "Pairs to export" name them.
    pairs = mkt.get_by_role("group", name="Selected values").first.inner_text()
    assert pairs.count("left calf, posterior") == 1
