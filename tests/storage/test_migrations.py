"""Alembic: ``upgrade head`` on an empty database gives exactly the models' schema."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from vein_tracker.storage import db
from vein_tracker.storage.models import Base


def _diff(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def test_upgrade_head_on_empty_database_matches_models(settings):
    engine = db.create_db_engine(settings.db_url)
    try:
        assert db.current_revision(engine) is None
        assert db.upgrade(engine) == db.head_revision()
        assert db.current_revision(engine) == db.head_revision()
        assert _diff(engine) == []
        names = set(sa.inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= names
        assert db.upgrade(engine) == db.head_revision()  # idempotent
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(settings):
    engine = db.create_db_engine(settings.db_url)
    try:
        db.upgrade(engine)
        with engine.execution_options(vt_write=True).connect() as conn:
            cfg = db.alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
            conn.commit()
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
        db.upgrade(engine)
        assert _diff(engine) == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_packaged_alembic_ini_works_from_the_command_line(settings, tmp_path):
    # As an operator would run it from an installed package, from any folder.
    env = dict(os.environ, VEIN_TRACKER_DB_URL=settings.db_url)
    proc = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(db.ALEMBIC_INI), "upgrade", "head"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    engine = db.create_db_engine(settings.db_url)
    try:
        assert db.current_revision(engine) == db.head_revision()
        assert _diff(engine) == []
    finally:
        engine.dispose()


def test_sqlite_connections_have_the_safety_pragmas(data_dir):
    engine = db.create_db_engine(f"sqlite:///{data_dir / 'x.db'}")
    try:
        with engine.connect() as conn:
            pragmas = {
                p: conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                for p in ("foreign_keys", "journal_mode", "busy_timeout", "synchronous")
            }
    finally:
        engine.dispose()
    assert pragmas == {
        "foreign_keys": 1,
        "journal_mode": "wal",
        "busy_timeout": db.SQLITE_BUSY_TIMEOUT_MS,
        "synchronous": 2,
    }


def test_foreign_keys_are_enforced(repo):
    with pytest.raises(sa.exc.IntegrityError), repo.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO treatment_areas (client_id, side, view, region, anon_id, created_at)"
                " VALUES (424242, 'left', 'medial', 'knee', 'x', CURRENT_TIMESTAMP)"
            )
        )


def test_bad_urls_are_refused():
    with pytest.raises(ValueError, match="VEIN_TRACKER_DB_URL"):
        db.create_db_engine("mysql://u@h/db")


def test_migrations_ship_inside_the_built_package(tmp_path):
    """Build the package as a wheel would (setuptools build_py, package-data from
    pyproject.toml) and run ``alembic upgrade head`` from that copy only."""
    root = Path(__file__).resolve().parents[2]
    build = tmp_path / "build"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from setuptools import setup; setup()",
            "-q",
            "build_py",
            "-d",
            str(build),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    ini = build / "vein_tracker" / "storage" / "alembic.ini"
    assert (build / "vein_tracker" / "storage" / "migrations" / "versions").is_dir()
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = dict(os.environ, PYTHONPATH=str(build), VEIN_TRACKER_DB_URL=url)
    code = (
        "import vein_tracker.storage.db as d, sys; "
        f"assert d.ALEMBIC_INI.resolve() == __import__('pathlib').Path({str(ini)!r}).resolve(); "
        "from alembic.config import main; main(['-c', str(d.ALEMBIC_INI), 'upgrade', 'head'])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    engine = db.create_db_engine(url)
    try:
        assert db.current_revision(engine) == db.head_revision()
        assert _diff(engine) == []
    finally:
        engine.dispose()
