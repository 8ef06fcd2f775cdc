"""Installation settings and the database's self-checks (fsck, backup).

Owns the ``settings`` rows and what fsck asks of the database: every store address
the records refer to and SQLite's integrity and foreign-key checks.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ...policy import Action
from .. import models as m
from ..info import Actor
from .base import RepositoryBase


class MaintenanceRecords(RepositoryBase):
    """Settings and integrity checks (part of :class:`~vein_tracker.storage.Repository`)."""

    def referenced_hashes(self) -> dict[str, str]:
        """Every store address the database refers to -> what refers to it (for fsck)."""

        def body(s: Session) -> dict[str, str]:
            # issue 24 (H6): the bytes of a deleted photo past retention are gone on purpose.
            refs = {
                sha: f"photo {pid}"
                for pid, sha in s.execute(
                    sa.select(m.Photo.id, m.Photo.sha256).where(m.Photo.bytes_purged_at.is_(None))
                )
            }
            for aid, name, sha in s.execute(
                sa.select(m.AnalysisMask.analysis_id, m.AnalysisMask.name, m.AnalysisMask.sha256)
            ):
                refs.setdefault(sha, f"analysis {aid} mask {name}")
            return refs

        return self._run(body, write=False)

    def get_setting(self, key: str) -> str | None:
        """An installation fact (e.g. ``"demo_seeded_at"``); None if unset."""
        return self._run(lambda s: r.value if (r := s.get(m.Setting, key)) else None, write=False)

    def set_setting(self, actor: Actor, key: str, value: str) -> None:
        """Set an installation fact (admin or system only)."""
        self._require(actor, Action.MANAGE_SETTINGS)

        def body(s: Session) -> None:
            row = s.get(m.Setting, key)
            if row is None:
                s.add(m.Setting(key=key, value=value))
            else:
                row.value = value

        self._guard(actor, body, write=True)

    def integrity_check(self) -> list[str]:
        """Database-level problems (SQLite ``integrity_check`` and FK check); empty if fine."""
        problems: list[str] = []
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                rows = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]
                if rows != ["ok"]:
                    problems.extend(f"sqlite: {r}" for r in rows)
                problems.extend(
                    f"foreign key: {tuple(r)}"
                    for r in conn.exec_driver_sql("PRAGMA foreign_key_check")
                )
            else:
                conn.execute(sa.text("SELECT 1"))
            conn.rollback()
        return problems
