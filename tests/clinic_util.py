"""A small clinic built through the repository, shared by the storage and security suites.

:func:`build_clinic` holds an admin, an aesthetician, a marketing account, two clients
(A with a website+social marketing consent, B without) with their own accounts and,
with ``extended``, a deactivated admin account. A has a baseline, a follow-up and a
saved analysis of one area; B a baseline of another area (with ``extended`` also a
follow-up and a saved analysis). Password hashing uses the cheap test hasher
(:data:`FAST`); production uses argon2-cffi's RFC 9106 defaults.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

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

#: Test-only cheap hashing.
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


def _save_analysis(
    repo: Repository, actor: Actor, before: Any, after: Any, pct: float, *, meets_target: bool
) -> Any:
    return repo.save_analysis(
        actor,
        before.id,
        after.id,
        params={"sensitivity": 0.5},
        result={"improvement_pct": pct, "meets_target": meets_target},
        masks={"region": np.ones((300, 400), bool)},
    )


def build_clinic(repo: Repository, *, extended: bool = False) -> SimpleNamespace:
    """The clinic described in the module docstring; returns its actors and records.

    ``extended`` (the security suites) adds a deactivated admin account (``gone``) and B's
    follow-up visit, photo and saved analysis (``vb2``, ``pb2``, ``analysis_b``); without
    it (the storage suite, whose tests count users and records) the clinic has neither.
    """
    admin = make_user(repo, "alice.admin", "admin")
    aest = make_user(repo, "erin.aesth", "aesthetician")
    mkt = make_user(repo, "mark.marketing", "marketing")
    extra: dict[str, Any] = {}
    if extended:
        extra["gone"] = gone = make_user(repo, "olga.former", "admin")
        repo.update_user(SYSTEM_ACTOR, gone.user_id, active=False)
    start = utcnow().date() - timedelta(weeks=6)
    a = repo.create_client(aest, name="Ann Example", date_of_birth=date(1980, 5, 1))
    b = repo.create_client(aest, name="Bea Other", email="bea@example.org")
    for c in (a, b):
        repo.record_screening(aest, c.id, Screening())
        repo.record_consent(
            aest, c.id, kind="treatment_photography", signed_at=start - timedelta(days=1)
        )
    marketing = repo.record_consent(
        aest, a.id, kind="marketing", scopes=("website", "social"), signed_at=start
    )
    client_a = make_user(repo, "ann.client", "client", a.id)
    client_b = make_user(repo, "bea.client", "client", b.id)
    area_a = repo.create_area(aest, a.id, side="left", view="posterior", region="calf")
    area_b = repo.create_area(aest, b.id, side="right", view="anterior", region="thigh")
    v1 = repo.create_visit(aest, a.id, visit_date=start, area_ids=[area_a.id])
    v2 = repo.create_visit(aest, a.id, visit_date=start + timedelta(weeks=4))
    vb = repo.create_visit(aest, b.id, visit_date=start)
    if extended:
        extra["vb2"] = vb2 = repo.create_visit(aest, b.id, visit_date=start + timedelta(weeks=4))
    p1 = repo.add_photo(aest, area_a.id, v1.id, photo_bytes(1), filename="a1.jpg", px_per_mm=8.0)
    p2 = repo.add_photo(aest, area_a.id, v2.id, photo_bytes(2), filename="a2.jpg", px_per_mm=8.0)
    pb = repo.add_photo(aest, area_b.id, vb.id, photo_bytes(3), filename="b1.jpg")
    if extended:
        extra["pb2"] = pb2 = repo.add_photo(
            aest, area_b.id, vb2.id, photo_bytes(4), filename="b2.jpg"
        )
    analysis = _save_analysis(repo, aest, p1, p2, 80.0, meets_target=True)
    if extended:
        extra["analysis_b"] = _save_analysis(repo, aest, pb, pb2, 10.0, meets_target=False)
    return SimpleNamespace(
        system=SYSTEM_ACTOR,
        admin=admin,
        aest=aest,
        mkt=mkt,
        client_a=client_a,
        client_b=client_b,
        a=a,
        b=b,
        area_a=area_a,
        area_b=area_b,
        v1=v1,
        v2=v2,
        vb=vb,
        p1=p1,
        p2=p2,
        pb=pb,
        marketing=marketing,
        analysis=analysis,
        start=start,
        **extra,
    )
