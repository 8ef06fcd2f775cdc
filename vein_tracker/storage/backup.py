"""Backup, restore and consistency check (fsck) of the clinic records and photo store.

Owns the backup archive format and the checks that prove nothing is lost. It reads
and writes the database and the store directly (it is the storage layer's own
maintenance tool) and is run by the local operator from the CLI, never from a page.

Archive (a plain tar)::

    manifest.json                 format, versions, schema revision, every file's sha256
    db/vein_tracker.sqlite3       SQLite: a consistent copy made with the backup API
    db/logical.json               PostgreSQL: every table in one REPEATABLE READ snapshot
    db/pg_dump.sql                PostgreSQL with pg_dump on PATH: the same snapshot
                                  (``pg_dump --snapshot``), for a DBA's own tools
    photos/objects/ab/cd/<sha256> photo and mask files as stored (encrypted if they are)

Only files the database snapshot refers to are archived, so the archive is
consistent even while the clinic keeps working (files are immutable and
content-addressed). ``restore`` goes into an empty data directory (and an empty
database when ``VEIN_TRACKER_DB_URL`` points to PostgreSQL), checks every file
against the manifest before anything becomes visible, and restores across backends
(a SQLite backup into PostgreSQL and back) through the portable table copy.
"""

from __future__ import annotations

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .. import __version__
from ..config import Settings, get_settings
from ..errors import StorageError
from . import db as dbmod
from .info import utcnow
from .models import Base
from .photostore import Cipher, LocalPhotoStore, sha256_hex

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
    """Consistency of the database and the photo store.

    Attributes
    ----------
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
    """

    checked: int
    missing: tuple[str, ...]
    corrupt: tuple[str, ...]
    orphans: tuple[str, ...]
    temp_files: tuple[str, ...]
    db_problems: tuple[str, ...]
    cleaned: int = 0

    @property
    def ok(self) -> bool:
        """No data lost and the database is sound (orphans are only waste)."""
        return not (self.missing or self.corrupt or self.db_problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "missing": list(self.missing),
            "corrupt": list(self.corrupt),
            "orphans": list(self.orphans),
            "temp_files": list(self.temp_files),
            "db_problems": list(self.db_problems),
            "cleaned": self.cleaned,
        }


# ---------------------------------------------------------------------- fsck


def fsck(
    settings: Settings | None = None,
    *,
    clean: bool = False,
    grace_s: float = DEFAULT_GRACE_S,
    verify: bool = True,
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
    """
    from .repository import open_repository

    settings = settings or get_settings()
    repo = open_repository(settings)
    try:
        store = repo.store
        if not isinstance(store, LocalPhotoStore):
            raise StorageError("fsck works on the local photo store only.")
        problems = tuple(repo.integrity_check())
        refs = repo.referenced_hashes()
        missing, corrupt = [], []
        for sha, what in sorted(refs.items()):
            if not store.exists(sha):
                missing.append(f"{sha} ({what})")
                continue
            if verify:
                try:
                    store.get(sha)
                except StorageError as exc:
                    corrupt.append(f"{sha} ({what}): {exc}")
        cutoff = time.time() - grace_s
        orphans = [o for o in store.scan() if o.sha256 not in refs]
        temps = store.temp_files()
        cleaned = 0
        if clean:
            # Re-read the references: an upload may have committed since the first read.
            refs_now = repo.referenced_hashes()
            for o in orphans:
                if o.mtime <= cutoff and o.sha256 not in refs_now and store.delete(o.sha256):
                    cleaned += 1
            for t in temps:
                with contextlib.suppress(FileNotFoundError):
                    if t.stat().st_mtime <= cutoff:
                        t.unlink()
                        cleaned += 1
            if cleaned:
                repo.audit_system("fsck_clean", detail={"removed": cleaned})
        return FsckReport(
            checked=len(refs),
            missing=tuple(missing),
            corrupt=tuple(corrupt),
            orphans=tuple(o.sha256 for o in orphans),
            temp_files=tuple(t.name for t in temps),
            db_problems=problems,
            cleaned=cleaned,
        )
    finally:
        repo.close()


# ---------------------------------------------------------------------- backup


def backup(out: str | os.PathLike[str], settings: Settings | None = None) -> BackupResult:
    """Write a consistent backup archive of the database and the photos it refers to.

    The archive is written to ``OUT.part`` and renamed when complete, so a crash
    never leaves a truncated file under the final name.

    Raises
    ------
    StorageError
        A referenced photo file is missing or damaged (run ``vein-tracker fsck``), the
        database cannot be read, or the disk is full.
    """
    from .repository import open_repository

    settings = settings or get_settings()
    out_path = Path(out)
    if out_path.suffix != ".tar":
        raise ValueError(f"the backup file name must end in .tar, got {out_path.name!r}")
    repo = open_repository(settings)
    try:
        store = repo.store
        if not isinstance(store, LocalPhotoStore):
            raise StorageError("backup works on the local photo store only.")
        with tempfile.TemporaryDirectory(prefix="vt-backup-", dir=settings.data_dir) as tmp_s:
            tmp = Path(tmp_s)
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
                refs, revision, pg_dump_ok = _pg_snapshot(
                    repo.engine, settings.db_url, logical, dump
                )
                members.append((LOGICAL_MEMBER, logical))
                if pg_dump_ok:
                    members.append((PGDUMP_MEMBER, dump))
                db_kind = "logical"
            objects: list[dict[str, Any]] = []
            for sha in sorted(refs):
                raw = store.read_raw(sha)
                # Decrypting proves the file is the photo it claims to be.
                store.decode_raw(raw, sha)
                objects.append(
                    {
                        "sha256": sha,
                        "path": f"photos/objects/{sha[:2]}/{sha[2:4]}/{sha}",
                        "file_sha256": sha256_hex(raw),
                        "size": len(raw),
                    }
                )
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "created_at": utcnow().isoformat(),
                "app_version": __version__,
                "schema_revision": revision,
                "db": {
                    "kind": db_kind,
                    "dialect": repo.dialect,
                    "files": {
                        name: {"sha256": _file_sha256(path), "size": path.stat().st_size}
                        for name, path in members
                    },
                },
                "encrypted": any(
                    store.read_raw(o["sha256"]).startswith(b"VTE1") for o in objects[:1]
                ),
                "objects": objects,
            }
            part = out_path.with_name(out_path.name + ".part")
            total = 0
            try:
                out_path.parent.mkdir(parents=True, exist_ok=True)
                with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
                    _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
                    for name, path in members:
                        tar.add(path, arcname=name, recursive=False)
                        total += path.stat().st_size
                    for o in objects:
                        raw = store.read_raw(o["sha256"])
                        if sha256_hex(raw) != o["file_sha256"]:
                            raise StorageError(
                                f"Photo file {o['sha256'][:12]} changed during the backup: retry."
                            )
                        _add_bytes(tar, o["path"], raw)
                        total += len(raw)
                with part.open("rb+") as fh:
                    os.fsync(fh.fileno())
                part.replace(out_path)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    part.unlink()
                raise StorageError(
                    f"The backup could not be written ({exc.strerror or exc}): nothing was "
                    "kept. Check free space at the destination."
                ) from exc
        repo.audit_system(
            "backup", detail={"file": out_path.name, "photos": len(objects), "db": db_kind}
        )
        return BackupResult(
            out_path, len(objects), total, db_kind, revision or "", has_pg_dump=pg_dump_ok
        )
    finally:
        repo.close()


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
    logical.write_text(json.dumps(data, separators=(",", ":")))
    return refs, revision, pg_ok


def _run_pg_dump(url: str, snapshot: str, dest: Path) -> bool:
    exe = shutil.which("pg_dump")
    if exe is None:
        return False
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
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if "$dt" in value:
            return datetime.fromisoformat(value["$dt"])
        if "$d" in value:
            return date.fromisoformat(value["$d"])
        if "$json" in value:
            return value["$json"]
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

    Raises
    ------
    StorageError
        The archive is damaged or not a vein-tracker backup, a file fails its hash,
        the target is not empty, or a photo the database refers to is absent.
    """
    settings = settings or get_settings()
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
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=target))
    try:
        manifest, files = _extract_verified(Path(archive), staging)
        cipher = Cipher.from_setting(settings.encryption_key)
        verified = _verify_objects(manifest, staging, cipher)
        rows = _restore_db(manifest, staging, db_url, target)
        # Move photos into place last: the database already names every one of them.
        src_objects = staging / "photos" / "objects"
        if src_objects.exists():
            dst = target / "photos"
            dst.mkdir(parents=True, exist_ok=True)
            src_objects.replace(dst / "objects")
            (dst / "tmp").mkdir(exist_ok=True)
    except BaseException:
        # The folder was empty before: leave it empty rather than half restored.
        shutil.rmtree(staging, ignore_errors=True)
        for p in target.iterdir():
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    del files
    result = RestoreResult(target, db_url, len(manifest["objects"]), verified, rows)
    restored = dataclasses.replace(settings, data_dir=target, db_url=db_url)
    from .repository import open_repository

    repo = open_repository(restored)
    try:
        repo.audit_system("restore", detail={"file": Path(archive).name, "photos": result.photos})
    finally:
        repo.close()
    return result


def _safe_member(name: str) -> bool:
    p = Path(name)
    return not p.is_absolute() and ".." not in p.parts and "\x00" not in name and bool(p.parts)


def _extract_verified(archive: Path, staging: Path) -> tuple[dict[str, Any], dict[str, Path]]:
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
        for o in manifest["objects"]:
            expected[o["path"]] = o["file_sha256"]
        files: dict[str, Path] = {}
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
                dest = staging / member.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                h = hashlib.sha256()
                with dest.open("wb") as fh:
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
        except (OSError, tarfile.TarError) as exc:
            raise StorageError(f"The backup archive is damaged or truncated ({exc}).") from exc
        absent = sorted(set(expected) - set(files))
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
        if raw.startswith(b"VTE1") and cipher is None:
            raise StorageError(
                "The backup's photos are encrypted: set VEIN_TRACKER_ENCRYPTION_KEY to the key "
                "(or keys) in use when it was made, then restore again."
            )
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
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(snap, dest)
        with dest.open("rb+") as fh:
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
