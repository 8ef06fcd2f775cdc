"""Content digests and anonymous ids: the one helper for each job.

:func:`sha256_hex` is the content address of the photo store and the checksum of
backups and exports; :func:`anonymous_id` makes the random ids that stand in for a
client or a photo wherever a name must not appear (treatment areas, exported files).
Nothing here reads or writes anything.
"""

from __future__ import annotations

import hashlib
import secrets

#: Hex digits of an anonymous id: 128 random bits, unguessable and collision-free.
ANONYMOUS_ID_HEX = 32


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data`` (64 lower-case hex digits).

    Parameters
    ----------
    data : bytes
        Any bytes, e.g. a photo file as stored.
    """
    return hashlib.sha256(data).hexdigest()


def anonymous_id() -> str:
    """A new random id of :data:`ANONYMOUS_ID_HEX` lower-case hex digits.

    It is drawn from the operating system's secure random source, so it says nothing
    about the client, the photo or the time it was made.
    """
    return secrets.token_hex(ANONYMOUS_ID_HEX // 2)
