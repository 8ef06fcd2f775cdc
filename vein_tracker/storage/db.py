"""Database engines and schema migrations.

Owns how a connection is made (SQLite pragmas on every connection, PostgreSQL
through psycopg) and how the schema is brought to the latest Alembic revision.
The migrations ship inside the package (``vein_tracker/storage/migrations``), so an
installed wheel can migrate with ``alembic -c <package>/storage/alembic.ini upgrade
head`` or simply by opening the repository.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ..errors import StorageError
from .private import create_private_file, make_private_dir

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"
#: Milliseconds SQLite waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: Execution option that makes a SQLite transaction take the write lock at BEGIN.
WRITE_OPTION = "vt_write"
_PG_MIGRATION_LOCK = 7_415_320_021


def create_db_engine(url: str, *, echo: bool = False) -> sa.Engine:
    """An engine for ``url`` with this project's connection settings.

    SQLite: the database file (and so its ``-wal``/``-shm`` files) is created 0600 in a
    0700 folder whatever the umask; WAL journal, ``foreign_keys=ON``, ``busy_timeout``,
    ``synchronous=FULL`` on every connection; transactions begin with ``BEGIN IMMEDIATE`` when the
    ``vt_write`` execution option is set, so two writers queue on the busy timeout
    instead of failing on a lock upgrade.
    """
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            try:
                make_private_dir(Path(u.database).parent)
                # Created here rather than by SQLite, which would use 0644 under the usual
                # umask; its -wal/-shm/-journal files take the database file's mode.
                create_private_file(u.database)
            except OSError as exc:
                raise StorageError(
                    f"The database file cannot be created ({exc.strerror or exc})."
                ) from exc
        engine = sa.create_engine(
            u, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        _install_sqlite_hooks(engine)
        return engine
    if u.get_backend_name() == "postgresql":
        if u.drivername == "postgresql":
            u = u.set(drivername="postgresql+psycopg")
        return sa.create_engine(u, echo=echo, pool_pre_ping=True)
    raise ValueError(
        "VEIN_TRACKER_DB_URL must be a sqlite:/// or postgresql+psycopg:// URL, "
        f"got {u.drivername!r}"
    )


def _install_sqlite_hooks(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy (not the sqlite3 module) decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        # Medical records: a commit must survive a power cut, not only a crash.
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def alembic_config(url: str | None = None) -> Any:
    """The Alembic ``Config`` of the packaged migrations (``url`` sets ``sqlalchemy.url``)."""
    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration revision shipped with this package."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _migration_lock(engine: sa.Engine) -> Iterator[sa.Connection]:
    write_engine = engine.execution_options(**{WRITE_OPTION: True})
    with write_engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
        else:
            yield conn


def upgrade(engine: sa.Engine) -> str:
    """Bring the schema to the head revision (creates it in an empty database).

    Concurrent callers are serialised (SQLite write lock, PostgreSQL advisory lock).
    Returns the head revision.
    """
    from alembic import command

    head = head_revision()
    if current_revision(engine) == head:
        return head
    with _migration_lock(engine) as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        try:
            command.upgrade(cfg, "head")
        except sa.exc.OperationalError as exc:
            raise StorageError(
                f"The database schema could not be updated ({exc.orig}): check that the "
                "database is reachable and writable, then restart."
            ) from exc
        conn.commit()
    return head
