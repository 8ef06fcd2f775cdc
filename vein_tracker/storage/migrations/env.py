"""Alembic environment of vein_tracker: runs the packaged migrations.

The URL comes from, in order: a connection passed by the caller
(``config.attributes["connection"]``, used by :func:`vein_tracker.storage.db.upgrade`),
``-x url=...``, ``sqlalchemy.url`` in the ini file, then ``VEIN_TRACKER_DB_URL`` /
the SQLite file in ``VEIN_TRACKER_DATA``.
"""

from __future__ import annotations

from alembic import context

from vein_tracker.config import get_settings
from vein_tracker.storage.db import create_db_engine
from vein_tracker.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    x = context.get_x_argument(as_dictionary=True)
    return x.get("url") or config.get_main_option("sqlalchemy.url") or get_settings().db_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_db_engine(_url())
    try:
        with engine.execution_options(vt_write=True).connect() as conn:
            context.configure(
                connection=conn, target_metadata=target_metadata, render_as_batch=True
            )
            with context.begin_transaction():
                context.run_migrations()
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
