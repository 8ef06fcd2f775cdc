"""Shared fixtures: isolated data directories, a throw-away PostgreSQL, Debian's Chromium.

The Chromium fixtures (``browser``, ``page_factory``) serve tests/ui/test_browser.py and
tests/security/test_browser_access.py; their helpers are in tests/browser_util.py.

The clinic of the records tests comes from one factory (tests/clinic_util.py): the
``clinic`` fixture here, on ``backend`` (SQLite unless parametrized with ``BACKENDS``).
A module that needs other records asks ``clinic_factory`` for a copy of its own builder's
clinic (``ClinicFactory.fresh_built``). The app tests' clinic, seeded with real analyses
and served by a running app, is another thing with another name (tests/ui/conftest.py
``seeded_clinic``). Other area-specific fixtures live in the conftest.py of each test
sub-folder. ``hand_placed_again`` is the photo-like pair the registration and the
measurement tests of a moved hand share.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.clinic_util import Clinic, ClinicFactory

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
    from tests.clinic_util import create_pg_db, drop_pg_db

    url = create_pg_db(pg_server_url)
    try:
        yield url
    finally:
        drop_pg_db(pg_server_url, url)


# ---------------------------------------------------------------------- the clinic

#: The database backends a records test can run on; the PostgreSQL variant is marked.
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """``"sqlite"``, unless a folder, module or test parametrizes it with :data:`BACKENDS`
    (directly or ``indirect``)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def sqlite_clinics(tmp_path_factory: pytest.TempPathFactory) -> ClinicFactory:
    """The clinic factory on SQLite (templates built at first use)."""
    from tests.clinic_util import ClinicFactory

    return ClinicFactory(tmp_path_factory.mktemp("clinics-sqlite"))


@pytest.fixture(scope="session")
def postgres_clinics(
    tmp_path_factory: pytest.TempPathFactory, pg_server_url: str
) -> Iterator[ClinicFactory]:
    """The clinic factory on the test PostgreSQL server (its databases dropped at the end)."""
    from tests.clinic_util import ClinicFactory

    factory = ClinicFactory(tmp_path_factory.mktemp("clinics-postgres"), pg_server_url)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def clinic_factory(backend: str, request: pytest.FixtureRequest) -> ClinicFactory:
    """The one clinic factory (:class:`tests.clinic_util.ClinicFactory`) on ``backend``."""
    return request.getfixturevalue(f"{backend}_clinics")  # type: ignore[no-any-return]


@pytest.fixture
def clinic_extended() -> bool:
    """Whether ``clinic`` is the extended clinic; the security suites say yes."""
    return False


@pytest.fixture
def clinic(
    clinic_factory: ClinicFactory,
    clinic_extended: bool,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Clinic]:
    """A fresh copy of the clinic of :func:`tests.clinic_util.build_clinic` in ``data_dir``,
    on ``backend``, selected through the environment too (``VEIN_TRACKER_DATA``, and
    ``VEIN_TRACKER_DB_URL`` on PostgreSQL) for code that reads the settings itself."""
    c = clinic_factory.fresh(data_dir, extended=clinic_extended)
    if clinic_factory.server_url is not None:
        monkeypatch.setenv("VEIN_TRACKER_DB_URL", c.settings.db_url)
    try:
        yield c
    finally:
        c.repo.close()


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


@pytest.fixture(scope="session")
def hand_placed_again() -> Any:
    """A photo-like leg held by a hand that is placed 20 mm away at the follow-up, half
    its veins cleared (rendered once: tests/test_registration.py, tests/test_compare.py)."""
    from vein_tracker.synthetic.photo import make_photo_pair

    return make_photo_pair(
        6,
        tone="light",
        shape=(900, 1200),
        px_per_mm=6.0,
        layout="single",
        hand=True,
        treatment={"cleared_frac": 0.5, "move_hand_mm": 20.0},
    )
