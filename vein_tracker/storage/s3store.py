"""The photo store in an S3-compatible object store (``VEIN_TRACKER_STORE_URL=s3://...``).

Owns the bytes of photos and masks when a clinic group keeps them in a bucket (AWS S3,
MinIO, Ceph, any S3-compatible service). It keeps every promise of the local store
(:mod:`.photostore`) and knows nothing of clients or access rules either.

Layout and format
-----------------
``s3://<bucket>/<prefix>/objects/ab/cd/<sha256>``, the local store's layout under the
prefix, with the same object format: ``sha256`` is the hex digest of the *plaintext*,
and with ``VEIN_TRACKER_ENCRYPTION_KEY`` set the object is the local store's AES-256-GCM
format (:class:`~vein_tracker.storage.photostore.Cipher`, the address as associated data),
encrypted before upload so the provider never holds a plaintext photo. Key rotation is
the same (``vein-tracker rekey``), and a backup of either store restores into the other.

Writes are whole or absent
--------------------------
An S3 PUT is atomic: the object appears complete or not at all, so no temporary object
is needed. A write is: HEAD the address (an object there is verified by reading it and
kept: content addressing makes a re-upload a no-op) -> PUT with ``Content-MD5`` (the
service refuses a body damaged in transit) and ``If-None-Match: *`` (the service never
replaces an object at that address, even under a concurrent upload of the same photo)
-> the ETag of a plain PUT is the body's MD5: a mismatch, or a HEAD that does not show
the object with its length, deletes the object just written and fails. An upload cut
by a network failure leaves nothing (the service drops a PUT whose body is short).

Reads
-----
Every ``get`` re-hashes the plaintext (after decryption) and raises
:class:`~vein_tracker.errors.StorageError` on a mismatch, as the local store does.

Errors
------
Every failure is a one-line ``StorageError`` (CLI exit 5) naming the cause a clinic's
administrator can act on: the endpoint cannot be reached, the bucket does not exist,
the credentials are refused or missing, access is denied. Timeouts are short and
retries few (:data:`CONNECT_TIMEOUT_S`, :data:`READ_TIMEOUT_S`, :data:`MAX_ATTEMPTS`):
an endpoint that is down fails the upload in seconds, not minutes.

Configuration
-------------
The standard AWS variables, read by boto3 itself: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), ``AWS_DEFAULT_REGION``, and
``AWS_ENDPOINT_URL`` for a non-AWS endpoint. The account needs ``s3:GetObject``,
``s3:PutObject``, ``s3:DeleteObject``, ``s3:ListBucket`` and
``s3:ListBucketMultipartUploads`` / ``s3:AbortMultipartUpload`` on the prefix. boto3 is
imported when a store is built, never when the command-line parser is.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..errors import StorageError
from .photostore import (
    _KEY_ID_LEN,
    _MAGIC,
    Cipher,
    FsckObject,
    PutRawResult,
    _check_address,
    decode_blob,
    is_encrypted,
    sha256_hex,
)

#: Seconds to open a connection to the endpoint.
CONNECT_TIMEOUT_S = 3.0
#: Seconds without a byte from the endpoint before a request is abandoned (S3 answers
#: a PUT within a second of receiving its body; a read waits this long per chunk only).
READ_TIMEOUT_S = 5.0
#: Attempts per request (the first one included), with botocore's standard back-off.
#: Measured here: a stopped endpoint (connection refused) fails an upload in 0.1 s, one
#: that accepts connections and then hangs in 15 s (3 x the read timeout); a host that
#: does not answer at all would take 3 x the connect timeout, about 9 s.
MAX_ATTEMPTS = 3

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")
_T = TypeVar("_T")

_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
    }
)
_DENIED_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "Forbidden", "403"})
_UNAVAILABLE_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "500", "502", "503"}
)


def parse_store_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into the bucket and the key prefix (no slashes at ends).

    Raises
    ------
    StorageError
        Not an ``s3://`` URL or not a valid bucket name (the message names
        ``VEIN_TRACKER_STORE_URL``).
    """
    text = url.strip()
    if not text.startswith("s3://"):
        raise StorageError(
            f"VEIN_TRACKER_STORE_URL must be s3://BUCKET or s3://BUCKET/PREFIX, got {url!r}."
        )
    bucket, _, prefix = text[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise StorageError(
            f"VEIN_TRACKER_STORE_URL names an invalid bucket {bucket!r}: 3-63 characters, "
            "lowercase letters, digits, dots and hyphens."
        )
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise StorageError(f"VEIN_TRACKER_STORE_URL has an invalid prefix {prefix!r}.")
    return bucket, prefix


def make_client(
    *,
    endpoint_url: str | None = None,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    read_timeout_s: float = READ_TIMEOUT_S,
    max_attempts: int = MAX_ATTEMPTS,
) -> Any:
    """A boto3 S3 client from the standard ``AWS_*`` variables, with short timeouts.

    Parameters
    ----------
    endpoint_url : str, optional
        Overrides ``AWS_ENDPOINT_URL`` (tests); default what boto3 finds.
    connect_timeout_s, read_timeout_s : float
        Seconds; see :data:`CONNECT_TIMEOUT_S` and :data:`READ_TIMEOUT_S`.
    max_attempts : int
        Tries per request, the first included.
    """
    if connect_timeout_s <= 0 or read_timeout_s <= 0:
        raise ValueError("connect_timeout_s and read_timeout_s must be positive")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        # Our own Content-MD5 and hash checks protect the bytes; botocore's newer
        # default checksum trailers are refused by several S3-compatible servers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    # A session per store: boto3's default session is not thread-safe to create clients.
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)


class S3PhotoStore:
    """A :class:`~vein_tracker.storage.photostore.PhotoStore` in an S3-compatible bucket.

    Parameters
    ----------
    bucket : str
        Bucket name; it must exist (the store never creates buckets).
    prefix : str
        Key prefix inside the bucket (``""`` for the bucket's root).
    cipher : Cipher, optional
        Encrypt new objects before upload; None stores plaintext.
    client : botocore S3 client, optional
        Default :func:`make_client` (the ``AWS_*`` variables, short timeouts).

    Notes
    -----
    Thread-safe: one instance may serve every user of the app (boto3 clients are).
    """

    def __init__(
        self, bucket: str, prefix: str = "", *, cipher: Cipher | None = None, client: Any = None
    ) -> None:
        if not _BUCKET.match(bucket):
            raise ValueError(f"bucket must be a valid S3 bucket name, got {bucket!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cipher = cipher
        self._objects = f"{self.prefix}/objects/" if self.prefix else "objects/"
        self._client = client
        self._client_lock = threading.Lock()
        self._bucket_ok = False

    @classmethod
    def from_url(cls, url: str, *, cipher: Cipher | None = None) -> S3PhotoStore:
        """The store of ``VEIN_TRACKER_STORE_URL`` (``s3://bucket/prefix``)."""
        bucket, prefix = parse_store_url(url)
        return cls(bucket, prefix, cipher=cipher)

    def __repr__(self) -> str:
        return f"S3PhotoStore({self.location!r}, encrypted={self.cipher is not None})"

    @property
    def location(self) -> str:
        """``s3://bucket/prefix``, for messages."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def client(self) -> Any:
        """The boto3 client (made on first use)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    # ValueError: a malformed endpoint URL.
                    errors: tuple[type[Exception], ...] = (*_boto_errors(), ValueError)
                    try:
                        self._client = make_client()
                    except errors as exc:
                        raise _translate(exc, self, "the photo store cannot be used") from exc
        return self._client

    def key_for(self, sha256: str) -> str:
        """The object key of an address (it may not exist)."""
        h = _check_address(sha256)
        return f"{self._objects}{h[:2]}/{h[2:4]}/{h}"

    # -- requests ---------------------------------------------------------------------------

    def _call(self, action: str, fn: Callable[[], _T]) -> _T:
        """Run one request, turning every failure into a one-line ``StorageError``."""
        self._check_bucket(action)
        try:
            return fn()
        except _boto_errors() as exc:
            raise _translate(exc, self, action) from exc

    def _check_bucket(self, action: str) -> None:
        # Once per store: a HEAD of a missing key and of a missing bucket look alike (a
        # bare 404), so the bucket is proven to exist before the first object request. A
        # listing (not a HEAD, which has no body) names the cause of a refusal: a missing
        # bucket, an unknown key id, a wrong secret or a denied account.
        if self._bucket_ok:
            return
        client = self.client
        try:
            client.list_objects_v2(Bucket=self.bucket, Prefix=self._objects, MaxKeys=1)
        except _boto_errors() as exc:
            raise _translate(exc, self, action, bucket_check=True) from exc
        self._bucket_ok = True

    def _head(self, key: str, action: str) -> dict[str, Any] | None:
        def head() -> dict[str, Any] | None:
            try:
                return dict(self.client.head_object(Bucket=self.bucket, Key=key))
            except _boto_errors() as exc:
                if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise

        return self._call(action, head)

    # -- writing ----------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        """Store ``data`` whole or not at all and return its sha256.

        Raises
        ------
        StorageError
            The endpoint is down, the bucket is missing, the credentials are refused,
            or the object did not arrive intact (it is removed): nothing was stored.
            Also when a different, damaged object already holds this address (it is
            not overwritten: ``vein-tracker fsck`` lists it).
        """
        address = sha256_hex(data)
        key = self.key_for(address)
        if self._head(key, "the photo was not saved") is not None:
            self._verify_existing(address)
            return address
        blob = self.cipher.encrypt(data, address) if self.cipher else data
        self._put_new(address, blob)
        return address

    def put_raw(self, sha256: str, blob: bytes) -> PutRawResult:
        """Store bytes already in the stored format (from a backup) under ``sha256``.

        They must decode to the address (checked first). An intact object at the
        address is kept; a damaged one is replaced, only if it is still the object
        that was checked (``If-Match``): this is how a backup repairs it.
        """
        self.decode_raw(blob, sha256)
        head = self._head(self.key_for(sha256), "the photo was not restored")
        if head is None:
            return "written" if self._put_new(sha256, blob) else "kept"
        stored = self.read_raw(sha256)  # an unreachable store fails here, not below
        try:
            self.decode_raw(stored, sha256)
            return "kept"
        except StorageError:
            pass  # damaged (or under a key not configured): replaced by the good copy
        self._put_new(sha256, blob, replace_etag=str(head.get("ETag", "")))
        return "repaired"

    def _put_new(self, address: str, blob: bytes, *, replace_etag: str | None = None) -> bool:
        key = self.key_for(address)
        md5 = hashlib.md5(blob, usedforsecurity=False)
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": blob,
            "ContentMD5": base64.b64encode(md5.digest()).decode("ascii"),
            "ContentType": "application/octet-stream",
        }
        if replace_etag is None:
            args["IfNoneMatch"] = "*"  # never replace an object at this address
        else:
            args["IfMatch"] = replace_etag  # replace only the object that was read

        def put() -> dict[str, Any] | None:
            try:
                return dict(self.client.put_object(**args))
            except _boto_errors() as exc:
                if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    return None
                raise

        action = "the photo was not saved"
        resp = self._call(action, put)
        if resp is None:
            if replace_etag is not None:
                raise StorageError(
                    f"Photo {address[:12]} changed while it was being re-encrypted: run "
                    "vein-tracker rekey again."
                )
            # Another writer stored this address first (or a retried PUT of ours did).
            self._verify_existing(address)
            return False
        etag = str(resp.get("ETag", "")).strip('"')
        head = self._head(key, action)
        intact = (
            head is not None
            and int(head.get("ContentLength", -1)) == len(blob)
            and (not _MD5_ETAG.match(etag) or etag == md5.hexdigest())
        )
        if not intact:
            if head is not None and replace_etag is None:
                self._call(action, lambda: self.client.delete_object(Bucket=self.bucket, Key=key))
            raise StorageError(
                f"Photo {address[:12]} did not arrive intact at {self.location}: nothing was "
                "stored. Retry the upload."
            )
        return True

    def _verify_existing(self, address: str) -> None:
        try:
            self.get(address)
        except StorageError as exc:
            raise StorageError(
                f"A damaged object holds photo {address[:12]} at {self.location} and was not "
                f"overwritten ({exc}): restore it from a backup (vein-tracker fsck lists it)."
            ) from exc

    # -- reading ----------------------------------------------------------------------------

    def read_raw(self, sha256: str) -> bytes:
        """The object as stored (ciphertext when encrypted); for backups."""
        key = self.key_for(sha256)

        def read() -> bytes:
            try:
                resp = self.client.get_object(Bucket=self.bucket, Key=key)
            except _boto_errors() as exc:
                if _code(exc) in ("NoSuchKey", "404"):
                    raise StorageError(
                        f"Photo file {sha256[:12]} is missing from the photo store "
                        f"{self.location}: restore it from a backup (vein-tracker fsck lists "
                        "every missing file)."
                    ) from exc
                raise
            body = resp["Body"]
            try:
                blob = bytes(body.read())
            finally:
                body.close()
            expected = resp.get("ContentLength")
            if expected is not None and int(expected) != len(blob):
                raise StorageError(
                    f"Photo file {sha256[:12]} was cut short on its way from {self.location}: "
                    "retry."
                )
            return blob

        return self._call("the photo cannot be read", read)

    def decode_raw(self, blob: bytes, sha256: str) -> bytes:
        """Decrypt (if needed) and verify stored bytes against their address."""
        return decode_blob(blob, sha256, self.cipher)

    def get(self, sha256: str) -> bytes:
        """The verified plaintext bytes; ``StorageError`` if missing, damaged or unreachable."""
        return self.decode_raw(self.read_raw(sha256), sha256)

    def exists(self, sha256: str) -> bool:
        return self._head(self.key_for(sha256), "the photo store cannot be read") is not None

    def delete(self, sha256: str) -> bool:
        key = self.key_for(sha256)
        if self._head(key, "the photo was not deleted") is None:
            return False
        self._call(
            "the photo was not deleted",
            lambda: self.client.delete_object(Bucket=self.bucket, Key=key),
        )
        return True

    def iter_hashes(self) -> Iterator[str]:
        for obj in self.scan():
            yield obj.sha256

    def scan(self) -> Iterator[FsckObject]:
        """Every object under the prefix's ``objects/`` with its size and modification time."""
        action = "the photo store cannot be listed"
        pages = self._call(
            action,
            lambda: self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._objects
            ),
        )
        it = iter(pages)
        while True:
            page = self._call(action, lambda: next(it, None))
            if page is None:
                return
            for item in page.get("Contents", ()):
                key = str(item["Key"])
                name = key.rsplit("/", 1)[-1]
                if re.fullmatch(r"[0-9a-f]{64}", name) and key == self.key_for(name):
                    yield FsckObject(
                        name,
                        f"s3://{self.bucket}/{key}",
                        int(item.get("Size", 0)),
                        item["LastModified"].timestamp(),
                    )

    def temp_files(self, *, older_than_s: float = 0.0) -> list[str]:
        """Unfinished multipart uploads under the prefix older than ``older_than_s``.

        This store never starts one (every PUT is single); another tool may have left
        them, and the provider bills their parts.
        """
        return [f"{key} (upload {uid})" for key, uid in self._uploads(older_than_s)]

    def remove_temp_files(self, *, older_than_s: float) -> int:
        """Abort those unfinished uploads; return how many."""
        removed = 0
        for key, uid in self._uploads(older_than_s):
            self._call(
                "an unfinished upload was not removed",
                functools.partial(
                    self.client.abort_multipart_upload, Bucket=self.bucket, Key=key, UploadId=uid
                ),
            )
            removed += 1
        return removed

    def _uploads(self, older_than_s: float) -> list[tuple[str, str]]:
        cutoff = time.time() - older_than_s
        out: list[tuple[str, str]] = []
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._objects}
        while True:
            resp = self._call(
                "the photo store cannot be listed",
                lambda: self.client.list_multipart_uploads(**args),
            )
            for u in resp.get("Uploads", ()):
                if u["Initiated"].timestamp() <= cutoff:
                    out.append((str(u["Key"]), str(u["UploadId"])))
            if not resp.get("IsTruncated"):
                return sorted(out)
            args["KeyMarker"] = resp.get("NextKeyMarker", "")
            args["UploadIdMarker"] = resp.get("NextUploadIdMarker", "")

    # -- key rotation -----------------------------------------------------------------------

    def needs_rekey(self, sha256: str) -> bool:
        """True if the object is not encrypted with the current key (reads its header only)."""
        if self.cipher is None:
            return False
        key = self.key_for(sha256)
        n = len(_MAGIC) + _KEY_ID_LEN

        def head_bytes() -> bytes:
            resp = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{n - 1}")
            body = resp["Body"]
            try:
                return bytes(body.read())[:n]
            finally:
                body.close()

        head = self._call("the photo cannot be read", head_bytes)
        return not is_encrypted(head) or head[len(_MAGIC) :] != self.cipher.current_key_id

    def rekey(self, sha256: str) -> bool:
        """Re-encrypt one object with the current key; True if rewritten.

        The PUT replaces the object only if it is still the one read (``If-Match``), and
        is atomic: a reader sees the old or the new object, both readable while the old
        key stays configured.
        """
        if not self.needs_rekey(sha256):
            return False
        assert self.cipher is not None
        key = self.key_for(sha256)
        head = self._head(key, "the photo was not re-encrypted")
        if head is None:
            raise StorageError(f"Photo file {sha256[:12]} is missing from {self.location}.")
        data = self.get(sha256)
        self._put_new(
            sha256, self.cipher.encrypt(data, sha256), replace_etag=str(head.get("ETag", ""))
        )
        return True


@functools.cache
def _boto_errors() -> tuple[type[Exception], ...]:
    """botocore's two exception roots (imported on first use, with boto3)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _code(exc: BaseException) -> str:
    """The S3 error code of a botocore ``ClientError`` ("" for other exceptions)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    code = str(response.get("Error", {}).get("Code", ""))
    if not code:
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(status or "")
    return code


def _translate(
    exc: BaseException, store: S3PhotoStore, action: str, *, bucket_check: bool = False
) -> StorageError:
    """One line for a clinic's administrator: what failed, why, and what to check."""
    from botocore import exceptions as bx

    where = store.location
    endpoint = getattr(getattr(store._client, "meta", None), "endpoint_url", None) or "AWS"
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return StorageError(
            f"No credentials for the photo store {where}: set AWS_ACCESS_KEY_ID and "
            f"AWS_SECRET_ACCESS_KEY ({action})."
        )
    if isinstance(
        exc,
        bx.EndpointConnectionError
        | bx.ConnectTimeoutError
        | bx.ReadTimeoutError
        | bx.ConnectionClosedError
        | bx.ConnectionError
        | bx.HTTPClientError,
    ):
        return StorageError(
            f"The photo store {where} cannot be reached at {endpoint} "
            f"({type(exc).__name__}): {action}. Check AWS_ENDPOINT_URL and the network, "
            "then retry."
        )
    code = _code(exc)
    if code == "NoSuchBucket" or (bucket_check and code in ("404", "NotFound")):
        return StorageError(
            f"The bucket {store.bucket!r} of VEIN_TRACKER_STORE_URL does not exist at "
            f"{endpoint}: {action}. Create it or correct the URL."
        )
    if code in _CREDENTIAL_CODES:
        return StorageError(
            f"The photo store {where} refused the credentials ({code}): {action}. Check "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
        )
    if code in _DENIED_CODES:
        return StorageError(
            f"The photo store {where} denied access ({code}): {action}. Check the "
            "credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and that the account may "
            "read, write and list the bucket."
        )
    if code in ("BadDigest", "InvalidDigest", "IncompleteBody"):
        return StorageError(
            f"The photo did not arrive intact at {where} ({code}): {action}. Retry the upload."
        )
    if code in _UNAVAILABLE_CODES:
        return StorageError(
            f"The photo store {where} is unavailable ({code}): {action}. Retry in a minute."
        )
    if isinstance(exc, bx.ParamValidationError):
        return StorageError(f"The photo store {where} refused the request ({exc}): {action}.")
    detail = code or type(exc).__name__
    text = " ".join(str(exc).split())[:160]
    return StorageError(f"The photo store {where} failed ({detail}: {text}): {action}.")
