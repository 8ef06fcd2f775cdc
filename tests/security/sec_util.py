"""Helpers of the security suites: the repository root and what a test compares before
and after a refusal. The clinic, the photo and settings helpers and the way to open a
repository come from ``tests.clinic_util`` (re-exported here for the subprocesses of
these suites, which put this folder on ``sys.path``)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from tests.clinic_util import FAST, PASSWORD, make_settings, open_test_repo, photo_bytes

__all__ = [
    "FAST",
    "PASSWORD",
    "ROOT",
    "make_settings",
    "open_test_repo",
    "photo_bytes",
    "row_counts",
    "store_files",
]

ROOT = Path(__file__).resolve().parents[2]


def row_counts(engine: sa.Engine) -> dict[str, int]:
    """Rows per table (audit excluded: refusals are audited on purpose)."""
    insp = sa.inspect(engine)
    out: dict[str, int] = {}
    with engine.connect() as conn:
        for t in insp.get_table_names():
            if t in ("audit_events", "alembic_version"):
                continue
            out[t] = int(conn.execute(sa.text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one())
    return out


def store_files(data_dir: Path) -> set[Path]:
    """Every file under ``data_dir`` except the SQLite database and its journals."""
    return {
        p.relative_to(data_dir)
        for p in data_dir.rglob("*")
        if p.is_file() and not p.name.startswith("vein_tracker.db")
    }
