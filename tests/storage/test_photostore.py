"""The photo store on its own: content addressing, verification, AES-GCM, key rotation."""

from __future__ import annotations

import base64

import pytest

from vein_tracker.errors import StorageError
from vein_tracker.storage import Cipher, LocalPhotoStore, PhotoStore
from vein_tracker.storage.photostore import is_encrypted, sha256_hex

from .conftest import photo_bytes

KEY1 = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(100, 132))).decode()


def test_local_store_satisfies_the_protocol(tmp_path):
    assert isinstance(LocalPhotoStore(tmp_path), PhotoStore)


def test_put_get_round_trip_and_address(tmp_path):
    store = LocalPhotoStore(tmp_path)
    data = b"\x00\x01 some bytes \xff" * 100
    sha = store.put(data)
    assert sha == sha256_hex(data)
    assert store.path_for(sha) == tmp_path / "objects" / sha[:2] / sha[2:4] / sha
    assert store.get(sha) == data
    assert store.put(data) == sha  # idempotent
    assert list(store.iter_hashes()) == [sha]
    assert store.exists(sha)
    assert store.delete(sha)
    assert not store.delete(sha)
    assert not store.exists(sha)
    with pytest.raises(StorageError, match="missing"):
        store.get(sha)


@pytest.mark.parametrize("bad", ["", "abc", "G" * 64, "../" + "a" * 61, "A" * 64])
def test_bad_addresses_are_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="sha256"):
        LocalPhotoStore(tmp_path).get(bad)


def test_encrypted_at_rest(tmp_path):
    store = LocalPhotoStore(tmp_path, cipher=Cipher.from_setting(KEY1))
    data = photo_bytes(1)
    sha = store.put(data)
    raw = store.path_for(sha).read_bytes()
    assert is_encrypted(raw)
    assert data[100:140] not in raw
    assert len(raw) == len(data) + 4 + 8 + 12 + 16
    assert store.get(sha) == data
    assert sha == sha256_hex(data)  # the address is the plaintext hash (dedupe still works)
    assert store.put(data) == sha


def test_wrong_missing_or_tampered_key_material(tmp_path):
    enc = LocalPhotoStore(tmp_path, cipher=Cipher.from_setting(KEY1))
    sha = enc.put(photo_bytes(2))
    with pytest.raises(StorageError, match="not configured"):
        LocalPhotoStore(tmp_path, cipher=Cipher.from_setting(KEY2)).get(sha)
    with pytest.raises(StorageError, match="ENCRYPTION_KEY is not set"):
        LocalPhotoStore(tmp_path).get(sha)
    # A ciphertext moved to another address fails authentication.
    other = "0" * 64
    target = enc.path_for(other)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(enc.path_for(sha).read_bytes())
    with pytest.raises(StorageError, match="integrity"):
        enc.get(other)


@pytest.mark.parametrize(
    "value", ["not base64 at all!", base64.b64encode(b"short").decode(), f"{KEY1},xx"]
)
def test_bad_keys_are_refused(value):
    with pytest.raises(ValueError, match="VEIN_TRACKER_ENCRYPTION_KEY"):
        Cipher.from_setting(value)


def test_key_rotation(tmp_path):
    plain = LocalPhotoStore(tmp_path)
    old_sha = plain.put(photo_bytes(3))  # written before encryption was switched on
    v1 = LocalPhotoStore(tmp_path, cipher=Cipher.from_setting(KEY1))
    sha1 = v1.put(photo_bytes(4))
    assert v1.get(old_sha) == photo_bytes(3)  # plaintext files stay readable
    rotated = LocalPhotoStore(tmp_path, cipher=Cipher.from_setting(f"{KEY2},{KEY1}"))
    assert rotated.get(sha1) == photo_bytes(4)
    assert rotated.needs_rekey(sha1)
    assert rotated.needs_rekey(old_sha)
    assert sorted(rotated.rekey(h) for h in rotated.iter_hashes()) == [True, True]
    assert not any(rotated.needs_rekey(h) for h in rotated.iter_hashes())
    only_new = LocalPhotoStore(tmp_path, cipher=Cipher.from_setting(KEY2))
    assert only_new.get(sha1) == photo_bytes(4)
    assert only_new.get(old_sha) == photo_bytes(3)
    assert only_new.temp_files() == []


def test_store_folder_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    with pytest.raises(StorageError, match="cannot be created"):
        LocalPhotoStore(blocker / "photos")
