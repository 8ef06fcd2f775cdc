"""Domain exceptions: the small set of errors the clinic-facing layers show.

Every message must tell a clinic user what happened and what to do next.
The UI prints ``str(exc)``; the CLI prints it on one line and exits with
:attr:`VeinTrackerError.exit_code`.
"""

from __future__ import annotations


class VeinTrackerError(Exception):
    """Base class of every error vein_tracker raises on purpose."""

    #: Exit status the CLI uses for this error.
    exit_code: int = 1


class PhotoError(VeinTrackerError, ValueError):
    """A photo could not be read or is unusable (bad file, too big, too small)."""

    exit_code = 2


class RegistrationError(VeinTrackerError):
    """A follow-up photo could not be aligned onto its baseline; the pair is not scored."""

    exit_code = 3


class ConsentError(VeinTrackerError):
    """The action needs a consent the client has not given, or has revoked, or let expire."""

    exit_code = 4


class AccessDenied(VeinTrackerError, PermissionError):
    """The acting user may not read or change this record."""

    exit_code = 4


class StorageError(VeinTrackerError):
    """The photo store or database failed (disk full, locked, corrupt file)."""

    exit_code = 5
