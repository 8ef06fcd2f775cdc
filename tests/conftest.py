"""Shared fixtures: isolated data directories, a throw-away PostgreSQL, Debian's Chromium.

The Chromium fixtures (``browser``, ``page_factory``) serve tests/ui/test_browser.py and
tests/security/test_browser_access.py; their helpers are in tests/browser_util.py.

Area-specific fixtures live in the conftest.py of each test sub-folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = os.environ.get("VEIN_TRACKER_CHROMIUM", "/usr/bin/chromium")
PG_BIN_ROOT = Path("/usr/lib/postgresql")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def use_data_dir(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    """Select ``data_dir`` through ``VEIN_TRACKER_DATA``: SQLite there, no encryption key."""
    monkeypatch.setenv("VEIN_TRACKER_DATA", str(data_dir))
    monkeypatch.delenv("VEIN_TRACKER_DB_URL", raising=False)
    monkeypatch.delenv("VEIN_TRACKER_ENCRYPTION_KEY", raising=False)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data directory, selected through ``VEIN_TRACKER_DATA``; SQLite by default."""
    d = tmp_path / "data"
    d.mkdir()
    use_data_dir(monkeypatch, d)
    return d


def _pg_bin() -> Path | None:
    if not PG_BIN_ROOT.is_dir():
        return None
    versions = sorted(
        (p for p in PG_BIN_ROOT.iterdir() if (p / "bin" / "initdb").exists()), key=lambda p: p.name
    )
    return versions[-1] / "bin" if versions else None


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server: ``VEIN_TRACKER_TEST_PG_URL`` or a throw-away cluster.

    Skips (outside CI) when neither is available; fails in CI, where ``.ci/run``
    installs and starts PostgreSQL.
    """
    url = os.environ.get("VEIN_TRACKER_TEST_PG_URL")
    if url:
        yield url
        return
    bindir = _pg_bin()
    if bindir is None:
        if IN_CI:
            pytest.fail("PostgreSQL is required in CI: .ci/run must install it")
        pytest.skip("PostgreSQL not installed (apt-get install postgresql) - PG variants skipped")
    import tempfile

    # pytest's own tmp dir is root-only; the postgres user must be able to reach the cluster.
    base = Path(tempfile.mkdtemp(prefix="vt-test-pg-"))
    base.chmod(0o755)
    user = "vt"
    run_as: list[str] = []
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, user="postgres")
    port = free_port()
    data = base / "data"
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", user],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *run_as,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(base / "log"),
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://{user}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    import uuid

    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base, _, _ = pg_server_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of Debian's Chromium; browser tests skip without it, except in CI."""
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"Chromium is required in CI at {CHROMIUM}: .ci/run must install it")
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium) - skipped")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """Debian's Chromium through Playwright, shared by the tests of one module."""
    from playwright.sync_api import expect, sync_playwright

    from tests.browser_util import CHROMIUM_ARGS, EXPECT_TIMEOUT_MS

    # Assertions wait as a person would on a loaded machine: Playwright's own 5 s default
    # is shorter than a Streamlit rerun takes when the CI machine is busy.
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page_factory(browser: Any) -> Iterator[Callable[..., Any]]:
    """New pages in fresh contexts (separate cookies = separate sessions)."""
    from tests.browser_util import TIMEOUT_MS

    contexts: list[Any] = []

    def make(width: int = 1280, height: int = 900) -> Any:
        ctx = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        return page

    yield make
    for ctx in contexts:
        ctx.close()
