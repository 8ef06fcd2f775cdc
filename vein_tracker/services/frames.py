"""The before/after comparison's pictures: each session's photo in the baseline's frame.

Owns the size of the comparison's pictures (the analysis frame, capped:
:func:`compare_size`), the follow-up warped into the baseline's frame
(:func:`align_followup`), a pair's two pictures (:func:`pair_frames`) and one picture
per session of an area (:func:`session_frames`), cached by content after the access
check. Records go through the repository; nothing here touches SQL or photo files.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..io import as_rgb
from .progress_views import _latest_analyses, primary_photos
from .renders import _scaled_homography, _to_size, preview

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..storage import Actor, Repository
    from ..storage.info import AnalysisInfo, PhotoInfo

__all__ = [
    "COMPARE_MAX_SIDE",
    "SessionFrame",
    "align_followup",
    "compare_size",
    "pair_frames",
    "session_frames",
]

#: Longest side of the pictures of the before/after comparison, px: the analysis frame's
#: own pixels (10 px/mm; a 200 mm field is 2000 px) capped to keep a phone's page light.
COMPARE_MAX_SIDE = 1600
_FRAME_CACHE_SIZE = 16
_frames: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
_frames_lock = threading.Lock()


def compare_size(
    photo_shape: tuple[int, int],
    analysis_shape: Sequence[int] | None = None,
    *,
    max_side: int = COMPARE_MAX_SIDE,
) -> tuple[int, int]:
    """``(w, h)`` of the comparison's pictures: the analysis frame, at most ``max_side``.

    Parameters
    ----------
    photo_shape : (H, W)
        The baseline photo's size, px.
    analysis_shape : (H, W) or None
        The size the pair was analysed at (``result["analysis"]["baseline_shape"]``);
        None when unknown (the photo's size is used).
    max_side : int
        Longest side, px (>= 64).
    """
    if max_side < 64:
        raise ValueError(f"max_side must be >= 64 px, got {max_side}")
    h, w = (int(v) for v in (analysis_shape or photo_shape)[:2])
    if h <= 0 or w <= 0:
        raise ValueError(f"analysis_shape must be a positive (H, W), got {analysis_shape!r}")
    scale = min(1.0, max_side / max(h, w))
    # Keep the photo's aspect ratio exactly (the analysis frame rounds its sides).
    ph, pw = photo_shape[:2]
    long = max(1, round(max(h, w) * scale))
    if pw >= ph:
        return long, max(1, round(long * ph / pw))
    return max(1, round(long * pw / ph)), long


def align_followup(
    followup: np.ndarray,
    homography: np.ndarray,
    *,
    baseline_shape: tuple[int, int],
    size: tuple[int, int],
) -> np.ndarray:
    """The follow-up photo brought into the baseline's frame at ``size``.

    Parameters
    ----------
    followup : ndarray, shape (H', W', 3), dtype uint8
        The follow-up photo as stored (any size).
    homography : ndarray, shape (3, 3)
        Maps follow-up photo pixel (x, y) to baseline photo pixel (x, y).
    baseline_shape : (H, W)
        The baseline photo's size, px.
    size : (w, h)
        The result's size, px (the baseline photo scaled).

    Returns
    -------
    ndarray, shape (h, w, 3), dtype uint8
        Black where the follow-up does not reach.
    """
    f = as_rgb(followup)
    hmat = np.asarray(homography, np.float64)
    if hmat.shape != (3, 3) or not np.all(np.isfinite(hmat)):
        raise ValueError("homography must be a finite 3x3 matrix")
    s_to = size[0] / baseline_shape[1]
    # Reduce the follow-up first (area averaging), then warp: a warp that also shrinks
    # 2-3x would alias fine veins.
    small = preview(f, max_side=max(16, math.ceil(max(f.shape[:2]) * min(1.0, 1.25 * s_to))))
    s_from = small.shape[1] / f.shape[1]
    hp = _scaled_homography(hmat, s_from, s_to)
    return np.asarray(cv2.warpPerspective(small, hp, size, flags=cv2.INTER_LINEAR))


def _frame_cached(key: tuple[Any, ...], make: Callable[[], np.ndarray]) -> np.ndarray:
    with _frames_lock:
        hit = _frames.get(key)
        if hit is not None:
            _frames.move_to_end(key)
            return hit
    value = make()
    value.setflags(write=False)
    with _frames_lock:
        _frames[key] = value
        while len(_frames) > _FRAME_CACHE_SIZE:
            _frames.popitem(last=False)
    return value


def pair_frames(
    repo: Repository,
    actor: Actor,
    *,
    baseline_photo_id: int,
    followup_photo_id: int,
    result: Mapping[str, Any],
    max_side: int = COMPARE_MAX_SIDE,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Baseline and follow-up in the baseline's frame, at the analysis frame's resolution.

    Parameters
    ----------
    result : dict
        The pair's analysis (``Comparison.to_dict()``): its homography and analysis size.
    max_side : int
        Longest side of the pictures, px.

    Returns
    -------
    (baseline, followup) : two ndarrays, shape (h, w, 3), uint8, or None
        None when the result carries no homography (the pair did not register).

    Raises
    ------
    AccessDenied
        The user may not read these photos (checked before any cached picture is used).
    """
    h = (result.get("registration") or {}).get("homography")
    if h is None:
        return None
    b_info = repo.get_photo(actor, baseline_photo_id)
    f_info = repo.get_photo(actor, followup_photo_id)
    analysis = (result.get("analysis") or {}).get("baseline_shape")
    size = compare_size((b_info.height, b_info.width), analysis, max_side=max_side)
    hkey = tuple(round(float(v), 9) for row in h for v in row)
    db = repo.settings.db_url

    def base() -> np.ndarray:
        rgb = repo.load_photo(actor, baseline_photo_id).rgb
        return _to_size(preview(rgb, max_side=max(16, max(size))), size)

    def follow() -> np.ndarray:
        rgb = repo.load_photo(actor, followup_photo_id).rgb
        return align_followup(
            rgb, np.asarray(h), baseline_shape=(b_info.height, b_info.width), size=size
        )

    b = _frame_cached((db, "b", b_info.sha256, size), base)
    f = _frame_cached((db, "f", b_info.sha256, f_info.sha256, hkey, size), follow)
    return b, f


@dataclass(frozen=True, eq=False)
class SessionFrame:
    """One session's picture of an area, in the baseline's frame.

    Attributes
    ----------
    label : str
        ``"session 2 · 2026-03-01"`` (plus "baseline" for the first).
    rgb : ndarray, shape (h, w, 3), dtype uint8
    photo_id : int
    visit_date : date
    session_number : int
    improvement_pct : float or None
        The saved analysis' figure (None for the baseline).
    """

    label: str
    rgb: np.ndarray
    photo_id: int
    visit_date: date
    session_number: int
    improvement_pct: float | None = None


def session_frames(
    repo: Repository, actor: Actor, area_id: int, *, max_side: int = COMPARE_MAX_SIDE
) -> list[SessionFrame]:
    """The area's baseline and each later session's analysed photo, aligned, oldest first.

    One picture per session: the photo Progress measures for that visit (its primary
    photo, when usable, with its latest saved analysis against the baseline). Sessions
    without a saved, registered analysis are left out. Empty when the area has no
    baseline or no such session.
    """
    area = repo.get_area(actor, area_id)
    if area.baseline_photo_id is None:
        return []
    photos = {p.id: p for p in repo.list_photos(actor, area_id=area_id)}
    baseline = photos.get(area.baseline_photo_id)
    if baseline is None:
        return []
    latest = _latest_analyses(repo.list_analyses(actor, area_id), baseline.id)
    per_visit: dict[int, tuple[PhotoInfo, AnalysisInfo]] = {}
    for p in primary_photos(photos.values(), exclude_visit=baseline.visit_id).values():
        analysis = latest.get(p.id)
        if not p.usable or analysis is None:
            continue
        if (analysis.result.get("registration") or {}).get("homography") is None:
            continue
        per_visit[p.visit_id] = (p, analysis)
    frames: list[SessionFrame] = []
    for p, analysis in sorted(per_visit.values(), key=lambda t: (t[0].visit_date, t[0].id)):
        pair = pair_frames(
            repo,
            actor,
            baseline_photo_id=baseline.id,
            followup_photo_id=p.id,
            result=analysis.result,
            max_side=max_side,
        )
        if pair is None:
            continue
        if not frames:
            frames.append(
                SessionFrame(
                    label=f"session {baseline.session_number} · {baseline.visit_date} (baseline)",
                    rgb=pair[0],
                    photo_id=baseline.id,
                    visit_date=baseline.visit_date,
                    session_number=baseline.session_number,
                )
            )
        frames.append(
            SessionFrame(
                label=f"session {p.session_number} · {p.visit_date}",
                rgb=pair[1],
                photo_id=p.id,
                visit_date=p.visit_date,
                session_number=p.session_number,
                improvement_pct=analysis.improvement_pct,
            )
        )
    return frames
