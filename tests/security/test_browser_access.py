"""The real browser (Playwright + Debian's Chromium) against ``streamlit run app.py``.

A few access checks that only a browser can make: page URLs typed by hand, a
``?client=`` parameter naming another client, and a client whose name is a script tag
(no dialog may open, the name shows as text). The server fixture is a minimal copy of
the one in tests/ui/test_browser.py, with the same Chromium flags.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from sec_util import ROOT

from tests.conftest import free_port, wait_for_http

pytestmark = pytest.mark.browser

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
TIMEOUT_MS = 90_000
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, int]]:
    from vt_ui_seed import PASSWORD, open_test_repo, seed_clinic

    data = tmp_path_factory.mktemp("sec-browser") / "data"
    data.mkdir()
    seeded = seed_clinic(data)
    repo = open_test_repo(data)
    try:
        anna = repo.authenticate("anna", PASSWORD)
        evil = repo.create_client(anna, name=XSS).id
    finally:
        repo.close()
    port = free_port()
    env = {**os.environ, "VEIN_TRACKER_DATA": str(data)}
    env.pop("VEIN_TRACKER_DB_URL", None)
    env.pop("VEIN_TRACKER_ENCRYPTION_KEY", None)
    log = (tmp_path_factory.mktemp("sec-browser-log") / "streamlit.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.headless=true",
            "--server.address=127.0.0.1",
            f"--server.port={port}",
            "--browser.gatherUsageStats=false",
            "--server.fileWatcherType=none",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/_stcore/health", timeout_s=90)
        yield base, seeded, evil
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    p = ctx.new_page()
    p.set_default_timeout(TIMEOUT_MS)
    dialogs: list[str] = []
    p.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    p.vt_dialogs = dialogs
    yield p
    ctx.close()


def _settle(page: Any) -> None:
    page.wait_for_selector(IDLE, state="attached", timeout=TIMEOUT_MS)
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, state="attached", timeout=TIMEOUT_MS)


def _sign_in(page: Any, base: str, username: str, path: str = "") -> None:
    """Open ``path`` (a fresh browser session) and sign in there."""
    from playwright.sync_api import expect
    from vt_ui_seed import PASSWORD

    page.goto(f"{base}/{path}")
    _settle(page)
    # A page the signed-out session does not have opens Streamlit's "page not found"
    # dialog over the sign-in form: close it.
    if page.get_by_role("dialog").count():
        page.keyboard.press("Escape")
        _settle(page)
    page.get_by_role("textbox", name="User name").fill(username)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {username}")).to_be_visible(timeout=TIMEOUT_MS)
    _settle(page)


def _text(page: Any) -> str:
    return str(page.locator("[data-testid='stApp']").inner_text())


def test_anonymous_urls_show_only_the_sign_in_form(server: Any, page: Any) -> None:
    base, seeded, _ = server
    for path in ("", "review", "clients", "users", "my-progress", f"?client={seeded.client_a}"):
        page.goto(f"{base}/{path}")
        _settle(page)
        text = _text(page)
        assert "Cara" not in text
        assert "Dora" not in text
        assert page.get_by_role("textbox", name="Password").count() == 1


def test_client_typed_urls_and_params_show_only_own_data(server: Any, page: Any) -> None:
    base, seeded, _ = server
    _sign_in(page, base, "cara")
    for path in (
        "review",
        "clients",
        "users",
        "marketing",
        f"my-progress?client={seeded.client_b}",
    ):
        page.goto(f"{base}/{path}")
        _settle(page)
        text = _text(page)
        assert "Dora" not in text
        assert "Other" not in text
        # Signed in again on a fresh load? Either way: only the portal or the sign-in form.
        assert "Clients" not in [h.inner_text() for h in page.locator("h1").all()]


def test_script_name_is_text_in_the_browser(server: Any, page: Any) -> None:
    base, _, evil = server
    _sign_in(page, base, "anna", f"clients?client={evil}")
    assert page.vt_dialogs == []
    assert page.locator("script:has-text('alert(1)')").count() == 0
    # Shown literally: in the client picker and as the editable name (input values).
    values = page.evaluate(
        "Array.from(document.querySelectorAll('input, textarea')).map(e => e.value)"
    )
    assert XSS in values or any(XSS in str(v) for v in values) or XSS in _text(page), values
