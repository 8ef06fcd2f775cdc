"""Helpers of the browser tests (tests/ui/test_browser.py, tests/security/test_browser_access.py).

``streamlit run app.py`` on a free localhost port over a data folder, and what a test
does with a Playwright page: wait for the app to be idle, sign in, read the page text.
The ``browser`` and ``page_factory`` fixtures (Debian's Chromium) are in tests/conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
TIMEOUT_MS = 90_000
#: How long a browser assertion (``expect``) waits for the page to get there, ms.
EXPECT_TIMEOUT_MS = 30_000
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def wait_for_http(url: str, *, timeout_s: float = 60.0) -> None:
    """Poll ``url`` until it answers 200, or raise ``TimeoutError``."""
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - localhost only
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


@contextmanager
def streamlit_app(
    data_dir: Path,
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
    plain: bool = False,
    cwd: Path = ROOT,
    script: Path = APP,
) -> Iterator[str]:
    """Serve ``app.py`` (or another Streamlit ``script``, e.g. a component's test page) over
    ``data_dir`` (SQLite, no key) until exit; yields the base URL.

    ``env`` adds environment variables, ``args`` Streamlit options; the server's output
    goes to ``log_path``. ``plain`` starts it the usual way, ``streamlit run app.py`` with
    only the address and port (so every other setting comes from ``.streamlit/config.toml``),
    from the folder ``cwd``.
    """
    port = free_port()
    full_env = {**os.environ, "VEIN_TRACKER_DATA": str(data_dir), **(env or {})}
    full_env.pop("VEIN_TRACKER_DB_URL", None)
    full_env.pop("VEIN_TRACKER_ENCRYPTION_KEY", None)
    # A test's own settings would hide what the configuration file does or misses.
    for name in [k for k in full_env if k.startswith("STREAMLIT_")]:
        full_env.pop(name)
    options = (
        []
        if plain
        else [
            "--server.headless=true",
            "--browser.gatherUsageStats=false",
            "--server.fileWatcherType=none",
        ]
    )
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(script),
                "--server.address=127.0.0.1",
                f"--server.port={port}",
                *options,
                *args,
            ],
            cwd=cwd,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}/_stcore/health", timeout_s=90)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)


def settle(page: Any) -> None:
    """Wait until the script run is over (the app is idle)."""
    page.wait_for_selector(IDLE, state="attached", timeout=TIMEOUT_MS)
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, state="attached", timeout=TIMEOUT_MS)


def sign_in(page: Any, base: str, username: str, password: str, path: str = "") -> None:
    """Open ``path`` of the app (a fresh browser session) and sign in there.

    Signed out, a page other than the start page opens Streamlit's "page not found"
    dialog over the sign-in form: when ``path`` is given, it is closed first.
    """
    from playwright.sync_api import expect

    page.goto(f"{base}/{path}" if path else base)
    settle(page)
    if path and page.get_by_role("dialog").count():
        page.keyboard.press("Escape")
        settle(page)
    page.get_by_role("textbox", name="User name").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {username}")).to_be_visible(timeout=TIMEOUT_MS)
    settle(page)


def body_text(page: Any) -> str:
    """The visible text of the app."""
    return str(page.locator("[data-testid='stApp']").inner_text())


def sign_in_page_text(page: Any) -> str:
    """The page's text once its one sign-in form is drawn.

    The script runs after the page loads: read too early, the page holds only its header.
    Waiting for exactly one Password box also asserts that the form is not drawn twice.
    """
    from playwright.sync_api import expect

    expect(page.get_by_role("textbox", name="Password")).to_have_count(1)
    return body_text(page)
