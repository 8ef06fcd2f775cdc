"""Fixtures of the storage tests: a repository on SQLite and on PostgreSQL, a small clinic.

Every repository-level test runs twice (``[sqlite]`` and ``[postgres]``, the latter
marked ``postgres``). Password hashing uses cheap argon2id parameters here only.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from tests.clinic_util import FAST, PASSWORD, build_clinic, make_settings, photo_bytes
from tests.s3_server import MotoServer, moto_server, use_s3  # H7: the photo-store fixtures
from vein_tracker.config import Settings, get_settings
from vein_tracker.storage import Repository, open_repository
from vein_tracker.storage.models import Base

# Shared with the security suite (tests/clinic_util.py); the storage tests import these
# from here.
__all__ = ["FAST", "PASSWORD", "build_clinic", "photo_bytes", "reopen"]

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``"sqlite"`` or ``"postgres"``; sets ``VEIN_TRACKER_DB_URL`` for the latter."""
    if request.param == "postgres":
        monkeypatch.setenv("VEIN_TRACKER_DB_URL", request.getfixturevalue("pg_url"))
    return str(request.param)


@pytest.fixture
def settings(backend: str, data_dir: Path) -> Settings:
    s = get_settings()
    assert s.data_dir == data_dir
    return s


@pytest.fixture
def repo(settings: Settings) -> Iterator[Repository]:
    r = open_repository(settings, passwords=FAST)
    try:
        yield r
    finally:
        r.close()


def reopen(settings: Settings, **changes: object) -> Repository:
    """A second repository on the same data (e.g. with another encryption key)."""
    return open_repository(dataclasses.replace(settings, **changes), passwords=FAST)


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Clinics built once per backend: ``{backend: (data folder, db url, namespace, rows)}``.

    The PostgreSQL one lives in one database that every PostgreSQL test reuses: it is
    reset to the saved rows before each test (creating a database per test costs
    seconds here). It is dropped at the end of the session.
    """
    state: dict[str, Any] = {}
    yield state
    if "postgres" in state:
        _drop_pg_db(state["server"], state["postgres"][1])


def _build_template(
    backend: str, state: dict[str, Any], factory: pytest.TempPathFactory, server: str | None
) -> tuple[Path, str, SimpleNamespace, dict[str, list[dict[str, Any]]]]:
    if backend not in state:
        d = factory.mktemp(f"template-{backend}")
        url = _create_pg_db(server) if server else f"sqlite:///{d / 'vein_tracker.db'}"
        settings = make_settings(d, db_url=url)
        r = open_repository(settings, passwords=FAST)
        try:
            ns = build_clinic(r)
            rows = _snapshot_rows(r.engine) if server else {}
        finally:
            r.close()
        state[backend] = (d, url, ns, rows)
        state["server"] = server
    return state[backend]  # type: ignore[no-any-return]


def _snapshot_rows(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        return {
            t.name: [dict(r._mapping) for r in conn.execute(t.select())]
            for t in Base.metadata.sorted_tables
        }


def _reset_pg(url: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Put the shared PostgreSQL database back to the saved clinic rows."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            # Replica mode skips triggers (the audit log's append-only guard and FK checks)
            # for this reset only; the repository itself never does this.
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            # DELETE, not TRUNCATE: TRUNCATE swaps files and costs an fsync per table.
            for t in reversed(Base.metadata.sorted_tables):
                conn.execute(t.delete())
            for t in Base.metadata.sorted_tables:
                if rows.get(t.name):
                    conn.execute(t.insert(), rows[t.name])
                if "id" in t.c:
                    conn.execute(
                        sa.text(
                            f"SELECT setval(pg_get_serial_sequence('{t.name}', 'id'), "
                            f"COALESCE((SELECT MAX(id) FROM {t.name}), 0) + 1, false)"
                        )
                    )
    finally:
        engine.dispose()


@pytest.fixture
def clinic(
    backend: str,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _templates: dict[str, Any],
) -> Iterator[SimpleNamespace]:
    """A fresh copy of the small clinic of :func:`tests.clinic_util.build_clinic` in ``data_dir``.

    ``clinic.repo`` is its repository and ``clinic.settings`` its settings.
    """
    server = request.getfixturevalue("pg_server_url") if backend == "postgres" else None
    src, url, ns, rows = _build_template(backend, _templates, tmp_path_factory, server)
    if server is not None:
        _reset_pg(url, rows)
        monkeypatch.setenv("VEIN_TRACKER_DB_URL", url)
    shutil.copytree(src, data_dir, dirs_exist_ok=True)
    settings = get_settings()
    r = open_repository(settings, passwords=FAST)
    try:
        yield SimpleNamespace(**vars(ns), repo=r, settings=settings)
    finally:
        r.close()


def _create_pg_db(server_url: str, *, template: str | None = None) -> str:
    import uuid

    import sqlalchemy as sa

    name = f"m_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        extra = f' TEMPLATE "{template.rpartition("/")[2]}"' if template else ""
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{extra}'))
    admin.dispose()
    return f"{server_url.rpartition('/')[0]}/{name}"


def _drop_pg_db(server_url: str, url: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def shared_repo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Repository]:
    """A repository shared by the tests of one module (for the large access matrix)."""
    d = tmp_path_factory.mktemp("shared")
    server = url = None
    if request.param == "postgres":
        server = request.getfixturevalue("pg_server_url")
        url = _create_pg_db(server)
    else:
        url = f"sqlite:///{d / 'vein_tracker.db'}"
    settings = make_settings(d, db_url=url)
    r = open_repository(settings, passwords=FAST)
    try:
        yield r
    finally:
        r.close()
        if server is not None:
            _drop_pg_db(server, url)


@pytest.fixture(scope="module")
def shared_clinic(shared_repo: Repository) -> SimpleNamespace:
    return build_clinic(shared_repo)


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
