"""Issue 24 item 6: nothing in a marketing export links to the clinic's records without the key.

A clinic with two consenting clients (one with two follow-ups of one area: two pairs of
one area) exports; then every field of the ZIP (entry names, manifest cells, the images'
metadata, the ZIP's own comment and dates) is compared with every value stored in the
clinic's records (every column of every table, the JSON of the audit log flattened to
its leaves, the original photo files) and with their SHA-256, SHA-1, MD5 and BLAKE2
digests (whole and the usual 8-32 digit prefixes). Only the two private tables of the
export key and its mapping are left out: they are the key. Then, with the key, the clinic
does trace each pair back.

The manifest's other cells are public vocabulary or measurements (the channel, the body
site, weeks, sessions, the figure, its grade, the algorithm's version): they are checked
to be exactly that, so no record number or date can hide in them.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import math
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from vein_tracker import ALGORITHM_VERSION
from vein_tracker import export as ex
from vein_tracker import synthetic as sy
from vein_tracker.config import get_settings
from vein_tracker.io import encode_image
from vein_tracker.storage import (
    CHANNELS,
    SYSTEM_ACTOR,
    Passwords,
    Screening,
    fast_test_hasher,
    open_repository,
)
from vein_tracker.storage.info import REGIONS, SIDES, VIEWS
from vein_tracker.storage.repo.export_keys import public_id
from vein_tracker.storage.repository import Repository

STAFF = SYSTEM_ACTOR
PASSWORD = "Anonymity-test-passw0rd"
#: The export's private key and mapping: what lets the clinic trace a pair back.
PRIVATE_TABLES = {"export_keys", "exported_pairs"}


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    cfg = dataclasses.replace(
        get_settings(),
        data_dir=tmp_path,
        db_url=f"sqlite:///{tmp_path / 'vt.db'}",
        encryption_key=None,
    )
    r = open_repository(cfg, passwords=Passwords(fast_test_hasher()))
    try:
        yield r
    finally:
        r.close()


def _photo(seed: int, *, followup: int) -> bytes:
    """The phantom's baseline (``followup`` 0) or a follow-up of the same leg (1, 2...)."""
    pair = sy.make_pair(seed, shape=(300, 400), capture=sy.identity_capture())
    if not followup:
        return encode_image(pair.baseline.rgb, quality=90)
    # A later visit of the same leg: the follow-up, other bytes (another JPEG quality).
    return encode_image(pair.followup.rgb, quality=90 - 3 * followup)


def _clinic(repo: Repository) -> dict[str, Any]:
    """Two consenting clients; Jane has two later visits of one area (two pairs)."""
    today = dt.date.today()
    out: dict[str, Any] = {"clients": {}}
    for name, email, seed, n_follow in (
        ("Jane Q. Doe", "jane.doe@example.org", 5, 2),
        ("Zoë Other", "zoe.other@example.org", 6, 1),
    ):
        c = repo.create_client(
            STAFF,
            name=name,
            email=email,
            phone="+44 20 7946 0958",
            date_of_birth=dt.date(1979, 3, 14),
            notes="prefers morning appointments",
            screening=Screening(),
        )
        repo.record_consent(
            STAFF, c.id, kind="treatment_photography", signed_at=today - timedelta(days=300)
        )
        repo.record_consent(
            STAFF,
            c.id,
            kind="marketing",
            scopes=["website", "social"],
            signed_at=today - timedelta(days=100),
            expires_at=today + timedelta(days=400),
            note="signed at the front desk",
        )
        area = repo.create_area(
            STAFF, c.id, side="left", view="posterior", region="calf", note="behind the knee"
        )
        visits = [
            repo.create_visit(
                STAFF,
                c.id,
                visit_date=today - timedelta(weeks=12 - 4 * k),
                sclerosant="polidocanol",
                concentration_pct=0.5,
                area_ids=[area.id],
                notes=f"session note {k}",
            )
            for k in range(n_follow + 1)
        ]
        base = repo.add_photo(
            STAFF, area.id, visits[0].id, _photo(seed, followup=0), filename=f"{name}-0.jpg"
        )
        for k, v in enumerate(visits[1:], start=1):
            follow = repo.add_photo(
                STAFF,
                area.id,
                v.id,
                _photo(seed, followup=k),
                filename=f"{name}-{k}.jpg",
            )
            repo.save_analysis(
                STAFF,
                base.id,
                follow.id,
                params={},
                result={"improvement_pct": 60.0 + 10 * k},
            )
        out["clients"][c.id] = area.id
    return out


def _leaves(value: Any) -> Iterator[Any]:
    """The scalar leaves of a JSON value (the audit log's details, capture reports...)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _leaves(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _as_texts(value: Any) -> set[str]:
    """Every way a stored value could be written into a file."""
    if value is None:
        return set()
    if isinstance(value, bytes):
        return {value.hex(), value.hex().upper()}
    if isinstance(value, dt.datetime):
        return {value.isoformat(), value.date().isoformat(), str(value), value.strftime("%Y%m%d")}
    if isinstance(value, dt.date):
        return {value.isoformat(), str(value), value.strftime("%Y%m%d")}
    if isinstance(value, str):
        text = value.strip()
        texts = {text}
        if text.startswith(("{", "[")):
            with contextlib.suppress(json.JSONDecodeError):
                texts |= {str(v) for v in _leaves(json.loads(text)) if v is not None}
        return texts
    if isinstance(value, dict | list):
        return {str(v) for v in _leaves(value) if v is not None}
    return {str(value)}


def _digests(data: bytes) -> set[str]:
    """Hex digests of ``data`` that someone could use as a handle, and their prefixes."""
    out = set()
    for name in ("sha256", "sha1", "md5", "blake2b", "sha512"):
        h = hashlib.new(name, data).hexdigest()
        out |= {h, h.upper()} | {h[:n] for n in (8, 12, 16, 20, 24, 32)}
    return out


def _records(repo: Repository) -> tuple[set[str], set[str]]:
    """Every stored value as text, and the digests of those values and of the photo files."""
    values: set[str] = set()
    with repo.engine.connect() as conn:
        meta = sa.MetaData()
        meta.reflect(conn)
        for table in meta.sorted_tables:
            if table.name in PRIVATE_TABLES:
                continue
            for row in conn.execute(sa.select(table)):
                for v in row:
                    values |= _as_texts(v)
    values.discard("")
    hashes: set[str] = set()
    for v in values:
        hashes |= _digests(v.encode("utf-8"))
    # The originals: their bytes as stored (the photo store's addresses are their SHA-256).
    for c in repo.list_clients(STAFF):
        for p in repo.list_photos(STAFF, client_id=c.id):
            hashes |= _digests(repo.get_photo_bytes(STAFF, p.id))
    return values, hashes


def _zip_fields(blob: bytes) -> tuple[list[str], list[dict[str, str]], list[bytes]]:
    """Every text field of the ZIP, the manifest rows, and the image files."""
    fields: list[str] = []
    images: list[bytes] = []
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert zf.comment == b""
        for info in zf.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.comment == b""
            assert info.extra == b""
            path = Path(info.filename)
            fields += [info.filename, path.name, path.stem]
            if info.filename != "manifest.csv":
                images.append(zf.read(info))
        text = zf.read("manifest.csv").decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        fields += list(row.keys()) + list(row.values())
    for data in images:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            fields += [str(v) for v in im.info.values() if isinstance(v, str | bytes)]
            fields += [str(v) for v in im.getexif().values()]
            fields += [str(seg) for _, seg in getattr(im, "applist", [])]
    return fields, rows, images


def _is_public(column: str, cell: str) -> bool:
    """A manifest cell that is vocabulary or a measurement, not something of a record."""
    if column == "channel":
        return cell in CHANNELS
    if column == "area":
        side, rest = cell.split(" ", 1)
        region, view = rest.split(", ")
        return side in SIDES and region in REGIONS and view in VIEWS
    if column in ("sessions",):
        return cell.isdigit() and int(cell) < 100
    if column in ("weeks", "improvement_pct"):
        return cell == "" or math.isfinite(float(cell))
    if column == "grade":
        return cell in ("", "0-25", "26-50", "51-75", "76-100")
    if column == "algorithm_version":
        return cell == ALGORITHM_VERSION
    return False


def test_nothing_in_the_zip_equals_or_hashes_to_a_record_without_the_key(
    repo: Repository,
) -> None:
    clinic = _clinic(repo)
    repo.create_user(STAFF, "mia", PASSWORD, "marketing")
    mia = repo.authenticate("mia", PASSWORD)
    pairs = ex.list_exportable_pairs(repo, mia, channel="website")
    assert len(pairs) == 3  # Jane's two pairs of one area, Zoë's one
    result = ex.run_export(repo, mia, pairs, channel="website")
    assert result.skipped == ()
    fields, rows, images = _zip_fields(result.zip_bytes)
    values, hashes = _records(repo)

    # Sanity: the records do hold the identifying values the ZIP must not carry.
    assert "Jane Q. Doe" in values
    assert any(p.baseline_sha256 in values for p in pairs)
    assert {a.anon_id for c in clinic["clients"] for a in repo.list_areas(STAFF, c)} <= values

    # 1. No field equals a stored value or a digest of one (or of an original photo).
    public = {(col, cell) for row in rows for col, cell in row.items() if _is_public(col, cell)}
    public_cells = {cell for _, cell in public} | set(ex.MANIFEST_COLUMNS)
    for field in fields:
        if field in public_cells or field in ("manifest.csv", "manifest", "images"):
            continue
        assert field not in values, f"ZIP field {field!r} is a stored value"
        assert field not in hashes, f"ZIP field {field!r} is a digest of a stored value"
        for token in (t for t in field.replace("/", " ").replace(".", " ").split() if t):
            assert token not in hashes, f"ZIP token {token!r} is a digest of a record"
    # Every manifest cell is either the pair's id (checked above) or public vocabulary.
    for row in rows:
        for col, cell in row.items():
            assert col in ("pair_id", "file") or (col, cell) in public, (col, cell)
    # The images' own bytes hash to nothing stored either (no digest of them is kept).
    for data in images:
        assert not _digests(data) & (hashes | values)

    # 2. A distinct id per pair, even for two pairs of one area.
    ids = [r["pair_id"] for r in rows]
    assert len(set(ids)) == 3

    # 3. With the key, the clinic traces each pair back; the ids are HMACs of the pair.
    with repo.engine.connect() as conn:
        (secret,) = conn.execute(sa.text("SELECT secret FROM export_keys")).one()
    by_pair = {public_id(bytes(secret), p.baseline_photo_id, p.followup_photo_id): p for p in pairs}
    assert set(ids) == set(by_pair)
    for pid in ids:
        (trace,) = repo.trace_public_id(STAFF, pid)
        pair = by_pair[pid]
        assert (trace.client_id, trace.baseline_photo_id, trace.followup_photo_id) == (
            pair.client_id,
            pair.baseline_photo_id,
            pair.followup_photo_id,
        )
    # Without the key, the same pair under another key gets an unrelated id.
    other = public_id(b"\x00" * 32, pairs[0].baseline_photo_id, pairs[0].followup_photo_id)
    assert other not in ids
