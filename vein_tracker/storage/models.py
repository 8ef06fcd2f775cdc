"""SQLAlchemy 2.x ORM models of the clinic records.

Owns the table definitions. The schema is created and changed only by the Alembic
migrations in ``migrations/versions`` (a test checks that they match these models).
Nothing outside :mod:`vein_tracker.storage` may import this module: pages and the
CLI get frozen dataclasses from the repository.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always returned timezone-aware (SQLite keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON()}


# 'rater' (issue 22, migration 0003): blinded clinicians who see only the rating pages.
_ROLE_CHECK = "role IN ('admin', 'aesthetician', 'client', 'marketing', 'rater')"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint(_ROLE_CHECK, name="role"),
        sa.CheckConstraint("role <> 'client' OR client_id IS NOT NULL", name="client_link"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16))
    client_id: Mapped[int | None] = mapped_column(sa.ForeignKey("clients.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    must_change_password: Mapped[bool] = mapped_column(default=False)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Client(Base):
    __tablename__ = "clients"
    __table_args__ = (
        sa.CheckConstraint(
            "fitzpatrick IS NULL OR fitzpatrick BETWEEN 1 AND 6", name="fitzpatrick"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), index=True)
    date_of_birth: Mapped[date | None]
    email: Mapped[str | None] = mapped_column(sa.String(200))
    phone: Mapped[str | None] = mapped_column(sa.String(50))
    address: Mapped[str | None] = mapped_column(sa.Text)
    fitzpatrick: Mapped[int | None]
    notes: Mapped[str | None] = mapped_column(sa.Text)
    scr_varicose_veins: Mapped[bool | None]
    scr_clotting_disorder: Mapped[bool | None]
    scr_blood_thinners: Mapped[bool | None]
    scr_corticosteroids: Mapped[bool | None]
    scr_pregnancy: Mapped[bool | None]
    scr_breastfeeding: Mapped[bool | None]
    screened_at: Mapped[datetime | None]
    # A username, not a foreign key: users.client_id -> clients already points the other way.
    screened_by: Mapped[str | None] = mapped_column(sa.String(64))
    screening_override_reason: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TreatmentArea(Base):
    __tablename__ = "treatment_areas"
    __table_args__ = (
        sa.CheckConstraint("side IN ('left', 'right')", name="side"),
        sa.CheckConstraint("view IN ('anterior', 'posterior', 'medial', 'lateral')", name="view"),
        sa.CheckConstraint("region IN ('thigh', 'knee', 'calf', 'ankle', 'foot')", name="region"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(sa.ForeignKey("clients.id"), index=True)
    side: Mapped[str] = mapped_column(sa.String(8))
    view: Mapped[str] = mapped_column(sa.String(12))
    region: Mapped[str] = mapped_column(sa.String(8))
    note: Mapped[str | None] = mapped_column(sa.Text)
    anon_id: Mapped[str] = mapped_column(sa.String(32), unique=True)
    created_at: Mapped[datetime]


class Visit(Base):
    __tablename__ = "visits"
    __table_args__ = (
        sa.UniqueConstraint("client_id", "session_number", name="uq_visits_client_session"),
        sa.CheckConstraint(
            "sclerosant IS NULL OR sclerosant IN "
            "('polidocanol', 'hypertonic_saline', 'sodium_tetradecyl_sulfate')",
            name="sclerosant",
        ),
        sa.CheckConstraint(
            "next_window_start IS NULL OR next_window_end IS NULL "
            "OR next_window_end >= next_window_start",
            name="window",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(sa.ForeignKey("clients.id"), index=True)
    session_number: Mapped[int]
    visit_date: Mapped[date]
    aesthetician_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    sclerosant: Mapped[str | None] = mapped_column(sa.String(32))
    concentration_pct: Mapped[float | None]
    volume_ml: Mapped[float | None]
    notes: Mapped[str | None] = mapped_column(sa.Text)
    next_window_start: Mapped[date | None]
    next_window_end: Mapped[date | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Soft delete (migration 0002): a visit started by mistake is hidden everywhere but
    # kept, with who removed it, when and why; its photos go with it.
    deleted_at: Mapped[datetime | None]
    deleted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    delete_reason: Mapped[str | None] = mapped_column(sa.Text)


class VisitArea(Base):
    __tablename__ = "visit_areas"

    visit_id: Mapped[int] = mapped_column(sa.ForeignKey("visits.id"), primary_key=True)
    area_id: Mapped[int] = mapped_column(sa.ForeignKey("treatment_areas.id"), primary_key=True)


#: A photo's state (migration 0002): "ok"; "unmatched" (the capture check found it does not
#: match the area's baseline: another leg, area or pose); "refused" (the pair's
#: registration was refused when analysed). Only "ok" photos reach a figure or an export.
PHOTO_STATUSES = ("ok", "unmatched", "refused")


class Photo(Base):
    __tablename__ = "photos"
    __table_args__ = (
        sa.UniqueConstraint("area_id", "visit_id", "sha256", name="uq_photos_area_visit_sha"),
        sa.CheckConstraint("status IN ('ok', 'unmatched', 'refused')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(sa.ForeignKey("clients.id"), index=True)
    area_id: Mapped[int] = mapped_column(sa.ForeignKey("treatment_areas.id"), index=True)
    visit_id: Mapped[int] = mapped_column(sa.ForeignKey("visits.id"), index=True)
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    width: Mapped[int]
    height: Mapped[int]
    format: Mapped[str] = mapped_column(sa.String(16))
    original_filename: Mapped[str | None] = mapped_column(sa.String(255))
    capture_time: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=False))
    px_per_mm: Mapped[float | None]
    capture_report: Mapped[dict[str, Any] | None]
    uploaded_at: Mapped[datetime]
    uploaded_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    # Migration 0002: the photo's state with who set it, when and why.
    status: Mapped[str] = mapped_column(sa.String(12), default="ok", server_default="ok")
    status_reason: Mapped[str | None] = mapped_column(sa.Text)
    status_at: Mapped[datetime | None]
    status_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    # Soft delete and retake (migration 0002): the record stays, hidden, with who, when and
    # why; the bytes stay in the store until the retention rule removes them
    # (docs/ARCHITECTURE.md, "Deleted photos"). A retake points at the photo replacing it.
    deleted_at: Mapped[datetime | None]
    deleted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    delete_reason: Mapped[str | None] = mapped_column(sa.Text)
    replaced_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("photos.id"))
    bytes_purged_at: Mapped[datetime | None]


class AreaBaseline(Base):
    """The baseline photo of each area (a separate table avoids an area <-> photo cycle)."""

    __tablename__ = "area_baselines"

    area_id: Mapped[int] = mapped_column(sa.ForeignKey("treatment_areas.id"), primary_key=True)
    photo_id: Mapped[int] = mapped_column(sa.ForeignKey("photos.id"), unique=True)
    set_at: Mapped[datetime]
    set_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class PrimaryPhoto(Base):
    """The photo of an area that counts for a visit (migration 0002): one per area and
    visit; the visit's other photos of that area are alternates, kept and choosable.
    A separate table, like ``area_baselines``, so a photo row never points at itself."""

    __tablename__ = "primary_photos"

    area_id: Mapped[int] = mapped_column(sa.ForeignKey("treatment_areas.id"), primary_key=True)
    visit_id: Mapped[int] = mapped_column(sa.ForeignKey("visits.id"), primary_key=True)
    photo_id: Mapped[int] = mapped_column(sa.ForeignKey("photos.id"), unique=True)
    set_at: Mapped[datetime]
    set_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class Analysis(Base):
    __tablename__ = "analyses"
    __table_args__ = (
        sa.UniqueConstraint(
            "baseline_photo_id",
            "followup_photo_id",
            "params_hash",
            "algorithm_version",
            name="uq_analyses_key",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(sa.ForeignKey("clients.id"), index=True)
    area_id: Mapped[int] = mapped_column(sa.ForeignKey("treatment_areas.id"), index=True)
    baseline_photo_id: Mapped[int] = mapped_column(sa.ForeignKey("photos.id"))
    followup_photo_id: Mapped[int] = mapped_column(sa.ForeignKey("photos.id"), index=True)
    params_hash: Mapped[str] = mapped_column(sa.String(64))
    params: Mapped[dict[str, Any]]
    algorithm_version: Mapped[str] = mapped_column(sa.String(32), index=True)
    result: Mapped[dict[str, Any]]
    improvement_pct: Mapped[float | None]
    meets_target: Mapped[bool | None]
    created_at: Mapped[datetime]
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class AnalysisMask(Base):
    __tablename__ = "analysis_masks"

    analysis_id: Mapped[int] = mapped_column(sa.ForeignKey("analyses.id"), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)


class Consent(Base):
    __tablename__ = "consents"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('treatment_photography', 'marketing')", name="kind"),
        sa.CheckConstraint("expires_at IS NULL OR expires_at > signed_at", name="expiry"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(sa.ForeignKey("clients.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    scope_website: Mapped[bool] = mapped_column(default=False)
    scope_social: Mapped[bool] = mapped_column(default=False)
    scope_print: Mapped[bool] = mapped_column(default=False)
    signed_at: Mapped[date]
    expires_at: Mapped[date | None]
    recorded_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    recorded_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    revoke_reason: Mapped[str | None] = mapped_column(sa.Text)
    note: Mapped[str | None] = mapped_column(sa.Text)


class AuditEvent(Base):
    """Append-only (database triggers refuse UPDATE and DELETE)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    username: Mapped[str | None] = mapped_column(sa.String(64))
    role: Mapped[str | None] = mapped_column(sa.String(16))
    action: Mapped[str] = mapped_column(sa.String(32), index=True)
    target_type: Mapped[str | None] = mapped_column(sa.String(32))
    target_id: Mapped[int | None]
    client_id: Mapped[int | None] = mapped_column(index=True)
    ok: Mapped[bool] = mapped_column(default=True)
    detail: Mapped[dict[str, Any]]


class Setting(Base):
    """Small key/value facts about this installation (e.g. when the demo seed ran)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)


class WebSession(Base):
    """A signed-in browser (migration 0002): what lets a reload or a link keep the user
    signed in within the idle timeout. Only SHA-256 digests of the secrets are stored:
    the cookie's 256-bit token and the one-time code that hands the cookie over. Revoked
    on sign-out; expired when idle longer than ``VEIN_TRACKER_IDLE_TIMEOUT_MIN``."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    token_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    handoff_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    handoff_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoke_reason: Mapped[str | None] = mapped_column(sa.String(64))


class ExportKey(Base):
    """The clinic's private key for anonymous export ids (migration 0002): a published
    pair's id is HMAC-SHA256(key, the pair's photo ids); without this row nobody can tell
    which record it came from."""

    __tablename__ = "export_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    secret: Mapped[bytes] = mapped_column(sa.LargeBinary(64))
    created_at: Mapped[datetime]
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class ExportedPair(Base):
    """The private mapping of each exported pair's public id to its records (migration
    0002): how the clinic traces a published image back. Never part of an export."""

    __tablename__ = "exported_pairs"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    key_id: Mapped[int] = mapped_column(sa.ForeignKey("export_keys.id"))
    client_id: Mapped[int] = mapped_column(sa.ForeignKey("clients.id"), index=True)
    area_id: Mapped[int] = mapped_column(sa.ForeignKey("treatment_areas.id"))
    baseline_photo_id: Mapped[int] = mapped_column(sa.ForeignKey("photos.id"))
    followup_photo_id: Mapped[int] = mapped_column(sa.ForeignKey("photos.id"))
    channel: Mapped[str] = mapped_column(sa.String(16))
    exported_at: Mapped[datetime]
    exported_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


# --------------------------------------------------------------------------- issue 22 (H5)
# The clinician in the loop: reviewed vein maps, blind rating sessions and their ratings.
# Map versions and ratings are append-only (database triggers refuse UPDATE and DELETE):
# a correction is a new version, a changed rating a new row that supersedes the old one.


class VeinMapVersion(Base):
    """One version of a baseline photo's vein map: the automatic one or a reviewed one."""

    __tablename__ = "vein_map_versions"
    __table_args__ = (
        sa.UniqueConstraint(
            "baseline_photo_id", "version", name="uq_vein_map_versions_photo_version"
        ),
        sa.CheckConstraint("kind IN ('automatic', 'reviewed')", name="kind"),
        sa.CheckConstraint("version >= 1", name="version"),
        sa.CheckConstraint("width > 0 AND height > 0", name="size"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(sa.ForeignKey("clients.id"), index=True)
    area_id: Mapped[int] = mapped_column(sa.ForeignKey("treatment_areas.id"), index=True)
    baseline_photo_id: Mapped[int] = mapped_column(sa.ForeignKey("photos.id"), index=True)
    version: Mapped[int]
    kind: Mapped[str] = mapped_column(sa.String(16))
    # The version this one corrects (None for an automatic map).
    based_on_id: Mapped[int | None] = mapped_column(sa.ForeignKey("vein_map_versions.id"))
    # The saved analysis the automatic map came from, when there is one.
    analysis_id: Mapped[int | None] = mapped_column(sa.ForeignKey("analyses.id"))
    width: Mapped[int]
    height: Mapped[int]
    # PNG label image (0 none, 1 spider, 2 reticular) and region of interest, base64 text:
    # the backup's logical dump (JSON) then carries them as they are.
    labels_png_b64: Mapped[str] = mapped_column(sa.Text)
    roi_png_b64: Mapped[str | None] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    edits: Mapped[dict[str, Any] | None]
    params: Mapped[dict[str, Any]]
    note: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime]
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class RatingSession(Base):
    """A set of measured pairs that raters grade blind."""

    __tablename__ = "rating_sessions"
    __table_args__ = (sa.CheckConstraint("status IN ('open', 'closed')", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(8))
    created_at: Mapped[datetime]
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    closed_at: Mapped[datetime | None]
    closed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class RatingPair(Base):
    """A measured pair in a session; ``code`` is the only name raters and exports see."""

    __tablename__ = "rating_pairs"
    __table_args__ = (
        sa.UniqueConstraint("session_id", "analysis_id", name="uq_rating_pairs_session_analysis"),
        sa.UniqueConstraint("session_id", "code", name="uq_rating_pairs_session_code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("rating_sessions.id"), index=True)
    analysis_id: Mapped[int] = mapped_column(sa.ForeignKey("analyses.id"), index=True)
    code: Mapped[str] = mapped_column(sa.String(16))
    # The automatic figure when the session was made ("auto" in the agreement).
    auto_pct: Mapped[float | None]


class RatingAssignment(Base):
    """A rater of a session, with the random order in which they see its pairs."""

    __tablename__ = "rating_assignments"
    __table_args__ = (
        sa.UniqueConstraint("session_id", "rater_id", name="uq_rating_assignments_session_rater"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("rating_sessions.id"), index=True)
    rater_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    # rating_pairs ids, in this rater's order.
    pair_order: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class Rating(Base):
    """One submitted rating (never changed: a new rating supersedes it, both kept)."""

    __tablename__ = "ratings"
    __table_args__ = (
        sa.CheckConstraint("clearance_pct >= 0 AND clearance_pct <= 100", name="clearance"),
        sa.CheckConstraint("quartile BETWEEN 0 AND 3", name="quartile"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(sa.ForeignKey("rating_sessions.id"), index=True)
    pair_id: Mapped[int] = mapped_column(sa.ForeignKey("rating_pairs.id"), index=True)
    rater_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    clearance_pct: Mapped[float]
    quartile: Mapped[int]
    submitted_at: Mapped[datetime]
    # The earlier rating of the same pair by the same rater that this one replaces.
    supersedes_id: Mapped[int | None] = mapped_column(sa.ForeignKey("ratings.id"), unique=True)
