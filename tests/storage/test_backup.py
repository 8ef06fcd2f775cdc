"""Backup and restore round trips (same and across backends), with every hash verified.

Every test runs on both photo stores (``photo_store``: the local folder, or a bucket on
moto's S3-compatible server), the clinic's photos moved into the bucket for the latter.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import shutil
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.clinic_util import Clinic
from vein_tracker.errors import StorageError
from vein_tracker.storage import LocalPhotoStore, open_repository
from vein_tracker.storage.backup import backup, fsck, iter_manifest, restore

from .conftest import FAST, PASSWORD, photo_bytes


@pytest.fixture
def clinic(photo_store: str, clinic: Clinic, data_dir: Path) -> Clinic:
    """The storage suite's clinic, its photos in the store under test."""
    if photo_store == "s3":
        local = LocalPhotoStore(data_dir / "photos")
        for sha in list(local.iter_hashes()):
            assert clinic.repo.store.put_raw(sha, local.read_raw(sha)) == "written"
        shutil.rmtree(data_dir / "photos")
    return clinic


def _sqlite_url(d):
    return f"sqlite:///{d / 'vein_tracker.db'}"


def _state(repo, c):
    """Everything a clinic user can see, as comparable values."""
    aest = c.aest
    photos = repo.list_photos(aest, client_id=c.a.id) + repo.list_photos(aest, client_id=c.b.id)
    return {
        "clients": [x.to_dict() for x in repo.list_clients(aest)],
        "areas": [x.to_dict() for x in repo.list_areas(aest, c.a.id)],
        "visits": [x.to_dict() for x in repo.list_visits(aest, c.a.id)],
        "photos": [p.to_dict() for p in photos],
        "bytes": {p.id: repo.get_photo_bytes(aest, p.id) for p in photos},
        "consents": [x.to_dict() for x in repo.list_consents(aest, c.a.id)],
        "analyses": [x.to_dict() for x in repo.list_analyses(aest, c.area_a.id)],
        "masks": {k: v.tolist() for k, v in repo.load_analysis_masks(aest, c.analysis.id).items()},
        "users": [u.username for u in repo.list_users(c.admin)],
    }


def _check_restored(clinic, target, db_url, expected):
    settings = dataclasses.replace(clinic.settings, data_dir=target, db_url=db_url)
    restored = open_repository(settings, passwords=FAST)
    try:
        assert _state(restored, clinic) == expected
        assert restored.authenticate("ann.client", PASSWORD) == clinic.client_a
        assert restored.list_audit(clinic.admin, action="restore")
        # The restored clinic keeps working: new ids do not collide.
        p = restored.add_photo(clinic.aest, clinic.area_a.id, clinic.v2.id, photo_bytes(70))
        assert p.id > clinic.pb.id
        assert fsck(settings, grace_s=0).ok
    finally:
        restored.close()


def test_round_trip_into_sqlite(clinic, tmp_path):
    clinic.repo.update_client(clinic.aest, clinic.a.id, notes="before backup")
    expected = _state(clinic.repo, clinic)
    result = backup(tmp_path / "b.tar", clinic.settings)
    assert result.photos == 4  # three photos and one mask
    assert result.db_kind == ("sqlite" if clinic.repo.dialect == "sqlite" else "logical")
    assert not (tmp_path / "b.tar.part").exists()
    assert clinic.repo.list_audit(clinic.admin, action="backup")[0].detail["photos"] == 4
    # Changes after the snapshot are not in it.
    clinic.repo.update_client(clinic.aest, clinic.a.id, notes="after backup")
    target = tmp_path / "restored"
    out = restore(tmp_path / "b.tar", target, db_url=_sqlite_url(target))
    assert (out.photos, out.verified) == (4, 4)
    assert out.rows["photos"] == 3
    _check_restored(clinic, target, _sqlite_url(target), expected)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_round_trip_sqlite_into_postgres(clinic, tmp_path, pg_url):
    expected = _state(clinic.repo, clinic)
    backup(tmp_path / "b.tar", clinic.settings)
    target = tmp_path / "restored"
    out = restore(tmp_path / "b.tar", target, db_url=pg_url)
    assert out.verified == 4
    _check_restored(clinic, target, pg_url, expected)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgres_backup_has_pg_dump_of_the_same_snapshot(clinic, tmp_path):
    result = backup(tmp_path / "b.tar", clinic.settings)
    with tarfile.open(tmp_path / "b.tar") as tar:
        names = tar.getnames()
        assert "db/logical.json" in names
        if result.has_pg_dump:
            dump = tar.extractfile("db/pg_dump.sql").read().decode()
            assert "CREATE TABLE public.photos" in dump
            assert clinic.p1.sha256 in dump


def test_every_manifest_hash_matches(clinic, tmp_path):
    backup(tmp_path / "b.tar", clinic.settings)
    entries = list(iter_manifest(tmp_path / "b.tar"))
    shas = {e["sha256"] for e in entries}
    assert {clinic.p1.sha256, clinic.p2.sha256, clinic.pb.sha256} <= shas
    with tarfile.open(tmp_path / "b.tar") as tar:
        for e in entries:
            assert hashlib.sha256(tar.extractfile(e["path"]).read()).hexdigest() == e["file_sha256"]


def _rewrite_tar(src, dst, mutate):
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()
            data = mutate(m.name, data)
            if data is None:
                continue
            m.size = len(data)
            tout.addfile(m, io.BytesIO(data))


def _flip_photo(name, data):
    if name.startswith("photos/"):
        b = bytearray(data)
        b[len(b) // 2] ^= 0x01
        return bytes(b)
    return data


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (_flip_photo, "checksum"),
        (lambda n, d: None if n.startswith("photos/") else d, "incomplete"),
        (lambda n, d: None if n == "manifest.json" else d, "no valid manifest"),
    ],
)
def test_damaged_archive_is_refused_and_target_left_empty(clinic, tmp_path, mutate, match):
    backup(tmp_path / "b.tar", clinic.settings)
    _rewrite_tar(tmp_path / "b.tar", tmp_path / "bad.tar", mutate)
    target = tmp_path / "restored"
    with pytest.raises(StorageError, match=match):
        restore(tmp_path / "bad.tar", target, db_url=_sqlite_url(target))
    assert list(target.iterdir()) == []


def test_not_an_archive_and_path_traversal(clinic, tmp_path):
    (tmp_path / "junk.tar").write_bytes(b"this is not a tar file" * 50)
    with pytest.raises(StorageError, match="not a readable backup"):
        restore(tmp_path / "junk.tar", tmp_path / "t1", db_url=_sqlite_url(tmp_path / "t1"))
    backup(tmp_path / "b.tar", clinic.settings)
    with tarfile.open(tmp_path / "b.tar", "a") as tar:
        info = tarfile.TarInfo("../../evil.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(StorageError, match="unexpected entry"):
        restore(tmp_path / "b.tar", tmp_path / "t2", db_url=_sqlite_url(tmp_path / "t2"))
    assert not (tmp_path.parent / "evil.txt").exists()


def test_restore_refuses_a_non_empty_target(clinic, tmp_path):
    backup(tmp_path / "b.tar", clinic.settings)
    before = _state(clinic.repo, clinic)
    # On PostgreSQL with a bucket the data folder holds nothing: the database refuses.
    with pytest.raises(StorageError, match="not empty|already holds records"):
        restore(tmp_path / "b.tar", clinic.settings.data_dir)
    assert _state(clinic.repo, clinic) == before  # nothing changed, no photo removed
    with pytest.raises(ValueError, match=r"\.tar"):
        backup(tmp_path / "b.zip", clinic.settings)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_encrypted_store_backup_needs_the_key(clinic, tmp_path, monkeypatch):
    key = base64.b64encode(bytes(range(32))).decode()
    enc_settings = dataclasses.replace(clinic.settings, encryption_key=key)
    r = open_repository(enc_settings, passwords=FAST)
    try:
        for sha in list(r.store.iter_hashes()):
            r.store.rekey(sha)
        assert r.get_photo_bytes(clinic.aest, clinic.p1.id) == photo_bytes(1)
    finally:
        r.close()
    result = backup(tmp_path / "b.tar", enc_settings)
    with tarfile.open(tmp_path / "b.tar") as tar:
        entry = next(iter_manifest(tmp_path / "b.tar"))
        assert tar.extractfile(entry["path"]).read().startswith(b"VTE1")
    assert result.photos == 4
    target = tmp_path / "restored"
    with pytest.raises(StorageError, match="encrypted"):
        restore(tmp_path / "b.tar", target, db_url=_sqlite_url(target), settings=clinic.settings)
    out = restore(tmp_path / "b.tar", target, db_url=_sqlite_url(target), settings=enc_settings)
    assert out.verified == 4


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_export_key_survives_a_postgres_backup(clinic, tmp_path):
    """The anonymous export key (a binary column) is in the logical dump: after a
    restore, the clinic's published pair ids are the same and still trace back."""
    from vein_tracker.storage.repo.export_keys import public_id

    pair = SimpleNamespace(baseline_photo_id=clinic.p1.id, followup_photo_id=clinic.p2.id)
    before = clinic.repo.export_public_ids(clinic.mkt, [pair])
    backup(tmp_path / "b.tar", clinic.settings)
    target = tmp_path / "restored"
    restore(tmp_path / "b.tar", target, db_url=_sqlite_url(target))
    settings = dataclasses.replace(clinic.settings, data_dir=target, db_url=_sqlite_url(target))
    restored = open_repository(settings, passwords=FAST)
    try:
        after = restored.export_public_ids(clinic.mkt, [pair])
    finally:
        restored.close()
    assert after == before
    assert len(next(iter(after.values()))) == 24
    # Not a fresh key that happens to agree: another key gives another id.
    assert public_id(b"another key", clinic.p1.id, clinic.p2.id) != next(iter(after.values()))
