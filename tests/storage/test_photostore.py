"""The photo store on its own: content addressing, verification, AES-GCM, key rotation.

The promises every store keeps run on both stores (``[local]``: a folder; ``[s3]``: a
bucket on moto's S3-compatible server over real HTTP: ``s3_server`` of the storage
suite's conftest, see ``tests/s3_server.py``).
The local store's own layout and file modes are checked apart.
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.s3_server import MotoServer
from vein_tracker.errors import StorageError
from vein_tracker.storage import Cipher, LocalPhotoStore, PhotoStore
from vein_tracker.storage.photostore import MaintainedStore, is_encrypted, sha256_hex
from vein_tracker.storage.s3store import S3PhotoStore

from .conftest import photo_bytes

KEY1 = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(100, 132))).decode()

#: ``make(cipher=None)``: a new store object over the same stored objects.
MakeStore = Callable[..., Any]


@pytest.fixture(params=["local", "s3"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    """Build stores over one place: a folder, or a fresh bucket's ``clinic/`` prefix."""
    if request.param == "local":
        return lambda cipher=None: LocalPhotoStore(tmp_path, cipher=cipher)
    server: MotoServer = request.getfixturevalue("s3_server")
    bucket = server.new_bucket()
    client = server.client()
    return lambda cipher=None: S3PhotoStore(bucket, "clinic", cipher=cipher, client=client)


def _overwrite(store: Any, sha: str, blob: bytes) -> None:
    """Put ``blob`` at ``sha``'s address behind the store's back (damage, a moved file)."""
    if isinstance(store, LocalPhotoStore):
        path = store.path_for(sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    else:
        store.client.put_object(Bucket=store.bucket, Key=store.key_for(sha), Body=blob)


def _flip(blob: bytes) -> bytes:
    b = bytearray(blob)
    b[len(b) // 2] ^= 0x01
    return bytes(b)


# ----------------------------------------------------------------------------- both stores


def test_stores_satisfy_the_protocols(make_store: MakeStore) -> None:
    store = make_store()
    assert isinstance(store, PhotoStore)
    assert isinstance(store, MaintainedStore)


def test_put_get_round_trip_and_address(make_store: MakeStore) -> None:
    store = make_store()
    data = b"\x00\x01 some bytes \xff" * 100
    sha = store.put(data)
    assert sha == sha256_hex(data)
    assert store.get(sha) == data
    assert store.read_raw(sha) == data  # stored as given without a key
    assert store.put(data) == sha  # idempotent
    assert list(store.iter_hashes()) == [sha]
    [obj] = store.scan()
    assert (obj.sha256, obj.size_bytes) == (sha, len(data))
    assert store.exists(sha)
    assert store.delete(sha)
    assert not store.delete(sha)
    assert not store.exists(sha)
    assert list(store.iter_hashes()) == []
    with pytest.raises(StorageError, match="missing"):
        store.get(sha)


@pytest.mark.parametrize("bad", ["", "abc", "G" * 64, "../" + "a" * 61, "A" * 64])
def test_bad_addresses_are_refused(make_store: MakeStore, bad: str) -> None:
    store = make_store()
    for op in (store.get, store.exists, store.delete):
        with pytest.raises(ValueError, match="sha256"):
            op(bad)


def test_encrypted_at_rest(make_store: MakeStore) -> None:
    store = make_store(Cipher.from_setting(KEY1))
    data = photo_bytes(1)
    sha = store.put(data)
    raw = store.read_raw(sha)
    assert is_encrypted(raw)
    assert data[100:140] not in raw
    assert len(raw) == len(data) + 4 + 8 + 12 + 16
    assert store.get(sha) == data
    assert sha == sha256_hex(data)  # the address is the plaintext hash (dedupe still works)
    assert store.put(data) == sha
    assert store.read_raw(sha) == raw  # a re-upload does not rewrite the object


def test_wrong_missing_or_tampered_key_material(make_store: MakeStore) -> None:
    enc = make_store(Cipher.from_setting(KEY1))
    sha = enc.put(photo_bytes(2))
    with pytest.raises(StorageError, match="not configured"):
        make_store(Cipher.from_setting(KEY2)).get(sha)
    with pytest.raises(StorageError, match="ENCRYPTION_KEY is not set"):
        make_store().get(sha)
    # A ciphertext moved to another address fails authentication.
    other = "0" * 64
    _overwrite(enc, other, enc.read_raw(sha))
    with pytest.raises(StorageError, match="integrity"):
        enc.get(other)
    assert enc.get(sha) == photo_bytes(2)  # nothing lost


def test_damaged_object_is_detected_on_read(make_store: MakeStore) -> None:
    store = make_store()
    data = photo_bytes(5)
    sha = store.put(data)
    _overwrite(store, sha, _flip(data))
    with pytest.raises(StorageError, match="damaged"):
        store.get(sha)
    enc = make_store(Cipher.from_setting(KEY1))
    sha2 = enc.put(photo_bytes(6))
    _overwrite(enc, sha2, _flip(enc.read_raw(sha2)))
    with pytest.raises(StorageError, match="integrity"):
        enc.get(sha2)


def test_put_raw_keeps_intact_objects_and_repairs_damaged_ones(make_store: MakeStore) -> None:
    store = make_store(Cipher.from_setting(KEY1))
    data = photo_bytes(7)
    sha = sha256_hex(data)
    good = Cipher.from_setting(KEY1).encrypt(data, sha)  # type: ignore[union-attr]
    with pytest.raises(StorageError, match="damaged|integrity"):
        store.put_raw(sha, _flip(good))  # a bad copy is refused before anything is written
    assert not store.exists(sha)
    assert store.put_raw(sha, good) == "written"
    assert store.put_raw(sha, good) == "kept"
    _overwrite(store, sha, _flip(good))
    assert store.put_raw(sha, good) == "repaired"
    assert store.get(sha) == data


@pytest.mark.parametrize(
    "value", ["not base64 at all!", base64.b64encode(b"short").decode(), f"{KEY1},xx"]
)
def test_bad_keys_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="VEIN_TRACKER_ENCRYPTION_KEY"):
        Cipher.from_setting(value)


def test_key_rotation(make_store: MakeStore) -> None:
    plain = make_store()
    old_sha = plain.put(photo_bytes(3))  # written before encryption was switched on
    v1 = make_store(Cipher.from_setting(KEY1))
    sha1 = v1.put(photo_bytes(4))
    assert v1.get(old_sha) == photo_bytes(3)  # plaintext objects stay readable
    rotated = make_store(Cipher.from_setting(f"{KEY2},{KEY1}"))
    assert rotated.get(sha1) == photo_bytes(4)
    assert rotated.needs_rekey(sha1)
    assert rotated.needs_rekey(old_sha)
    assert sorted(rotated.rekey(h) for h in rotated.iter_hashes()) == [True, True]
    assert not any(rotated.needs_rekey(h) for h in rotated.iter_hashes())
    assert sorted(rotated.rekey(h) for h in rotated.iter_hashes()) == [False, False]
    only_new = make_store(Cipher.from_setting(KEY2))
    assert only_new.get(sha1) == photo_bytes(4)
    assert only_new.get(old_sha) == photo_bytes(3)
    with pytest.raises(StorageError, match="not configured"):
        make_store(Cipher.from_setting(KEY1)).get(sha1)
    assert list(only_new.temp_files()) == []


# ----------------------------------------------------------------------------- local store


def test_local_layout(tmp_path: Path) -> None:
    store = LocalPhotoStore(tmp_path)
    sha = store.put(b"layout")
    assert store.path_for(sha) == tmp_path / "objects" / sha[:2] / sha[2:4] / sha
    assert store.path_for(sha).read_bytes() == b"layout"
    assert store.location == str(tmp_path)


def test_store_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    with pytest.raises(StorageError, match="cannot be created"):
        LocalPhotoStore(blocker / "photos")


def test_local_store_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = LocalPhotoStore(tmp_path / "data" / "photos", cipher=Cipher.from_setting(KEY1))
        sha = store.put(photo_bytes(8))
        store.rekey(sha)
    finally:
        os.umask(old)
    created = [tmp_path / "data", *sorted((tmp_path / "data").rglob("*"))]
    assert store.path_for(sha) in created
    for path in created:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
