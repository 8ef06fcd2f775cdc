"""An area over its sessions, from its saved analyses: the data behind Progress.

Owns :func:`area_progress` (the improvement per session, flagged where a photo gives no
figure), :func:`primary_photos` (the photo that counts for each visit), the latest
analysis per follow-up photo, and :func:`latest_pair_preview` (the baseline and the
latest analysed follow-up, aligned, as previews). Records go through the repository,
which checks access; nothing here touches SQL or photo files.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .. import ALGORITHM_VERSION
from .renders import _scaled_homography, preview

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..progress import Progress
    from ..storage import Actor, Repository
    from ..storage.info import AnalysisInfo, PhotoInfo, VisitInfo

__all__ = ["PairPreview", "area_progress", "latest_pair_preview", "primary_photos"]


def _latest_analyses(analyses: Sequence[AnalysisInfo], baseline_id: int) -> dict[int, AnalysisInfo]:
    """Latest analysis per follow-up photo against ``baseline_id`` (current algorithm first)."""
    best: dict[int, AnalysisInfo] = {}
    for a in analyses:
        if a.baseline_photo_id != baseline_id:
            continue
        cur = best.get(a.followup_photo_id)
        rank = (a.algorithm_version == ALGORITHM_VERSION, a.created_at, a.id)
        if cur is None or rank > (
            cur.algorithm_version == ALGORITHM_VERSION,
            cur.created_at,
            cur.id,
        ):
            best[a.followup_photo_id] = a
    return best


def primary_photos(
    photos: Iterable[PhotoInfo], *, exclude_visit: int | None = None
) -> dict[int, PhotoInfo]:
    """The photo that counts for each visit (its primary photo), by visit id.

    A visit whose primary photo is missing from ``photos`` (deleted) falls back on its
    earliest usable photo, so a visit never shows an alternate as if it counted unless
    it has nothing else.
    """
    best: dict[int, PhotoInfo] = {}
    for p in sorted(photos, key=lambda p: p.id):
        if p.visit_id == exclude_visit or p.deleted_at is not None:
            continue
        cur = best.get(p.visit_id)
        better = cur is None or (p.is_primary and not cur.is_primary)
        if better or (cur is not None and not cur.is_primary and not cur.usable and p.usable):
            best[p.visit_id] = p
    return best


def area_progress(
    repo: Repository, actor: Actor, area_id: int, *, target_pct: float = 75.0
) -> Progress | None:
    """Improvement of one area over its sessions, from the saved analyses.

    Returns None when the area has no baseline photo. Sessions whose follow-up photo
    has no saved analysis yet appear without a number.
    """
    from ..progress import Visit, summarise

    area = repo.get_area(actor, area_id)
    if area.baseline_photo_id is None:
        return None
    photos = {p.id: p for p in repo.list_photos(actor, area_id=area_id)}
    baseline = photos.get(area.baseline_photo_id)
    if baseline is None:
        return None
    visits = {v.id: v for v in repo.list_visits(actor, area.client_id)}
    latest = _latest_analyses(repo.list_analyses(actor, area_id), baseline.id)
    # One point per later visit: the photo that counts for it (its primary photo); a
    # second photo of the same visit is an alternate and changes nothing here. A primary
    # photo marked unmatched or refused gives a flagged point without a figure.
    per_visit = primary_photos(photos.values(), exclude_visit=baseline.visit_id)
    series = [Visit(date=baseline.visit_date, treated=_treated(visits.get(baseline.visit_id)))]
    for p in sorted(per_visit.values(), key=lambda p: (p.visit_date, p.session_number)):
        if p.visit_date < baseline.visit_date:
            continue
        if not p.usable:
            series.append(
                Visit(
                    date=p.visit_date,
                    treated=_treated(visits.get(p.visit_id)),
                    photo_status=p.status,
                )
            )
            continue
        a = latest.get(p.id)
        res = a.result if a is not None else {}
        band = res.get("improvement_band_pct") or None
        series.append(
            Visit(
                date=p.visit_date,
                improvement_pct=_float_or_none(res.get("improvement_pct")),
                band_pct=(float(band[0]), float(band[1]))
                if band and None not in band[:2]
                else None,
                by_class_pct={
                    k: _float_or_none(v)
                    for k, v in (res.get("improvement_by_class_pct") or {}).items()
                },
                vein_counts={k: int(v) for k, v in (res.get("veins") or {}).items()},
                warnings=tuple(str(w) for w in res.get("warnings") or ()),
                treated=_treated(visits.get(p.visit_id)),
            )
        )
    return summarise(series, target_pct=target_pct)


def _treated(visit: VisitInfo | None) -> bool:
    return visit is None or visit.sclerosant is not None


def _float_or_none(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


@dataclass(frozen=True, eq=False)
class PairPreview:
    """Baseline and the latest analysed follow-up of an area, aligned, as previews."""

    baseline: np.ndarray
    followup: np.ndarray
    baseline_date: date
    followup_date: date
    improvement_pct: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no pixels)."""
        return {
            "baseline_date": self.baseline_date.isoformat(),
            "followup_date": self.followup_date.isoformat(),
            "improvement_pct": self.improvement_pct,
            "preview_shape": list(self.baseline.shape[:2]),
        }


def latest_pair_preview(repo: Repository, actor: Actor, area_id: int) -> PairPreview | None:
    """The area's baseline and latest analysed follow-up, aligned with the saved homography."""
    area = repo.get_area(actor, area_id)
    if area.baseline_photo_id is None:
        return None
    photos = {p.id: p for p in repo.list_photos(actor, area_id=area_id)}
    counted = {p.id for p in primary_photos(photos.values()).values() if p.usable}
    latest = {
        pid: a
        for pid, a in _latest_analyses(
            repo.list_analyses(actor, area_id), area.baseline_photo_id
        ).items()
        if pid in counted
    }
    if not latest:
        return None
    newest = max(
        latest.values(),
        key=lambda a: (
            (photos[a.followup_photo_id].visit_date, a.followup_photo_id)
            if a.followup_photo_id in photos
            else (date.min, 0)
        ),
    )
    h = (newest.result.get("registration") or {}).get("homography")
    if h is None:
        return None
    b = repo.load_photo(actor, area.baseline_photo_id).rgb
    f = repo.load_photo(actor, newest.followup_photo_id).rgb
    bp, fp = preview(b), preview(f)
    hp = _scaled_homography(
        np.asarray(h, np.float64), fp.shape[1] / f.shape[1], bp.shape[1] / b.shape[1]
    )
    warped = cv2.warpPerspective(fp, hp, (bp.shape[1], bp.shape[0]), flags=cv2.INTER_LINEAR)
    return PairPreview(
        baseline=bp,
        followup=warped,
        baseline_date=photos[area.baseline_photo_id].visit_date,
        followup_date=photos[newest.followup_photo_id].visit_date,
        improvement_pct=newest.improvement_pct,
    )
