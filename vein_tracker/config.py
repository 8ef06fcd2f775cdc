"""Runtime configuration read from environment variables.

Owns the names and defaults of every ``VEIN_TRACKER_*`` variable; nothing else
in the package reads ``os.environ`` for them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_PIXELS = 50_000_000
MIN_SIDE_PX = 256


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    """A snapshot of the configuration.

    Attributes
    ----------
    data_dir : Path
        Root of the photo store and the default SQLite database (``VEIN_TRACKER_DATA``).
    db_url : str
        SQLAlchemy URL (``VEIN_TRACKER_DB_URL``); default SQLite file in ``data_dir``.
    max_pixels : int
        Largest photo accepted, in pixels (``VEIN_TRACKER_MAX_PIXELS``).
    encryption_key : str or None
        Base64 AES-256 key for photos at rest (``VEIN_TRACKER_ENCRYPTION_KEY``).
    idle_timeout_min : float
        Minutes of inactivity before a session ends (``VEIN_TRACKER_IDLE_TIMEOUT_MIN``).
    target_pct : float
        Clinic's improvement target in percent (``VEIN_TRACKER_TARGET_PCT``).
    clinic_name : str
        Shown on reports and watermarks (``VEIN_TRACKER_CLINIC_NAME``).
    store_url : str or None
        Where photos live (``VEIN_TRACKER_STORE_URL``): ``s3://bucket/prefix`` for an
        S3-compatible object store (credentials, region and endpoint from the standard
        ``AWS_*`` variables), None for the local store in ``data_dir/photos``.
    """

    data_dir: Path
    db_url: str
    max_pixels: int
    encryption_key: str | None
    idle_timeout_min: float
    target_pct: float
    clinic_name: str
    store_url: str | None = None


def get_settings() -> Settings:
    """Read the configuration from the environment now (not cached)."""
    data_dir = Path(os.environ.get("VEIN_TRACKER_DATA", "data")).expanduser()
    db_url = os.environ.get("VEIN_TRACKER_DB_URL") or f"sqlite:///{data_dir / 'vein_tracker.db'}"
    return Settings(
        data_dir=data_dir,
        db_url=db_url,
        max_pixels=_int_env("VEIN_TRACKER_MAX_PIXELS", DEFAULT_MAX_PIXELS),
        encryption_key=os.environ.get("VEIN_TRACKER_ENCRYPTION_KEY") or None,
        idle_timeout_min=_float_env("VEIN_TRACKER_IDLE_TIMEOUT_MIN", 30.0),
        target_pct=_float_env("VEIN_TRACKER_TARGET_PCT", 75.0),
        clinic_name=os.environ.get("VEIN_TRACKER_CLINIC_NAME", "Demo Vein Clinic"),
        store_url=(os.environ.get("VEIN_TRACKER_STORE_URL") or "").strip() or None,
    )
