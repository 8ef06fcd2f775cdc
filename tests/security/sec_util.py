"""Helpers of the security suites: a small clinic with every role, built through the repository.

``sec_clinic`` holds an admin, an aesthetician, a marketing account, two clients (A with
a website/social marketing consent, B without) with their own accounts, and a
deactivated admin account; A has a baseline, a follow-up and a saved analysis, B one
photo. Password hashing uses the cheap test hasher except where a test says otherwise.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import sqlalchemy as sa

from vein_tracker.config import Settings, get_settings
from vein_tracker.io import encode_image
from vein_tracker.storage import (
    SYSTEM_ACTOR,
    Actor,
    Passwords,
    Repository,
    Screening,
    fast_test_hasher,
)
from vein_tracker.storage.info import utcnow

ROOT = Path(__file__).resolve().parents[2]

FAST = Passwords(fast_test_hasher())
PASSWORD = "correct horse battery"


def photo_bytes(seed: int, *, shape: tuple[int, int] = (300, 400)) -> bytes:
    """A small, unique JPEG (smooth colour field plus seeded noise)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([180 + 30 * np.sin(xx / 40), 140 + 20 * np.cos(yy / 30), 120 + 0 * xx], -1)
    img = np.clip(base + rng.normal(0, 12, size=(h, w, 3)), 0, 255).astype(np.uint8)
    return encode_image(img, quality=90)


def make_settings(data_dir: Path, **changes: object) -> Settings:
    """Settings for a SQLite clinic in ``data_dir`` (no encryption unless given)."""
    base = dataclasses.replace(
        get_settings(),
        data_dir=data_dir,
        db_url=f"sqlite:///{data_dir / 'vein_tracker.db'}",
        encryption_key=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def make_user(repo: Repository, username: str, role: str, client_id: int | None = None) -> Actor:
    u = repo.create_user(SYSTEM_ACTOR, username, PASSWORD, role, client_id=client_id)
    return Actor(user_id=u.id, username=u.username, role=u.role, client_id=u.client_id)


def build_clinic(repo: Repository) -> SimpleNamespace:
    """The clinic described in the module docstring; returns its actors and records."""
    admin = make_user(repo, "alice.admin", "admin")
    aest = make_user(repo, "erin.aesth", "aesthetician")
    mkt = make_user(repo, "mark.marketing", "marketing")
    gone = make_user(repo, "olga.former", "admin")
    repo.update_user(SYSTEM_ACTOR, gone.user_id, active=False)
    start = utcnow().date() - timedelta(weeks=6)
    a = repo.create_client(aest, name="Ann Example")
    b = repo.create_client(aest, name="Bea Other")
    for c in (a, b):
        repo.record_screening(aest, c.id, Screening())
        repo.record_consent(
            aest, c.id, kind="treatment_photography", signed_at=start - timedelta(days=1)
        )
    repo.record_consent(aest, a.id, kind="marketing", scopes=("website", "social"), signed_at=start)
    client_a = make_user(repo, "ann.client", "client", a.id)
    client_b = make_user(repo, "bea.client", "client", b.id)
    area_a = repo.create_area(aest, a.id, side="left", view="posterior", region="calf")
    area_b = repo.create_area(aest, b.id, side="right", view="anterior", region="thigh")
    v1 = repo.create_visit(aest, a.id, visit_date=start, area_ids=[area_a.id])
    v2 = repo.create_visit(aest, a.id, visit_date=start + timedelta(weeks=4))
    vb = repo.create_visit(aest, b.id, visit_date=start)
    vb2 = repo.create_visit(aest, b.id, visit_date=start + timedelta(weeks=4))
    p1 = repo.add_photo(aest, area_a.id, v1.id, photo_bytes(1), filename="a1.jpg", px_per_mm=8.0)
    p2 = repo.add_photo(aest, area_a.id, v2.id, photo_bytes(2), filename="a2.jpg", px_per_mm=8.0)
    pb = repo.add_photo(aest, area_b.id, vb.id, photo_bytes(3), filename="b1.jpg")
    pb2 = repo.add_photo(aest, area_b.id, vb2.id, photo_bytes(4), filename="b2.jpg")
    analysis = repo.save_analysis(
        aest,
        p1.id,
        p2.id,
        params={"sensitivity": 0.5},
        result={"improvement_pct": 80.0, "meets_target": True},
        masks={"region": np.ones((300, 400), bool)},
    )
    analysis_b = repo.save_analysis(
        aest,
        pb.id,
        pb2.id,
        params={"sensitivity": 0.5},
        result={"improvement_pct": 10.0, "meets_target": False},
        masks={"region": np.ones((300, 400), bool)},
    )
    return SimpleNamespace(**locals())


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
