"""Password hashing and sign-in rules (argon2id, lock-out, generic failure message).

Owns the hashing parameters and the lock-out policy. It never stores, logs or
returns a password in clear; the repository stores only the encoded hash.
"""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime, timedelta
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: Failed sign-ins in a row that lock an account.
MAX_FAILED_LOGINS: Final = 5
#: How long a locked account stays locked.
LOCKOUT: Final = timedelta(minutes=15)
#: Shortest password accepted for a new or changed password.
MIN_PASSWORD_LENGTH: Final = 10
#: The one message a failed sign-in shows, whatever the cause (no user enumeration).
LOGIN_FAILED_MESSAGE: Final = (
    "Sign-in failed: the username or password is wrong, or the account is locked after "
    "too many attempts (wait 15 minutes or ask the clinic administrator)."
)
_USERNAME_CHARS = set(string.ascii_lowercase + string.digits + "._-@")


def default_hasher() -> PasswordHasher:
    """Production argon2id parameters: RFC 9106 low-memory profile (t=3, m=64 MiB, p=4)."""
    return PasswordHasher()


def fast_test_hasher() -> PasswordHasher:
    """Cheap argon2id parameters for the test-suite only; never use in production."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class Passwords:
    """argon2id hashing with a dummy hash for unknown users (even timing).

    Parameters
    ----------
    hasher : argon2.PasswordHasher, optional
        Default :func:`default_hasher`.
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or default_hasher()
        # Verified against when the username does not exist, so both paths cost one hash.
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, encoded: str | None, password: str) -> bool:
        """True if ``password`` matches ``encoded``; with None, spends the same time and fails."""
        try:
            self.hasher.verify(encoded or self._dummy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return encoded is not None

    def needs_rehash(self, encoded: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(encoded)
        except InvalidHashError:
            return True


def check_new_password(password: str) -> None:
    """Raise ``ValueError`` if ``password`` is too weak for an account."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(
            f"password must have at least {MIN_PASSWORD_LENGTH} characters; choose a longer one"
        )
    if password.strip() != password or len(set(password)) < 4:
        raise ValueError("password is too simple (repeated or padded characters): choose another")


def normalise_username(username: str) -> str:
    """Lower-cased, stripped username; ``ValueError`` if it has other characters."""
    if not isinstance(username, str):
        raise ValueError("username must be text")
    name = username.strip().lower()
    if not 3 <= len(name) <= 64 or not set(name) <= _USERNAME_CHARS:
        raise ValueError("username must be 3-64 characters: letters, digits, '.', '_', '-' or '@'")
    return name


def session_expired(
    last_activity: datetime, *, idle_timeout_min: float, now: datetime | None = None
) -> bool:
    """True when a signed-in session has been idle longer than ``idle_timeout_min``.

    Parameters
    ----------
    last_activity : datetime
        Time of the user's last action, timezone-aware.
    idle_timeout_min : float
        ``Settings.idle_timeout_min`` (``VEIN_TRACKER_IDLE_TIMEOUT_MIN``), minutes, > 0.
    now : datetime, optional
        Default the current UTC time.
    """
    if last_activity.tzinfo is None:
        raise ValueError("last_activity must be timezone-aware (UTC)")
    if not idle_timeout_min > 0:
        raise ValueError(f"idle_timeout_min must be positive, got {idle_timeout_min!r}")
    current = now or datetime.now(UTC)
    return current - last_activity > timedelta(minutes=idle_timeout_min)


def generate_password(length: int = 16) -> str:
    """A random password (for the one-time admin password)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))
