"""The one clinic of the records tests, and the one way a test opens a repository.

:func:`build_clinic` makes, through the repository, an admin, an aesthetician, a
marketing account, two clients (A with a website+social marketing consent, B without)
with their own accounts and, with ``extended``, a deactivated admin account. A has a
baseline, a follow-up and a saved analysis of one area; B a baseline of another area
(with ``extended`` also a follow-up and a saved analysis).

:class:`ClinicFactory` builds each variant once per test session (a template) and hands
out copies as a :class:`Clinic`: the records plus an open repository on the copy. The
``clinic`` fixture of tests/conftest.py hands out this clinic; modules that share one
clinic across their tests ask the factory for a :meth:`ClinicFactory.private` copy.

A module whose tests need other records (a report's shifted follow-ups, a batch of
analyses from an older algorithm) gives the factory its own builder:
:meth:`ClinicFactory.fresh_built` builds that clinic once per session in the same way and
hands out copies as a :class:`BuiltClinic` (the builder's records, an open repository).
A test that starts from no records at all opens one with :func:`open_test_repo` and makes
its accounts with :func:`make_user`. Password hashing uses the cheap test hasher
(:data:`FAST`); production uses argon2-cffi's RFC 9106 defaults.
"""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import sqlalchemy as sa

from vein_tracker.config import Settings, get_settings
from vein_tracker.io import encode_image
from vein_tracker.storage import (
    SYSTEM_ACTOR,
    Actor,
    AnalysisInfo,
    AreaInfo,
    ClientInfo,
    ConsentInfo,
    Passwords,
    PhotoInfo,
    Repository,
    Screening,
    VisitInfo,
    fast_test_hasher,
    open_repository,
)
from vein_tracker.storage.info import utcnow
from vein_tracker.storage.models import Base
from vein_tracker.storage.repo.base import Retry

#: Test-only cheap hashing.
FAST = Passwords(fast_test_hasher())
PASSWORD = "correct horse battery"
#: Where a test's database is busy, it retries at once: the waits are the production
#: schedule's business (tested on their own), not every test's.
NO_WAIT = Retry(sleep=lambda _s: None)


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


def open_test_repo(where: Path | Settings, *, retry: Retry | None = None) -> Repository:
    """A repository with the cheap test hasher: on ``where``'s settings, or on a SQLite
    clinic in the data folder ``where`` (:func:`make_settings`)."""
    settings = where if isinstance(where, Settings) else make_settings(where)
    return open_repository(settings, passwords=FAST, retry=retry)


def make_user(repo: Repository, username: str, role: str, client_id: int | None = None) -> Actor:
    """Create an account (by the local operator) and return it as an :class:`Actor`."""
    u = repo.create_user(SYSTEM_ACTOR, username, PASSWORD, role, client_id=client_id)
    return Actor(user_id=u.id, username=u.username, role=u.role, client_id=u.client_id)


@dataclass(frozen=True, kw_only=True)
class ClinicRecords:
    """The accounts and records :func:`build_clinic` made (ids are the database's)."""

    system: Actor
    admin: Actor
    aest: Actor
    mkt: Actor
    client_a: Actor
    client_b: Actor
    a: ClientInfo
    b: ClientInfo
    area_a: AreaInfo
    area_b: AreaInfo
    v1: VisitInfo
    v2: VisitInfo
    vb: VisitInfo
    p1: PhotoInfo
    p2: PhotoInfo
    pb: PhotoInfo
    marketing: ConsentInfo
    analysis: AnalysisInfo
    start: date
    #: Only in the ``extended`` clinic: a deactivated admin and B's follow-up.
    gone: Actor | None = None
    vb2: VisitInfo | None = None
    pb2: PhotoInfo | None = None
    analysis_b: AnalysisInfo | None = None


@dataclass(frozen=True, kw_only=True)
class Clinic(ClinicRecords):
    """A copy of the clinic: its records, an open repository, its settings and folder."""

    repo: Repository
    settings: Settings
    data_dir: Path


R = TypeVar("R")


@dataclass(frozen=True, kw_only=True)
class BuiltClinic(Generic[R]):
    """A copy of a clinic a test module builds itself (:meth:`ClinicFactory.fresh_built`):
    what its builder returned, an open repository, its settings and folder."""

    records: R
    repo: Repository
    settings: Settings
    data_dir: Path


def _save_analysis(
    repo: Repository, actor: Actor, before: Any, after: Any, pct: float, *, meets_target: bool
) -> AnalysisInfo:
    return repo.save_analysis(
        actor,
        before.id,
        after.id,
        params={"sensitivity": 0.5},
        result={"improvement_pct": pct, "meets_target": meets_target},
        masks={"region": np.ones((300, 400), bool)},
    )


def build_clinic(repo: Repository, *, extended: bool = False) -> ClinicRecords:
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
    return ClinicRecords(
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


# ---------------------------------------------------------------------- the factory


@dataclass(frozen=True)
class _Template:
    folder: Path  # the photo store (and for SQLite the database) as built
    db_url: str  # PostgreSQL: the database every fresh copy resets
    records: Any  # what the builder returned
    rows: dict[str, list[dict[str, Any]]]  # PostgreSQL: every table's rows as built


class ClinicFactory:
    """Builds each clinic once on one backend, then hands out copies.

    Parameters
    ----------
    root : Path
        A folder of this test session for the templates.
    server_url : str, optional
        A PostgreSQL server's URL (a database on it per clinic); None for SQLite.
    """

    def __init__(self, root: Path, server_url: str | None = None) -> None:
        self.root = root
        self.server_url = server_url
        self.backend = "postgres" if server_url else "sqlite"
        self._templates: dict[Hashable, _Template] = {}
        self._private_dbs: list[str] = []

    def fresh(self, data_dir: Path, *, extended: bool = False) -> Clinic:
        """A copy of the clinic in ``data_dir`` (empty) for one test.

        On PostgreSQL every fresh copy shares one database, reset to the clinic's rows
        here (a new database per test costs seconds), so one fresh copy may be open at a
        time; use :meth:`private` for a copy that lives beside others.
        """
        t = self._clinic_template(extended)
        if self.server_url is not None:
            _reset_pg(t.db_url, t.rows)
        return self._clinic(t, data_dir, t.db_url)

    def private(self, data_dir: Path, *, extended: bool = False) -> Clinic:
        """A copy of the clinic in ``data_dir`` with a database of its own."""
        t = self._clinic_template(extended)
        url = t.db_url
        if self.server_url is not None:
            _reset_pg(t.db_url, t.rows)
            url = create_pg_db(self.server_url, template=t.db_url)
            self._private_dbs.append(url)
        return self._clinic(t, data_dir, url)

    def fresh_built(
        self, build: Callable[[Repository], R], data_dir: Path, **settings: object
    ) -> BuiltClinic[R]:
        """A copy in ``data_dir`` (empty) of the clinic ``build`` makes on an empty repository.

        ``build`` runs once per session and backend, the first time it is asked for: it is
        the template's key, so pass the same module-level function every time. Its records
        must not depend on the folder. ``settings`` (e.g. ``clinic_name``) are changes to
        the copy's :class:`Settings`. On PostgreSQL, one fresh copy of a given builder may
        be open at a time (as with :meth:`fresh`).
        """
        name = getattr(build, "__name__", "built")
        t = self._template(build, build, name)
        if self.server_url is not None:
            _reset_pg(t.db_url, t.rows)
        repo, cfg = self._copy(t, data_dir, t.db_url, **settings)
        return BuiltClinic(records=t.records, repo=repo, settings=cfg, data_dir=data_dir)

    def close(self) -> None:
        """Drop the PostgreSQL databases this factory made."""
        if self.server_url is None:
            return
        for url in [*self._private_dbs, *(t.db_url for t in self._templates.values())]:
            drop_pg_db(self.server_url, url)

    def _clinic_template(self, extended: bool) -> _Template:
        return self._template(
            ("clinic", extended),
            lambda repo: build_clinic(repo, extended=extended),
            "extended" if extended else "plain",
        )

    def _template(self, key: Hashable, build: Callable[[Repository], Any], name: str) -> _Template:
        if key not in self._templates:
            folder = self.root / f"template-{len(self._templates)}-{name}"
            folder.mkdir(parents=True)
            url = create_pg_db(self.server_url) if self.server_url else None
            settings = make_settings(folder, **({"db_url": url} if url else {}))
            repo = open_test_repo(settings)
            try:
                records = build(repo)
                rows = _snapshot_rows(repo.engine) if url else {}
            finally:
                repo.close()
            self._templates[key] = _Template(folder, settings.db_url, records, rows)
        return self._templates[key]

    def _copy(
        self, t: _Template, data_dir: Path, db_url: str, **changes: object
    ) -> tuple[Repository, Settings]:
        shutil.copytree(t.folder, data_dir, dirs_exist_ok=True)
        if self.server_url:
            changes["db_url"] = db_url
        settings = make_settings(data_dir, **changes)
        return open_test_repo(settings, retry=NO_WAIT), settings

    def _clinic(self, t: _Template, data_dir: Path, db_url: str) -> Clinic:
        repo, settings = self._copy(t, data_dir, db_url)
        fields = {f.name: getattr(t.records, f.name) for f in dataclasses.fields(t.records)}
        return Clinic(**fields, repo=repo, settings=settings, data_dir=data_dir)


def _snapshot_rows(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        return {
            t.name: [dict(r._mapping) for r in conn.execute(t.select())]
            for t in Base.metadata.sorted_tables
        }


def _reset_pg(url: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Put a PostgreSQL clinic database back to the saved rows."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            # Replica mode skips triggers (the audit log's append-only guard and FK checks)
            # for this reset only; the repository itself never does this.
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            # DELETE, not TRUNCATE: TRUNCATE swaps files and costs an fsync per table.
            for t in reversed(Base.metadata.sorted_tables):
                conn.execute(t.delete())
            for t in Base.metadata.sorted_tables:
                if rows.get(t.name):
                    conn.execute(t.insert(), rows[t.name])
                if "id" in t.c:
                    conn.execute(
                        sa.text(
                            f"SELECT setval(pg_get_serial_sequence('{t.name}', 'id'), "
                            f"COALESCE((SELECT MAX(id) FROM {t.name}), 0) + 1, false)"
                        )
                    )
    finally:
        engine.dispose()


def create_pg_db(server_url: str, *, template: str | None = None) -> str:
    """A new, empty database on ``server_url`` (a copy of ``template``'s when given); its URL."""
    name = f"c_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            extra = f' TEMPLATE "{template.rpartition("/")[2]}"' if template else ""
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{extra}'))
    finally:
        admin.dispose()
    return f"{server_url.rpartition('/')[0]}/{name}"


def drop_pg_db(server_url: str, url: str) -> None:
    """Drop the database of ``url`` on ``server_url`` (sessions still on it are ended)."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = url.rpartition("/")[2]
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
