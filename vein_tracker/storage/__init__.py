"""Clinic records: database, photo store, accounts and roles, consent, audit log, backup.

Owns persistence. The UI, the CLI, export and report code use :class:`Repository`
(from :func:`open_repository`) and the frozen records of :mod:`.info`, nothing else:
no SQL, no ORM objects and no photo-store paths outside this package. Access rules
(role, owner, consent) are enforced inside every repository method.

Modules: ``info`` (public records), ``repository`` (the API: a facade over one
module per aggregate in ``repo``), ``photostore``
(content-addressed files, AES-GCM at rest), ``accounts`` (argon2id, lock-out),
``db`` (engines, migrations), ``backup`` (backup, restore, fsck), ``seed`` (demo
clinic), ``models`` (ORM, private) and ``migrations`` (Alembic, shipped in the package).
"""

from __future__ import annotations

from .accounts import LOGIN_FAILED_MESSAGE, MAX_FAILED_LOGINS, Passwords, fast_test_hasher
from .info import (
    CHANNELS,
    CONSENT_KINDS,
    REGIONS,
    ROLES,
    SCLEROSANT_LABELS,
    SCLEROSANTS,
    SCREENING_LABELS,
    SCREENING_QUESTIONS,
    SIDES,
    SYSTEM_ACTOR,
    VIEWS,
    Actor,
    AnalysisInfo,
    AreaInfo,
    AuditInfo,
    BootstrapResult,
    ClientInfo,
    ConsentInfo,
    MarketingPair,
    PhotoInfo,
    Screening,
    UserInfo,
    VisitInfo,
)
from .photostore import Cipher, LocalPhotoStore, PhotoStore
from .repository import (
    AUDIT_ACTIONS,
    Repository,
    Retry,
    decode_mask_png,
    encode_mask_png,
    open_repository,
    params_hash,
    version_key,
)

__all__ = [
    "AUDIT_ACTIONS",
    "CHANNELS",
    "CONSENT_KINDS",
    "LOGIN_FAILED_MESSAGE",
    "MAX_FAILED_LOGINS",
    "REGIONS",
    "ROLES",
    "SCLEROSANTS",
    "SCLEROSANT_LABELS",
    "SCREENING_LABELS",
    "SCREENING_QUESTIONS",
    "SIDES",
    "SYSTEM_ACTOR",
    "VIEWS",
    "Actor",
    "AnalysisInfo",
    "AreaInfo",
    "AuditInfo",
    "BootstrapResult",
    "Cipher",
    "ClientInfo",
    "ConsentInfo",
    "LocalPhotoStore",
    "MarketingPair",
    "Passwords",
    "PhotoInfo",
    "PhotoStore",
    "Repository",
    "Retry",
    "Screening",
    "UserInfo",
    "VisitInfo",
    "decode_mask_png",
    "encode_mask_png",
    "fast_test_hasher",
    "open_repository",
    "params_hash",
    "version_key",
]
