"""The demo clinic: clients, areas, visits, photos, consents and accounts from sample_images/.

Owns the demo data set and the demo accounts. The demo passwords below exist only
here (and are printed by ``vein-tracker seed-demo``); a real installation gets its
first admin from :meth:`Repository.bootstrap_admin` instead.

``sample_images/manifest.json`` lists the photos. Accepted shapes: a list of
entries, or an object with the list under ``"images"``, ``"photos"`` or ``"files"``.
Each entry::

    {"file": "c01_left-calf-posterior_s1.jpg", "client": "c01",
     "area": "left-calf-posterior", "session": 1, "visit_date": "2026-01-12",
     "px_per_mm": 10.0, "sha256": "..."}

``area`` may also be an object ``{"side": ..., "region": ..., "view": ...}``; if a
field is missing it is read from the file name (``<client>_<side>-<region>-<view>_s<N>``).
``date`` is accepted for ``visit_date``; ``sha256``, when given, is checked. Regions
outside thigh/knee/calf (``ankle``...) are recorded as the nearest one with the original
label in the area's note.

Analyses: the seed calls the ``analyse`` callback (the CLI passes one built on
``vein_tracker.services.analyze_pair``, the app's own cached path, when importable)
for every (baseline, follow-up) pair, so the client portal and the progress charts
have numbers at once. That is the slow part (about 3 CPU-seconds per 1600x1200
pair; 16 pairs in the shipped demo). ``seed-demo --no-analyses`` seeds in a few
seconds instead and leaves the pairs to the app, which computes (and caches by photo
hashes, parameters and algorithm version) each one the first time a review page
opens it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from ..errors import VeinTrackerError
from .info import REGIONS, SIDES, SYSTEM_ACTOR, VIEWS, Screening
from .repository import Repository

#: Demo accounts: (username, password, role). Demo passwords live only here.
DEMO_ACCOUNTS: Final = (
    ("demo.admin", "demo-admin-pass", "admin"),
    ("demo.aesthetician", "demo-aesth-pass", "aesthetician"),
    ("demo.marketing", "demo-market-pass", "marketing"),
    ("demo.client", "demo-client-pass", "client"),
)
_DEMO_NAMES: Final = (
    "Alice Martin",
    "Beatriz Santos",
    "Chloe Nguyen",
    "Dana Kowalski",
    "Emma Okafor",
    "Fatima Haddad",
    "Grace Lindqvist",
    "Hana Sato",
)
_FILE_RE = re.compile(
    r"^(?P<client>[A-Za-z0-9]+)_(?P<side>left|right)-(?P<region>thigh|knee|calf|ankle|shin|hip)-"
    r"(?P<view>anterior|posterior|medial|lateral)_s(?P<session>\d+)",
)
SEED_MARK: Final = "demo_seeded_at"
#: Body regions of demo photos outside the records' thigh/knee/calf, mapped to the nearest.
_REGION_ALIASES: Final = {"ankle": "calf", "shin": "calf", "hip": "thigh"}


@dataclass(frozen=True)
class SeedEntry:
    """One photo of the manifest, normalised."""

    path: Path
    client: str
    side: str
    region: str
    view: str
    session: int
    day: date
    px_per_mm: float | None
    note: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class SeedResult:
    """What :func:`seed_demo` created (or why it did nothing)."""

    skipped: bool
    reason: str | None
    clients: int
    areas: int
    visits: int
    photos: int
    consents: int
    analyses: int
    accounts: tuple[tuple[str, str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "reason": self.reason,
            "clients": self.clients,
            "areas": self.areas,
            "visits": self.visits,
            "photos": self.photos,
            "consents": self.consents,
            "analyses": self.analyses,
            "accounts": [list(a) for a in self.accounts],
        }


def read_manifest(images_dir: Path) -> list[SeedEntry]:
    """Parse ``images_dir/manifest.json`` into entries sorted by client, date, session.

    Raises
    ------
    VeinTrackerError
        No manifest, or an entry that cannot be understood (the message names it).
    """
    path = images_dir / "manifest.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise VeinTrackerError(
            f"No demo photos: {path} is missing (run from the project folder, or pass --images)."
        ) from exc
    except (OSError, ValueError) as exc:
        raise VeinTrackerError(f"{path.name} cannot be read as JSON ({exc}).") from exc
    items: Any = raw
    if isinstance(raw, Mapping):
        for key in ("images", "photos", "files", "entries"):
            if key in raw:
                items = raw[key]
                break
    if not isinstance(items, list):
        raise VeinTrackerError(f"{path.name} must hold a list of photo entries.")
    entries = [_entry(images_dir, item, i) for i, item in enumerate(items)]
    entries.sort(key=lambda e: (e.client, e.day, e.session, e.side, e.region, e.view))
    return entries


def _entry(images_dir: Path, item: Any, index: int) -> SeedEntry:
    if not isinstance(item, Mapping):
        raise VeinTrackerError(f"manifest entry {index} is not an object")
    name = item.get("file") or item.get("filename") or item.get("path")
    if not isinstance(name, str):
        raise VeinTrackerError(f"manifest entry {index} has no 'file'")
    match = _FILE_RE.match(Path(name).name)
    parsed = match.groupdict() if match else {}
    area = item.get("area")
    side = region = view = None
    if isinstance(area, Mapping):
        side, region, view = area.get("side"), area.get("region"), area.get("view")
    elif isinstance(area, str):
        parts = area.replace("_", "-").split("-")
        if len(parts) == 3:
            side, region, view = parts
    side = item.get("side") or side or parsed.get("side")
    region = item.get("region") or region or parsed.get("region")
    view = item.get("view") or view or parsed.get("view")
    note = None
    if region in _REGION_ALIASES:
        # The records know thigh, knee and calf only; keep the photo's own label as a note.
        note = f"{region} (recorded as {_REGION_ALIASES[region]})"
        region = _REGION_ALIASES[region]
    if side not in SIDES or region not in REGIONS or view not in VIEWS:
        raise VeinTrackerError(f"manifest entry {index} ({name}): cannot tell the area")
    client = str(item.get("client") or parsed.get("client") or "")
    session = item.get("session") or parsed.get("session")
    if not client or session is None:
        raise VeinTrackerError(f"manifest entry {index} ({name}): client or session missing")
    raw_day = item.get("date") or item.get("visit_date")
    try:
        day = date.fromisoformat(str(raw_day)[:10]) if raw_day else None
    except ValueError as exc:
        raise VeinTrackerError(f"manifest entry {index} ({name}): bad date {raw_day!r}") from exc
    if day is None:
        day = date(2026, 1, 5) + timedelta(weeks=3 * (int(session) - 1))
    px = item.get("px_per_mm")
    sha = item.get("sha256")
    return SeedEntry(
        path=images_dir / name,
        client=client,
        side=str(side),
        region=str(region),
        view=str(view),
        session=int(session),
        day=day,
        px_per_mm=float(px) if isinstance(px, int | float) and px > 0 else None,
        note=note,
        sha256=sha if isinstance(sha, str) else None,
    )


def seed_demo(
    repo: Repository,
    images_dir: Path,
    *,
    if_empty: bool = False,
    analyse: Callable[[Repository, int, int], bool] | None = None,
    echo: Callable[[str], None] = print,
) -> SeedResult:
    """Create the demo clinic from ``images_dir`` (see the module docstring).

    Parameters
    ----------
    if_empty : bool
        Do nothing when the database already holds clients (for ``make run``).
    analyse : callable, optional
        ``analyse(repo, baseline_photo_id, followup_photo_id) -> bool`` stores an
        analysis of the pair and returns True, or False if it could not.
    echo : callable
        Progress lines.

    Returns
    -------
    SeedResult
    """
    actor = SYSTEM_ACTOR
    if if_empty and repo.search_clients(actor, limit=1):
        return SeedResult(True, "the database already holds clients", 0, 0, 0, 0, 0, 0, ())
    entries = read_manifest(images_dir)
    if not entries:
        raise VeinTrackerError("The demo manifest lists no photos.")
    clients, n_consents = _seed_clients(repo, _first_days(entries))
    photos = _seed_photos(repo, entries, clients)
    accounts = _seed_accounts(repo, clients[sorted(clients)[0]])
    n_analyses = 0
    if analyse is not None:
        n_analyses = _analyse_pairs(repo, photos.photo_ids, analyse, echo)
    repo.set_setting(actor, SEED_MARK, datetime.now(UTC).isoformat())
    repo.audit_system("seed", detail={"clients": len(clients), "photos": photos.count})
    return SeedResult(
        False,
        None,
        len(clients),
        photos.areas,
        photos.visits,
        photos.count,
        n_consents,
        n_analyses,
        tuple(accounts),
    )


def _first_days(entries: Iterable[SeedEntry]) -> dict[str, date]:
    """Each demo client's first visit day."""
    first_day: dict[str, date] = {}
    for e in entries:
        first_day.setdefault(e.client, e.day)
        first_day[e.client] = min(first_day[e.client], e.day)
    return first_day


def _seed_clients(repo: Repository, first_day: Mapping[str, date]) -> tuple[dict[str, int], int]:
    """One record per demo client, in key order: (client ids by key, consents recorded)."""
    clients: dict[str, int] = {}
    n_consents = 0
    for idx, key in enumerate(sorted(first_day)):
        clients[key], consents = _seed_client(repo, idx, first_day[key])
        n_consents += consents
    return clients, n_consents


def _seed_client(repo: Repository, idx: int, signed: date) -> tuple[int, int]:
    """The ``idx``-th demo client with a screening and consents: (its id, consents recorded)."""
    actor = SYSTEM_ACTOR
    name = _DEMO_NAMES[idx % len(_DEMO_NAMES)]
    if idx >= len(_DEMO_NAMES):
        name = f"{name} {idx // len(_DEMO_NAMES) + 1}"
    c = repo.create_client(
        actor,
        name=name,
        date_of_birth=date(1975 + (idx * 7) % 25, 1 + idx % 12, 1 + (idx * 5) % 28),
        email=f"{name.split()[0].lower()}@example.org",
        phone=f"+1 555 010{idx:02d}",
        fitzpatrick=1 + idx % 6,
        notes="Demo client (synthetic photos).",
    )
    positive = idx == 1
    repo.record_screening(
        actor,
        c.id,
        Screening(corticosteroids=positive),
        screened_at=_at(signed),
        override_reason="Topical hydrocortisone only; physician cleared." if positive else None,
    )
    repo.record_consent(actor, c.id, kind="treatment_photography", signed_at=signed)
    n_consents = 1
    # A spread of marketing consent histories: valid, revoked, expired, none.
    kind = idx % 4
    if kind in (0, 1, 2):
        mc = repo.record_consent(
            actor,
            c.id,
            kind="marketing",
            scopes=("website", "social", "print") if kind == 0 else ("website",),
            signed_at=signed,
            expires_at=(signed + timedelta(days=30)) if kind == 2 else None,
        )
        n_consents += 1
        if kind == 1:
            repo.revoke_consent(actor, mc.id, reason="Client changed her mind (demo).")
    return c.id, n_consents


@dataclass(frozen=True)
class _SeededPhotos:
    areas: int
    visits: int
    count: int
    photo_ids: dict[int, list[int]]  # area id -> photo ids in manifest order


def _seed_photos(
    repo: Repository, entries: Iterable[SeedEntry], clients: Mapping[str, int]
) -> _SeededPhotos:
    """Areas, visits and photos of the manifest, each area and visit created once."""
    actor = SYSTEM_ACTOR
    areas: dict[tuple[str, str, str, str, str | None], int] = {}
    visits: dict[tuple[str, int], int] = {}
    photo_ids: dict[int, list[int]] = {}
    n_photos = 0
    sclerosants = ("sodium_tetradecyl_sulfate", "hypertonic_saline")
    for e in entries:
        akey = (e.client, e.side, e.region, e.view, e.note)
        if akey not in areas:
            areas[akey] = repo.create_area(
                actor, clients[e.client], side=e.side, view=e.view, region=e.region, note=e.note
            ).id
        vkey = (e.client, e.session)
        if vkey not in visits:
            v = repo.create_visit(
                actor,
                clients[e.client],
                visit_date=e.day,
                sclerosant=sclerosants[e.session % 2],
                concentration_pct=0.2 if e.session % 2 == 0 else 11.7,
                volume_ml=round(1.0 + 0.5 * e.session, 1),
                notes=f"Demo session {e.session}.",
            )
            visits[vkey] = v.id
        p = repo.add_photo(
            actor,
            areas[akey],
            visits[vkey],
            _read_demo_photo(e),
            filename=e.path.name,
            px_per_mm=e.px_per_mm,
        )
        photo_ids.setdefault(areas[akey], []).append(p.id)
        n_photos += 1
    return _SeededPhotos(len(areas), len(visits), n_photos, photo_ids)


def _read_demo_photo(e: SeedEntry) -> bytes:
    """The photo's bytes, checked against the manifest's sha256 when it gives one."""
    try:
        data = e.path.read_bytes()
    except OSError as exc:
        raise VeinTrackerError(f"Demo photo {e.path.name} cannot be read ({exc}).") from exc
    if e.sha256 is not None and hashlib.sha256(data).hexdigest() != e.sha256:
        raise VeinTrackerError(
            f"Demo photo {e.path.name} does not match its sha256 in the manifest: "
            "regenerate sample_images."
        )
    return data


def _seed_accounts(repo: Repository, first_client: int) -> list[tuple[str, str, str]]:
    """The demo accounts; the client account sees the first demo client."""
    accounts = []
    for username, password, role in DEMO_ACCOUNTS:
        repo.create_user(
            SYSTEM_ACTOR,
            username,
            password,
            role,
            client_id=first_client if role == "client" else None,
        )
        accounts.append((username, password, role))
    return accounts


def _analyse_pairs(
    repo: Repository,
    photo_ids: Mapping[int, list[int]],
    analyse: Callable[[Repository, int, int], bool],
    echo: Callable[[str], None],
) -> int:
    """Analyse each area's (first, later) photo pairs; returns how many were stored."""
    n_analyses = 0
    pairs = [(ids[0], f) for ids in photo_ids.values() for f in ids[1:]]
    for i, (b, f) in enumerate(pairs, 1):
        echo(f"  analysing pair {i}/{len(pairs)}")
        if analyse(repo, b, f):
            n_analyses += 1
    return n_analyses


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC)


def pairs_of(photo_ids: Iterable[int]) -> list[tuple[int, int]]:
    """(first, each later) pairs of an area's photo ids in visit order."""
    ids = list(photo_ids)
    return [(ids[0], f) for f in ids[1:]]
