"""clinic workflow

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

Issue 24: visits and photos as a clinic uses them, signed-in browsers, anonymous exports.

- ``primary_photos``: the photo of an area that counts for a visit (one per area and
  visit; others are alternates). Existing data: the area's baseline where it is in that
  visit, else the photo whose analysis was saved last, else the first photo stored.
- ``photos``: a status (ok / unmatched / refused, with reason, who and when), soft delete
  with reason, who and when, the retake that replaced it, and when the retention rule
  removed its bytes.
- ``visits``: soft delete with reason, who and when.
- Regions ``ankle`` and ``foot``; the sclerosant ``polidocanol``.
- ``web_sessions``: signed-in browsers (digests of the cookie token and the hand-over code).
- ``export_keys`` and ``exported_pairs``: the private key of anonymous export ids and the
  mapping of each published id to its records.

Widening a CHECK constraint on SQLite would otherwise rebuild ``visits`` and
``treatment_areas``, which other tables reference (a rebuild needs foreign keys off, which
SQLite allows only outside a transaction). Every existing row satisfies the wider
constraint, so the table definition is edited in place, as SQLite's documentation
describes for changes that leave the stored rows as they are (``PRAGMA writable_schema``
within the migration's transaction, the schema version bumped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_REGIONS = "region IN ('thigh', 'knee', 'calf')"
_NEW_REGIONS = "region IN ('thigh', 'knee', 'calf', 'ankle', 'foot')"
_OLD_SCLEROSANTS = (
    "sclerosant IS NULL OR sclerosant IN ('hypertonic_saline', 'sodium_tetradecyl_sulfate')"
)
_NEW_SCLEROSANTS = (
    "sclerosant IS NULL OR sclerosant IN "
    "('polidocanol', 'hypertonic_saline', 'sodium_tetradecyl_sulfate')"
)


def _sqlite_swap_check(table: str, old: str, new: str) -> None:
    """Replace the text of a CHECK constraint in a SQLite table definition, in place."""
    bind = op.get_bind()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    if new in sql:
        return
    if old not in sql:
        raise RuntimeError(f"table {table}: CHECK ({old}) not found; the schema is not 0001's")
    version = int(bind.exec_driver_sql("PRAGMA schema_version").scalar_one())
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
            (sql.replace(old, new), table),
        )
        bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def _swap_check(table: str, name: str, old: str, new: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_swap_check(table, old, new)
        return
    op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
    op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, new)


def _add_column(
    table: str,
    name: str,
    type_: sa.types.TypeEngine[Any],
    *,
    references: str | None = None,
    default: str | None = None,
    check: str | None = None,
) -> None:
    """Add a nullable column (or one with a default), its foreign key and CHECK inline.

    SQLite takes REFERENCES and CHECK only as part of ``ADD COLUMN`` (Alembic would
    rebuild the table for a separate constraint); PostgreSQL gets named constraints.
    """
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        have = {r[1] for r in bind.exec_driver_sql(f"PRAGMA table_info({table})")}
        if name in have:  # left by a downgrade (see there)
            return
        ddl = type_.compile(dialect=bind.dialect)
        if default is not None:
            ddl += f" DEFAULT '{default}' NOT NULL"
        if references is not None:
            ddl += f" CONSTRAINT fk_{table}_{name}_{references} REFERENCES {references} (id)"
        if check is not None:
            ddl += f" CONSTRAINT ck_{table}_{name} CHECK ({check})"
        bind.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}")
        return
    op.add_column(
        table,
        sa.Column(
            name,
            type_,
            server_default=default,
            nullable=default is None,
        ),
    )
    if references is not None:
        op.create_foreign_key(
            op.f(f"fk_{table}_{name}_{references}"), table, references, [name], ["id"]
        )
    if check is not None:
        op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, check)


def upgrade() -> None:
    _swap_check("treatment_areas", "region", _OLD_REGIONS, _NEW_REGIONS)
    _swap_check("visits", "sclerosant", _OLD_SCLEROSANTS, _NEW_SCLEROSANTS)

    # Added columns only (SQLite adds them in place: no rebuild of a referenced table).
    _add_column("visits", "deleted_at", sa.DateTime(timezone=True))
    _add_column("visits", "deleted_by_id", sa.Integer(), references="users")
    _add_column("visits", "delete_reason", sa.Text())
    _add_column(
        "photos",
        "status",
        sa.String(length=12),
        default="ok",
        check="status IN ('ok', 'unmatched', 'refused')",
    )
    _add_column("photos", "status_reason", sa.Text())
    _add_column("photos", "status_at", sa.DateTime(timezone=True))
    _add_column("photos", "status_by_id", sa.Integer(), references="users")
    _add_column("photos", "deleted_at", sa.DateTime(timezone=True))
    _add_column("photos", "deleted_by_id", sa.Integer(), references="users")
    _add_column("photos", "delete_reason", sa.Text())
    _add_column("photos", "replaced_by_id", sa.Integer(), references="photos")
    _add_column("photos", "bytes_purged_at", sa.DateTime(timezone=True))

    op.create_table(
        "primary_photos",
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["area_id"],
            ["treatment_areas.id"],
            name=op.f("fk_primary_photos_area_id_treatment_areas"),
        ),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name=op.f("fk_primary_photos_photo_id_photos")
        ),
        sa.ForeignKeyConstraint(
            ["set_by_id"], ["users.id"], name=op.f("fk_primary_photos_set_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["visit_id"], ["visits.id"], name=op.f("fk_primary_photos_visit_id_visits")
        ),
        sa.PrimaryKeyConstraint("area_id", "visit_id", name=op.f("pk_primary_photos")),
        sa.UniqueConstraint("photo_id", name=op.f("uq_primary_photos_photo_id")),
    )
    _fill_primary_photos()

    op.create_table(
        "web_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("handoff_hash", sa.String(length=64), nullable=True),
        sa.Column("handoff_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoke_reason", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_web_sessions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("handoff_hash", name=op.f("uq_web_sessions_handoff_hash")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "export_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret", sa.LargeBinary(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_export_keys_created_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_keys")),
    )
    op.create_table(
        "exported_pairs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("area_id", sa.Integer(), nullable=False),
        sa.Column("baseline_photo_id", sa.Integer(), nullable=False),
        sa.Column("followup_photo_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("exported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exported_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["area_id"],
            ["treatment_areas.id"],
            name=op.f("fk_exported_pairs_area_id_treatment_areas"),
        ),
        sa.ForeignKeyConstraint(
            ["baseline_photo_id"],
            ["photos.id"],
            name=op.f("fk_exported_pairs_baseline_photo_id_photos"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_exported_pairs_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["exported_by_id"], ["users.id"], name=op.f("fk_exported_pairs_exported_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["followup_photo_id"],
            ["photos.id"],
            name=op.f("fk_exported_pairs_followup_photo_id_photos"),
        ),
        sa.ForeignKeyConstraint(
            ["key_id"], ["export_keys.id"], name=op.f("fk_exported_pairs_key_id_export_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exported_pairs")),
    )
    with op.batch_alter_table("exported_pairs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exported_pairs_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_exported_pairs_public_id"), ["public_id"], unique=False
        )


def _fill_primary_photos() -> None:
    """One primary photo per (area, visit) that has photos, for the records made before."""
    bind = op.get_bind()
    photos = sa.table(
        "photos", sa.column("id"), sa.column("area_id"), sa.column("visit_id"),
        sa.column("uploaded_at"),
    )  # fmt: skip
    baselines = sa.table("area_baselines", sa.column("area_id"), sa.column("photo_id"))
    analyses = sa.table("analyses", sa.column("id"), sa.column("followup_photo_id"))
    primary = sa.table(
        "primary_photos", sa.column("area_id"), sa.column("visit_id"), sa.column("photo_id"),
        sa.column("set_at"),
    )  # fmt: skip
    baseline_ids = {r.photo_id for r in bind.execute(sa.select(baselines.c.photo_id))}
    last_analysis = dict(
        bind.execute(
            sa.select(analyses.c.followup_photo_id, sa.func.max(analyses.c.id)).group_by(
                analyses.c.followup_photo_id
            )
        ).all()
    )
    best: dict[tuple[int, int], tuple[tuple[int, int, int], int, object]] = {}
    for row in bind.execute(
        sa.select(photos.c.id, photos.c.area_id, photos.c.visit_id, photos.c.uploaded_at)
    ):
        # Rank: the baseline, then the photo analysed last, then the first stored.
        rank = (
            1 if row.id in baseline_ids else 0,
            int(last_analysis.get(row.id) or 0),
            -int(row.id),
        )
        key = (int(row.area_id), int(row.visit_id))
        if key not in best or rank > best[key][0]:
            best[key] = (rank, int(row.id), row.uploaded_at)
    if best:
        op.bulk_insert(
            primary,
            [
                {"area_id": a, "visit_id": v, "photo_id": pid, "set_at": at}
                for (a, v), (_, pid, at) in sorted(best.items())
            ],
        )


def downgrade() -> None:
    bind = op.get_bind()
    used = bind.exec_driver_sql(
        "SELECT (SELECT COUNT(*) FROM treatment_areas WHERE region IN ('ankle', 'foot'))"
        " + (SELECT COUNT(*) FROM visits WHERE sclerosant = 'polidocanol')"
    ).scalar_one()
    if used:
        raise RuntimeError(
            "Cannot go back before 0002: ankle or foot areas, or polidocanol visits, are "
            "recorded (0001 cannot hold them)."
        )
    op.drop_table("exported_pairs")
    op.drop_table("export_keys")
    op.drop_table("web_sessions")
    op.drop_table("primary_photos")
    if bind.dialect.name == "sqlite":
        # SQLite cannot drop a column that carries a foreign key, and a rebuild of these
        # referenced tables needs foreign keys off (outside a transaction). The added
        # columns are nullable or defaulted, so 0001's code reads and writes around them;
        # an upgrade again finds them and skips them.
        pass
    else:
        for col, ref in (
            ("status_by_id", "users"),
            ("deleted_by_id", "users"),
            ("replaced_by_id", "photos"),
        ):
            op.drop_constraint(op.f(f"fk_photos_{col}_{ref}"), "photos", type_="foreignkey")
        op.drop_constraint(op.f("ck_photos_status"), "photos", type_="check")
        for col in (
            "bytes_purged_at",
            "replaced_by_id",
            "delete_reason",
            "deleted_at",
            "deleted_by_id",
            "status_by_id",
            "status_at",
            "status_reason",
            "status",
        ):
            op.drop_column("photos", col)
        op.drop_constraint(op.f("fk_visits_deleted_by_id_users"), "visits", type_="foreignkey")
        for col in ("delete_reason", "deleted_by_id", "deleted_at"):
            op.drop_column("visits", col)
    _swap_check("visits", "sclerosant", _NEW_SCLEROSANTS, _OLD_SCLEROSANTS)
    _swap_check("treatment_areas", "region", _NEW_REGIONS, _OLD_REGIONS)
