"""Fixtures of the storage tests: every records test runs on SQLite and on PostgreSQL.

``backend`` is parametrized for this whole folder (``[sqlite]`` and ``[postgres]``, the
latter marked ``postgres``); a test that needs one backend parametrizes it ``indirect``.
The clinic is the ``clinic`` fixture of tests/conftest.py (the one clinic factory,
tests/clinic_util.py). Password hashing uses cheap argon2id parameters here only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clinic_util import FAST, PASSWORD, open_test_repo, photo_bytes
from tests.conftest import BACKENDS
from tests.s3_server import MotoServer, moto_server, use_s3  # H7: the photo-store fixtures
from vein_tracker.config import Settings, get_settings
from vein_tracker.storage import Repository

# The storage tests import these from here.
__all__ = ["FAST", "PASSWORD", "photo_bytes"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``"sqlite"`` or ``"postgres"``; for the latter ``VEIN_TRACKER_DB_URL`` names a fresh,
    empty database (the ``clinic`` fixture points it at the clinic's instead)."""
    if request.param == "postgres":
        monkeypatch.setenv("VEIN_TRACKER_DB_URL", request.getfixturevalue("pg_url"))
    return str(request.param)


@pytest.fixture
def settings(backend: str, data_dir: Path) -> Settings:
    """The settings of an empty clinic in ``data_dir`` on ``backend``."""
    s = get_settings()
    assert s.data_dir == data_dir
    return s


@pytest.fixture
def repo(settings: Settings) -> Iterator[Repository]:
    """A repository on the empty clinic of ``settings``."""
    r = open_test_repo(settings)
    try:
        yield r
    finally:
        r.close()


# ---- H7: the photo store as a parameter (the local folder, or a bucket on moto's S3 server) ----


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's S3-compatible server over HTTP on 127.0.0.1 (tests/s3_server.py), per session."""
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def photo_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``"local"`` or ``"s3"``; for the latter ``VEIN_TRACKER_STORE_URL`` names a fresh bucket."""
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        use_s3(monkeypatch, server, server.new_bucket(), "clinic")
    return str(request.param)
