"""What the review page shows for one pair, and how a reviewed result is kept.

Owns the aesthetician's choices (:class:`AnalysisParams`), the page's numbers and
downscaled pictures (:class:`ReviewData`, built from a fresh
:class:`~vein_tracker.measure.Comparison` by :func:`review_from_comparison` or rebuilt
from a saved analysis without re-analysing), the cache of reviews, and
:func:`save_analysis`. The analysis itself is :func:`vein_tracker.services.analyze_pair`.
Records go through the repository, which checks access; nothing here touches SQL or
photo files.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .renders import _scaled_homography, _to_size, preview

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..measure import Comparison
    from ..storage import Actor, Repository
    from ..storage.info import AnalysisInfo

__all__ = [
    "AnalysisParams",
    "Rect",
    "ReviewData",
    "clear_analysis_cache",
    "review_from_comparison",
    "save_analysis",
]

Rect = tuple[float, float, float, float]


def _check_rect(name: str, rect: Rect | None) -> Rect | None:
    if rect is None:
        return None
    if len(rect) != 4:
        raise ValueError(f"{name} must be (x0, y0, x1, y1) fractions, got {rect!r}")
    x0, y0, x1, y1 = (float(v) for v in rect)
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
        raise ValueError(
            f"{name} must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {rect!r}"
        )
    return (x0, y0, x1, y1)


@dataclass(frozen=True)
class AnalysisParams:
    """What the aesthetician chose on the review page.

    Attributes
    ----------
    sensitivity : float
        Segmentation sensitivity in [0, 1].
    include_rect : (x0, y0, x1, y1) or None
        Keep only this rectangle of the baseline, as fractions of width and height
        (x right, y down); None keeps the whole overlap.
    exclude_rect : (x0, y0, x1, y1) or None
        Erase this rectangle from the region, same convention.
    target_pct : float
        The clinic's target, percent.
    """

    sensitivity: float = 0.5
    include_rect: Rect | None = None
    exclude_rect: Rect | None = None
    target_pct: float = 75.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.sensitivity <= 1.0:
            raise ValueError(f"sensitivity must be in [0, 1], got {self.sensitivity}")
        if not 0.0 < self.target_pct <= 100.0:
            raise ValueError(f"target_pct must be in (0, 100], got {self.target_pct}")
        object.__setattr__(self, "include_rect", _check_rect("include_rect", self.include_rect))
        object.__setattr__(self, "exclude_rect", _check_rect("exclude_rect", self.exclude_rect))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (stored with the analysis)."""
        return {
            "sensitivity": round(self.sensitivity, 4),
            "include_rect": list(self.include_rect) if self.include_rect else None,
            "exclude_rect": list(self.exclude_rect) if self.exclude_rect else None,
            "target_pct": self.target_pct,
        }

    def key(self) -> str:
        """sha256 of the canonical JSON of :meth:`to_dict`."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def roi_mask(self, shape: tuple[int, int]) -> np.ndarray | None:
        """The region of interest at ``shape`` ``(H, W)`` as bool, or None for no limit."""
        if self.include_rect is None and self.exclude_rect is None:
            return None
        h, w = shape
        roi = np.zeros((h, w), bool) if self.include_rect else np.ones((h, w), bool)
        if self.include_rect:
            x0, y0, x1, y1 = self.include_rect
            roi[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)] = True
        if self.exclude_rect:
            x0, y0, x1, y1 = self.exclude_rect
            roi[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)] = False
        return roi


@dataclass(frozen=True, eq=False)
class ReviewData:
    """What the review page shows for one pair: numbers and downscaled images.

    Every image is a preview in the *baseline* frame, at most ``PREVIEW_MAX_SIDE`` px.

    Attributes
    ----------
    result : dict
        ``Comparison.to_dict()``.
    baseline, followup : ndarray, shape (h, w, 3), uint8
        Baseline and the follow-up warped onto it.
    baseline_labels, followup_labels : ndarray, shape (h, w), uint8
        0 none, 1 spider, 2 reticular.
    change_map : ndarray, shape (h, w), uint8
        Codes of :data:`CHANGE_LABELS`.
    region : ndarray, shape (h, w), bool
        The measured region.
    baseline_photo_id, followup_photo_id : int
    params : AnalysisParams
    cached : bool
        True when the result came from the cache (no computation on this call).
    saved : bool
        True when this result is stored in the client's record.
    masks_png : dict of str to bytes
        Full-resolution masks (change map, labels, region) as PNG, for saving.
    source_analysis_id : int or None
        The saved analysis this review was rebuilt from (its masks are reused on saving).
    """

    result: dict[str, Any]
    baseline: np.ndarray
    followup: np.ndarray
    baseline_labels: np.ndarray
    followup_labels: np.ndarray
    change_map: np.ndarray
    region: np.ndarray
    baseline_photo_id: int
    followup_photo_id: int
    params: AnalysisParams
    cached: bool = False
    saved: bool = False
    masks_png: Mapping[str, bytes] = field(default_factory=dict)
    source_analysis_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no pixels): the result, the pair, the parameters, the state."""
        return {
            "result": self.result,
            "baseline_photo_id": self.baseline_photo_id,
            "followup_photo_id": self.followup_photo_id,
            "params": self.params.to_dict(),
            "preview_shape": list(self.baseline.shape[:2]),
            "cached": self.cached,
            "saved": self.saved,
        }


_CACHE_SIZE = 12
_cache: OrderedDict[tuple[str, str, str, str, str], ReviewData] = OrderedDict()
_cache_lock = threading.Lock()


def _cache_get(key: tuple[str, str, str, str, str]) -> ReviewData | None:
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
        return hit


def _cache_put(key: tuple[str, str, str, str, str], value: ReviewData) -> None:
    with _cache_lock:
        _cache[key] = value
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def clear_analysis_cache() -> None:
    """Forget every cached review (tests; after a re-analysis)."""
    with _cache_lock:
        _cache.clear()


def _png(mask: np.ndarray, name: str) -> bytes:
    from ..storage import encode_mask_png

    return encode_mask_png(mask, name=name)


def review_from_comparison(
    comparison: Comparison,
    baseline_rgb: np.ndarray,
    *,
    baseline_photo_id: int,
    followup_photo_id: int,
    params: AnalysisParams,
) -> ReviewData:
    """Downscale a :class:`~vein_tracker.measure.Comparison` into what the page shows.

    The comparison's maps may be at the analysis scale (smaller than the photo): every
    picture of the page is brought to the size of the baseline's preview.
    """
    base = preview(baseline_rgb)
    size = (base.shape[1], base.shape[0])

    def fit(arr: np.ndarray) -> np.ndarray:
        return _to_size(preview(arr), size)

    return ReviewData(
        result=comparison.to_dict(),
        baseline=base,
        followup=fit(comparison.registration.warped),
        baseline_labels=fit(comparison.baseline_seg.labels),
        followup_labels=fit(comparison.followup_seg.labels),
        change_map=fit(comparison.change_map),
        region=fit(comparison.region),
        baseline_photo_id=baseline_photo_id,
        followup_photo_id=followup_photo_id,
        params=params,
        masks_png={
            "change_map": _png(comparison.change_map, "change_map"),
            "baseline_labels": _png(comparison.baseline_seg.labels, "baseline_labels"),
            "followup_labels": _png(comparison.followup_seg.labels, "followup_labels"),
            "region": _png(comparison.region, "region"),
        },
    )


_MASK_NAMES = ("change_map", "baseline_labels", "followup_labels", "region")


def _review_from_stored(
    repo: Repository, actor: Actor, stored: AnalysisInfo, *, params: AnalysisParams
) -> ReviewData | None:
    """Rebuild the review of a saved analysis from its masks and homography (no re-analysis).

    Returns None when the saved analysis lacks what the page needs (then it is recomputed).
    """
    h = (stored.result.get("registration") or {}).get("homography")
    if h is None or not set(_MASK_NAMES) <= set(stored.masks):
        return None
    masks = repo.load_analysis_masks(actor, stored.id)
    b = repo.load_photo(actor, stored.baseline_photo_id).rgb
    f = repo.load_photo(actor, stored.followup_photo_id).rgb
    bp, fp = preview(b), preview(f)
    hp = _scaled_homography(
        np.asarray(h, np.float64), fp.shape[1] / f.shape[1], bp.shape[1] / b.shape[1]
    )
    warped = cv2.warpPerspective(fp, hp, (bp.shape[1], bp.shape[0]), flags=cv2.INTER_LINEAR)
    size = (bp.shape[1], bp.shape[0])

    def small(name: str) -> np.ndarray:
        return _to_size(np.asarray(masks[name]), size)

    return ReviewData(
        result=dict(stored.result),
        baseline=bp,
        followup=warped,
        baseline_labels=small("baseline_labels"),
        followup_labels=small("followup_labels"),
        change_map=small("change_map"),
        region=small("region").astype(bool),
        baseline_photo_id=stored.baseline_photo_id,
        followup_photo_id=stored.followup_photo_id,
        params=params,
        cached=True,
        saved=True,
        source_analysis_id=stored.id,
    )


def save_analysis(repo: Repository, actor: Actor, review: ReviewData) -> AnalysisInfo:
    """Store a reviewed result (numbers, parameters, masks) in the client's record."""
    masks: dict[str, np.ndarray | bytes] = dict(review.masks_png)
    if not masks and review.source_analysis_id is not None:
        masks.update(repo.load_analysis_masks(actor, review.source_analysis_id))
    return repo.save_analysis(
        actor,
        review.baseline_photo_id,
        review.followup_photo_id,
        params=review.params.to_dict(),
        result=review.result,
        masks=masks,
    )
