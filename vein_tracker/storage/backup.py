"""Backup, restore and consistency check (fsck) of the clinic records and photo store.

Owns the backup archive format and the checks that prove nothing is lost. It reads
and writes the database and the store directly (it is the storage layer's own
maintenance tool) and is run by the local operator from the CLI, never from a page.
It works on either photo store (the local folder or an S3-compatible bucket: any
:class:`~vein_tracker.storage.photostore.MaintainedStore`).

Archive (a plain tar)::

    db/vein_tracker.sqlite3       SQLite: a consistent copy made with the backup API
    db/logical.json               PostgreSQL: every table in one REPEATABLE READ snapshot
    db/pg_dump.sql                PostgreSQL with pg_dump on PATH: the same snapshot
                                  (``pg_dump --snapshot``), for a DBA's own tools
    photos/objects/ab/cd/<sha256> photo and mask files as stored (encrypted if they are)
    manifest.json                 format, versions, schema revision, every file's sha256

Readers find ``manifest.json`` by name (archives before 2026-12 have it first); it is
written last so that each photo is read from the store once, verified, archived and
hashed in one pass (over an object store a second pass would double the transfer).

Only files the database snapshot refers to are archived, so the archive is
consistent even while the clinic keeps working (files are immutable and
content-addressed). ``restore`` goes into an empty data directory (and an empty
database when ``VEIN_TRACKER_DB_URL`` points to PostgreSQL), checks every file
against the manifest before anything becomes visible, and restores across backends
(a SQLite backup into PostgreSQL and back) through the portable table copy. With
``VEIN_TRACKER_STORE_URL`` set, photos go straight from the archive into the bucket
(each verified first, never through the data folder); objects already there intact
are kept, and on a failure the objects this restore added are removed again.

Privacy: the archive, its temporary files and everything a restore creates are 0600
files in 0700 folders whatever the umask; ``fsck`` reports any folder or file of the
records that other local users could read (with the ``chmod`` that fixes it).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .. import __version__
from ..config import Settings, get_settings
from ..errors import StorageError
from . import db as dbmod
from .info import utcnow
from .models import Base
from .photostore import (
    Cipher,
    LocalPhotoStore,
    MaintainedStore,
    PhotoStore,
    is_encrypted,
    open_store,
    sha256_hex,
)
from .private import (
    LoosePath,
    create_private_file,
    find_loose,
    make_private,
    make_private_dir,
    open_private,
    write_private,
)

if TYPE_CHECKING:
    from .repository import Repository

FORMAT = "vein-tracker-backup"
FORMAT_VERSION = 1
SQLITE_MEMBER = "db/vein_tracker.sqlite3"
LOGICAL_MEMBER = "db/logical.json"
PGDUMP_MEMBER = "db/pg_dump.sql"
#: Orphan and temporary files younger than this are left alone by ``fsck --clean``
#: (an upload may be between writing its file and committing its row).
DEFAULT_GRACE_S = 600.0


@dataclass(frozen=True)
class BackupResult:
    """What :func:`backup` wrote: the archive path, counts and the DB snapshot kind."""

    path: Path
    photos: int
    bytes_total: int
    db_kind: str
    schema_revision: str
    has_pg_dump: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "photos": self.photos,
            "bytes_total": self.bytes_total,
            "db_kind": self.db_kind,
            "schema_revision": self.schema_revision,
            "has_pg_dump": self.has_pg_dump,
        }


@dataclass(frozen=True)
class RestoreResult:
    """What :func:`restore` restored and verified."""

    data_dir: Path
    db_url: str
    photos: int
    verified: int
    rows: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.data_dir),
            "photos": self.photos,
            "verified": self.verified,
            "rows": dict(self.rows),
        }


@dataclass(frozen=True)
class FsckReport:
    """Consistency of the database and the photo store, and privacy of the data folder.

    Attributes
    ----------
    checked : int
        Referenced files checked.
    missing : tuple of str
        Referenced files that are absent (``"<sha256> (photo 12)"``): data loss.
    corrupt : tuple of str
        Files whose content does not match their address: data loss.
    orphans : tuple of str
        Stored files no row refers to (e.g. left by an interrupted upload).
    temp_files : tuple of str
        Leftover temporary files of interrupted writes.
    db_problems : tuple of str
        Database integrity-check findings.
    cleaned : int
        Orphan and temporary files removed (with ``clean=True``).
    loose_permissions : tuple of str
        Folders and files of the records (data folder, SQLite database and its
        ``-wal``/``-shm``/``-journal`` files) that the group or other local users may
        open, each with the ``chmod`` that fixes it.
    permissions_fixed : int
        Of those, how many were made private (with ``fix_permissions=True``).
    store : str
        Where the photos are (a folder or an ``s3://`` URL).
    """

    checked: int
    missing: tuple[str, ...]
    corrupt: tuple[str, ...]
    orphans: tuple[str, ...]
    temp_files: tuple[str, ...]
    db_problems: tuple[str, ...]
    cleaned: int = 0
    loose_permissions: tuple[str, ...] = ()
    permissions_fixed: int = 0
    store: str = ""

    @property
    def ok(self) -> bool:
        """No data lost and the database is sound (orphans are only waste)."""
        return not (self.missing or self.corrupt or self.db_problems)

    @property
    def private(self) -> bool:
        """No folder or file of the records is open to other local users (after any fix)."""
        return len(self.loose_permissions) == self.permissions_fixed

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "private": self.private,
            "store": self.store,
            "checked": self.checked,
            "missing": list(self.missing),
            "corrupt": list(self.corrupt),
            "orphans": list(self.orphans),
            "temp_files": list(self.temp_files),
            "db_problems": list(self.db_problems),
            "cleaned": self.cleaned,
            "loose_permissions": list(self.loose_permissions),
            "permissions_fixed": self.permissions_fixed,
        }


# ---------------------------------------------------------------------- fsck


def _maintained(store: PhotoStore, what: str) -> MaintainedStore:
    if not isinstance(store, MaintainedStore):
        raise StorageError(f"{what} needs a photo store it can list ({type(store).__name__}).")
    return store


def records_paths(settings: Settings) -> list[Path]:
    """The local folders and files that hold records: what must be private.

    The data folder (everything in it), and the SQLite database with its ``-wal``,
    ``-shm`` and ``-journal`` files wherever it lives.
    """
    paths = [settings.data_dir]
    u = make_url(settings.db_url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        db = Path(u.database)
        paths += [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))]
    return paths


def check_permissions(settings: Settings | None = None) -> list[LoosePath]:
    """Folders and files of the records open to the group or other local users."""
    return find_loose(records_paths(settings or get_settings()))


def fsck(
    settings: Settings | None = None,
    *,
    clean: bool = False,
    grace_s: float = DEFAULT_GRACE_S,
    verify: bool = True,
    fix_permissions: bool = False,
) -> FsckReport:
    """Check every referenced file exists and matches its hash; find orphans.

    Parameters
    ----------
    clean : bool
        Delete orphan and temporary files older than ``grace_s`` seconds.
    grace_s : float
        Age below which orphans and temporary files are kept (uploads in flight).
    verify : bool
        Re-hash every file (slower); otherwise only check that files exist.
    fix_permissions : bool
        Make every folder of the records 0700 and every file 0600 (they are reported
        either way).

    Raises
    ------
    StorageError
        The database or the photo store cannot be reached (nothing is reported as lost
        because of that).
    """
    from .repository import open_repository

    settings = settings or get_settings()
    loose = check_permissions(settings)  # before opening: it may create files
    repo = open_repository(settings)
    try:
        store = _maintained(repo.store, "fsck")
        problems = tuple(repo.integrity_check())
        refs = repo.referenced_hashes()
        missing, corrupt = [], []
        for sha, what in sorted(refs.items()):
            if not store.exists(sha):
                missing.append(f"{sha} ({what})")
                continue
            if verify:
                raw = store.read_raw(sha)  # a store that cannot be reached stops fsck here
                try:
                    store.decode_raw(raw, sha)
                except StorageError as exc:
                    corrupt.append(f"{sha} ({what}): {exc}")
        cutoff = time.time() - grace_s
        orphans = [o for o in store.scan() if o.sha256 not in refs]
        temps = [str(getattr(t, "name", t)) for t in store.temp_files()]
        cleaned = 0
        if clean:
            # Re-read the references: an upload may have committed since the first read.
            refs_now = repo.referenced_hashes()
            for o in orphans:
                if o.mtime <= cutoff and o.sha256 not in refs_now and store.delete(o.sha256):
                    cleaned += 1
            cleaned += store.remove_temp_files(older_than_s=grace_s)
            if cleaned:
                repo.audit_system("fsck_clean", detail={"removed": cleaned})
        # Opening the repository may have created files (a SQLite -wal): look again.
        loose = loose + [x for x in check_permissions(settings) if x not in loose]
        fixed = make_private(loose) if fix_permissions else 0
        return FsckReport(
            checked=len(refs),
            missing=tuple(missing),
            corrupt=tuple(corrupt),
            orphans=tuple(o.sha256 for o in orphans),
            temp_files=tuple(temps),
            db_problems=problems,
            cleaned=cleaned,
            loose_permissions=tuple(str(x) for x in loose),
            permissions_fixed=fixed,
            store=store.location,
        )
    finally:
        repo.close()


# ---------------------------------------------------------------------- backup


def backup(out: str | os.PathLike[str], settings: Settings | None = None) -> BackupResult:
    """Write a consistent backup archive of the database and the photos it refers to.

    The archive is written to ``OUT.part`` (mode 0600) and renamed when complete, so a
    crash never leaves a truncated file under the final name. Each photo is read from
    the store once, verified against its address and archived as stored (encrypted
    if it is).

    Raises
    ------
    StorageError
        A referenced photo file is missing or damaged (run ``vein-tracker fsck``), the
        database or the photo store cannot be read, or the disk is full.
    """
    from .repository import open_repository

    settings = settings or get_settings()
    out_path = Path(out)
    if out_path.suffix != ".tar":
        raise ValueError(f"the backup file name must end in .tar, got {out_path.name!r}")
    repo = open_repository(settings)
    try:
        store = _maintained(repo.store, "backup")
        with _private_tempdir(settings, "vt-backup-") as tmp:
            snap = _snapshot_db(repo, settings, tmp)
            part = out_path.with_name(out_path.name + ".part")
            try:
                make_private_dir(out_path.parent)
                with (
                    os.fdopen(open_private(part, exclusive=False), "wb") as fh,
                    tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar,
                ):
                    total = 0
                    for name, path in snap.members:
                        tar.add(path, arcname=name, recursive=False, filter=_private_member)
                        total += path.stat().st_size
                    objects, encrypted, photo_bytes = _archive_photos(tar, store, snap.refs)
                    total += photo_bytes
                    manifest = {
                        "format": FORMAT,
                        "format_version": FORMAT_VERSION,
                        "created_at": utcnow().isoformat(),
                        "app_version": __version__,
                        "schema_revision": snap.revision,
                        "db": {"kind": snap.kind, "dialect": repo.dialect, "files": snap.files},
                        "encrypted": encrypted,
                        "objects": objects,
                    }
                    _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
                    tar.close()
                    fh.flush()
                    os.fsync(fh.fileno())
                part.replace(out_path)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    part.unlink()
                raise StorageError(
                    f"The backup could not be written ({exc.strerror or exc}): nothing was "
                    "kept. Check free space at the destination."
                ) from exc
            except BaseException:
                with contextlib.suppress(OSError):
                    part.unlink()
                raise
        repo.audit_system(
            "backup", detail={"file": out_path.name, "photos": len(objects), "db": snap.kind}
        )
        return BackupResult(
            out_path, len(objects), total, snap.kind, snap.revision or "", has_pg_dump=snap.pg_dump
        )
    finally:
        repo.close()


@dataclass(frozen=True)
class _DbSnapshot:
    """The database as archived: its member files and the photos it refers to."""

    kind: str  # "sqlite" or "logical"
    members: list[tuple[str, Path]]  # (archive name, file in the scratch folder)
    files: dict[str, dict[str, Any]]  # archive name -> sha256 and size
    refs: set[str]  # photo addresses the snapshot refers to
    revision: str | None
    pg_dump: bool


def _snapshot_db(repo: Repository, settings: Settings, tmp: Path) -> _DbSnapshot:
    """One consistent snapshot of the database, written into the scratch folder ``tmp``."""
    members: list[tuple[str, Path]] = []
    pg_dump_ok = False
    if repo.dialect == "sqlite":
        snap = tmp / "snapshot.sqlite3"
        _sqlite_snapshot(settings.db_url, snap)
        refs, revision = _snapshot_refs_sqlite(snap)
        members.append((SQLITE_MEMBER, snap))
        db_kind = "sqlite"
    else:
        logical = tmp / "logical.json"
        dump = tmp / "pg_dump.sql"
        refs, revision, pg_dump_ok = _pg_snapshot(repo.engine, settings.db_url, logical, dump)
        members.append((LOGICAL_MEMBER, logical))
        if pg_dump_ok:
            members.append((PGDUMP_MEMBER, dump))
        db_kind = "logical"
    db_files = {
        name: {"sha256": _file_sha256(path), "size": path.stat().st_size} for name, path in members
    }
    return _DbSnapshot(db_kind, members, db_files, refs, revision, pg_dump_ok)


def _archive_photos(
    tar: tarfile.TarFile, store: MaintainedStore, refs: set[str]
) -> tuple[list[dict[str, Any]], bool, int]:
    """Each referred photo, verified and archived as stored: (entries, encrypted, bytes)."""
    objects: list[dict[str, Any]] = []
    encrypted = False
    total = 0
    for sha in sorted(refs):
        raw = store.read_raw(sha)
        # Decrypting proves the file is the photo it claims to be.
        store.decode_raw(raw, sha)
        encrypted = encrypted or is_encrypted(raw)
        entry: dict[str, Any] = {
            "sha256": sha,
            "path": f"photos/objects/{sha[:2]}/{sha[2:4]}/{sha}",
            "file_sha256": sha256_hex(raw),
            "size": len(raw),
        }
        _add_bytes(tar, entry["path"], raw)
        objects.append(entry)
        total += len(raw)
    return objects, encrypted, total


@contextlib.contextmanager
def _private_tempdir(settings: Settings, prefix: str) -> Iterator[Path]:
    """A 0700 scratch folder for database snapshots, in the data folder (created 0700)."""
    try:
        make_private_dir(settings.data_dir)
    except OSError as exc:
        raise StorageError(
            f"The data folder {str(settings.data_dir)!r} cannot be created ({exc.strerror})."
        ) from exc
    # mkdtemp creates the folder 0700 whatever the umask.
    with tempfile.TemporaryDirectory(prefix=prefix, dir=settings.data_dir) as tmp:
        yield Path(tmp)


def _private_member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mode = 0o600
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sqlite_path(url: str) -> Path:
    u = make_url(url)
    if not u.database or u.database == ":memory:":
        raise StorageError("Backups need a SQLite database file, not an in-memory database.")
    return Path(u.database)


def _sqlite_snapshot(url: str, dest: Path) -> None:
    src = sqlite3.connect(str(_sqlite_path(url)), timeout=dbmod.SQLITE_BUSY_TIMEOUT_MS / 1000)
    try:
        create_private_file(dest)
        dst = sqlite3.connect(str(dest))
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            dst.commit()
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise StorageError(f"The database could not be copied for the backup ({exc}).") from exc
    finally:
        src.close()


def _refs_query() -> list[sa.Select[Any]]:
    t = Base.metadata.tables
    return [sa.select(t["photos"].c.sha256), sa.select(t["analysis_masks"].c.sha256)]


def _snapshot_refs_sqlite(path: Path) -> tuple[set[str], str | None]:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            refs: set[str] = set()
            for q in _refs_query():
                refs.update(conn.scalars(q))
            revision = conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        return refs, revision
    finally:
        engine.dispose()


def _pg_snapshot(
    engine: sa.Engine, url: str, logical: Path, dump: Path
) -> tuple[set[str], str | None, bool]:
    """Logical dump (and pg_dump when available) of one REPEATABLE READ snapshot."""
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        conn.execute(sa.text("SET TRANSACTION READ ONLY"))
        snapshot = conn.scalar(sa.text("SELECT pg_export_snapshot()"))
        pg_ok = _run_pg_dump(url, str(snapshot), dump)
        refs: set[str] = set()
        for q in _refs_query():
            refs.update(conn.scalars(q))
        revision = conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        data = {
            "schema_revision": revision,
            "tables": {t.name: _dump_table(conn, t) for t in Base.metadata.sorted_tables},
        }
        conn.rollback()
    write_private(logical, json.dumps(data, separators=(",", ":")).encode())
    return refs, revision, pg_ok


def _run_pg_dump(url: str, snapshot: str, dest: Path) -> bool:
    exe = shutil.which("pg_dump")
    if exe is None:
        return False
    create_private_file(dest)  # pg_dump keeps the mode of the file it truncates
    u = make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = u.password
    cmd = [
        exe,
        "--no-owner",
        "--no-privileges",
        f"--snapshot={snapshot}",
        "-h",
        u.host or "localhost",
        "-p",
        str(u.port or 5432),
        "-U",
        u.username or "postgres",
        "-f",
        str(dest),
        u.database or "postgres",
    ]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    # A version mismatch between pg_dump and the server is not fatal: the logical dump is
    # complete on its own.
    return proc.returncode == 0 and dest.exists()


def _dump_table(conn: sa.Connection, table: sa.Table) -> dict[str, Any]:
    cols = [c.name for c in table.columns]
    rows = [
        [_encode_value(r._mapping[c]) for c in cols]
        for r in conn.execute(table.select().order_by(*table.primary_key.columns))
    ]
    return {"columns": cols, "rows": rows}


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, dict | list):
        return {"$json": value}
    if isinstance(value, bytes | memoryview):  # a binary column (export_keys.secret)
        return {"$b64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if "$dt" in value:
            return datetime.fromisoformat(value["$dt"])
        if "$d" in value:
            return date.fromisoformat(value["$d"])
        if "$json" in value:
            return value["$json"]
        if "$b64" in value:
            return base64.b64decode(value["$b64"])
    return value


# ---------------------------------------------------------------------- restore


def restore(
    archive: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    *,
    db_url: str | None = None,
    settings: Settings | None = None,
) -> RestoreResult:
    """Restore a backup into an empty data directory, verifying every hash first.

    Parameters
    ----------
    archive : path
        A ``.tar`` written by :func:`backup`.
    data_dir : path, optional
        Target (default ``VEIN_TRACKER_DATA``); must be empty or not exist.
    db_url : str, optional
        Target database (must be empty). Default: ``VEIN_TRACKER_DB_URL`` if set, else
        the SQLite file in the target data folder.
    settings : Settings, optional
        Default the environment. Its ``store_url`` selects where the photos go: the
        target data folder's local store, or an S3-compatible bucket (each object put
        straight from the archive once verified; intact objects already there are
        kept).

    Raises
    ------
    StorageError
        The archive is damaged or not a vein-tracker backup, a file fails its hash,
        the target is not empty, a photo the database refers to is absent, or the
        photo store cannot be written. Nothing is left behind: the data folder is
        empty again and objects this restore put into a bucket are removed.
    """
    settings = settings or get_settings()
    target, db_url = _restore_target(settings, data_dir, db_url)
    restored = dataclasses.replace(settings, data_dir=target, db_url=db_url)
    try:
        cipher = Cipher.from_setting(settings.encryption_key)
    except ValueError as exc:
        raise StorageError(str(exc)) from exc
    # An object store is written while the archive is read; the local store is moved
    # into place at the end, from the staging folder.
    bucket = None if settings.store_url is None else _maintained(open_store(restored), "restore")
    added: list[str] = []

    def into_bucket(sha: str, raw: bytes) -> None:
        assert bucket is not None
        _require_key(raw, cipher)
        if bucket.put_raw(sha, raw) == "written":
            added.append(sha)

    try:
        make_private_dir(target)
    except OSError as exc:
        raise StorageError(
            f"The data folder {str(target)!r} cannot be created ({exc.strerror})."
        ) from exc
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=target))  # 0700
    try:
        manifest, _ = _extract_verified(
            Path(archive), staging, object_sink=into_bucket if bucket is not None else None
        )
        if bucket is None:
            verified = _verify_objects(manifest, staging, cipher)
        else:
            verified = len(manifest["objects"])
        rows = _restore_db(manifest, staging, db_url, target)
        # Move photos into place last: the database already names every one of them.
        if bucket is None:
            _move_photos_into_place(staging, target)
    except BaseException:
        _undo_restore(staging, target, bucket, added)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = RestoreResult(target, db_url, len(manifest["objects"]), verified, rows)
    from .repository import open_repository

    repo = open_repository(restored)
    try:
        repo.audit_system("restore", detail={"file": Path(archive).name, "photos": result.photos})
    finally:
        repo.close()
    return result


def _restore_target(
    settings: Settings, data_dir: str | os.PathLike[str] | None, db_url: str | None
) -> tuple[Path, str]:
    """The data folder and database to restore into; the folder must be empty."""
    target = Path(data_dir) if data_dir is not None else settings.data_dir
    if db_url is None:
        db_url = settings.db_url
        if data_dir is not None and not os.environ.get("VEIN_TRACKER_DB_URL"):
            db_url = f"sqlite:///{target / 'vein_tracker.db'}"
    if target.exists() and any(target.iterdir()):
        raise StorageError(
            f"The data folder {target.name!r} is not empty: restore only into an empty folder "
            "(nothing was changed)."
        )
    return target, db_url


def _move_photos_into_place(staging: Path, target: Path) -> None:
    """The staged local store's objects into the data folder, with its tmp folder."""
    src_objects = staging / "photos" / "objects"
    if src_objects.exists():
        dst = make_private_dir(target / "photos")
        src_objects.replace(dst / "objects")
        make_private_dir(dst / "tmp")


def _undo_restore(
    staging: Path, target: Path, bucket: MaintainedStore | None, added: list[str]
) -> None:
    """The folder was empty before: leave it empty rather than half restored, and take
    out of the bucket the objects this restore put there."""
    shutil.rmtree(staging, ignore_errors=True)
    for p in target.iterdir():
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    if bucket is not None:
        for sha in added:
            with contextlib.suppress(StorageError):
                bucket.delete(sha)


def _safe_member(name: str) -> bool:
    p = Path(name)
    return not p.is_absolute() and ".." not in p.parts and "\x00" not in name and bool(p.parts)


def _require_key(raw: bytes, cipher: Cipher | None) -> None:
    if is_encrypted(raw) and cipher is None:
        raise StorageError(
            "The backup's photos are encrypted: set VEIN_TRACKER_ENCRYPTION_KEY to the key "
            "(or keys) in use when it was made, then restore again."
        )


def _extract_verified(
    archive: Path,
    staging: Path,
    *,
    object_sink: Callable[[str, bytes], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Extract every member into ``staging``, each checked against the manifest.

    With ``object_sink``, photo objects are not written to disk: each is read into
    memory, checked, and handed to ``object_sink(sha256, stored_bytes)``.
    """
    try:
        tar = tarfile.open(archive, "r:")  # noqa: SIM115 - closed by the with block below
    except (OSError, tarfile.TarError) as exc:
        raise StorageError(f"{archive.name!r} is not a readable backup archive ({exc}).") from exc
    with tar:
        try:
            mf = tar.extractfile("manifest.json")
            manifest = json.loads(mf.read()) if mf else None
        except (KeyError, tarfile.TarError, ValueError) as exc:
            raise StorageError(f"{archive.name!r} has no valid manifest: not a backup.") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise StorageError(f"{archive.name!r} is not a vein-tracker backup.")
        if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
            raise StorageError("This backup was made by a newer vein-tracker: upgrade first.")
        expected: dict[str, str] = {
            name: meta["sha256"] for name, meta in manifest["db"]["files"].items()
        }
        object_sha: dict[str, str] = {}
        for o in manifest["objects"]:
            expected[o["path"]] = o["file_sha256"]
            object_sha[o["path"]] = o["sha256"]
        files: dict[str, Path] = {}
        seen: set[str] = set()
        try:
            for member in tar:
                if member.name == "manifest.json":
                    continue
                if (
                    member.name not in expected
                    or not member.isfile()
                    or not _safe_member(member.name)
                ):
                    raise StorageError(
                        f"The archive holds an unexpected entry {member.name[:80]!r}: refused."
                    )
                src = tar.extractfile(member)
                assert src is not None
                if object_sink is not None and member.name in object_sha:
                    raw = src.read()
                    if sha256_hex(raw) != expected[member.name]:
                        raise StorageError(
                            f"{member.name} in the backup fails its checksum: the archive is "
                            "damaged."
                        )
                    object_sink(object_sha[member.name], raw)
                    seen.add(member.name)
                    continue
                dest = staging / member.name
                make_private_dir(dest.parent)
                h = hashlib.sha256()
                with os.fdopen(open_private(dest), "wb") as fh:
                    while chunk := src.read(1 << 20):
                        h.update(chunk)
                        fh.write(chunk)
                    fh.flush()
                    os.fsync(fh.fileno())
                if h.hexdigest() != expected[member.name]:
                    raise StorageError(
                        f"{member.name} in the backup fails its checksum: the archive is damaged."
                    )
                files[member.name] = dest
                seen.add(member.name)
        except (OSError, tarfile.TarError) as exc:
            raise StorageError(f"The backup archive is damaged or truncated ({exc}).") from exc
        absent = sorted(set(expected) - seen)
        if absent:
            raise StorageError(
                f"The backup is incomplete: {len(absent)} file(s) listed in its manifest are "
                f"missing (first: {absent[0]})."
            )
    return manifest, files


def _verify_objects(manifest: dict[str, Any], staging: Path, cipher: Cipher | None) -> int:
    store = LocalPhotoStore(staging / "photos", cipher=cipher)
    verified = 0
    for o in manifest["objects"]:
        raw = (staging / o["path"]).read_bytes()
        _require_key(raw, cipher)
        store.decode_raw(raw, o["sha256"])
        verified += 1
    return verified


def _restore_db(
    manifest: dict[str, Any], staging: Path, db_url: str, target: Path
) -> dict[str, int]:
    kind = manifest["db"]["kind"]
    revision = manifest.get("schema_revision")
    is_sqlite_target = make_url(db_url).get_backend_name() == "sqlite"
    if kind == "sqlite" and is_sqlite_target:
        snap = staging / SQLITE_MEMBER
        con = sqlite3.connect(str(snap))
        try:
            check = [r[0] for r in con.execute("PRAGMA integrity_check")]
        finally:
            con.close()
        if check != ["ok"]:
            raise StorageError("The database in the backup fails its integrity check.")
        _check_refs(_snapshot_refs_sqlite(snap)[0], manifest)
        dest = _sqlite_path(db_url)
        if dest.exists():
            raise StorageError(f"A database already exists at {dest.name!r}: nothing restored.")
        make_private_dir(dest.parent)
        with snap.open("rb") as snap_fh, os.fdopen(open_private(dest), "wb") as fh:
            shutil.copyfileobj(snap_fh, fh)
            fh.flush()
            os.fsync(fh.fileno())
        engine = dbmod.create_db_engine(db_url)
        try:
            dbmod.upgrade(engine)
            rows = _count_rows(engine)
        finally:
            engine.dispose()
        return rows
    # Portable path: create the schema at the backup's revision, copy rows, then upgrade.
    if kind == "sqlite":
        tables = _read_sqlite_tables(staging / SQLITE_MEMBER)
    else:
        data = json.loads((staging / LOGICAL_MEMBER).read_text())
        tables = {
            name: {
                "columns": t["columns"],
                "rows": [[_decode_value(v) for v in row] for row in t["rows"]],
            }
            for name, t in data["tables"].items()
        }
    refs: set[str] = set()
    for name, col in (("photos", "sha256"), ("analysis_masks", "sha256")):
        src = tables.get(name)
        if src and src["rows"]:
            i = src["columns"].index(col)
            refs.update(row[i] for row in src["rows"])
    _check_refs(refs, manifest)
    engine = dbmod.create_db_engine(db_url)
    try:
        _require_empty_db(engine)
        _upgrade_to(engine, revision)
        with engine.execution_options(**{dbmod.WRITE_OPTION: True}).begin() as conn:
            for table in Base.metadata.sorted_tables:
                t = tables.get(table.name)
                if not t or not t["rows"]:
                    continue
                cols = t["columns"]
                conn.execute(
                    table.insert(), [dict(zip(cols, row, strict=True)) for row in t["rows"]]
                )
            if engine.dialect.name == "postgresql":
                for table in Base.metadata.sorted_tables:
                    pk = list(table.primary_key.columns)
                    if len(pk) == 1 and pk[0].name == "id":
                        conn.execute(
                            sa.text(
                                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
                            )
                        )
        dbmod.upgrade(engine)
        return _count_rows(engine)
    finally:
        engine.dispose()


def _read_sqlite_tables(path: Path) -> dict[str, dict[str, Any]]:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            out = {}
            for t in Base.metadata.sorted_tables:
                cols = [c.name for c in t.columns]
                out[t.name] = {
                    "columns": cols,
                    "rows": [[r._mapping[c] for c in cols] for r in conn.execute(t.select())],
                }
            return out
    finally:
        engine.dispose()


def _require_empty_db(engine: sa.Engine) -> None:
    names = set(sa.inspect(engine).get_table_names())
    if "users" in names:
        with engine.connect() as conn:
            if conn.scalar(sa.text("SELECT COUNT(*) FROM users")):
                raise StorageError(
                    "The target database already holds records: restore only into an empty "
                    "database (nothing was changed)."
                )


def _upgrade_to(engine: sa.Engine, revision: str | None) -> None:
    from alembic import command

    with engine.execution_options(**{dbmod.WRITE_OPTION: True}).connect() as conn:
        cfg = dbmod.alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision or "head")
        conn.commit()


def _count_rows(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: int(conn.scalar(sa.select(sa.func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
        }


def _check_refs(refs: set[str], manifest: dict[str, Any]) -> None:
    have = {o["sha256"] for o in manifest["objects"]}
    absent = refs - have
    if absent:
        raise StorageError(
            f"The backup's database refers to {len(absent)} photo file(s) the archive lacks."
        )


def iter_manifest(archive: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The object entries of a backup's manifest (for listing what a backup holds)."""
    with tarfile.open(archive, "r:") as tar:
        mf = tar.extractfile("manifest.json")
        if mf is None:
            raise StorageError("The archive has no manifest.")
        yield from json.loads(mf.read())["objects"]
