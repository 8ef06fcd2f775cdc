"""The repository: the one door to clinic records and photos, with access rules inside.

:class:`Repository` is a facade: it composes one class per aggregate, each in its own
module of :mod:`vein_tracker.storage.repo` over the shared transaction and guard helpers
of :mod:`.repo.base` (adding an aggregate is a new module there and one base class here):

- ``accounts``: sign-in, the first admin, user accounts, passwords;
- ``clients``: client records with their contraindication screening;
- ``visits``: treatment areas and visits;
- ``photos``: uploads, scale, baseline, metadata and verified bytes;
- ``analyses``: saved analyses of photo pairs and their masks;
- ``consent``: treatment-photography and marketing consents;
- ``marketing``: consented before/after pairs and the audit of their export;
- ``audit``: the audit log;
- ``maintenance``: installation settings and the database's self-checks.

Owns every read and write of the database and the photo store, the access rules
(role, owner, consent) and the audit log. Pages, the CLI, export and report code
call these methods with the acting :class:`~vein_tracker.storage.info.Actor` and
get frozen dataclasses back; they never see SQL, ORM objects or file paths.

Who may do what is the table of :mod:`vein_tracker.policy`, which every method reads
(``AccessDenied`` otherwise); on top of it the methods check whose record it is:

- ``client`` accounts read only their own client record, areas, visits, photos,
  analyses and consents, and may withdraw only their own *marketing* consent;
- whoever exports marketing pairs reads only pairs whose client holds a marketing
  consent valid today for the channel asked for, and those photos;
- a photo is taken only under a valid treatment-photography consent.

Every write is one database transaction; the audit event of a write is part of it.
A photo's row is committed only after its file is durably in the photo store.
Reads of photo pixels are audited (``photo_view``): callers should cache the bytes
per page render rather than re-reading them on every Streamlit rerun.

SQLite "database is locked" and PostgreSQL serialisation failures are retried a few
times, then reported as ``StorageError`` with a clear message.
"""

from __future__ import annotations

from ..config import Settings, get_settings
from . import accounts
from .db import create_db_engine, upgrade
from .photostore import PhotoStore, open_store
from .repo.accounts import AccountRecords
from .repo.analyses import (
    AnalysisRecords,
    decode_mask_png,
    encode_mask_png,
    params_hash,
    version_key,
)
from .repo.audit import AuditRecords
from .repo.base import Retry
from .repo.clients import ClientRecords
from .repo.common import AUDIT_ACTIONS, EXTERNAL_EVENTS
from .repo.consent import ConsentRecords
from .repo.export_keys import ExportKeyRecords  # issue 24 (H6)
from .repo.maintenance import MaintenanceRecords
from .repo.marketing import MarketingRecords
from .repo.photos import PhotoRecords
from .repo.ratings import RatingRecords
from .repo.vein_maps import VeinMapRecords
from .repo.visits import VisitRecords
from .repo.web_sessions import WebSessionRecords  # issue 24 (H6)
from .repo.workflow import WorkflowRecords  # issue 24 (H6)

__all__ = [
    "AUDIT_ACTIONS",
    "EXTERNAL_EVENTS",
    "Repository",
    "Retry",
    "decode_mask_png",
    "encode_mask_png",
    "open_repository",
    "params_hash",
    "version_key",
]


class Repository(
    AccountRecords,
    ClientRecords,
    VisitRecords,
    PhotoRecords,
    AnalysisRecords,
    ConsentRecords,
    MarketingRecords,
    AuditRecords,
    MaintenanceRecords,
    VeinMapRecords,  # issue 22 (H5): reviewed vein maps
    RatingRecords,  # issue 22 (H5): blind rating sessions
    WorkflowRecords,  # issue 24 (H6): primary photos, status, delete/retake, refusals
    WebSessionRecords,  # issue 24 (H6): signed-in browsers across reloads
    ExportKeyRecords,  # issue 24 (H6): anonymous export ids and their private mapping
):
    """Clinic records and photos behind access rules. Build it with :func:`open_repository`.

    Takes the parameters of :class:`~.repo.base.RepositoryBase` (engine, photo store,
    settings, password hasher). Every public method belongs to one aggregate (see the
    module docstring). One instance may serve every user and thread: each call opens
    its own session.
    """


def open_repository(
    settings: Settings | None = None,
    *,
    store: PhotoStore | None = None,
    passwords: accounts.Passwords | None = None,
    retry: Retry | None = None,
    migrate: bool = True,
) -> Repository:
    """Open (and on an empty database, create) the clinic records.

    Parameters
    ----------
    settings : Settings, optional
        Default :func:`vein_tracker.config.get_settings` (``VEIN_TRACKER_DATA``,
        ``VEIN_TRACKER_DB_URL``, ``VEIN_TRACKER_ENCRYPTION_KEY``).
    store : PhotoStore, optional
        Default :func:`~.photostore.open_store`: the bucket of ``VEIN_TRACKER_STORE_URL``,
        else a :class:`~.photostore.LocalPhotoStore` in ``<data_dir>/photos`` (encrypted
        when a key is set).
    passwords : accounts.Passwords, optional
        Default production argon2id; tests pass cheaper parameters.
    retry : Retry, optional
        Retries while the database is busy (default four attempts, 0.05 s, 0.1 s and
        0.2 s apart).
    migrate : bool
        Bring the schema to the latest migration first (default True).
    """
    settings = settings or get_settings()
    # The data folder is made (0700) only where it is used: by create_db_engine for a
    # SQLite file, by open_store for the local store; PostgreSQL with an S3 store needs none.
    engine = create_db_engine(settings.db_url)
    try:
        if migrate:
            upgrade(engine)
        if store is None:
            store = open_store(settings)
    except BaseException:
        engine.dispose()
        raise
    return Repository(engine, store, settings=settings, passwords=passwords, retry=retry)
