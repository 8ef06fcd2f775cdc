"""Which pairs an export may hold: listing, naming and choosing consented pairs.

Owns :func:`list_exportable_pairs` (the repository lists only pairs whose client holds a
marketing consent valid today for the channel), a pair's key and label for the clinic's
own screens (:func:`pair_key`, :func:`pair_label`: never written to an export), and
:func:`choose_pairs`, which turns the user's choice into listed pairs and the
:class:`SkippedPair` entries of those no longer listed. It reads records only through
the storage ``Repository`` with the acting user; it never touches SQL or photo files.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from ..storage.info import CHANNELS, REGIONS, Actor, MarketingPair

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..storage.repository import Repository

__all__ = ["SkippedPair", "choose_pairs", "list_exportable_pairs", "pair_key", "pair_label"]


@dataclass(frozen=True)
class SkippedPair:
    """A chosen pair left out of the export, and why (no client data).

    ``label`` names the pair for the page (body site and weeks); ``key`` is
    :func:`pair_key` (record numbers: for the clinic's own screens, never exported).
    """

    label: str
    key: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def pair_key(pair: MarketingPair) -> str:
    """Stable key of a pair in one listing: ``"<baseline photo id>-<follow-up photo id>"``
    (record numbers: for the clinic's screens and options, never written to an export)."""
    return f"{pair.baseline_photo_id}-{pair.followup_photo_id}"


def pair_label(pair: MarketingPair) -> str:
    """A pair in words for the marketing page: body site, weeks and sessions (no ids)."""
    sessions = max(0, pair.session_count - 1)
    return (
        f"{pair.area_label} · {pair.weeks:g} weeks · {sessions} "
        f"session{'' if sessions == 1 else 's'}"
    )


def _check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")


def list_exportable_pairs(
    repo: Repository,
    actor: Actor,
    *,
    channel: str,
    min_improvement: float | None = None,
    area: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    latest_only: bool = False,
) -> list[MarketingPair]:
    """Pairs the actor may export to ``channel`` today (marketing or admin accounts).

    Only pairs whose client holds a marketing consent valid today for ``channel``
    are listed (the repository decides).

    Parameters
    ----------
    channel : {"website", "social", "print"}
    min_improvement : float, optional
        Keep analysed pairs that reach this improvement, percent, by the target rule
        (:func:`vein_tracker.outcome.reaches`: the band's lower end).
    area : str, optional
        A body region (``"thigh"``, ``"knee"``, ``"calf"``) or any part of the area
        label, e.g. ``"left calf"`` (case-insensitive).
    date_from, date_to : date, optional
        Bounds (inclusive) on the date of the after photo.
    latest_only : bool
        Keep only the newest after photo per area.
    """
    _check_channel(channel)
    if min_improvement is not None and not math.isfinite(min_improvement):
        raise ValueError(f"min_improvement must be a finite percent, got {min_improvement}")
    if date_from is not None and date_to is not None and date_from > date_to:
        raise ValueError(f"date_from ({date_from}) must not be after date_to ({date_to})")
    region = area.strip().lower() if area and area.strip().lower() in REGIONS else None
    pairs = repo.list_marketing_pairs(
        actor,
        channel,
        region=region,
        min_improvement=min_improvement,
        since=date_from,
        until=date_to,
        latest_only=latest_only,
    )
    if area and region is None:
        needle = " ".join(area.lower().split())
        pairs = [p for p in pairs if needle in p.area_label.lower()]
    return pairs


def choose_pairs(
    repo: Repository,
    actor: Actor,
    pairs: Sequence[MarketingPair | str] | None,
    *,
    channel: str,
    min_improvement: float | None = None,
    area: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> tuple[list[MarketingPair], list[SkippedPair]]:
    """The pairs chosen for an export, and the chosen keys that are not listed today.

    Parameters
    ----------
    pairs : sequence of MarketingPair or str, or None
        Pairs from :func:`list_exportable_pairs`, or their :func:`pair_key`; None chooses
        every pair the filters list.
    channel : {"website", "social", "print"}
    min_improvement, area, date_from, date_to
        Filters, as in :func:`list_exportable_pairs` (used when ``pairs`` is None or
        given as keys).

    Returns
    -------
    (chosen, skipped) : list of MarketingPair, list of SkippedPair
        ``skipped`` holds each key that no longer lists for ``channel``.

    Raises
    ------
    ValueError
        A pair given as listed for another channel.
    """
    listed: list[MarketingPair] | None = None
    if pairs is None or any(isinstance(p, str) for p in pairs):
        listed = list_exportable_pairs(
            repo,
            actor,
            channel=channel,
            min_improvement=min_improvement,
            area=area,
            date_from=date_from,
            date_to=date_to,
        )
    chosen: list[MarketingPair] = []
    skipped: list[SkippedPair] = []
    if pairs is None:
        return list(listed or []), skipped
    by_key = {pair_key(p): p for p in listed or []}
    for item in pairs:
        if isinstance(item, str):
            found = by_key.get(item)
            if found is None:
                skipped.append(
                    SkippedPair("pair not listed", item, "not available for this channel today")
                )
                continue
            chosen.append(found)
        else:
            if item.channel != channel:
                raise ValueError(
                    f"pair {pair_key(item)} was listed for {item.channel!r}, not {channel!r}: "
                    "list the pairs again for this channel"
                )
            chosen.append(item)
    return chosen, skipped
