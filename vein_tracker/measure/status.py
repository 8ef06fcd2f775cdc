"""The clinic's rule for naming a vein's change from the share of its contrast it kept.

Thresholds: a vein keeping less than :data:`CLEARED_BELOW` of its baseline contrast is
cleared, at least :data:`PERSISTING_FROM` persisting, faded in between; a vein that had
faded to at most :data:`RECANALISED_FROM_AT_MOST` and rose by :data:`RECANALISED_RISE`
came back (recanalised). The quartile grade and the target's reading of an improvement
are :mod:`vein_tracker.outcome`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "CLEARED_BELOW",
    "PERSISTING_FROM",
    "RECANALISED_FROM_AT_MOST",
    "RECANALISED_RISE",
    "status_for",
]

#: A vein keeping less than this share of its baseline contrast is "cleared".
CLEARED_BELOW = 0.2
#: A vein keeping at least this share of its baseline contrast is "persisting".
PERSISTING_FROM = 0.8
#: A vein that had faded to at most this share and came back by at least
#: ``RECANALISED_RISE`` is "recanalised".
RECANALISED_FROM_AT_MOST = 0.5
RECANALISED_RISE = 0.3


def status_for(remaining: float, *, previous_remaining: Sequence[float] = ()) -> str:
    """Status of one baseline vein from the share of its contrast still visible.

    Parameters
    ----------
    remaining : float
        Share of baseline contrast left at this follow-up (0 cleared … 1 unchanged).
    previous_remaining : sequence of float
        The same share at earlier follow-ups of the same baseline, oldest first.

    Returns
    -------
    str
        ``"recanalised"`` when an earlier follow-up had it at most
        ``RECANALISED_FROM_AT_MOST`` and it rose by at least ``RECANALISED_RISE``;
        otherwise ``"cleared"`` (< ``CLEARED_BELOW``), ``"persisting"``
        (≥ ``PERSISTING_FROM``) or ``"faded"``.
    """
    if not math.isfinite(remaining):
        raise ValueError(f"remaining must be a finite fraction, got {remaining!r}")
    if previous_remaining:
        low = min(previous_remaining)
        if low <= RECANALISED_FROM_AT_MOST and remaining >= low + RECANALISED_RISE:
            return "recanalised"
    if remaining < CLEARED_BELOW:
        return "cleared"
    if remaining >= PERSISTING_FROM:
        return "persisting"
    return "faded"
