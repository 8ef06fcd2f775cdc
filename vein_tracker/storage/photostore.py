"""The photo store: content-addressed, atomic, verified, optionally encrypted files.

Owns the bytes of photos and analysis masks. It knows nothing of clients or
access rules (the repository checks those before calling it) and never decodes
an image.

Layout (:class:`LocalPhotoStore`)
---------------------------------
``<root>/objects/ab/cd/<sha256>`` where ``sha256`` is the hex digest of the
*plaintext* bytes, so an identical re-upload maps to the same file (deduplicated)
whether or not encryption is on. Temporary files live in ``<root>/tmp`` on the same
file system. A write is: temporary file -> ``write`` -> ``fsync`` -> ``os.replace``
onto the final name -> ``fsync`` of the directory. A crash at any point leaves
either no final file or a complete one; at worst a stray temporary file, which
``vein-tracker fsck --clean`` removes. Every read re-hashes the plaintext and raises
:class:`~vein_tracker.errors.StorageError` on a mismatch.

Encryption at rest
------------------
When ``VEIN_TRACKER_ENCRYPTION_KEY`` is set (base64 of 32 random bytes, e.g.
``python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"``),
new files are written as ``b"VTE1" + key_id (8 bytes) + nonce (12 bytes) +
AES-256-GCM(ciphertext + tag)`` with the content address as associated data, so a
file moved to another address fails authentication. ``key_id`` is the first 8 bytes
of sha256(key): it tells which key opens a file.

Key rotation: set ``VEIN_TRACKER_ENCRYPTION_KEY="NEW_KEY,OLD_KEY"`` (comma-separated;
the first key encrypts, every key listed decrypts), restart, then run
``vein-tracker rekey``: it rewrites every file that is not under the first key
(plaintext files from before encryption was switched on included), atomically,
one at a time, so the clinic keeps working meanwhile. When it reports 0 files
left, drop the old key from the variable. Keep old keys as long as any backup
made with them must stay readable. Losing every key loses the photos: store the
key in the clinic's password manager, not beside the data directory.

Object storage (multi-site clinics)
-----------------------------------
The repository only uses the :class:`PhotoStore` protocol. With
``VEIN_TRACKER_STORE_URL=s3://bucket/prefix`` :func:`open_store` gives an
:class:`~vein_tracker.storage.s3store.S3PhotoStore` instead (same layout under the
prefix, same cipher, same verification; see that module), so Dask workers of
``vein-tracker reanalyze`` on other machines read photos from the bucket directly and
no photo byte touches the data folder.

Privacy
-------
Every folder of the local store is created 0700 and every file 0600, whatever the
umask (:mod:`.private`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import os
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import StorageError
from ..hashing import sha256_hex
from .private import make_private_dir, open_private

if TYPE_CHECKING:
    from ..config import Settings

_MAGIC = b"VTE1"
_KEY_ID_LEN = 8
_NONCE_LEN = 12
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

#: What :meth:`MaintainedStore.put_raw` did.
PutRawResult = Literal["written", "kept", "repaired"]


def _check_address(sha256: str) -> str:
    if not isinstance(sha256, str) or not _HEX64.match(sha256):
        raise ValueError(f"sha256 must be 64 lowercase hex characters, got {sha256!r}")
    return sha256


@runtime_checkable
class PhotoStore(Protocol):
    """What the repository needs from a store of immutable, content-addressed blobs."""

    def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its sha256 (idempotent for equal bytes)."""
        ...

    def get(self, sha256: str) -> bytes:
        """Return the verified plaintext; ``StorageError`` if missing or corrupt."""
        ...

    def exists(self, sha256: str) -> bool:
        """True if an object with this address is stored."""
        ...

    def delete(self, sha256: str) -> bool:
        """Remove the object; True if it existed."""
        ...

    def iter_hashes(self) -> Iterator[str]:
        """Every stored address (order unspecified)."""
        ...


@runtime_checkable
class MaintainedStore(PhotoStore, Protocol):
    """A :class:`PhotoStore` that backup, restore, fsck and rekey can work on.

    Both :class:`LocalPhotoStore` and
    :class:`~vein_tracker.storage.s3store.S3PhotoStore` are one.
    """

    cipher: Cipher | None

    @property
    def location(self) -> str:
        """Where the objects are (a folder or an ``s3://`` URL), for messages."""
        ...

    def read_raw(self, sha256: str) -> bytes:
        """The object as stored (ciphertext when encrypted); ``StorageError`` if missing."""
        ...

    def decode_raw(self, blob: bytes, sha256: str) -> bytes:
        """Decrypt (if needed) and verify stored bytes against their address."""
        ...

    def put_raw(self, sha256: str, blob: bytes) -> PutRawResult:
        """Store already-encoded bytes (from a backup) once verified.

        Returns ``"written"`` (new), ``"kept"`` (an intact object was there) or
        ``"repaired"`` (a damaged object at that address was replaced).
        """
        ...

    def scan(self) -> Iterator[FsckObject]:
        """Every stored object with its size and modification time."""
        ...

    def temp_files(self, *, older_than_s: float = 0.0) -> Sequence[object]:
        """Leftovers of interrupted writes older than ``older_than_s`` (printable)."""
        ...

    def remove_temp_files(self, *, older_than_s: float) -> int:
        """Remove those leftovers; return how many."""
        ...

    def needs_rekey(self, sha256: str) -> bool:
        """True if the object is not encrypted with the current key."""
        ...

    def rekey(self, sha256: str) -> bool:
        """Re-encrypt one object with the current key, atomically; True if rewritten."""
        ...


class Cipher:
    """AES-256-GCM over whole objects, with several keys for rotation.

    Parameters
    ----------
    keys : sequence of bytes
        32-byte keys; the first encrypts, all decrypt.
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("keys must hold at least one 32-byte key")
        for k in keys:
            if len(k) != 32:
                raise ValueError(
                    f"VEIN_TRACKER_ENCRYPTION_KEY must decode to 32 bytes (AES-256), got {len(k)}"
                )
        self._keys = {hashlib.sha256(k).digest()[:_KEY_ID_LEN]: AESGCM(k) for k in keys}
        self.current_key_id = hashlib.sha256(keys[0]).digest()[:_KEY_ID_LEN]

    @classmethod
    def from_setting(cls, value: str | None) -> Cipher | None:
        """Build from ``VEIN_TRACKER_ENCRYPTION_KEY`` (comma-separated base64 keys), or None."""
        if value is None or not value.strip():
            return None
        keys = []
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                keys.append(base64.b64decode(part, altchars=b"-_", validate=False))
            except (binascii.Error, ValueError) as exc:
                raise ValueError(
                    "VEIN_TRACKER_ENCRYPTION_KEY must be base64 of 32 random bytes "
                    "(comma-separated for rotation)"
                ) from exc
        return cls(keys)

    def encrypt(self, plaintext: bytes, address: str) -> bytes:
        nonce = os.urandom(_NONCE_LEN)
        ct = self._keys[self.current_key_id].encrypt(nonce, plaintext, address.encode())
        return _MAGIC + self.current_key_id + nonce + ct

    def decrypt(self, blob: bytes, address: str) -> bytes:
        key_id = blob[len(_MAGIC) : len(_MAGIC) + _KEY_ID_LEN]
        aes = self._keys.get(key_id)
        if aes is None:
            raise StorageError(
                f"Photo {address[:12]} is encrypted with a key that is not configured: add the "
                "old key to VEIN_TRACKER_ENCRYPTION_KEY (after the current one)."
            )
        start = len(_MAGIC) + _KEY_ID_LEN
        nonce = blob[start : start + _NONCE_LEN]
        try:
            return aes.decrypt(nonce, blob[start + _NONCE_LEN :], address.encode())
        except InvalidTag as exc:
            raise StorageError(
                f"Photo {address[:12]} failed its integrity check (damaged file): restore it "
                "from a backup."
            ) from exc


def is_encrypted(blob: bytes) -> bool:
    """True if ``blob`` is in the encrypted file format of this module."""
    return blob.startswith(_MAGIC)


def decode_blob(blob: bytes, sha256: str, cipher: Cipher | None) -> bytes:
    """Decrypt (if needed) and verify stored bytes against their address.

    Parameters
    ----------
    blob : bytes
        The object as stored (plaintext, or this module's encrypted format).
    sha256 : str
        Its content address: the sha256 of the plaintext.
    cipher : Cipher or None
        The configured keys.

    Returns
    -------
    bytes
        The plaintext, proven to hash to ``sha256``.

    Raises
    ------
    StorageError
        Encrypted without a configured key, or damaged (authentication or hash fails).
    """
    if is_encrypted(blob):
        if cipher is None:
            raise StorageError(
                f"Photo {sha256[:12]} is encrypted but VEIN_TRACKER_ENCRYPTION_KEY is not set."
            )
        data = cipher.decrypt(blob, sha256)
    else:
        data = blob
    if sha256_hex(data) != sha256:
        raise StorageError(
            f"Photo file {sha256[:12]} is damaged (its checksum does not match): restore "
            "it from a backup."
        )
    return data


@dataclass(frozen=True)
class FsckObject:
    """A stored object found by a store's ``scan()``.

    Attributes
    ----------
    sha256 : str
        Its content address.
    path : Path or str
        Where it is: a file path (local store) or an ``s3://`` URL (object store).
    size_bytes : int
        Stored size (ciphertext when encrypted), bytes.
    mtime : float
        Last modification, seconds since the epoch.
    """

    sha256: str
    path: Path | str
    size_bytes: int
    mtime: float


def open_store(settings: Settings) -> PhotoStore:
    """The photo store the settings select, with their encryption keys.

    ``settings.store_url`` unset: a :class:`LocalPhotoStore` in ``<data_dir>/photos``;
    ``s3://bucket/prefix``: an :class:`~vein_tracker.storage.s3store.S3PhotoStore`
    (credentials, region and endpoint from the standard ``AWS_*`` variables; boto3 is
    imported only then).

    Raises
    ------
    StorageError
        The URL is not ``s3://BUCKET[/PREFIX]``, the key setting is malformed or the
        local store folder cannot be created.
    """
    try:
        cipher = Cipher.from_setting(settings.encryption_key)
    except ValueError as exc:
        raise StorageError(str(exc)) from exc
    if settings.store_url is None:
        return LocalPhotoStore(settings.data_dir / "photos", cipher=cipher)
    from .s3store import S3PhotoStore

    return S3PhotoStore.from_url(settings.store_url, cipher=cipher)


class LocalPhotoStore:
    """A :class:`PhotoStore` in a local (or shared network) directory.

    Parameters
    ----------
    root : path
        Directory of the store (``<VEIN_TRACKER_DATA>/photos``); created if missing.
    cipher : Cipher, optional
        Encrypt new objects at rest; None stores plaintext.
    """

    def __init__(self, root: str | os.PathLike[str], *, cipher: Cipher | None = None) -> None:
        self.root = Path(root)
        self.cipher = cipher
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        try:
            make_private_dir(self.objects)
            make_private_dir(self.tmp)
        except OSError as exc:
            raise StorageError(
                f"The photo store folder {self.root.name!r} cannot be created ({exc.strerror})."
            ) from exc

    def __repr__(self) -> str:
        return f"LocalPhotoStore({str(self.root)!r}, encrypted={self.cipher is not None})"

    @property
    def location(self) -> str:
        """Where the objects are, for messages."""
        return str(self.root)

    def path_for(self, sha256: str) -> Path:
        """Final path of an object (it may not exist)."""
        h = _check_address(sha256)
        return self.objects / h[:2] / h[2:4] / h

    # -- writing ----------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        """Store ``data`` atomically and durably; return its sha256.

        Raises
        ------
        StorageError
            The disk is full or not writable; nothing is left half-written.
        """
        address = sha256_hex(data)
        final = self.path_for(address)
        if final.exists():
            return address  # content-addressed: the same bytes are already there
        blob = self.cipher.encrypt(data, address) if self.cipher else data
        self._write_atomic(final, blob)
        return address

    def _write_atomic(self, final: Path, blob: bytes) -> None:
        tmp = self.tmp / f"{final.name}.{os.getpid()}.{secrets.token_hex(6)}.part"
        try:
            make_private_dir(final.parent)
            fd = open_private(tmp)
            try:
                view = memoryview(blob)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
            tmp.replace(final)
            _fsync_dir(final.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageError(
                    "The disk holding the photo store is full: the photo was not saved. Free "
                    "space or ask the administrator to add storage, then upload it again."
                ) from exc
            raise StorageError(
                f"The photo could not be saved ({exc.strerror or exc}): nothing was stored. "
                "Check that the data folder is writable, then retry."
            ) from exc

    # -- reading ----------------------------------------------------------------------------

    def read_raw(self, sha256: str) -> bytes:
        """The bytes as stored on disk (ciphertext when encrypted); for backups."""
        path = self.path_for(sha256)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise StorageError(
                f"Photo file {sha256[:12]} is missing from the photo store: restore it from a "
                "backup (vein-tracker fsck lists every missing file)."
            ) from exc
        except OSError as exc:
            raise StorageError(
                f"Photo file {sha256[:12]} cannot be read ({exc.strerror})."
            ) from exc

    def decode_raw(self, blob: bytes, sha256: str) -> bytes:
        """Decrypt (if needed) and verify stored bytes against their address."""
        return decode_blob(blob, sha256, self.cipher)

    def put_raw(self, sha256: str, blob: bytes) -> PutRawResult:
        """Store bytes already in the stored format (from a backup) under ``sha256``.

        The bytes must decode to the address (checked first). An intact file at the
        address is kept; a damaged one is replaced (this is how a backup repairs it).
        """
        self.decode_raw(blob, sha256)
        final = self.path_for(sha256)
        result: PutRawResult = "written"
        if final.exists():
            try:
                self.get(sha256)
                return "kept"
            except StorageError:
                result = "repaired"
        self._write_atomic(final, blob)
        return result

    def get(self, sha256: str) -> bytes:
        """The verified plaintext bytes; ``StorageError`` if missing or damaged."""
        return self.decode_raw(self.read_raw(sha256), sha256)

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def delete(self, sha256: str) -> bool:
        path = self.path_for(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    def iter_hashes(self) -> Iterator[str]:
        for obj in self.scan():
            yield obj.sha256

    def scan(self) -> Iterator[FsckObject]:
        """Every object file with its size and modification time."""
        for path in sorted(self.objects.glob("??/??/*")):
            if path.is_file() and _HEX64.match(path.name):
                st = path.stat()
                yield FsckObject(path.name, path, st.st_size, st.st_mtime)

    def temp_files(self, *, older_than_s: float = 0.0) -> list[Path]:
        """Leftover temporary files (from an interrupted write) older than ``older_than_s``."""
        cutoff = time.time() - older_than_s
        return [
            p for p in sorted(self.tmp.iterdir()) if p.is_file() and p.stat().st_mtime <= cutoff
        ]

    def remove_temp_files(self, *, older_than_s: float) -> int:
        """Delete leftover temporary files older than ``older_than_s``; return how many."""
        removed = 0
        for t in self.temp_files(older_than_s=older_than_s):
            with contextlib.suppress(FileNotFoundError):
                t.unlink()
                removed += 1
        return removed

    def needs_rekey(self, sha256: str) -> bool:
        """True if the object is not encrypted with the current key."""
        if self.cipher is None:
            return False
        head = self.read_raw(sha256)[: len(_MAGIC) + _KEY_ID_LEN]
        return not is_encrypted(head) or head[len(_MAGIC) :] != self.cipher.current_key_id

    def rekey(self, sha256: str) -> bool:
        """Re-encrypt one object with the current key, atomically; True if rewritten."""
        if not self.needs_rekey(sha256):
            return False
        assert self.cipher is not None
        data = self.get(sha256)
        self._write_atomic(self.path_for(sha256), self.cipher.encrypt(data, sha256))
        return True


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename is still atomic
    finally:
        os.close(fd)
