"""Helpers of the security suites.

The clinic (every role, two clients, their photos and analyses) and the photo and
settings helpers come from ``tests.clinic_util``, shared with the storage suite; here:
the repository root and what a test compares before and after a refusal.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import sqlalchemy as sa

from tests import clinic_util
from tests.clinic_util import FAST, PASSWORD, make_settings, photo_bytes
from vein_tracker.storage import Repository

__all__ = [
    "FAST",
    "PASSWORD",
    "ROOT",
    "build_clinic",
    "make_settings",
    "photo_bytes",
    "row_counts",
    "store_files",
]

ROOT = Path(__file__).resolve().parents[2]


def build_clinic(repo: Repository) -> SimpleNamespace:
    """The security suites' clinic: :func:`tests.clinic_util.build_clinic`, ``extended``
    (with a deactivated admin and B's follow-up and saved analysis)."""
    return clinic_util.build_clinic(repo, extended=True)


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
