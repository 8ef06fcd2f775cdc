"""Migration 0002 (issue 24) on a database holding 0001's records.

Built at 0001 with plain SQL (the models are 0002's), then upgraded: every (area, visit)
with photos gets one primary photo (the baseline, else the photo analysed last, else the
first stored); the wider CHECKs take the ankle and foot regions and polidocanol and still
refuse anything else; photos start "ok"; and 0002 -> 0001 -> 0002 works on both databases.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from vein_tracker.storage import db

NOW = "2026-01-05 10:00:00"


def _at(engine: sa.Engine, revision: str, *, down: bool = False) -> None:
    with engine.execution_options(vt_write=True).connect() as conn:
        cfg = db.alembic_config()
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)
        conn.commit()


def _fill_0001(conn: sa.Connection) -> None:
    run = conn.execute
    run(
        sa.text(
            "INSERT INTO users (id, username, password_hash, role, active, "
            "must_change_password, failed_logins, created_at, updated_at) "
            "VALUES (1, 'anna', 'x', 'aesthetician', true, false, 0, :t, :t)"
        ),
        {"t": NOW},
    )
    run(
        sa.text("INSERT INTO clients (id, name, created_at, updated_at) VALUES (1, 'C', :t, :t)"),
        {"t": NOW},
    )
    for area in (1, 2):
        run(
            sa.text(
                "INSERT INTO treatment_areas (id, client_id, side, view, region, anon_id, "
                "created_at) VALUES (:a, 1, 'left', 'posterior', 'calf', :anon, :t)"
            ),
            {"a": area, "anon": f"anon{area}", "t": NOW},
        )
    for visit in (1, 2):
        run(
            sa.text(
                "INSERT INTO visits (id, client_id, session_number, visit_date, created_at, "
                "updated_at) VALUES (:v, 1, :v, :d, :t, :t)"
            ),
            {"v": visit, "d": f"2026-01-0{visit}", "t": NOW},
        )
    # (photo id, area, visit): area 1 has an alternate before its baseline in visit 1 and
    # two follow-ups in visit 2, the later-id one unanalysed; area 2 has two unanalysed
    # photos in visit 1 (the first stored counts).
    photos = [(1, 1, 1), (2, 1, 1), (3, 1, 2), (4, 1, 2), (5, 2, 1), (6, 2, 1)]
    for pid, area, visit in photos:
        run(
            sa.text(
                "INSERT INTO photos (id, client_id, area_id, visit_id, sha256, size_bytes, "
                "width, height, format, uploaded_at) "
                "VALUES (:p, 1, :a, :v, :sha, 10, 40, 30, 'JPEG', :t)"
            ),
            {"p": pid, "a": area, "v": visit, "sha": f"{pid:064d}", "t": NOW},
        )
    run(sa.text("INSERT INTO area_baselines (area_id, photo_id, set_at) VALUES (1, 2, :t)"),
        {"t": NOW})  # fmt: skip
    run(
        sa.text(
            "INSERT INTO analyses (id, client_id, area_id, baseline_photo_id, "
            "followup_photo_id, params_hash, params, algorithm_version, result, created_at) "
            "VALUES (1, 1, 1, 2, 3, 'h', '{}', '1.0', '{}', :t)"
        ),
        {"t": NOW},
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_upgrade_from_0001_keeps_records_and_picks_primary_photos(settings: object) -> None:
    engine = db.create_db_engine(settings.db_url)  # type: ignore[attr-defined]
    try:
        _at(engine, "0001")
        with engine.execution_options(vt_write=True).begin() as conn:
            _fill_0001(conn)
        _at(engine, "head")
        with engine.connect() as conn:
            primary = dict(
                ((a, v), p)
                for a, v, p in conn.execute(
                    sa.text("SELECT area_id, visit_id, photo_id FROM primary_photos")
                )
            )
            statuses = {s for (s,) in conn.execute(sa.text("SELECT status FROM photos"))}
        assert primary == {(1, 1): 2, (1, 2): 3, (2, 1): 5}
        assert statuses == {"ok"}

        with engine.execution_options(vt_write=True).connect() as conn:
            conn.execute(sa.text("UPDATE treatment_areas SET region = 'ankle' WHERE id = 1"))
            conn.execute(sa.text("UPDATE treatment_areas SET region = 'foot' WHERE id = 2"))
            conn.execute(sa.text("UPDATE visits SET sclerosant = 'polidocanol' WHERE id = 1"))
            conn.commit()
        for sql in (
            "UPDATE treatment_areas SET region = 'elbow' WHERE id = 1",
            "UPDATE visits SET sclerosant = 'bleach' WHERE id = 1",
            "UPDATE photos SET status = 'lost' WHERE id = 1",
        ):
            with (
                engine.execution_options(vt_write=True).connect() as conn,
                pytest.raises(sa.exc.IntegrityError),
            ):
                conn.execute(sa.text(sql))

        # Back to 0001 is refused while the records use what 0001 cannot hold...
        with pytest.raises(RuntimeError, match="ankle or foot"):
            _at(engine, "0001", down=True)
        with engine.execution_options(vt_write=True).connect() as conn:
            conn.execute(sa.text("UPDATE treatment_areas SET region = 'calf'"))
            conn.execute(sa.text("UPDATE visits SET sclerosant = NULL"))
            conn.commit()
        # ...and works otherwise; 0001's narrower CHECK is back; and up again.
        _at(engine, "0001", down=True)
        with (
            engine.execution_options(vt_write=True).connect() as conn,
            pytest.raises(sa.exc.IntegrityError),
        ):
            conn.execute(sa.text("UPDATE treatment_areas SET region = 'ankle' WHERE id = 1"))
        _at(engine, "head")
        with engine.connect() as conn:
            n = conn.execute(sa.text("SELECT COUNT(*) FROM primary_photos")).scalar_one()
        assert n == 3
    finally:
        engine.dispose()
