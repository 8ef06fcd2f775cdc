"""The S3-compatible store under faults, against moto's server over real HTTP.

Each fault must end in one clear line (a ``StorageError``, exit 5 in the CLI) and lose
nothing: objects stored before stay readable, and the failed write leaves no object,
whole or partial, at its address. The faults: the endpoint stopped in the middle of an
upload, an endpoint that is down or hangs, wrong or missing credentials, a wrong
encryption key, a corrupted object, a body damaged on its way, a missing bucket.
"""

from __future__ import annotations

import base64
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.s3_server import (
    REGION,
    CutProxy,
    MotoServer,
    enable_auth,
    list_keys,
    moto_server,
    use_s3,
)
from vein_tracker.config import get_settings
from vein_tracker.errors import StorageError
from vein_tracker.storage.photostore import Cipher, open_store, sha256_hex
from vein_tracker.storage.s3store import S3PhotoStore, make_client, parse_store_url

from .conftest import photo_bytes

KEY1 = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(100, 132))).decode()


@pytest.fixture
def server(s3_server: MotoServer) -> MotoServer:
    """The storage suite's moto server (conftest)."""
    return s3_server


@pytest.fixture
def bucket(server: MotoServer) -> str:
    return server.new_bucket()


def _store(server: MotoServer, bucket: str, *, endpoint: str | None = None, **kw: Any) -> Any:
    client = kw.pop("client", None) or make_client(endpoint_url=endpoint or server.endpoint, **kw)
    return S3PhotoStore(bucket, "clinic", client=client)


def _one_line(exc: pytest.ExceptionInfo[StorageError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    assert "Traceback" not in text
    return text


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for a server without authentication (it accepts any)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "vt-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "vt-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://clinic-photos", ("clinic-photos", "")),
        ("s3://clinic-photos/", ("clinic-photos", "")),
        ("s3://clinic-photos/site-a/photos/", ("clinic-photos", "site-a/photos")),
        (" s3://a.b-c/x ", ("a.b-c", "x")),
    ],
)
def test_store_url_is_parsed(url: str, expected: tuple[str, str]) -> None:
    assert parse_store_url(url) == expected


@pytest.mark.parametrize(
    ("url", "word"),
    [
        ("http://host/bucket", "s3://BUCKET"),
        ("s3://", "invalid bucket"),
        ("s3://Upper", "invalid bucket"),
        ("s3://ab", "invalid bucket"),
        ("s3://bucket/a//b", "invalid prefix"),
        ("s3://bucket/a/../b", "invalid prefix"),
    ],
)
def test_bad_store_urls_are_refused_in_one_line(url: str, word: str) -> None:
    with pytest.raises(StorageError, match=word) as exc:
        parse_store_url(url)
    assert "VEIN_TRACKER_STORE_URL" in _one_line(exc)


def test_settings_select_the_store(
    server: MotoServer, bucket: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert get_settings().store_url is None
    local = open_store(get_settings())
    assert local.location == str(data_dir / "photos")
    url = use_s3(monkeypatch, server, bucket, "site-a")
    monkeypatch.setenv("VEIN_TRACKER_ENCRYPTION_KEY", KEY1)
    store = open_store(get_settings())
    assert isinstance(store, S3PhotoStore)
    assert (store.location, store.bucket, store.prefix) == (url, bucket, "site-a")
    sha = store.put(photo_bytes(1))  # endpoint, region and keys from the AWS_* variables
    assert set(list_keys(server, bucket)) == {f"site-a/objects/{sha[:2]}/{sha[2:4]}/{sha}"}
    assert store.read_raw(sha).startswith(b"VTE1")
    monkeypatch.setenv("VEIN_TRACKER_STORE_URL", "s3://")
    with pytest.raises(StorageError, match="invalid bucket"):
        open_store(get_settings())


def test_client_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        make_client(max_attempts=0)
    with pytest.raises(ValueError, match="timeout"):
        make_client(read_timeout_s=0)


# ----------------------------------------------------------------------------- faults


def test_endpoint_stopped_during_an_upload(server: MotoServer, bucket: str, aws_env: None) -> None:
    before = _store(server, bucket)
    kept = before.put(photo_bytes(2))
    port = int(server.endpoint.rsplit(":", 1)[1])
    big = os.urandom(6_000_000)
    proxy = CutProxy(port, cut_after=2_000_000)  # the endpoint vanishes a third of the way in
    try:
        via_proxy = _store(server, bucket, endpoint=proxy.endpoint)
        with pytest.raises(StorageError, match="cannot be reached") as exc:
            via_proxy.put(big)
        assert proxy.sent >= 2_000_000  # the body was on its way when the endpoint went
    finally:
        proxy.close()
    assert "AWS_ENDPOINT_URL" in _one_line(exc)
    keys = list_keys(server, bucket)
    assert set(keys) == {before.key_for(kept)}  # nothing half-written, nothing lost
    assert before.get(kept) == photo_bytes(2)
    assert not before.exists(sha256_hex(big))
    assert before.put(big) == sha256_hex(big)  # the same upload succeeds once the endpoint is back


def test_endpoint_down(bucket: str, aws_env: None) -> None:
    from tests.conftest import free_port

    store = _store(None, bucket, endpoint=f"http://127.0.0.1:{free_port()}")  # type: ignore[arg-type]
    for op in (lambda: store.put(b"x"), lambda: store.get("0" * 64), lambda: list(store.scan())):
        with pytest.raises(StorageError, match="cannot be reached") as exc:
            op()
        assert "127.0.0.1" in _one_line(exc)


def test_endpoint_that_hangs(tmp_path: Path, aws_env: None) -> None:
    with moto_server(tmp_path) as hung:
        b = hung.new_bucket()
        store = _store(hung, b, read_timeout_s=1.0, max_attempts=2)
        kept = store.put(b"before the hang")
        os.kill(hung.pid, signal.SIGSTOP)
        try:
            with pytest.raises(StorageError, match="cannot be reached") as exc:
                store.put(b"during the hang")
        finally:
            os.kill(hung.pid, signal.SIGCONT)
        assert "ReadTimeout" in _one_line(exc)
        assert store.get(kept) == b"before the hang"
        later = sha256_hex(b"during the hang")
        assert set(list_keys(hung, b)) <= {store.key_for(kept), store.key_for(later)}
        # Whatever the server made of the hung request, the address holds the photo whole.
        if store.exists(later):
            assert store.get(later) == b"during the hang"


def test_missing_bucket(server: MotoServer, aws_env: None) -> None:
    store = _store(server, "vt-no-such-bucket")
    for op in (lambda: store.put(b"x"), lambda: store.exists("0" * 64)):
        with pytest.raises(StorageError, match="does not exist") as exc:
            op()
        assert "vt-no-such-bucket" in _one_line(exc)
    names = {b["Name"] for b in server.client().list_buckets()["Buckets"]}
    assert "vt-no-such-bucket" not in names  # the store never creates buckets


def test_missing_credentials(
    server: MotoServer, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StorageError, match="No credentials") as exc:
        _store(server, bucket).put(b"x")
    assert "AWS_ACCESS_KEY_ID" in _one_line(exc)


def test_wrong_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with moto_server(tmp_path) as strict:
        b = strict.new_bucket()
        key_id, secret = enable_auth(strict)
        good = _store(strict, b, client=strict.client(key_id=key_id, secret=secret))
        kept = good.put(photo_bytes(3))
        for wrong_id, wrong_secret, code in (
            (key_id, "not-the-secret", "SignatureDoesNotMatch"),
            ("AKIAUNKNOWNKEY000000", secret, "InvalidAccessKeyId"),
        ):
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", wrong_id)
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong_secret)
            bad = _store(strict, b)
            for op, args in ((bad.put, photo_bytes(4)), (bad.get, kept)):
                with pytest.raises(StorageError, match="refused the credentials") as exc:
                    op(args)
                text = _one_line(exc)
                assert code in text
                assert "AWS_SECRET_ACCESS_KEY" in text
        assert list(good.iter_hashes()) == [kept]
        assert good.get(kept) == photo_bytes(3)


def test_wrong_encryption_key(server: MotoServer, bucket: str, aws_env: None) -> None:
    client = server.client()
    enc = S3PhotoStore(bucket, "clinic", cipher=Cipher.from_setting(KEY1), client=client)
    sha = enc.put(photo_bytes(5))
    other = S3PhotoStore(bucket, "clinic", cipher=Cipher.from_setting(KEY2), client=client)
    with pytest.raises(StorageError, match="not configured") as exc:
        other.get(sha)
    assert "VEIN_TRACKER_ENCRYPTION_KEY" in _one_line(exc)
    # A re-upload under the wrong key neither overwrites nor hides the object.
    with pytest.raises(StorageError, match="not overwritten"):
        other.put(photo_bytes(5))
    assert enc.get(sha) == photo_bytes(5)


def test_corrupted_object(server: MotoServer, bucket: str, aws_env: None) -> None:
    client = server.client()
    store = S3PhotoStore(bucket, "clinic", client=client)
    data = photo_bytes(6)
    sha = store.put(data)
    damaged = bytearray(data)
    damaged[1000] ^= 0xFF
    client.put_object(Bucket=bucket, Key=store.key_for(sha), Body=bytes(damaged))
    with pytest.raises(StorageError, match="damaged") as exc:
        store.get(sha)
    assert "backup" in _one_line(exc)
    # Uploading the photo again does not overwrite what is there (a different object):
    # it says so, and the backup's copy repairs it.
    with pytest.raises(StorageError, match="not overwritten"):
        store.put(data)
    assert store.put_raw(sha, data) == "repaired"
    assert store.get(sha) == data


def test_body_damaged_on_its_way_is_removed(server: MotoServer, bucket: str, aws_env: None) -> None:
    client = make_client(endpoint_url=server.endpoint)

    def flip_a_byte(request: Any, **_: Any) -> None:
        body = request.body
        raw = body.getvalue() if hasattr(body, "getvalue") else bytes(body or b"")
        if request.method == "PUT" and len(raw) > 1000:
            damaged = bytearray(raw)
            damaged[500] ^= 0x01
            # After Content-MD5 was computed: a server that ignores it stores the damage.
            request.body = bytes(damaged)

    client.meta.events.register("before-send.s3.PutObject", flip_a_byte)
    store = S3PhotoStore(bucket, "clinic", client=client)
    data = photo_bytes(7)
    with pytest.raises(StorageError, match="intact") as exc:
        store.put(data)
    _one_line(exc)
    assert list_keys(server, bucket) == {}  # the damaged object was removed again


def test_conditional_put_never_replaces_an_object(
    server: MotoServer, bucket: str, aws_env: None
) -> None:
    cipher = Cipher.from_setting(KEY1)  # random nonces: every writer's object differs
    store = S3PhotoStore(bucket, "clinic", cipher=cipher, client=server.client())
    other = S3PhotoStore(bucket, "clinic", cipher=cipher, client=server.client())
    data = photo_bytes(8)
    sha = sha256_hex(data)
    theirs: list[bytes] = []
    real_head = store._head

    def head_then_race(key: str, action: str) -> Any:
        # Another site stores the same photo between our HEAD and our PUT.
        found = real_head(key, action)
        if found is None and not theirs:
            other.put(data)
            theirs.append(other.read_raw(sha))
        return found

    store._head = head_then_race  # type: ignore[method-assign]
    assert store.put(data) == sha
    assert theirs
    assert store.read_raw(sha) == theirs[0]  # the first object stayed; ours was refused
    assert store.get(sha) == data
