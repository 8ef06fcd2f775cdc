"""What a comparison gives: the typed results of :func:`~vein_tracker.measure.compare`.

:class:`VeinMetrics` (one visit's figures over a region), :class:`VeinChange` (one vein's
status and share), :class:`Comparison` (everything, with ``to_dict()``: the JSON contract
of ``vein-tracker analyze --json``), and the codes of vein classes and of the change map.
No measuring happens here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .frame import AnalysisFrame

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..confidence import Confidence
    from ..registration import Registration
    from ..segmentation import Segmentation

__all__ = [
    "CHANGE_CLEARED",
    "CHANGE_FADED",
    "CHANGE_NEW",
    "CHANGE_NONE",
    "CHANGE_PERSISTING",
    "CHANGE_RECANALISED",
    "CLASSES",
    "CLASS_CODES",
    "STATUSES",
    "STATUS_CODES",
    "Comparison",
    "VeinChange",
    "VeinMetrics",
]

#: Vein classes and their codes in label images.
CLASSES: tuple[str, ...] = ("spider", "reticular")
CLASS_CODES: Mapping[str, int] = {"spider": 1, "reticular": 2}
SPIDER, RETICULAR = CLASS_CODES["spider"], CLASS_CODES["reticular"]

#: Codes of the change map (baseline frame).
CHANGE_NONE = 0
CHANGE_CLEARED = 1
CHANGE_FADED = 2
CHANGE_PERSISTING = 3
CHANGE_NEW = 4
CHANGE_RECANALISED = 5
STATUS_CODES: Mapping[str, int] = {
    "cleared": CHANGE_CLEARED,
    "faded": CHANGE_FADED,
    "persisting": CHANGE_PERSISTING,
    "new": CHANGE_NEW,
    "recanalised": CHANGE_RECANALISED,
}
STATUSES: tuple[str, ...] = tuple(STATUS_CODES)


@dataclass(frozen=True)
class VeinMetrics:
    """Vein measurements of one visit over one region (baseline frame).

    Attributes
    ----------
    length_mm : float
        Total centreline length (skeleton, diagonal steps count √2 px).
    area_mm2 : float
        Vein area.
    mean_width_mm : float
        ``area_mm2 / length_mm`` (0 when there is no vein).
    density_mm_per_cm2 : float
        Vein length per cm² of skin in the region.
    coverage_pct : float
        Vein area as a percentage of the skin area in the region.
    burden : float
        Contrast-weighted burden: the sum of vein contrast (OD units) over vein
        pixels, in OD·mm²; how visible the veins are, not only how large.
    n_veins : int
        Number of separate veins (segments) in the region.
    skin_area_cm2 : float
        Skin area of the region the figures refer to.
    by_class : mapping of str to VeinMetrics
        The same figures per class (``"spider"``, ``"reticular"``); empty on the
        per-class entries themselves.
    """

    length_mm: float
    area_mm2: float
    mean_width_mm: float
    density_mm_per_cm2: float
    coverage_pct: float
    burden: float
    n_veins: int
    skin_area_cm2: float
    by_class: Mapping[str, VeinMetrics] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``by_class`` nested)."""
        out: dict[str, Any] = {
            "length_mm": round(float(self.length_mm), 3),
            "area_mm2": round(float(self.area_mm2), 3),
            "mean_width_mm": round(float(self.mean_width_mm), 4),
            "density_mm_per_cm2": round(float(self.density_mm_per_cm2), 4),
            "coverage_pct": round(float(self.coverage_pct), 4),
            "burden": round(float(self.burden), 4),
            "n_veins": int(self.n_veins),
            "skin_area_cm2": round(float(self.skin_area_cm2), 4),
        }
        if self.by_class:
            out["by_class"] = {k: v.to_dict() for k, v in self.by_class.items()}
        return out


@dataclass(frozen=True)
class VeinChange:
    """Change of one vein between baseline and follow-up.

    Attributes
    ----------
    id : int
        Baseline vein id (``baseline_seg.vein_ids``); new veins get ids above the
        largest baseline id.
    cls : str
        ``"spider"`` or ``"reticular"``.
    status : str
        ``"cleared"``, ``"faded"``, ``"persisting"``, ``"new"`` or ``"recanalised"``.
    remaining : float
        Share of baseline contrast still visible (0 cleared, 1 unchanged; 1 for new veins).
    faded_pct : float
        ``100 × (1 − remaining)``: how much the vein faded.
    area_mm2, length_mm : float
        Baseline size (follow-up size for new veins), inside the compared region.
    bbox : tuple of int
        ``(x, y, w, h)`` in the baseline frame at the analysis scale
        (``Comparison.to_dict`` gives it in the photo's pixels).
    """

    id: int
    cls: str
    status: str
    remaining: float
    faded_pct: float
    area_mm2: float
    length_mm: float
    bbox: tuple[int, int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": int(self.id),
            "cls": self.cls,
            "status": self.status,
            "remaining": round(float(self.remaining), 4),
            "faded_pct": round(float(self.faded_pct), 2),
            "area_mm2": round(float(self.area_mm2), 3),
            "length_mm": round(float(self.length_mm), 3),
            "bbox": [int(v) for v in self.bbox],
        }


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`: the change of one treatment area between two visits.

    All maps (``region``, ``change_map``, the segmentations, ``registration.warped``)
    are in the baseline frame at the analysis scale: ``frame`` says how that frame
    sits on the baseline photo (a 12 MP photo is analysed at half size; ``px_per_mm``
    is the analysis scale), and :meth:`to_photo` brings a map to the photo's size.
    ``improvement_pct`` follows the headline formula (:func:`improvement_pct`); the
    band is a calibrated low–high range (see :func:`compare`). ``to_dict()`` is the
    JSON contract of ``vein-tracker analyze --json``; its homography, residual, boxes
    and ``px_per_mm`` are in the photos' own pixels. ``confidence`` says how far the
    figure can be trusted (:mod:`vein_tracker.confidence`: ok, or low with the reasons).
    """

    registration: Registration
    baseline_metrics: VeinMetrics
    followup_metrics: VeinMetrics
    improvement_pct: float
    improvement_band_pct: tuple[float, float]
    improvement_by_class_pct: Mapping[str, float | None]
    improvement_by_length_pct: float | None
    improvement_by_area_pct: float | None
    grade: str | None
    target_pct: float
    meets_target: bool
    veins: tuple[VeinChange, ...]
    vein_counts: Mapping[str, int]
    warnings: tuple[str, ...]
    region: np.ndarray
    change_map: np.ndarray
    baseline_seg: Segmentation
    followup_seg: Segmentation
    algorithm_version: str
    params: Mapping[str, Any]
    px_per_mm: float = math.nan
    band_components: Mapping[str, float] = field(default_factory=dict)
    frame: AnalysisFrame | None = None
    confidence: Confidence | None = None

    @property
    def scale(self) -> float:
        """Analysis pixels per baseline photo pixel."""
        return 1.0 if self.frame is None else self.frame.scale

    @property
    def baseline_veins_measured(self) -> int:
        """How many baseline veins the figure rests on (every status but ``"new"``)."""
        return sum(int(n) for status, n in self.vein_counts.items() if status != "new")

    @property
    def new_veins_pct(self) -> float:
        """How many points of the figure the new veins take: their area over the baseline
        veins' (the formula's ``|N| / |B|``, in percent); 0 without new veins, NaN
        without baseline veins."""
        new = sum(v.area_mm2 for v in self.veins if v.status == "new")
        base = sum(v.area_mm2 for v in self.veins if v.status != "new")
        if base <= 0:
            return math.nan
        return 100.0 * new / base

    def photo_homography(self) -> np.ndarray:
        """Follow-up photo (x, y) -> baseline photo (x, y), as the photos were loaded."""
        h = np.asarray(self.registration.homography, np.float64)
        return h.copy() if self.frame is None else self.frame.photo_homography(h)

    def to_photo(self, arr: np.ndarray) -> np.ndarray:
        """A map of this comparison (mask, labels, change map) at the baseline photo's size."""
        return np.asarray(arr).copy() if self.frame is None else self.frame.to_photo(arr)

    @property
    def target_status(self) -> str | None:
        """``"met"`` (the band's low end reaches the target), ``"likely"`` (only the
        estimate does) or ``"not yet"`` (:func:`vein_tracker.outcome.target_status`);
        None without a figure."""
        from ..outcome import target_status_of

        return target_status_of(
            {
                "improvement_pct": self.improvement_pct,
                "improvement_band_pct": list(self.improvement_band_pct),
                "target_pct": self.target_pct,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (no arrays): the ``analyze --json`` contract."""
        reg = self.registration
        reg_dict = dict(reg.to_dict())
        reg_dict.update(
            {
                "ok": bool(reg.ok),
                "homography": [[float(v) for v in row] for row in self.photo_homography()],
                "quality": float(reg.quality),
                "residual_px": float(reg.residual_px) / self.scale,
                "reason": reg.reason,
            }
        )
        frame = self.frame
        changes = []
        for v in self.veins:
            d = v.to_dict()
            if frame is not None:
                d["bbox"] = list(frame.box_to_photo(v.bbox))
            changes.append(d)
        return {
            "registration": reg_dict,
            "baseline": self.baseline_metrics.to_dict(),
            "followup": self.followup_metrics.to_dict(),
            "improvement_pct": _num(self.improvement_pct),
            "improvement_band_pct": [_num(v) for v in self.improvement_band_pct],
            "improvement_by_class_pct": {
                k: _num(v) for k, v in self.improvement_by_class_pct.items()
            },
            "improvement_by_length_pct": _num(self.improvement_by_length_pct),
            "improvement_by_area_pct": _num(self.improvement_by_area_pct),
            "grade": self.grade,
            "target_pct": float(self.target_pct),
            "meets_target": bool(self.meets_target),
            "target_status": self.target_status,
            "veins": {k: int(v) for k, v in self.vein_counts.items()},
            "vein_changes": changes,
            "warnings": list(self.warnings),
            "region_area_cm2": round(
                float(np.count_nonzero(self.region)) / self.px_per_mm**2 / 100.0, 4
            )
            if math.isfinite(self.px_per_mm)
            else None,
            "band_components": {k: round(float(v), 3) for k, v in self.band_components.items()},
            "px_per_mm": _num(self.px_per_mm / self.scale),
            "analysis": {"px_per_mm": _num(self.px_per_mm)}
            | ({} if frame is None else frame.to_dict()),
            "algorithm_version": self.algorithm_version,
            "params": dict(self.params),
            "confidence": None if self.confidence is None else self.confidence.to_dict(),
        }


def _num(v: float | None, nd: int = 2) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return round(float(v), nd)
