"""Measuring veins and their change between two visits of one treatment area.

Owns the numbers the clinic and the client rely on: vein length, area, width,
density and contrast-weighted burden (:func:`measure`), and the baseline/follow-up
comparison (:func:`compare`): percent improvement by the headline formula, its
uncertainty band, quartile grade, target, per-vein status, warnings and a change
map. Everything is measured in the baseline frame over the region seen in both
photos. This module does not register, normalise colour or segment by itself: it
calls :mod:`vein_tracker.registration`, :mod:`vein_tracker.colour` and
:mod:`vein_tracker.segmentation`, and must not re-implement them.

Heavy imports (OpenCV, scikit-image) are done inside functions, so that importing
this module (and starting the command line) stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .io import Photo
    from .registration import Registration
    from .segmentation import Segmentation

#: Vein classes and their codes in label images.
CLASSES: tuple[str, ...] = ("spider", "reticular")
CLASS_CODES: Mapping[str, int] = {"spider": 1, "reticular": 2}
_SPIDER, _RETICULAR = CLASS_CODES["spider"], CLASS_CODES["reticular"]

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

#: A vein keeping less than this share of its baseline contrast is "cleared".
CLEARED_BELOW = 0.2
#: A vein keeping at least this share of its baseline contrast is "persisting".
PERSISTING_FROM = 0.8
#: A vein that had faded to at most this share and came back by at least
#: ``RECANALISED_RISE`` is "recanalised".
RECANALISED_FROM_AT_MOST = 0.5
RECANALISED_RISE = 0.3

#: Quartile grades, as clinical studies report clearance.
GRADES: tuple[str, ...] = ("0-25", "26-50", "51-75", "76-100")

_SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------------------
# Measuring one visit
# --------------------------------------------------------------------------------------
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


def skeleton_length_px(skeleton: np.ndarray) -> float:
    """Length of a one-pixel-wide skeleton in pixels.

    Each pair of 8-connected skeleton pixels is one step: 1 px for a horizontal
    or vertical neighbour, √2 px for a diagonal one. A diagonal link is not
    counted when the two pixels are also joined through a shared 4-neighbour
    (an L corner), so corners are not counted twice. A straight run of ``n``
    pixels measures ``n - 1`` (centre to centre).

    Parameters
    ----------
    skeleton : ndarray, shape (H, W), dtype bool

    Returns
    -------
    float
        Length in pixels.
    """
    sk = np.asarray(skeleton)
    if sk.ndim != 2 or sk.dtype != bool:
        raise ValueError(
            f"skeleton must be a 2-D bool array, got shape {sk.shape} dtype {sk.dtype}"
        )
    # Counted from the skeleton's own pixels (a skeleton is sparse): for each pixel p,
    # its links to the right, down, down-right and down-left neighbours.
    h, w = sk.shape
    flat = np.ascontiguousarray(sk).reshape(-1)
    p = np.flatnonzero(flat)
    if p.size == 0:
        return 0.0
    col = p % w
    right = col < w - 1
    left = col > 0
    down = p < (h - 1) * w
    n_orth = int(np.count_nonzero(flat[p[right] + 1])) + int(np.count_nonzero(flat[p[down] + w]))
    # down-right (p, p + w + 1), not when p + 1 or p + w closes the L corner
    q = p[right & down]
    n_diag = int(np.count_nonzero(flat[q + w + 1] & ~(flat[q + 1] | flat[q + w])))
    # down-left (p, p + w - 1), not when p - 1 or p + w closes the L corner
    q = p[left & down]
    n_diag += int(np.count_nonzero(flat[q + w - 1] & ~(flat[q - 1] | flat[q + w])))
    return float(n_orth + _SQRT2 * n_diag)


def _skeletonize(mask: np.ndarray) -> np.ndarray:
    from .morphology import skeletonize

    return skeletonize(mask)


def _check_mask(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype != bool:
        raise ValueError(f"{name} must be a bool mask, got dtype {a.dtype}; use `{name} > 0`")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return a


def _check_px_per_mm(px_per_mm: float | None) -> float:
    if px_per_mm is None or not (np.isfinite(px_per_mm) and px_per_mm > 0):
        raise ValueError(
            f"px_per_mm must be a positive number of pixels per millimetre, got {px_per_mm!r}"
        )
    return float(px_per_mm)


def measure_mask(
    mask: np.ndarray,
    *,
    region: np.ndarray,
    px_per_mm: float,
    strength: np.ndarray | None = None,
    skeleton: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    vein_ids: np.ndarray | None = None,
    skin: np.ndarray | None = None,
) -> VeinMetrics:
    """Measure a vein mask over a region (the array-level core of :func:`measure`).

    Parameters
    ----------
    mask : ndarray, shape (H, W), bool
        Vein pixels.
    region : ndarray, shape (H, W), bool
        Only pixels inside count.
    px_per_mm : float
        Scale, pixels per millimetre.
    strength : ndarray, shape (H, W), float, optional
        Vein contrast in OD units; the burden is 0 without it.
    skeleton : ndarray, shape (H, W), bool, optional
        Centrelines; computed with :func:`vein_tracker.morphology.skeletonize` when absent.
    labels : ndarray, shape (H, W), uint8, optional
        Class codes (1 spider, 2 reticular); per-class figures need it.
    vein_ids : ndarray, shape (H, W), int, optional
        Vein (segment) ids, 0 = none; counts veins.
    skin : ndarray, shape (H, W), bool, optional
        Skin pixels; the density refers to ``skin & region`` (``region`` alone when absent).

    Returns
    -------
    VeinMetrics
    """
    ppm = _check_px_per_mm(px_per_mm)
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {m.shape}")
    m = _check_mask("mask", m, m.shape)
    reg = _check_mask("region", region, m.shape)
    if skin is not None:
        reg = reg & _check_mask("skin", skin, m.shape)
    vm = m & reg
    sk = _skeletonize(vm) if skeleton is None else _check_mask("skeleton", skeleton, m.shape) & vm
    if strength is not None and np.shape(strength) != m.shape:
        raise ValueError(f"strength must have shape {m.shape}, got {np.shape(strength)}")
    if labels is not None and np.shape(labels) != m.shape:
        raise ValueError(f"labels must have shape {m.shape}, got {np.shape(labels)}")
    if vein_ids is not None and np.shape(vein_ids) != m.shape:
        raise ValueError(f"vein_ids must have shape {m.shape}, got {np.shape(vein_ids)}")
    skin_px = int(np.count_nonzero(reg))

    def one(sel: np.ndarray, sk_sel: np.ndarray, *, per_class: bool) -> VeinMetrics:
        area_px = int(np.count_nonzero(sel))
        length_px = skeleton_length_px(sk_sel)
        length_mm = length_px / ppm
        area_mm2 = area_px / ppm**2
        skin_cm2 = skin_px / ppm**2 / 100.0
        burden = 0.0
        if strength is not None and area_px:
            burden = float(np.sum(np.asarray(strength)[sel].astype(np.float64))) / ppm**2
        n_veins = 0
        if vein_ids is not None and area_px:
            ids = np.unique(np.asarray(vein_ids)[sel])
            n_veins = int(np.count_nonzero(ids))
        by: dict[str, VeinMetrics] = {}
        if per_class and labels is not None:
            lab = np.asarray(labels)
            for name, code in CLASS_CODES.items():
                cm = lab == code
                by[name] = one(sel & cm, sk_sel & cm, per_class=False)
        return VeinMetrics(
            length_mm=length_mm,
            area_mm2=area_mm2,
            mean_width_mm=area_mm2 / length_mm if length_mm > 0 else 0.0,
            density_mm_per_cm2=length_mm / skin_cm2 if skin_cm2 > 0 else 0.0,
            coverage_pct=100.0 * area_px / skin_px if skin_px else 0.0,
            burden=burden,
            n_veins=n_veins,
            skin_area_cm2=skin_cm2,
            by_class=by,
        )

    return one(vm, sk, per_class=True)


def measure(
    segmentation: Segmentation, *, region: np.ndarray, px_per_mm: float | None = None
) -> VeinMetrics:
    """Measure a segmentation over a region.

    Parameters
    ----------
    segmentation : Segmentation
        From :func:`vein_tracker.segmentation.segment` (its ``mask``, ``labels``,
        ``strength``, ``skeleton``, ``vein_ids`` and ``leg_mask`` are used).
    region : ndarray, shape (H, W), bool
        Only pixels inside count (for a comparison: the region seen in both photos,
        baseline frame).
    px_per_mm : float, optional
        Scale; default the segmentation's own ``px_per_mm``.

    Returns
    -------
    VeinMetrics
        For all veins, with ``by_class`` for spider and reticular veins.
    """
    ppm = px_per_mm if px_per_mm is not None else getattr(segmentation, "px_per_mm", None)
    skeleton = getattr(segmentation, "skeleton", None)
    return measure_mask(
        segmentation.mask,
        region=region,
        px_per_mm=_check_px_per_mm(ppm),
        strength=getattr(segmentation, "strength", None),
        skeleton=skeleton if skeleton is not None and skeleton.dtype == bool else None,
        labels=getattr(segmentation, "labels", None),
        vein_ids=getattr(segmentation, "vein_ids", None),
        skin=getattr(segmentation, "leg_mask", None),
    )


# --------------------------------------------------------------------------------------
# The headline formula, grading and target
# --------------------------------------------------------------------------------------
def remaining_fraction(c_b: np.ndarray, c_f: np.ndarray) -> np.ndarray:
    """Per-pixel share of baseline contrast still visible: ``min(1, max(0, c_f / c_b))``.

    Where ``c_b <= 0`` (no measurable baseline contrast) the pixel counts as
    persisting (1): an unmeasurable vein is never reported as cleared.

    Parameters
    ----------
    c_b, c_f : ndarray, float, same shape
        Vein contrast (OD units) at baseline and at follow-up (baseline frame).

    Returns
    -------
    ndarray, float32, same shape, in [0, 1]
    """
    cb = np.asarray(c_b, dtype=np.float32)
    cf = np.asarray(c_f, dtype=np.float32)
    if cb.shape != cf.shape:
        raise ValueError(f"c_b and c_f must have the same shape, got {cb.shape} and {cf.shape}")
    pos = cb > 0
    ratio = np.ones(cb.shape, dtype=np.float32)
    np.divide(cf, cb, out=ratio, where=pos)
    return np.clip(ratio, 0.0, 1.0, out=ratio)


@dataclass(frozen=True)
class ImprovementTerms:
    """The three sums of the headline formula (pixel counts, baseline frame).

    ``improvement_pct = 100 × (1 − (kept + new) / baseline)``.
    """

    kept: float
    new: float
    baseline: float

    @property
    def pct(self) -> float:
        if self.baseline <= 0:
            return math.nan
        return 100.0 * (1.0 - (self.kept + self.new) / self.baseline)


def improvement_terms(
    c_b: np.ndarray,
    c_f: np.ndarray,
    baseline_mask: np.ndarray,
    followup_mask: np.ndarray,
    region: np.ndarray,
) -> ImprovementTerms:
    """Sums of the headline formula; see :func:`improvement_pct`."""
    cb = np.asarray(c_b)
    if cb.ndim != 2:
        raise ValueError(f"c_b must be a 2-D contrast map, got shape {cb.shape}")
    shape = cb.shape
    if np.shape(c_f) != shape:
        raise ValueError(f"c_f must have shape {shape} like c_b, got {np.shape(c_f)}")
    b = _check_mask("baseline_mask", baseline_mask, shape)
    f = _check_mask("followup_mask", followup_mask, shape)
    reg = _check_mask("region", region, shape)
    base = b & reg
    n_base = int(np.count_nonzero(base))
    kept = float(np.sum(remaining_fraction(cb[base], np.asarray(c_f)[base]), dtype=np.float64))
    n_new = int(np.count_nonzero(f & ~b & reg))
    return ImprovementTerms(kept=kept, new=float(n_new), baseline=float(n_base))


def improvement_pct(
    c_b: np.ndarray,
    c_f: np.ndarray,
    baseline_mask: np.ndarray,
    followup_mask: np.ndarray,
    region: np.ndarray,
) -> float:
    """The headline percent improvement, exactly as the clinic defines it.

    ``100 × (1 − (Σ_{p ∈ B} min(1, c_f(p) / c_b(p)) + |N|) / |B|)`` with ``B`` the
    baseline vein pixels inside ``region`` and ``N`` the follow-up vein pixels
    inside ``region`` that are not baseline vein pixels (new veins). A cleared
    vein counts 0, a vein faded to half its contrast ½, a persisting vein 1, and
    a new vein its full area against the improvement. Negative values mean more
    vein than at baseline.

    Parameters
    ----------
    c_b, c_f : ndarray, shape (H, W), float
        Vein contrast (OD units) at baseline and at follow-up, both in the
        baseline frame. Negative ``c_f`` counts as 0; ``c_b <= 0`` counts as 1.
    baseline_mask, followup_mask : ndarray, shape (H, W), bool
        Vein pixels at baseline and at follow-up (baseline frame).
    region : ndarray, shape (H, W), bool
        The region seen in both photos.

    Returns
    -------
    float
        Percent improvement; NaN when there is no baseline vein in the region.
    """
    return improvement_terms(c_b, c_f, baseline_mask, followup_mask, region).pct


def grade_for(improvement: float) -> str:
    """Quartile grade of a percent improvement: ``"0-25"``, ``"26-50"``, ``"51-75"``, ``"76-100"``.

    Upper bounds are inclusive (25 → "0-25", 25.1 → "26-50"); worse than baseline
    (negative) grades "0-25". NaN raises.
    """
    if not math.isfinite(improvement):
        raise ValueError(f"improvement must be a finite percentage, got {improvement!r}")
    if improvement <= 25.0:
        return GRADES[0]
    if improvement <= 50.0:
        return GRADES[1]
    if improvement <= 75.0:
        return GRADES[2]
    return GRADES[3]


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


# --------------------------------------------------------------------------------------
# Comparing two visits
# --------------------------------------------------------------------------------------
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
    and ``px_per_mm`` are in the photos' own pixels.
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

    @property
    def scale(self) -> float:
        """Analysis pixels per baseline photo pixel."""
        return 1.0 if self.frame is None else self.frame.scale

    def photo_homography(self) -> np.ndarray:
        """Follow-up photo (x, y) -> baseline photo (x, y), as the photos were loaded."""
        h = np.asarray(self.registration.homography, np.float64)
        return h.copy() if self.frame is None else self.frame.photo_homography(h)

    def to_photo(self, arr: np.ndarray) -> np.ndarray:
        """A map of this comparison (mask, labels, change map) at the baseline photo's size."""
        return np.asarray(arr).copy() if self.frame is None else self.frame.to_photo(arr)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (no arrays): the ``analyze --json`` contract."""
        reg = self.registration
        reg_dict = dict(reg.to_dict()) if hasattr(reg, "to_dict") else {}
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
        }


def _num(v: float | None, nd: int = 2) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return round(float(v), nd)


#: Band calibration: half-width = BAND_K × sqrt(Σ component²) + BAND_FLOOR_PCT.
#: Fitted on calibration phantoms (seeds apart from the benchmark's) so that the
#: band covers the true improvement in ≥ 90 % of pairs; see benchmarks/improvement.py
#: (``--calibrate``, 42 pairs, algorithm 1.5.0: K 0.97 for 90 %, 1.25 for 95 %; the
#: 95 % fit is kept, rounded up, a margin over the 90 % target).
BAND_K = 1.3
BAND_FLOOR_PCT = 1.5

#: Smoothing scale of the contrast ratio along veins, mm (noise of c_f/c_b averages out).
RATIO_SIGMA_MM = 1.5
#: A follow-up vein piece counts as new only beyond this distance from baseline veins, mm.
NEW_TOLERANCE_MM = 0.6
#: ... and only when its centreline is at least this long, mm.
NEW_MIN_LENGTH_MM = 2.0
#: A new vein must have had less than this share of its follow-up contrast at baseline.
NEW_MAX_BASELINE_FRAC = 0.5
#: A new vein darkens the skin as a vein of its class does: its neutral OD over its own
#: contrast is within these multiples of the class's share (spider 0.90, reticular 0.94).
NEW_NEUTRAL_WINDOW = (2.0 / 3.0, 5.0 / 3.0)
#: New veins are not looked for closer than this to the leg's outline, mm.
NEW_EDGE_MARGIN_MM = 4.0
#: A follow-up vein pixel needs at least this share of the median baseline vein contrast
#: of its class, and at least MIN_VEIN_CONTRAST_OD.
MIN_VEIN_CONTRAST_FRAC = 0.3
MIN_VEIN_CONTRAST_OD = 0.03
#: A new vein piece needs a mean contrast of at least this share of the median baseline
#: vein contrast of its class (JPEG blocks and skin texture read far below).
NEW_MIN_STRENGTH_K = 0.5
#: Margin around baseline veins over which contrast is integrated (plus the residual), mm,
#: and at least SUPPORT_MIN_PX: JPEG's 4:2:0 chroma and block quantisation spread a thin
#: red vein's (chromatic) contrast over a few pixels; integrated, it is kept.
SUPPORT_MM = 0.3
SUPPORT_MIN_PX = 4.0
#: Reticular veins' margin is at least this, px (chroma spread reaches ~2 px at 4 px/mm).
SUPPORT_MIN_RETICULAR_PX = 2.0
#: Skin used for the contrast maps' zero point is at least this far from any vein, mm.
ZERO_POINT_MM = 2.0
#: Capture warnings: extra blur of the follow-up (σ, px) and largest colour gain.
CAPTURE_BLUR_PX = 1.5
CAPTURE_MAX_GAIN = 1.6
#: Margin kept from the border of the region seen in both photos, mm.
REGION_MARGIN_MM = 0.5


def _gauss(img: np.ndarray, sigma_px: float) -> np.ndarray:
    import cv2

    if sigma_px <= 0:
        return img.astype(np.float32, copy=True)
    k = int(2 * math.ceil(3 * sigma_px) + 1)
    return np.asarray(
        cv2.GaussianBlur(img.astype(np.float32, copy=False), (k, k), sigma_px), dtype=np.float32
    )


def smooth_on_mask(values: np.ndarray, mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """Normalised convolution: Gaussian average of ``values`` over ``mask`` pixels only.

    Parameters
    ----------
    values : ndarray, shape (H, W), float
    mask : ndarray, shape (H, W), bool
    sigma_px : float
        Gaussian σ in pixels (0 returns ``values`` unchanged inside the mask).

    Returns
    -------
    ndarray, float32, shape (H, W)
        The local mean over mask pixels; 0 outside the mask.
    """
    m = mask.astype(np.float32)
    v = np.where(mask, values, 0).astype(np.float32)
    num = _gauss(v, sigma_px)
    den = _gauss(m, sigma_px)
    out = np.zeros(v.shape, dtype=np.float32)
    np.divide(num, den, out=out, where=mask & (den > 1e-6))
    return out


def _dilate(mask: np.ndarray, radius_px: float) -> np.ndarray:
    import cv2

    r = int(round(radius_px))
    if r <= 0:
        return mask.copy()
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def _dilate_at(
    mask: np.ndarray, radius_px: float, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """``_dilate(mask, radius_px)[np.ix_(rows, cols)]``, computed only at those pixels.

    The same elliptic kernel, row by row: a kernel row is one run of columns, so a
    pixel is hit when the mask's prefix sum over that run is positive. Same result,
    far faster than a full dilation with a large kernel when few pixels are asked for.
    """
    import cv2

    m = np.asarray(mask, dtype=bool)
    r = int(round(radius_px))
    if r <= 0:
        return np.array(m[np.ix_(rows, cols)], dtype=bool)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)).astype(bool)
    h, w = m.shape
    cs = np.zeros((h, w + 1), np.int32)
    np.cumsum(m, axis=1, out=cs[:, 1:])
    out = np.zeros((rows.size, cols.size), dtype=bool)
    for ky in range(2 * r + 1):
        xs = np.flatnonzero(k[ky])
        if xs.size == 0:
            continue
        if xs.size != xs[-1] - xs[0] + 1:  # pragma: no cover - OpenCV ellipse rows are runs
            return np.asarray(_dilate(m, radius_px)[np.ix_(rows, cols)], dtype=bool)
        yy = rows + (ky - r)
        ok = (yy >= 0) & (yy < h)
        if not ok.any():
            continue
        lo = np.clip(cols + (xs[0] - r), 0, w)
        hi = np.clip(cols + (xs[-1] - r) + 1, 0, w)
        c = cs[yy[ok]]
        out[ok] |= (c[:, hi] - c[:, lo]) > 0
    return out


def _near_on_grid(mask: np.ndarray, radius_px: float, step: int) -> np.ndarray:
    """Whether a ``mask`` pixel lies within about ``radius_px`` of each pixel of the grid
    ``mask[::step, ::step]``.

    The mask's step x step blocks centred on the grid pixels (any pixel set) are dilated
    on the grid by the radius in grid steps (an ellipse, as :func:`_dilate`): the same
    as ``_dilate(mask, radius_px)[::step, ::step]`` to within half a grid step, at a
    small share of its cost.
    """
    m = np.asarray(mask, dtype=bool)
    h, w = m.shape
    if step <= 1:
        return _dilate(m, radius_px)
    hg, wg = -(-h // step), -(-w // step)
    o = step // 2
    pad = np.zeros((hg * step, wg * step), bool)
    pad[o : o + h, o : o + w] = m[: hg * step - o, : wg * step - o]
    blocks = np.asarray(pad.reshape(hg, step, wg, step).any(axis=(1, 3)))
    return _dilate(blocks, radius_px / step)


def _distance_to(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (px) of every pixel to the nearest ``True`` pixel of ``mask``."""
    import cv2

    if not mask.any():
        return np.full(mask.shape, np.inf, dtype=np.float32)
    return np.asarray(
        cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE),
        dtype=np.float32,
    )


def _within(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """``_distance_to(mask) <= radius_px``: a dilation by the exact Euclidean disc, far
    cheaper than a full distance transform for the few-pixel radii it is used with."""
    import cv2

    r = int(math.floor(radius_px))
    if r < 0:
        return np.zeros(mask.shape, bool)
    off = np.arange(-r, r + 1)
    disc = ((off[:, None] ** 2 + off[None, :] ** 2) <= radius_px**2).astype(np.uint8)
    return cv2.dilate(mask.astype(np.uint8), disc, borderValue=0).astype(bool)


def _erode(mask: np.ndarray, radius_px: float) -> np.ndarray:
    import cv2

    r = int(round(radius_px))
    if r <= 0:
        return mask.copy()
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.erode(mask.astype(np.uint8), k, borderValue=0).astype(bool)


def new_vein_mask(
    followup_mask: np.ndarray,
    baseline_mask: np.ndarray,
    *,
    region: np.ndarray,
    tolerance_px: float,
    min_area_px: int,
    skeleton: np.ndarray | None = None,
    min_length_px: float = 0.0,
    strength: np.ndarray | None = None,
    min_strength: np.ndarray | float = 0.0,
    distance: np.ndarray | None = None,
    baseline_strength: np.ndarray | None = None,
    max_baseline_frac: float = 0.5,
    neutral: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Follow-up vein pixels that belong to veins absent at baseline.

    A follow-up vein pixel within ``tolerance_px`` of a baseline vein pixel is the
    same vein (registration and width differences), not a new one. Of the rest,
    a connected piece is a new vein only when it is a vein-like line: at least
    ``min_area_px`` pixels, at least ``min_length_px`` of ``skeleton`` pixels, and
    a mean ``strength`` of at least the mean ``min_strength`` over it; smaller or
    fainter pieces are segmentation noise (texture, compression blocks).
    A piece whose mean ``baseline_strength`` (the baseline photo's vein contrast at the
    same pixels) reaches ``max_baseline_frac`` of its follow-up strength was already
    visible at baseline (a vein the baseline segmentation missed, hair, an edge): it is
    not new. ``distance`` (px to the nearest baseline vein pixel) may be given to save time.
    With ``neutral`` (the follow-up's neutral OD contrast) and ``labels`` (its classes),
    a piece must also darken the skin as a vein of its class does: its neutral OD over
    its own contrast within ``NEW_NEUTRAL_WINDOW`` times the class's share
    (:data:`~vein_tracker.segmentation.NEUTRAL_PER_CLASS`). A colour fringe (JPEG's
    chroma around hair or an edge) hardly darkens; hair or a shadow darkens far more.

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    if distance is None:
        distance = _distance_to(baseline_mask)
    cand = followup_mask & region & (distance > tolerance_px)
    if not cand.any():
        return cand
    from .morphology import components

    cc = components(cand)
    n = cc.n
    # Per-piece sums over the candidate pixels only (label 0 is never kept): the same
    # pixels in the same order as over the whole image, so the same sums, far faster.
    idx, lab_c = cc.idx, cc.at
    keep = np.zeros(n, dtype=bool)
    keep[1:] = cc.areas[1:] >= min_area_px
    if skeleton is not None and min_length_px > 0:
        sk_len = np.bincount(lab_c[np.asarray(skeleton, dtype=bool).ravel()[idx]], minlength=n)
        keep &= sk_len >= min_length_px
    if strength is not None:
        area = np.maximum(cc.areas, 1).astype(np.float64)
        # read the candidate pixels first, then widen them (not the whole map)
        s_c = np.asarray(strength).ravel()[idx].astype(np.float64)
        mean_s = np.bincount(lab_c, weights=s_c, minlength=n)
        thr = np.asarray(min_strength)
        t_c = thr.ravel()[idx].astype(np.float64) if thr.ndim else np.full(idx.size, float(thr))
        mean_t = np.bincount(lab_c, weights=t_c, minlength=n)
        keep &= mean_s / area >= mean_t / area
        if baseline_strength is not None:
            w_b = np.asarray(baseline_strength).ravel()[idx].astype(np.float64)
            mean_b = np.bincount(lab_c, weights=w_b, minlength=n)
            keep &= mean_b < max_baseline_frac * mean_s
        if neutral is not None and labels is not None:
            from .segmentation import NEUTRAL_PER_CLASS, RETICULAR, SPIDER

            neu = np.bincount(
                lab_c, weights=np.asarray(neutral).ravel()[idx].astype(np.float64), minlength=n
            )
            spider_px = np.bincount(
                lab_c, weights=(np.asarray(labels).ravel()[idx] == SPIDER), minlength=n
            )
            share = np.where(
                spider_px >= area / 2,
                NEUTRAL_PER_CLASS[SPIDER],
                NEUTRAL_PER_CLASS[RETICULAR],
            )
            lo, hi = NEW_NEUTRAL_WINDOW
            keep &= (neu >= lo * share * mean_s) & (neu <= hi * share * mean_s)
    keep[0] = False
    out = np.zeros(cand.size, dtype=bool)
    out[idx] = keep[lab_c]
    return out.reshape(cand.shape)


def _tile_bootstrap_sd(
    kept_px: np.ndarray,
    new_px: np.ndarray,
    base_px: np.ndarray,
    region: np.ndarray,
    tile_px: int,
    *,
    n_boot: int = 200,
) -> float:
    """Standard deviation of the improvement when sub-regions (tiles) are resampled.

    ``kept_px`` is read on the ``base_px`` pixels only (the remaining share is 0 off
    the baseline veins)."""
    h, w = region.shape
    ny, nx = max(1, math.ceil(h / tile_px)), max(1, math.ceil(w / tile_px))

    def tsum(at: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        ys, xs = np.divmod(at, w)
        tile = (ys // tile_px) * nx + xs // tile_px
        return np.bincount(tile, weights=weights, minlength=ny * nx).astype(np.float64)

    at_b = np.flatnonzero(base_px)
    k = tsum(at_b, np.asarray(kept_px, np.float64).reshape(-1)[at_b])
    n = tsum(np.flatnonzero(new_px))
    b = tsum(at_b)
    use = (b > 0) | (n > 0)
    k, n, b = k[use], n[use], b[use]
    if len(b) < 2 or b.sum() <= 0:
        return 0.0
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(b), size=(n_boot, len(b)))
    bs = b[idx].sum(axis=1)
    ok = bs > 0
    pct = 100.0 * (1.0 - (k[idx].sum(axis=1)[ok] + n[idx].sum(axis=1)[ok]) / bs[ok])
    return float(np.std(pct)) if len(pct) > 1 else 0.0


def _shift(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    out = np.zeros_like(img)
    h, w = img.shape[:2]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = img[ys, xs]
    return out


@dataclass(frozen=True)
class _Estimate:
    terms: ImprovementTerms
    remaining: np.ndarray  # per-pixel remaining share on baseline vein pixels (0 elsewhere)
    new_mask: np.ndarray


def _smooth_sum(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur, computed at a reduced resolution when σ is large (same result to ~1 %)."""
    import cv2

    f = max(1, int(sigma_px // 3.0))
    if f == 1:
        return _gauss(img, sigma_px)
    h, w = img.shape
    small = cv2.resize(
        img.astype(np.float32, copy=False),
        (max(1, math.ceil(w / f)), max(1, math.ceil(h / f))),
        interpolation=cv2.INTER_AREA,
    )
    sm = _gauss(small, sigma_px / f)
    return np.asarray(cv2.resize(sm, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)


class _SparseSmooth:
    """``_smooth_sum(v, σ)`` read at the ``dst`` pixels, for a map ``v`` that is zero
    outside the ``src`` pixels, from ``v``'s values at ``src`` alone (flat indices).

    The same reduced-resolution blur as :func:`_smooth_sum` (box means over f x f
    blocks, a Gaussian of σ / f, bilinear read-back at ``cv2.resize``'s pixel centres)
    without a full-frame pass: the blocks are summed from the ``src`` pixels and the
    result is interpolated at the ``dst`` pixels only. The same values to float
    rounding when the frame is a whole number of blocks (the analysis frames are);
    otherwise the partial blocks at the right and bottom edges are averaged over
    their own pixels.
    """

    def __init__(
        self, shape: tuple[int, int], src: np.ndarray, dst: np.ndarray, sigma_px: float
    ) -> None:
        h, w = shape
        self.shape = (h, w)
        self.src = src
        self.dst = dst
        self.sigma = float(sigma_px)
        self.f = f = max(1, int(sigma_px // 3.0))
        if f == 1:
            return
        hs, ws = math.ceil(h / f), math.ceil(w / f)
        self.small = (hs, ws)
        ys, xs = np.divmod(src, w)
        self.block = (ys // f) * ws + xs // f
        bh = np.minimum(f, h - f * np.arange(hs))
        bw = np.minimum(f, w - f * np.arange(ws))
        self.inv_n = (1.0 / (bh[:, None] * bw[None, :])).ravel()

        def axis(d: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            s = (d + 0.5) / f - 0.5
            i0 = np.floor(s).astype(np.int64)
            a = (s - i0).astype(np.float32)
            a[i0 < 0] = 0.0
            a[i0 >= n - 1] = 0.0
            i0 = np.clip(i0, 0, n - 1)
            return i0, np.minimum(i0 + 1, n - 1), a

        yd, xd = np.divmod(dst, w)
        y0, y1, ay = axis(yd, hs)
        x0, x1, ax = axis(xd, ws)
        self.at = (y0 * ws + x0, y0 * ws + x1, y1 * ws + x0, y1 * ws + x1)
        self.wts = ((1 - ay) * (1 - ax), (1 - ay) * ax, ay * (1 - ax), ay * ax)

    def __call__(self, v_src: np.ndarray) -> np.ndarray:
        if self.f == 1:
            full = np.zeros(self.shape[0] * self.shape[1], np.float32)
            full[self.src] = v_src
            return _gauss(full.reshape(self.shape), self.sigma).ravel()[self.dst]
        sums = np.bincount(self.block, weights=v_src, minlength=self.inv_n.size)
        small = (sums * self.inv_n).astype(np.float32).reshape(self.small)
        sm = _gauss(small, self.sigma / self.f).ravel()
        out = sm[self.at[0]] * self.wts[0]
        for i in (1, 2, 3):
            out += sm[self.at[i]] * self.wts[i]
        return out


def _class_sums(c: np.ndarray, layout: _Layout) -> np.ndarray:
    """A contrast map integrated over each class's support, read on that class's vein
    pixels (in ``layout.base_idx`` order): either side of :func:`_estimate_terms`' ratio."""
    flat = c.reshape(-1)
    out = np.zeros(layout.base_idx.size, np.float32)
    for sp in layout.classes:
        out[sp.sel_pos] = sp.smooth(flat[sp.area_idx])
    return out


@dataclass(frozen=True, eq=False)
class _Support:
    """One class's baseline vein pixels, the thin margin around them the ratio is
    integrated over, and which vein each margin pixel belongs to; as flat pixel indices.

    The margin never takes another class's vein pixels: a persisting spider crossing a
    cleared reticular vein would otherwise lend the reticular vein its contrast (and a
    cleared reticular vein would take a persisting spider's away)."""

    sel_pos: np.ndarray  # positions of the class's vein pixels in ``_Layout.base_idx``
    area_idx: np.ndarray  # the class's vein pixels and their margin, inside the region
    own_idx: np.ndarray  # the ``area_idx`` pixels a vein owns (``owner > 0``) ...
    own: np.ndarray  # ... and that vein's id
    smooth: _SparseSmooth  # Gaussian of a map on ``area_idx``, read on the vein pixels


@dataclass(frozen=True, eq=False)
class _Layout:
    """The baseline vein pixels one estimate counts, and each class's support."""

    base: np.ndarray  # (H, W) bool: the baseline vein pixels in the region
    base_idx: np.ndarray  # flat indices of the baseline vein pixels in the region
    ids: np.ndarray  # their vein ids (0: a pixel of no vein)
    classes: tuple[_Support, ...]


def _support(
    sel: np.ndarray,
    radius_px: float,
    region: np.ndarray,
    ids: np.ndarray,
    others: np.ndarray,
    *,
    sel_pos: np.ndarray,
    sigma_px: float,
) -> _Support:
    """``others``: the other classes' baseline vein pixels, left out of the margin."""
    import cv2

    area = _within(sel, radius_px) & region & ~others
    area_idx = np.flatnonzero(area)
    sel_idx = np.flatnonzero(sel)
    own_idx = np.zeros(0, np.int64)
    own = np.zeros(0, np.int64)
    if sel_idx.size:
        # the id of the vein each margin pixel surrounds (the larger where two margins meet)
        k = 2 * math.ceil(radius_px) + 1
        # 16-bit ids dilate twice as fast as float ones (the same maxima)
        own_ids = np.where(sel, ids, 0)
        small = own_ids.size == 0 or int(own_ids.max()) < 65536
        grown = cv2.dilate(
            own_ids.astype(np.uint16 if small else np.float32),
            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)),
        )
        owner = grown.reshape(-1)[area_idx].astype(np.int64)
        mine = owner > 0
        own_idx, own = area_idx[mine], owner[mine]
    return _Support(
        sel_pos=sel_pos,
        area_idx=area_idx,
        own_idx=own_idx,
        own=own,
        smooth=_SparseSmooth(sel.shape, area_idx, sel_idx, sigma_px),
    )


def _layout(
    base: np.ndarray,
    *,
    labels: np.ndarray,
    region: np.ndarray,
    ids: np.ndarray,
    radius_px: Mapping[int, float],
    sigma_px: float,
    pool: ThreadPoolExecutor | None = None,
) -> _Layout:
    """The supports of ``base``'s veins in the region, per class: the spider support
    takes every baseline vein pixel not reticular. With ``pool``, the classes' supports
    are made side by side."""
    base = base & region
    base_idx = np.flatnonzero(base)
    lab = labels.reshape(-1)[base_idx]

    def one(code: int, r_px: float) -> _Support:
        pick = lab != _RETICULAR if code == _SPIDER else lab == code
        sel = np.zeros(base.shape, bool)
        sel.reshape(-1)[base_idx[pick]] = True
        return _support(
            sel,
            r_px,
            region,
            ids,
            others=base & ~sel,
            sel_pos=np.flatnonzero(pick),
            sigma_px=sigma_px,
        )

    items = list(radius_px.items())
    if pool is None:
        classes = tuple(one(*it) for it in items)
    else:
        jobs = [pool.submit(one, *it) for it in items[1:]]
        classes = (one(*items[0]), *(j.result() for j in jobs))
    return _Layout(
        base=base,
        base_idx=base_idx,
        ids=ids.reshape(-1)[base_idx],
        classes=classes,
    )


def _estimate_terms(
    c_b: np.ndarray,
    c_f: np.ndarray,
    layout: _Layout,
    region: np.ndarray,
    new: np.ndarray,
    *,
    baseline_sums: np.ndarray | None = None,
    n_new: int | None = None,
) -> tuple[ImprovementTerms, np.ndarray]:
    """The formula's terms, and the remaining shares on ``layout.base_idx``.

    Local ratio of contrast integrated over the baseline veins and a thin margin around
    them (``layout``'s supports, per class): a sub-pixel misalignment, a blur or JPEG's
    chroma subsampling moves contrast within the margin and leaves the ratio unchanged,
    and pixel noise averages out. Classes are kept apart so one cannot dilute the other.
    Only the baseline vein pixels and their margins are read. ``baseline_sums`` is
    ``_class_sums(c_b, layout)`` and ``n_new`` the count of ``new & ~layout.base &
    region``, when already known."""
    cb_s = _class_sums(c_b, layout) if baseline_sums is None else baseline_sums
    cf_s = _class_sums(c_f, layout)
    r = _per_vein(remaining_fraction(cb_s, cf_s), c_b, c_f, layout)
    # The formula's sums (see improvement_terms, with c_b = 1 and c_f = rem, already in
    # [0, 1]): the follow-up mask holds the new pieces only: follow-up vein pixels near
    # baseline veins are the same veins, judged by their contrast.
    kept = float(np.sum(r, dtype=np.float64))
    if n_new is None:
        n_new = int(np.count_nonzero(new & ~layout.base & region))
    terms = ImprovementTerms(kept=kept, new=float(n_new), baseline=float(layout.base_idx.size))
    return terms, r


def _estimate_maps(
    terms: ImprovementTerms, r: np.ndarray, layout: _Layout, new: np.ndarray
) -> _Estimate:
    """The headline's estimate: ``_estimate_terms``' figures with the per-pixel remaining
    share (0 off the baseline veins) and the new-vein mask."""
    rem = np.zeros(layout.base.shape, np.float32)
    rem.reshape(-1)[layout.base_idx] = r
    return _Estimate(terms=terms, remaining=rem, new_mask=new)


def _per_vein(
    r: np.ndarray,
    c_b: np.ndarray,
    c_f: np.ndarray,
    layout: _Layout,
) -> np.ndarray:
    """Set each vein's mean remaining share from its own contrast, and apply the
    formula's ``min(1, .)`` where it is not biased by noise.

    ``r``: the local remaining shares on ``layout.base_idx``; returns them adjusted.
    A vein's share is ``Σ c_f / Σ c_b`` over its own support (its pixels and the
    margin around them): unlike the local ratio, no neighbouring vein leaks into it.
    Clipping each vein's noisy ratio at 1 reads unchanged veins as improved: their
    ratios scatter both ways (light, pose, blur, and on dark skin JPEG's dead zone,
    which keeps a different share of a faint vein's colour in each photo): on the
    benchmark's phantoms an unchanged vein reads 0.86-1.13 (5th-95th percentile). So a
    vein that reads as persisting (ratio ≥ ``PERSISTING_FROM``) counts as persisting,
    1, as the headline's definition has it: a change within the capture's noise is not
    claimed as improvement. Fainter veins (faded, cleared) keep their own ratio, clipped
    to [0, 1]. The local pattern of ``r`` (a vein cleared over part of its length) is
    kept: its shares are scaled down, or moved toward 1 by the same share of their
    headroom, to the vein's mean.
    """
    ids = layout.ids
    pick = np.flatnonzero(ids > 0)
    if pick.size == 0:
        return r
    n_lab = int(ids.max()) + 1
    num = np.zeros(n_lab, np.float64)
    den = np.zeros(n_lab, np.float64)
    cb, cf = c_b.reshape(-1), c_f.reshape(-1)
    for sp in layout.classes:
        num += np.bincount(sp.own, weights=cf[sp.own_idx], minlength=n_lab)
        den += np.bincount(sp.own, weights=cb[sp.own_idx], minlength=n_lab)
    ok = den > 1e-9
    raw = np.ones(n_lab)
    raw[ok] = num[ok] / den[ok]
    target = np.clip(raw, 0.0, 1.0)
    target[ok & (raw >= PERSISTING_FROM)] = 1.0
    v = ids[pick]
    rv = r[pick].astype(np.float64)
    cnt = np.bincount(v, minlength=n_lab).astype(np.float64)
    have = cnt > 0
    mean = np.zeros(n_lab)
    mean[have] = np.bincount(v, weights=rv, minlength=n_lab)[have] / cnt[have]
    # Down: scale the shares; up: move each toward 1 by the same share of its headroom.
    # Either keeps them in [0, 1] and makes their mean exactly the target.
    down = np.ones(n_lab)
    lo = have & (target <= mean) & (mean > 0)
    down[lo] = target[lo] / mean[lo]
    up = np.zeros(n_lab)
    hi = have & (target > mean)
    up[hi] = (target[hi] - mean[hi]) / np.maximum(1.0 - mean[hi], 1e-12)
    vals = rv * down[v]
    vals += up[v] * (1.0 - vals)
    out = r.copy()
    out[pick] = np.clip(vals, 0.0, 1.0).astype(np.float32)
    return out


ProgressCallback = Callable[[float, str], None]

#: Scale (px/mm) the comparison works at. Finer photos (a 12 MP phone photo of a
#: 200 mm field is 20 px/mm) are reduced to it first: the segmentation finds veins at
#: this scale anyway (``segmentation.WORK_PX_PER_MM``), and registration, colour
#: normalisation and measurement cost 4x less than at full resolution.
ANALYSIS_PX_PER_MM = 10.0
#: Photos at most this much finer than ``ANALYSIS_PX_PER_MM`` are analysed as they are.
ANALYSIS_SLACK = 1.2


def _centre_scale(src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """3x3 matrix taking pixel (x, y) of an ``src`` (H, W) image to a resized ``dst`` one
    (pixel centres kept, as ``cv2.resize`` samples)."""
    sx = dst[1] / src[1]
    sy = dst[0] / src[0]
    return np.array(
        [[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]], np.float64
    )


@dataclass(frozen=True)
class AnalysisFrame:
    """Where a comparison's maps live relative to the photos as loaded (upright).

    Attributes
    ----------
    photo_shape, followup_photo_shape : tuple of int
        ``(H, W)`` of the baseline and follow-up photos.
    baseline_shape, followup_shape : tuple of int
        ``(H, W)`` they were analysed at; the maps of a :class:`Comparison` have
        ``baseline_shape``.
    """

    photo_shape: tuple[int, int]
    baseline_shape: tuple[int, int]
    followup_photo_shape: tuple[int, int]
    followup_shape: tuple[int, int]

    @property
    def scale(self) -> float:
        """Analysis pixels per baseline photo pixel (1.0 when analysed as loaded)."""
        return 0.5 * (
            self.baseline_shape[0] / self.photo_shape[0]
            + self.baseline_shape[1] / self.photo_shape[1]
        )

    @property
    def reduced(self) -> bool:
        return self.baseline_shape != self.photo_shape

    def photo_homography(self, analysis_h: np.ndarray) -> np.ndarray:
        """Lift a follow-up -> baseline homography of the analysis frame to the photos'
        pixels (follow-up photo (x, y) -> baseline photo (x, y)), normalised to h33 = 1."""
        sb = _centre_scale(self.photo_shape, self.baseline_shape)
        sf = _centre_scale(self.followup_photo_shape, self.followup_shape)
        h = np.linalg.inv(sb) @ np.asarray(analysis_h, np.float64) @ sf
        return h / h[2, 2]

    def to_photo(self, arr: np.ndarray) -> np.ndarray:
        """A mask or label map of the analysis frame at the baseline photo's size
        (nearest neighbour, dtype kept)."""
        import cv2

        a = np.asarray(arr)
        if a.shape[:2] != self.baseline_shape:
            raise ValueError(f"expected a map of shape {self.baseline_shape}, got {a.shape}")
        if not self.reduced:
            return a.copy()
        src = a.astype(np.uint8) if a.dtype == bool else a
        out = cv2.resize(
            src, (self.photo_shape[1], self.photo_shape[0]), interpolation=cv2.INTER_NEAREST
        )
        return out.astype(bool) if a.dtype == bool else np.asarray(out)

    def box_to_photo(self, bbox: Sequence[int]) -> tuple[int, int, int, int]:
        """An ``(x, y, w, h)`` box of the analysis frame, covering the same pixels of the photo."""
        if not self.reduced:
            return (int(bbox[0]), int(bbox[1]), int(bbox[2]), int(bbox[3]))
        sx = self.photo_shape[1] / self.baseline_shape[1]
        sy = self.photo_shape[0] / self.baseline_shape[0]
        x0, y0 = math.floor(bbox[0] * sx), math.floor(bbox[1] * sy)
        x1 = min(self.photo_shape[1], math.ceil((bbox[0] + bbox[2]) * sx))
        y1 = min(self.photo_shape[0], math.ceil((bbox[1] + bbox[3]) * sy))
        return (x0, y0, x1 - x0, y1 - y0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": round(self.scale, 6),
            "baseline_shape": list(self.baseline_shape),
            "followup_shape": list(self.followup_shape),
        }


def analysis_frame(
    baseline_shape: tuple[int, ...],
    followup_shape: tuple[int, ...],
    px_per_mm: float | None = None,
) -> AnalysisFrame:
    """The frame :func:`compare` analyses a pair at.

    The baseline is reduced to ``ANALYSIS_PX_PER_MM`` when its scale (given, else
    estimated from the frame size as ``segmentation.estimate_px_per_mm`` does) is more
    than ``ANALYSIS_SLACK`` times finer; the follow-up by the same factor relative to the
    baseline's long side, so a follow-up of the same framing lands at the same scale
    whatever camera took it. Photos are never enlarged.
    """
    from .segmentation import ASSUMED_FIELD_MM

    bh, bw = int(baseline_shape[0]), int(baseline_shape[1])
    fh, fw = int(followup_shape[0]), int(followup_shape[1])
    ppm = float(px_per_mm) if px_per_mm is not None else max(bh, bw) / ASSUMED_FIELD_MM
    s = ANALYSIS_PX_PER_MM / ppm if ppm > ANALYSIS_SLACK * ANALYSIS_PX_PER_MM else 1.0
    b_new = (max(1, round(bh * s)), max(1, round(bw * s)))
    sf = min(1.0, s * max(bh, bw) / max(fh, fw))
    f_new = (max(1, round(fh * sf)), max(1, round(fw * sf)))
    return AnalysisFrame((bh, bw), b_new, (fh, fw), f_new)


def _resize_rgb(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    if rgb.shape[:2] == shape:
        return rgb
    return np.asarray(cv2.resize(rgb, (shape[1], shape[0]), interpolation=cv2.INTER_AREA))


def _resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    if mask.shape[:2] == shape:
        return mask
    small = cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return np.asarray(small >= 0.5)


def _load(x: Any, px_per_mm: float | None) -> Photo:
    from .io import Photo, load_photo, photo_from_array

    if isinstance(x, Photo):
        return x
    if isinstance(x, np.ndarray):
        return photo_from_array(x, px_per_mm=px_per_mm)
    return load_photo(x, px_per_mm=px_per_mm)


def _seg_contrast(seg: Any, labels: np.ndarray) -> np.ndarray:
    """Per-pixel contrast of a segmentation, along the class the baseline gave the pixel."""
    by = getattr(seg, "strength_by_class", None)
    if isinstance(by, Mapping) and by:
        out = np.asarray(seg.strength, dtype=np.float32).copy()
        for name, code in CLASS_CODES.items():
            m = by.get(name)
            if m is not None:
                sel = labels == code
                out[sel] = np.asarray(m, dtype=np.float32)[sel]
        return out
    return np.asarray(seg.strength, dtype=np.float32)


def compare(
    baseline: Any,
    followup: Any,
    *,
    roi: np.ndarray | None = None,
    px_per_mm: float | None = None,
    sensitivity: float = 0.5,
    target_pct: float | None = None,
    previous: Sequence[Comparison] | None = None,
    progress: ProgressCallback | None = None,
) -> Comparison:
    """Compare a follow-up photo of a treatment area with its baseline.

    Pipeline: load, register the follow-up onto the baseline, segment the
    baseline, normalise the warped follow-up's colour on skin that is not vein,
    segment it in the baseline frame, then measure both over the region seen in
    both photos (inside ``roi`` when given).

    The headline ``improvement_pct`` is :func:`improvement_pct` with ``c_b`` and
    ``c_f`` the segmentations' vein contrast (``strength``, OD units, along the
    class of the baseline pixel), averaged along each vein over
    ``RATIO_SIGMA_MM`` (so pixel noise does not bias ``min(1, c_f / c_b)``), and
    ``N`` the follow-up vein pieces farther than ``NEW_TOLERANCE_MM`` (plus the
    registration residual) from any baseline vein.

    The band combines three measured spreads, each in percentage points:

    - ``bootstrap``: SD of the improvement over 200 resamplings of ~1 cm² tiles;
    - ``registration``: largest change when the follow-up contrast is shifted by
      the registration residual (at least 1 px) in x or y;
    - ``threshold``: largest change when the baseline vein mask is cut to its
      stronger 80 % (threshold sensitivity) or the new-vein tolerance is halved
      or doubled;

    and is ``estimate ± (BAND_K × sqrt(Σ spread²) + BAND_FLOOR_PCT)``, clipped to
    at most 100. ``BAND_K`` and ``BAND_FLOOR_PCT`` were calibrated on phantoms.

    Parameters
    ----------
    baseline, followup : Photo, ndarray (H, W, 3) uint8, path or bytes
        The two photos, upright.
    roi : ndarray, shape (H, W), bool, optional
        Baseline-frame region of interest; only pixels inside count.
    px_per_mm : float, optional
        Scale of the baseline; default the photo's own, else the segmentation's estimate.
    sensitivity : float
        Segmentation sensitivity in [0, 1].
    target_pct : float, optional
        The clinic's target; default ``VEIN_TRACKER_TARGET_PCT`` (75).
    previous : sequence of Comparison, optional
        Earlier comparisons against the same baseline, oldest first; needed to
        call a vein "recanalised" (faded, then came back).
    progress : callable(fraction, message), optional

    Returns
    -------
    Comparison

    Raises
    ------
    RegistrationError
        The pair cannot be registered (the reason says why).
    PhotoError
        A photo cannot be read.
    ValueError
        Bad ``roi``, ``px_per_mm``, ``sensitivity`` or ``target_pct``.
    """
    from . import ALGORITHM_VERSION
    from .colour import (
        ColourFit,
        ColourNormalisation,
        _fit_frame,
        apply_colour_fit,
        fit_colour,
    )
    from .config import get_settings
    from .errors import RegistrationError
    from .registration import register
    from .segmentation import estimate_px_per_mm, leg_mask, segment

    def tell(frac: float, msg: str) -> None:
        if progress is not None:
            progress(frac, msg)

    if px_per_mm is not None:
        _check_px_per_mm(px_per_mm)
    if not 0.0 <= sensitivity <= 1.0:
        raise ValueError(f"sensitivity must be in [0, 1], got {sensitivity!r}")
    if target_pct is None:
        target_pct = get_settings().target_pct
    if not (math.isfinite(target_pct) and 0 < target_pct <= 100):
        raise ValueError(f"target_pct must be in (0, 100], got {target_pct!r}")

    tell(0.0, "loading photos")
    # Two threads (OpenCV and NumPy release the GIL): the photos load side by side, and
    # the baseline is segmented while the follow-up is being aligned. Results are the
    # same as one after the other.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="compare") as pool:
        f_job = pool.submit(_load, followup, None)
        b_photo = _load(baseline, px_per_mm)
        f_photo = f_job.result()
        h, w = b_photo.rgb.shape[:2]
        if roi is not None:
            roi = _check_mask("roi", roi, (h, w))
            if not roi.any():
                raise ValueError("roi is empty: draw the region of interest on the baseline photo")
        ppm_photo = px_per_mm if px_per_mm is not None else b_photo.px_per_mm

        # Working scale: finer photos are analysed at ANALYSIS_PX_PER_MM (the scale the
        # segmentation works at anyway); maps come back in this analysis frame, and the
        # Comparison lifts the homography, residual and boxes to the photo's pixels.
        frame = analysis_frame(b_photo.rgb.shape[:2], f_photo.rgb.shape[:2], ppm_photo)
        resize_job = pool.submit(_resize_rgb, f_photo.rgb, frame.followup_shape)
        b_src = _resize_rgb(b_photo.rgb, frame.baseline_shape)
        f_src = resize_job.result()
        if roi is not None:
            roi = _resize_mask(roi, frame.baseline_shape)
            if not roi.any():
                raise ValueError("roi is too small: draw a larger region of interest")
        ppm_given = None if ppm_photo is None else float(ppm_photo) * frame.scale

        # Compression equalisation: both photos go through the same JPEG encoder before
        # any measurement, so a losslessly stored baseline and a phone JPEG lose the same
        # fine chroma detail (4:2:0) that thin red veins live in.
        if EQUALISE_JPEG_QUALITY:
            b_rgb = equalise_compression(b_src)
            f_rgb = equalise_compression(f_src)
        else:
            b_rgb, f_rgb = b_src, f_src

        def prepare(rgb: np.ndarray) -> np.ndarray:
            # The same 4:2:0-like chroma low-pass on both photos (no quantisation, so no
            # JPEG blocks): a phone JPEG has already lost the fine chroma a thin red vein
            # lives in; the baseline, perhaps stored losslessly, loses it too.
            return chroma_lowpass(rgb) if EQUALISE_CHROMA else rgb

        def seg_baseline(rgb: np.ndarray, leg: np.ndarray | None = None) -> Segmentation:
            return segment(rgb, px_per_mm=ppm_given, leg_mask=leg, sensitivity=sensitivity)

        def prepare_and_find_leg(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            ready = prepare(rgb)
            return ready, leg_mask(ready, px_per_mm=ppm_given)

        # The baseline is prepared, and its leg found, while the follow-up is being aligned;
        # so are the photos' JPEG qualities (for the baseline's equalisation, below). They
        # start once registration has found both photos' features (on both cores) and goes
        # on with one thread.
        side_jobs: list[Future[Any]] = []

        def start_side_jobs() -> None:
            if side_jobs:
                return
            side_jobs.append(pool.submit(prepare_and_find_leg, b_rgb))
            if EQUALISE_QUANTISATION:
                side_jobs.extend(
                    pool.submit(estimate_jpeg_quality, ph.rgb) for ph in (b_photo, f_photo)
                )

        tell(0.05, "aligning the follow-up onto the baseline")
        reg = register(b_rgb, f_rgb, roi=roi, on_features=start_side_jobs)
        if not reg.ok:
            for job in side_jobs:
                job.cancel()
            raise RegistrationError(
                reg.reason or "The follow-up photo could not be aligned onto the baseline."
            )
        start_side_jobs()
        leg_job = side_jobs[0]
        q_jobs = side_jobs[1:]
        # Measure both visits at the same sharpness: the sharper photo gets the difference
        # in blur the registration measured (a blurred thin vein reads fainter).
        checks = getattr(reg, "checks", None)
        blur_b = float(getattr(checks, "blur_followup_px", math.nan))
        blur_f = float(getattr(checks, "blur_baseline_px", math.nan))
        b_meas, leg = leg_job.result()
        ppm = _check_px_per_mm(ppm_given if ppm_given is not None else estimate_px_per_mm(b_rgb))

        # Both visits are segmented side by side. The leg and the skin to fit colour on come
        # from the baseline as taken; when the follow-up is blurrier (the usual case: the
        # warp's interpolation blurs it), the baseline blurred to match is segmented, on
        # that leg.
        tell(0.4, "segmenting both visits")

        def segment_prepared_baseline(ready: np.ndarray) -> tuple[np.ndarray, Segmentation]:
            return ready, seg_baseline(ready)

        b_blurred: list[np.ndarray] = []  # the blurred baseline, for its equalisation
        b_ready: Future[np.ndarray] = Future()  # the baseline as measured, for the colour fit

        def blur_prepare_and_segment_baseline() -> tuple[np.ndarray, Segmentation]:
            try:
                b_blurred.append(_blur_rgb(b_rgb, blur_b))
                ready = prepare(b_blurred[0])
            except BaseException as exc:
                b_ready.set_exception(exc)
                raise
            b_ready.set_result(ready)
            return ready, seg_baseline(ready, leg)

        if BLUR_MATCH and math.isfinite(blur_b) and blur_b > 0.3:
            seg_b_job = pool.submit(blur_prepare_and_segment_baseline)
        else:
            b_ready.set_result(b_meas)
            seg_b_job = pool.submit(segment_prepared_baseline, b_meas)
        # The follow-up is segmented as registered, not its colour-normalised copy (made
        # for the warnings once the baseline's veins are known): vein contrast is measured
        # in OD over the local skin background, so per-channel gains and smooth fields
        # cancel in it, while re-quantising a gain-corrected copy to 8 bits does not
        # (−2.5 % spider contrast at ±8 % gains on noise-free dark skin).
        f_leg = leg & reg.valid

        f_ready: Future[np.ndarray] = Future()  # the prepared follow-up, for the colour fit

        def prepare_and_segment_followup() -> Segmentation:
            try:
                warped = reg.warped
                if BLUR_MATCH and math.isfinite(blur_f) and blur_f > 0.3:
                    warped = _blur_rgb(warped, blur_f)
                ready = prepare(warped)
            except BaseException as exc:
                f_ready.set_exception(exc)
                raise
            f_ready.set_result(ready)
            return segment(ready, px_per_mm=ppm, leg_mask=f_leg, sensitivity=sensitivity)

        seg_f_job = pool.submit(prepare_and_segment_followup)
        region = leg & _erode(reg.valid, REGION_MARGIN_MM * ppm)
        if roi is not None:
            region &= roi
        # What the colour fit needs besides its mask (the baseline's veins), made here
        # while both visits are segmented.
        f_warp = f_ready.result()
        fit_frame = _fit_frame(b_ready.result(), f_warp)
        b_meas, seg_b = seg_b_job.result()

        # Colour normalisation, then the baseline's equalisation to the follow-up's
        # capture (which needs its gains), run on a worker while the measurement starts
        # on what needs neither (the follow-up's contrast, the supports, new veins): see
        # ``baseline_contrast`` in _compare_segmentations. Results as one after the other.
        tell(0.6, "normalising colour")
        fit_mask = region & ~_dilate(seg_b.mask, 1.0 * ppm)
        fit_ready: Future[ColourFit] = Future()
        qualities = (q_jobs[0].result(), q_jobs[1].result()) if q_jobs else None

        def normalise_and_equalise() -> Any:
            # the equalisation needs the colour fit's gains, not the normalised image
            try:
                fit = fit_colour(b_meas, f_warp, mask=fit_mask, frame=fit_frame)
            except BaseException as exc:
                fit_ready.set_exception(exc)
                raise
            fit_ready.set_result(fit)
            return equalised_baseline_contrast(
                b_rgb,
                b_photo.rgb,
                f_photo.rgb,
                blur_px=blur_b,
                px_per_mm=ppm,
                leg_mask=leg,
                colour=fit,
                frame=frame,
                qualities=qualities,
                blurred=b_blurred[0] if b_blurred else None,
            )

        def normalised() -> ColourNormalisation:
            # only the look-alike warnings' grid of the image is read
            return apply_colour_fit(
                b_meas, f_warp, fit_ready.result(), grid_step=_lookalike_step(ppm)
            )

        b_contrast = pool.submit(normalise_and_equalise)
        seg_f = seg_f_job.result()
        norm_job = pool.submit(normalised)
        tell(0.7, "equalising the baseline to the follow-up's capture")

        def late_inputs() -> tuple[list[str], np.ndarray]:
            # what only the warnings need: the capture's, and the normalised follow-up
            norm = norm_job.result()
            return _capture_warnings(b_photo, f_photo, reg, region, leg, norm), norm.image

        tell(0.9, "measuring")
        return _compare_segmentations(
            seg_b,
            seg_f,
            region=region,
            px_per_mm=ppm,
            registration=reg,
            target_pct=float(target_pct),
            previous=previous,
            extra_warnings=(),
            params={
                "sensitivity": float(sensitivity),
                "px_per_mm": ppm,
                "px_per_mm_given": ppm_photo is not None,
                "analysis_px_per_mm": ANALYSIS_PX_PER_MM,
                "roi": roi is not None,
                "ratio_sigma_mm": RATIO_SIGMA_MM,
                "equalise_jpeg_quality": EQUALISE_JPEG_QUALITY,
                "equalise_chroma": EQUALISE_CHROMA,
                "new_tolerance_mm": NEW_TOLERANCE_MM,
                "band_k": BAND_K,
                "band_floor_pct": BAND_FLOOR_PCT,
            },
            algorithm_version=ALGORITHM_VERSION,
            progress=tell,
            baseline_rgb=b_meas,
            frame=frame,
            baseline_contrast=b_contrast,
            late_inputs=late_inputs,
        )


#: JPEG quality of a compression equalisation of both photos (0 = off). Off: on the
#: benchmark at 2000x1500 it added more JPEG-block false veins than it removed bias
#: (identity pair error 9.3 points with it, 0.4 without); it helps at 800x600.
EQUALISE_JPEG_QUALITY = 0
#: Blur the sharper photo by the extra blur the registration measured on the other.
BLUR_MATCH = True
#: Pass both photos (baseline and registered follow-up) through the same 4:2:0-like chroma
#: low-pass (``chroma_lowpass``) before measuring.
EQUALISE_CHROMA = True


def chroma_lowpass(rgb: np.ndarray) -> np.ndarray:
    """Low-pass the chroma of a photo as JPEG's 4:2:0 subsampling does, without quantisation.

    The photo goes to YCbCr (BT.601, as JPEG); Cb and Cr are averaged over 2x2 blocks
    (area averaging) and brought back to full size bilinearly; luma is left untouched.
    No DCT, no quantisation, hence no block edges.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        Photo, RGB.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
        A new array; the input is not modified.
    """
    import cv2

    from .io import as_rgb

    rgb = as_rgb(rgb)
    h, w = rgb.shape[:2]
    # One float image, worked on in place (a 12 MP photo is 144 MB in float32).
    ycc = rgb.astype(np.float32)
    np.divide(ycc, 255.0, out=ycc)
    cv2.cvtColor(ycc, cv2.COLOR_RGB2YCrCb, dst=ycc)
    if h >= 2 and w >= 2:
        # Area reduction works per channel: reducing all three and keeping the chroma is
        # the chroma reduced, without copying it out of the interleaved image first.
        small = cv2.resize(ycc, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
        up = cv2.resize(
            np.ascontiguousarray(small[..., 1:]), (w, h), interpolation=cv2.INTER_LINEAR
        )
        # the chroma back into place (OpenCV's channel copy: NumPy's strided one is slow)
        cv2.mixChannels([up], [ycc], [0, 1, 1, 2])
    out = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB, dst=ycc)
    np.multiply(out, 255.0, out=out)
    np.rint(out, out=out)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def _blur_rgb(rgb: np.ndarray, sigma_px: float) -> np.ndarray:
    import cv2

    k = int(2 * math.ceil(3 * sigma_px) + 1)
    return np.asarray(cv2.GaussianBlur(rgb, (k, k), sigma_px))


def equalise_compression(rgb: np.ndarray, *, quality: int = EQUALISE_JPEG_QUALITY) -> np.ndarray:
    """Pass a photo through a standard JPEG encoder (4:2:0 chroma) and back.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    quality : int
        JPEG quality, 1-100.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
        A new array; the input is not modified.
    """
    import cv2

    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality!r}")
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB
        return np.array(rgb, copy=True)
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB)  # RGB straight from the decoder
    if dec is None:  # pragma: no cover - decoding our own JPEG
        return np.array(rgb, copy=True)
    return np.asarray(dec)


#: Quantisation equalisation: when the follow-up is a JPEG (found from its pixels by
#: ``estimate_jpeg_quality``) and the baseline is not one of the same or lower quality,
#: the baseline's vein contrast (c_b) is measured on a copy passed through JPEG at the
#: follow-up's quality. JPEG's dead zone removes low-amplitude detail (a faint vein's
#: chroma on dark skin: ~30 % of it at quality 81 on brown skin), which no blur or
#: integration recovers; both visits then lose the same. The baseline's vein mask is
#: still found on the photo as stored (a JPEG copy adds block-edge false veins).
EQUALISE_QUANTISATION = True
#: Qualities ``estimate_jpeg_quality`` tries, and the side of the central crop it uses, px.
_JPEG_QUALITIES = tuple(range(50, 100))
_JPEG_PROBE_PX = 256


def estimate_jpeg_quality(rgb: np.ndarray) -> int | None:
    """The JPEG quality a decoded photo was saved with, or None when it is not a JPEG.

    "JPEG ghost": a central crop aligned on JPEG's 16-pixel grid is re-encoded at each
    quality of ``_JPEG_QUALITIES``; at the photo's own quality re-encoding is nearly
    idempotent (same quantisation steps), so the mean absolute change has a sharp dip
    there. A losslessly stored photo shows no dip (the change only shrinks as the
    quality rises). Exact for encoders with the standard (IJG) tables, approximate for
    others.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        Photo, RGB, as decoded (grid at the top-left corner).

    Returns
    -------
    int or None
    """
    import cv2

    from .io import as_rgb

    rgb = as_rgb(rgb)
    h, w = rgb.shape[:2]
    s = min(_JPEG_PROBE_PX, (h // 16) * 16, (w // 16) * 16)
    if s < 64:
        return None
    y0 = max(0, (h // 2 - s // 2) // 16 * 16)
    x0 = max(0, (w // 2 - s // 2) // 16 * 16)
    crop = np.ascontiguousarray(rgb[y0 : y0 + s, x0 : x0 + s, ::-1])
    err = np.empty(len(_JPEG_QUALITIES), np.float64)
    for k, q in enumerate(_JPEG_QUALITIES):
        ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(q)])
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if dec is None:  # pragma: no cover - OpenCV encodes any uint8 image
            return None
        err[k] = float(np.mean(np.abs(dec.astype(np.int16) - crop.astype(np.int16))))
    k = int(np.argmin(err))
    if k == 0 or k == len(err) - 1:
        return None
    # A dip: well below both neighbours (a lossless photo's curve falls smoothly).
    if err[k] > 0.5 * min(err[k - 1], err[k + 1]):
        return None
    return int(_JPEG_QUALITIES[k])


def _gain_and_compress(
    rgb: np.ndarray, field_gain: np.ndarray | None, gains: np.ndarray, quality: int
) -> np.ndarray:
    """``rgb`` times the linear gain ``field_gain / gains`` (when given), then through JPEG
    at ``quality``. A large photo is done as two bands of whole 16-px JPEG block rows on
    two threads (pixel-wise gain, block-wise compression: the same blocks, the same
    quantisation; only the decoder's chroma interpolation across the seam differs)."""
    from .colour import _apply_linear_gain

    def one(lo: int, hi: int) -> np.ndarray:
        part = rgb[lo:hi]
        if field_gain is not None:
            part = _apply_linear_gain(part, np.ascontiguousarray(field_gain[lo:hi]), 1.0 / gains)
        return equalise_compression(part, quality=quality)

    h = rgb.shape[0]
    if h * rgb.shape[1] < 4_000_000 or h < 64:
        return one(0, h)
    mid = (h // 2) // 16 * 16
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="jpeg") as pool:
        top = pool.submit(one, 0, mid)
        bottom = one(mid, h)
        return np.concatenate([top.result(), bottom])


def equalised_baseline_contrast(
    baseline_rgb: np.ndarray,
    baseline_photo_rgb: np.ndarray,
    followup_photo_rgb: np.ndarray,
    *,
    blur_px: float,
    px_per_mm: float,
    leg_mask: np.ndarray,
    colour: Any = None,
    frame: AnalysisFrame | None = None,
    qualities: tuple[int | None, int | None] | None = None,
    blurred: np.ndarray | None = None,
) -> Any:
    """The baseline's vein contrast at the follow-up's JPEG quantisation, or None.

    ``baseline_rgb`` is the baseline before the measurement blur and chroma low-pass
    (``compare`` applies them to both photos); it is blurred by ``blur_px`` (the blur
    the follow-up has in excess), JPEG-encoded at the follow-up's quality (the camera's
    order: optics, then compression) and chroma-low-passed as the baseline is for
    measuring. JPEG's loss depends on the code values it works on (a colour's chroma,
    not only its OD contrast), so the baseline is first brought to the follow-up's
    exposure and white balance: ``colour`` (the follow-up's ``ColourFit`` or
    ``ColourNormalisation``, whose gains and field map the follow-up onto the baseline)
    is applied in reverse.
    None when the follow-up is not a JPEG, or the baseline already is one of the same or
    lower quality (then nothing is to be equalised this way).

    With a reduced analysis ``frame`` (a 12 MP photo analysed at 10 px/mm) the
    compression happens where the camera's did, at the photo's resolution: the baseline
    photo is blurred, colour-shifted and encoded there, then reduced to the analysis
    frame like the follow-up.

    ``qualities``: the two photos' :func:`estimate_jpeg_quality` (baseline, follow-up),
    when already known. ``blurred``: ``baseline_rgb`` already blurred by ``blur_px``, when
    at hand (used unless the frame is reduced).
    """
    from .segmentation import vein_contrast

    if not EQUALISE_QUANTISATION:
        return None
    if qualities is not None:
        q_b, q_f = qualities
    else:
        # The two photos' qualities side by side (each is 50 small JPEG round trips).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="jpeg-quality") as pool:
            q_b_job = pool.submit(estimate_jpeg_quality, baseline_photo_rgb)
            q_f = estimate_jpeg_quality(followup_photo_rgb)
            q_b = q_b_job.result()
    if q_f is None:
        return None
    if q_b is not None and q_b <= q_f:
        return None
    import cv2

    # In the camera's order: optical blur first, then compression.
    reduced = frame is not None and frame.reduced
    b = baseline_photo_rgb if reduced else baseline_rgb
    scale = frame.scale if frame is not None and reduced else 1.0
    if BLUR_MATCH and math.isfinite(blur_px) and blur_px > 0.3:
        b = blurred if blurred is not None and not reduced else _blur_rgb(b, blur_px / scale)
    gains = np.asarray(getattr(colour, "gains", np.ones(3)), dtype=np.float64).reshape(-1)
    fld = getattr(colour, "field", None)
    if gains.shape == (3,) and np.all(gains > 0) and not np.allclose(gains, 1.0):
        if isinstance(fld, np.ndarray) and fld.ndim == 2:
            field_gain = np.exp(-fld.astype(np.float32))
            if field_gain.shape != b.shape[:2]:
                field_gain = cv2.resize(
                    field_gain, (b.shape[1], b.shape[0]), interpolation=cv2.INTER_LINEAR
                )
        else:
            field_gain = np.ones(b.shape[:2], np.float32)
    else:
        field_gain = None
    b = _gain_and_compress(b, field_gain, gains, q_f)
    if frame is not None and reduced:
        b = _resize_rgb(b, frame.baseline_shape)
    if EQUALISE_CHROMA:
        b = chroma_lowpass(b)
    return vein_contrast(b, px_per_mm=px_per_mm, leg_mask=leg_mask)


def _capture_warnings(
    b_photo: Photo,
    f_photo: Photo,
    reg: Registration,
    region: np.ndarray,
    leg_b: np.ndarray,
    norm: Any,
) -> list[str]:
    out: list[str] = []
    if float(reg.quality) < 0.5 or float(reg.residual_px) > 3.0:
        out.append(
            f"poor registration: alignment quality {float(reg.quality):.2f}, residual "
            f"{float(reg.residual_px):.1f} px; check the overlay and retake the photo with the "
            "baseline framing if veins do not line up"
        )
    leg_px = int(np.count_nonzero(leg_b))
    if leg_px:
        frac = np.count_nonzero(region) / leg_px
        if frac < 0.5:
            out.append(
                f"little overlap: only {100 * frac:.0f} % of the baseline leg is seen in both "
                "photos; retake the follow-up with the same framing"
            )
    de = float(getattr(norm, "delta_e", math.nan))
    if math.isfinite(de) and de > 6.0:
        out.append(
            f"poor capture: skin colour still differs by ΔE {de:.1f} after normalisation; "
            "use the same lighting, or a colour card"
        )
    # Capture quality from figures already measured (assess_capture is the upload-time
    # check; re-running it here would cost seconds).
    checks = getattr(reg, "checks", None)
    blur = float(getattr(checks, "blur_followup_px", math.nan))
    if math.isfinite(blur) and blur > CAPTURE_BLUR_PX:
        out.append(
            f"poor capture: the follow-up is blurrier than the baseline (extra blur σ "
            f"{blur:.1f} px); fine spider veins may read as faded. Hold the camera steady and "
            "focus on the skin"
        )
    gains = np.asarray(getattr(norm, "gains", np.ones(3)), dtype=np.float64)
    if gains.size == 3 and np.all(gains > 0):
        worst = float(np.max(np.abs(np.log(gains))))
        if worst > math.log(CAPTURE_MAX_GAIN):
            out.append(
                f"poor capture: exposure or white balance differs from the baseline by a factor "
                f"{math.exp(worst):.2f} in one colour channel; use the same light as at baseline"
            )
    return out


def _chroma_unit(v: np.ndarray) -> np.ndarray:
    n = np.ones(3) / math.sqrt(3.0)
    c = np.asarray(v, dtype=np.float64) - np.dot(v, n) * n
    return (c / np.linalg.norm(c)).astype(np.float32)


def _lookalike_step(ppm: float) -> int:
    """Grid step of :func:`_lookalike_warnings` (~0.5 mm)."""
    return max(1, int(ppm // 2))


def _lookalike_warnings(
    b_rgb: np.ndarray,
    f_rgb: np.ndarray,
    treated: np.ndarray,
    region: np.ndarray,
    ppm: float,
) -> list[str]:
    """Diffuse brown (haemosiderin) or purple/yellow (bruise) change near treated veins.

    ``f_rgb`` may be the follow-up itself or only its grid ``[::s, ::s]`` with s
    :func:`_lookalike_step` (the only pixels read)."""
    from .optics import HAEMOGLOBIN_OD, MELANIN_OD, optical_density

    # Work at ~0.5 mm per pixel: the look-alikes are diffuse. "Near a treated vein" is
    # only needed on that grid (no grid pixel near: no warning can arise).
    step = _lookalike_step(ppm)
    sl = (slice(None, None, step), slice(None, None, step))
    near_grid = _near_on_grid(treated, 3.0 * ppm, step)
    nr = near_grid & np.asarray(region, dtype=bool)[sl]
    if not nr.any():
        return []
    f_grid = f_rgb if f_rgb.shape[:2] == nr.shape and step > 1 else f_rgb[sl]
    d = optical_density(f_grid) - optical_density(b_rgb[sl])
    d -= d.mean(axis=2, keepdims=True)  # drop the neutral part (shading, exposure)
    sig = max(1.0, 1.0 * ppm / step)
    brown = _gauss(d @ _chroma_unit(MELANIN_OD), sig)
    purple = _gauss(d @ _chroma_unit(HAEMOGLOBIN_OD), sig)
    # Veins themselves are thin; a look-alike covers ≥ 2 mm of diffuse colour change.
    wide = ~_dilate(treated[sl], 0.5 * ppm / step)
    px_mm2 = (step / ppm) ** 2
    out: list[str] = []
    # OD chroma thresholds ~ the contrast of a faint vein; well above JPEG noise after smoothing.
    stain_px = int(np.count_nonzero(nr & wide & (brown > 0.04) & (brown > purple)))
    bruise_px = int(np.count_nonzero(nr & wide & (purple > 0.04) & (purple >= brown)))
    if stain_px * px_mm2 >= 4.0:
        out.append(
            f"suspected staining: {stain_px * px_mm2:.0f} mm² of brown discolouration along "
            "treated veins (haemosiderin); it is not counted as vein"
        )
    if bruise_px * px_mm2 >= 4.0:
        out.append(
            f"suspected bruising: {bruise_px * px_mm2:.0f} mm² of diffuse purple discolouration "
            "near treated veins; it is not counted as vein, re-check after it resolves"
        )
    return out


def _zero_ring(veins: np.ndarray, region: np.ndarray, ppm: float) -> np.ndarray:
    """Vein-free skin 1-3 mm from ``veins``: where :class:`_ZeroField` is measured."""
    d = _distance_to(veins)
    return region & (d > 0.5 * ZERO_POINT_MM * ppm) & (d <= 1.5 * ZERO_POINT_MM * ppm)


class _ZeroField:
    """Local zero points over one ring of vein-free skin (``ring``, see :func:`_zero_ring`).

    :meth:`of` gives, for a map, its local mean over the ring (σ 3 mm), blended into
    the ring's global median where the ring is too thin; zero everywhere when the ring
    has fewer than 100 pixels. The ring's own weights are computed once for all the
    maps read on it."""

    def __init__(self, ring: np.ndarray, ppm: float) -> None:
        self.ring = ring
        self.ok = bool(np.count_nonzero(ring) >= 100)
        self.sigma = 1.5 * ZERO_POINT_MM * ppm
        if self.ok:
            den = _smooth_sum(ring.astype(np.float32), self.sigma)
            self.w = np.clip(den / 0.05, 0.0, 1.0)  # trust the local mean where the ring is dense
            self.w_rest = 1.0 - self.w
            self.dense = den > 1e-4
            self.den = np.maximum(den, 1e-4)

    def reader(self, at: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """A function giving, for a map ``c``, its zero points at the pixels ``at`` (flat
        indices): ``of(c, at=at)`` to float rounding, without a full-frame pass (the
        ring's smoothing is read at ``at`` only, see :class:`_SparseSmooth`)."""
        if not self.ok:
            return lambda c: np.zeros(at.shape, np.float32)
        ring_idx = np.flatnonzero(self.ring)
        smooth = _SparseSmooth((self.ring.shape[0], self.ring.shape[1]), ring_idx, at, self.sigma)
        dense, den = self.dense.reshape(-1)[at], self.den.reshape(-1)[at]
        w, w_rest = self.w.reshape(-1)[at], self.w_rest.reshape(-1)[at]

        def read(c: np.ndarray) -> np.ndarray:
            ring_c = np.asarray(c, np.float32).reshape(-1)[ring_idx]
            return self._blend(smooth(ring_c), float(np.median(ring_c)), dense, den, w, w_rest)

        return read

    @staticmethod
    def _blend(
        num: np.ndarray,
        glob: float,
        dense: np.ndarray,
        den: np.ndarray,
        w: np.ndarray,
        w_rest: np.ndarray,
    ) -> np.ndarray:
        """The local mean (``num / den`` where the ring is dense, else the ring's median
        ``glob``) blended into ``glob`` by the ring's weight."""
        loc = np.where(dense, num / den, glob)
        return (w * loc + w_rest * glob).astype(np.float32, copy=False)

    def of(self, c: np.ndarray, at: np.ndarray | None = None) -> np.ndarray:
        """The zero-point map of ``c``; with ``at`` (flat pixel indices) only those
        pixels' zero points, in that order (the same values)."""
        if not self.ok:
            return np.zeros(c.shape if at is None else at.shape, np.float32)
        glob = float(np.median(c[self.ring]))
        num = _smooth_sum(np.where(self.ring, c, 0).astype(np.float32, copy=False), self.sigma)
        maps = (num, self.dense, self.den, self.w, self.w_rest)
        if at is not None:
            maps = tuple(m.ravel()[at] for m in maps)
        num, dense, den, w, w_rest = maps
        return self._blend(num, glob, dense, den, w, w_rest)


def _zeroed(c: np.ndarray, maps: Any, labels: np.ndarray, zero: _ZeroField) -> np.ndarray:
    """``c`` (``maps.of_class(labels)``) less its zero point, each pixel's measured on
    the map it is read from (``c`` itself when the class maps are not known)."""
    z = zero.of(c)
    if maps is None:
        return c - z
    out = c - np.where(labels == 0, z, 0)
    flat = out.reshape(-1)  # a view: ``out`` is a new contiguous array
    for name, code in CLASS_CODES.items():
        m = getattr(maps, name)
        idx = np.flatnonzero(labels == code)
        if idx.size:
            flat[idx] -= zero.of(np.asarray(m, np.float32), at=idx)
    return out


def _zeroed_at(
    c: np.ndarray, maps: Any, labels: np.ndarray, zero: _ZeroField, at: np.ndarray
) -> np.ndarray:
    """``_zeroed(c, maps, labels, zero)`` on the pixels ``at`` only (flat indices), as a
    full-frame map that is 0 elsewhere: for a map only ever read there."""
    read = zero.reader(at)
    lab = labels.reshape(-1)[at]
    vals = np.asarray(c, np.float32).reshape(-1)[at].copy()
    if maps is None:
        vals -= read(c)
    else:
        z_own = read(c)
        vals[lab == 0] -= z_own[lab == 0]
        for name, code in CLASS_CODES.items():
            sel = lab == code
            if sel.any():
                vals[sel] -= read(np.asarray(getattr(maps, name), np.float32))[sel]
    out = np.zeros(c.size, np.float32)
    out[at] = vals
    return out.reshape(c.shape)


def _measurable(
    base: np.ndarray, c_b: np.ndarray, labels: np.ndarray, ids: np.ndarray
) -> np.ndarray:
    """``base`` without the veins that show no measurable contrast of their own.

    ``c_b`` is the contrast the ratio divides by (the baseline at the follow-up's JPEG
    quantisation, less the zero point of the skin around it). A vein whose mean over its
    own pixels falls below ``MIN_VEIN_CONTRAST_FRAC`` of its class's median (the share a
    follow-up vein needs too) stands no more out of its surroundings than they do out of
    themselves: a diffuse patch of mottled or brown skin the segmentation took for a
    wide vein. Its share of contrast cannot be measured (a ratio of two near-zero sums),
    so it is left out of the comparison, counted neither as treated nor as kept. On the
    phantoms this drops most of the area of reticular false positives and almost none
    of true veins (see docs/ARCHITECTURE.md). Pixels of no vein (id 0) are kept.
    """
    idx = np.flatnonzero(base)
    if idx.size == 0:
        return base
    lab = labels.reshape(-1)[idx]
    val = np.asarray(c_b, dtype=np.float64).reshape(-1)[idx]
    vid = ids.reshape(-1)[idx]
    n_lab = int(vid.max()) + 1
    cnt = np.bincount(vid, minlength=n_lab).astype(np.float64)
    mean = np.bincount(vid, weights=val, minlength=n_lab) / np.maximum(cnt, 1.0)
    retic = np.bincount(vid, weights=lab == _RETICULAR, minlength=n_lab) > cnt / 2
    weak = np.zeros(n_lab, bool)
    for code, med in _class_medians(val, lab).items():
        of_class = retic if code == _RETICULAR else ~retic
        weak |= of_class & (cnt > 0) & (mean < MIN_VEIN_CONTRAST_FRAC * med)
    weak[0] = False
    if not weak.any():
        return base
    out = base.copy()
    out.reshape(-1)[idx[weak[vid]]] = False
    return out


def _class_medians(values: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """Median of ``values`` (baseline vein pixels) per class code of ``labels`` (the same
    pixels); the median of all of them for a class with fewer than 20 pixels."""
    all_med = float(np.median(values)) if values.size else 0.0
    out = {}
    for code in CLASS_CODES.values():
        sel = labels == code
        out[code] = float(np.median(values[sel])) if np.count_nonzero(sel) >= 20 else all_med
    return out


def _min_vein_contrast(
    c_b: np.ndarray, base: np.ndarray, labels_b: np.ndarray, labels_f: np.ndarray
) -> np.ndarray:
    """Per-pixel smallest contrast a follow-up vein pixel must have (by its class)."""
    out = np.full(labels_f.shape, MIN_VEIN_CONTRAST_OD, dtype=np.float32)
    for code, med in _class_medians(c_b[base], labels_b[base]).items():
        out[labels_f == code] = max(MIN_VEIN_CONTRAST_OD, MIN_VEIN_CONTRAST_FRAC * med)
    return out


def _improvement_by_class(
    est: _Estimate,
    layout: _Layout,
    labels_b: np.ndarray,
    labels_f: np.ndarray,
    region: np.ndarray,
) -> dict[str, float | None]:
    """The headline formula on each class's baseline veins and new veins alone
    (:func:`improvement_terms` with ``c_b = 1`` and ``c_f`` the estimate's remaining
    share, on the class's pixels; read on the baseline vein and new pixels only)."""
    rem = est.remaining.reshape(-1)[layout.base_idx]
    lab_b = labels_b.reshape(-1)
    at_new = np.flatnonzero(est.new_mask & region)
    new_lab = labels_f.reshape(-1)[at_new]
    new_in_base = layout.base.reshape(-1)[at_new]
    by_class: dict[str, float | None] = {}
    for name, code in CLASS_CODES.items():
        mine = lab_b[layout.base_idx] == code
        kept = float(np.sum(rem[mine], dtype=np.float64))
        n_new = int(np.count_nonzero((new_lab == code) & ~(new_in_base & (lab_b[at_new] == code))))
        t = ImprovementTerms(kept=kept, new=float(n_new), baseline=float(np.count_nonzero(mine)))
        by_class[name] = None if not math.isfinite(t.pct) else t.pct
    return by_class


def _vein_table(
    est: _Estimate,
    seg_b: Any,
    seg_f: Any,
    *,
    base: np.ndarray,
    ids_b: np.ndarray,
    labels_b: np.ndarray,
    labels_f: np.ndarray,
    previous: Sequence[Comparison] | None,
    ppm: float,
) -> tuple[list[VeinChange], np.ndarray, dict[str, int]]:
    """Each baseline vein's status and share, the new veins, the change map and the
    count of veins by status."""
    shape = base.shape
    prev_maps = _previous_remaining_maps(previous, shape)
    veins: list[VeinChange] = []
    change = np.zeros(shape, dtype=np.uint8)
    ids_in = ids_b[base]
    max_id = int(ids_b.max()) if ids_b.size else 0
    if ids_in.size:
        n_lab = max_id + 1
        cnt = np.bincount(ids_in, minlength=n_lab).astype(np.float64)
        rem_sum = np.bincount(ids_in, weights=est.remaining[base], minlength=n_lab)
        sk_b = np.asarray(getattr(seg_b, "skeleton", np.zeros(shape, bool)), dtype=bool) & base
        sk_cnt = np.bincount(ids_b[sk_b], minlength=n_lab).astype(np.float64)
        cls_votes = np.bincount(ids_in, weights=(labels_b[base] == _RETICULAR), minlength=n_lab)
        per = np.maximum(cnt, 1.0)
        prev_means = [
            np.bincount(ids_in, weights=pm[base], minlength=n_lab) / per for pm in prev_maps
        ]
        from .morphology import label_boxes

        # each vein's box, from its pixels (one pass, not one per vein)
        box = label_boxes(ids_in, np.flatnonzero(base), n_lab, shape[1])
        status_of = np.zeros(n_lab, dtype=np.uint8)
        for vid in np.nonzero(cnt)[0]:
            if vid == 0:
                continue
            rem = float(rem_sum[vid] / cnt[vid])
            prev = [float(pmn[vid]) for pmn in prev_means]
            st = status_for(rem, previous_remaining=prev)
            status_of[vid] = STATUS_CODES[st]
            veins.append(
                VeinChange(
                    id=int(vid),
                    cls="reticular" if cls_votes[vid] > cnt[vid] / 2 else "spider",
                    status=st,
                    remaining=rem,
                    faded_pct=100.0 * (1.0 - rem),
                    area_mm2=float(cnt[vid]) / ppm**2,
                    length_mm=float(sk_cnt[vid]) / ppm,
                    bbox=(int(box[vid, 0]), int(box[vid, 1]), int(box[vid, 2]), int(box[vid, 3])),
                )
            )
        change[base] = status_of[ids_in]
        # baseline vein pixels without a vein id: by their own remaining share
        loose = base & (ids_b == 0)
        r = est.remaining[loose]
        change[loose] = np.where(
            r < CLEARED_BELOW,
            CHANGE_CLEARED,
            np.where(r >= PERSISTING_FROM, CHANGE_PERSISTING, CHANGE_FADED),
        ).astype(np.uint8)
    if est.new_mask.any():
        from .morphology import components

        cc = components(est.new_mask)
        n, lab, stats = cc.n, cc.labels, cc.boxes()
        sk_f = np.asarray(getattr(seg_f, "skeleton", np.zeros(shape, bool)), dtype=bool)
        sk_new = np.bincount(lab[sk_f & est.new_mask], minlength=n)
        # per piece, its spider pixels (on the piece's pixels only)
        n_spider = np.bincount(cc.at, weights=labels_f.reshape(-1)[cc.idx] == _SPIDER, minlength=n)
        for k in range(1, n):
            spider = n_spider[k] >= cc.areas[k] / 2
            x, y, ww, hh = (int(v) for v in stats[k, :4])
            veins.append(
                VeinChange(
                    id=max_id + k,
                    cls="spider" if spider else "reticular",
                    status="new",
                    remaining=1.0,
                    faded_pct=0.0,
                    area_mm2=float(cc.areas[k]) / ppm**2,
                    length_mm=float(sk_new[k]) / ppm,
                    bbox=(x, y, ww, hh),
                )
            )
        change[est.new_mask] = CHANGE_NEW
    counts = {s_: 0 for s_ in STATUSES}
    for v in veins:
        counts[v.status] += 1
    return veins, change, counts


def _change_warnings(
    extra_warnings: Sequence[str],
    *,
    pct: float,
    base: np.ndarray,
    change: np.ndarray,
    veins: Sequence[VeinChange],
    counts: Mapping[str, int],
    region: np.ndarray,
    ppm: float,
    baseline_rgb: np.ndarray | None,
    followup_rgb: np.ndarray | None,
) -> list[str]:
    """The capture's warnings, then those the change itself raises: no baseline veins,
    look-alikes along treated veins, telangiectatic matting, recanalisation, negative
    improvement."""
    warnings: list[str] = list(extra_warnings)
    if not base.any():
        warnings.append(
            "no veins found at baseline in the compared region: improvement cannot be computed"
        )
    treated = np.isin(change, (CHANGE_CLEARED, CHANGE_FADED))
    if baseline_rgb is not None and followup_rgb is not None and treated.any():
        warnings.extend(_lookalike_warnings(baseline_rgb, followup_rgb, treated, region, ppm))
    new_spider = [v for v in veins if v.status == "new" and v.cls == "spider"]
    if new_spider and treated.any():
        # "near a treated vein" is only needed at each new spider's centre
        cy = np.array([v.bbox[1] + v.bbox[3] // 2 for v in new_spider])
        cx = np.array([v.bbox[0] + v.bbox[2] // 2 for v in new_spider])
        near_c = np.diagonal(_dilate_at(treated, 5.0 * ppm, cy, cx))
        close = [v for v, hit in zip(new_spider, near_c, strict=True) if hit]
        fine = [v for v in close if v.length_mm > 0 and v.area_mm2 / v.length_mm < 0.6]
        if len(fine) >= 3:
            area = sum(v.area_mm2 for v in fine)
            warnings.append(
                f"suspected telangiectatic matting: {len(fine)} new fine red vessels "
                f"({area:.1f} mm²) near treated veins; counted as new veins, review with the "
                "practitioner"
            )
    if counts["recanalised"]:
        warnings.append(
            f"recanalisation: {counts['recanalised']} vein(s) faded earlier and came back"
        )
    if math.isfinite(pct) and pct < 0:
        warnings.append("more vein than at baseline: improvement is negative")
    return warnings


def _compare_segmentations(
    seg_b: Any,
    seg_f: Any,
    *,
    region: np.ndarray,
    px_per_mm: float,
    registration: Registration,
    target_pct: float,
    previous: Sequence[Comparison] | None,
    extra_warnings: Sequence[str],
    params: Mapping[str, Any],
    algorithm_version: str,
    progress: ProgressCallback | None = None,
    baseline_rgb: np.ndarray | None = None,
    followup_rgb: np.ndarray | None = None,
    frame: AnalysisFrame | None = None,
    baseline_contrast: Any = None,
    late_inputs: Callable[[], tuple[Sequence[str], np.ndarray | None]] | None = None,
) -> Comparison:
    """Measurement core of :func:`compare`, on two segmentations in the baseline frame.

    ``late_inputs``, when given, is called once the warnings are due: it returns more
    ``extra_warnings`` and the ``followup_rgb`` to use, whole or its look-alike grid
    (made on another thread meanwhile).

    ``baseline_contrast`` (a :class:`~vein_tracker.segmentation.VeinContrast` in the
    baseline frame, or a ``Future`` of one or of None), when given, replaces ``seg_b``'s
    contrast maps for ``c_b``: the baseline measured at the follow-up's JPEG quantisation
    (:func:`equalised_baseline_contrast`). A future is waited for only where ``c_b`` is
    first needed: the follow-up's contrast, the supports and the new veins are measured
    meanwhile.
    """

    ppm = _check_px_per_mm(px_per_mm)
    shape = seg_b.mask.shape
    region = _check_mask("region", region, shape)
    labels_b = np.asarray(seg_b.labels)
    labels_f = np.asarray(seg_f.labels)
    base = seg_b.mask & region
    # A follow-up vein must show a contrast comparable to the baseline's veins of its
    # class: pixels far below it are texture, JPEG blocks or noise, not veins.
    # Worker threads (NumPy and OpenCV release the GIL) beside this one: the baseline's
    # zero point beside the follow-up's, then the band's alternative estimates beside the
    # secondary figures, the per-vein table and the warnings. The same figures as one after
    # the other. Three workers for two cores: one of them mostly waits for c_b (below).
    pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="measure")
    read_at: Future[np.ndarray] = Future()  # the pixels c_b is read on (below)
    try:
        c_b = _seg_contrast(seg_b, labels_b)
        c_f = _seg_contrast(seg_f, labels_b)
        # Zero point: skin around the veins reads a small non-zero contrast (the larger of two
        # noisy class maps, the skirt a wide reticular vein leaves in its class map, and
        # diffuse bruising or staining the background filter leaves). It is measured locally
        # on a ring of vein-free skin 1-3 mm around the veins, on the very map each pixel is
        # read from (its baseline class's map on baseline vein pixels, the larger of the two
        # elsewhere), and removed from both visits alike: a cleared vein reads 0, not its
        # surroundings, and a persisting vein reads the same share in both visits whether or
        # not the follow-up's segmentation found it.
        # The gates of follow-up veins (below) read the baseline as stored, on its vein pixels
        # (no zero point is removed there); a baseline measured at the follow-up's JPEG
        # quantisation (``baseline_contrast``) only serves the ratio c_f / c_b.
        c_gate = c_b
        bm_job = pool.submit(measure, seg_b, region=region, px_per_mm=ppm)
        zero = None
        if ZERO_POINT_MM > 0:
            any_vein = seg_b.mask | seg_f.mask
            zero = _ZeroField(_zero_ring(any_vein, region, ppm), ppm)

        # c_b is read on the baseline vein pixels and their supports only (those of any
        # subset of the veins lie within those of all of them, with the veins): it is made
        # there alone, 0 elsewhere.
        def baseline_c() -> np.ndarray:
            bc = baseline_contrast
            if isinstance(bc, Future):
                bc = bc.result()
            c, maps = c_gate, getattr(seg_b, "contrast", None)
            if bc is not None:
                c, maps = np.asarray(bc.of_class(labels_b), dtype=np.float32), bc
            if zero is None:
                return c
            return _zeroed_at(c, maps, labels_b, zero, read_at.result())

        # c_b is first needed for the ratio's baseline sums (below)
        cb_job = pool.submit(baseline_c)
        if zero is not None:
            c_f = _zeroed(c_f, getattr(seg_f, "contrast", None), labels_b, zero)
        f_own = np.asarray(seg_f.strength, dtype=np.float32)
        b_own = np.asarray(seg_b.strength, dtype=np.float32)
        min_s = _min_vein_contrast(c_gate, base, labels_b, labels_f)
        fmask = seg_f.mask & region & (f_own >= min_s)
        residual = float(getattr(registration, "residual_px", 0.0) or 0.0)
        if not math.isfinite(residual):
            residual = 0.0
        sigma = RATIO_SIGMA_MM * ppm
        tol = NEW_TOLERANCE_MM * ppm + 2.0 * residual
        support_px = {
            CLASS_CODES["spider"]: max(SUPPORT_MIN_PX, SUPPORT_MM * ppm) + residual,
            CLASS_CODES["reticular"]: max(SUPPORT_MIN_RETICULAR_PX, SUPPORT_MM * ppm) + residual,
        }
        sk_f = np.asarray(seg_f.skeleton, dtype=bool)
        ids_b = np.asarray(seg_b.vein_ids)
        dist_job = pool.submit(_distance_to, base)
        # Shading at the leg's outline makes vein-like ridges in one photo and not the other:
        # new veins are only looked for away from it.
        leg_f = np.asarray(getattr(seg_f, "leg_mask", region), dtype=bool) & region
        edge_job = pool.submit(_distance_to, ~leg_f)

        def layout(base_: np.ndarray, side_by_side: bool = False) -> _Layout:
            # side by side on the pool only from this thread (the workers never wait on it)
            return _layout(
                base_,
                labels=labels_b,
                region=region,
                ids=ids_b,
                radius_px=support_px,
                sigma_px=sigma,
                pool=pool if side_by_side else None,
            )

        lay = layout(base)
        needed = np.zeros(base.size, bool)
        needed[lay.base_idx] = True
        for sp in lay.classes:
            needed[sp.area_idx] = True
        read_at.set_result(np.flatnonzero(needed))

        inner = region & (edge_job.result() > NEW_EDGE_MARGIN_MM * ppm)
        dist_b = dist_job.result()

        def new_for(tol_px: float, strength_k: float = 1.0) -> np.ndarray:
            return new_vein_mask(
                fmask,
                base,
                region=inner,
                tolerance_px=tol_px,
                min_area_px=int(round(NEW_MIN_LENGTH_MM * ppm)),
                skeleton=sk_f,
                min_length_px=NEW_MIN_LENGTH_MM * ppm,
                strength=f_own,
                min_strength=NEW_MIN_STRENGTH_K * strength_k * min_s / MIN_VEIN_CONTRAST_FRAC,
                distance=dist_b,
                baseline_strength=b_own,
                max_baseline_frac=NEW_MAX_BASELINE_FRAC,
                neutral=getattr(seg_f, "neutral", None),
                labels=labels_f,
            )

        new_main = new_for(tol)

        # What needs no c_b is done while it is made (see ``baseline_contrast``): the
        # band's new-vein counts at a moved tolerance and contrast gate, and the
        # follow-up's plain figures.
        moved = ((0.5 * tol, 1.0), (2.0 * tol, 1.0), (tol, 0.7))

        def n_new_at(tol_px: float, strength_k: float) -> float:
            return float(np.count_nonzero(new_for(tol_px, strength_k)))

        moved_jobs = [pool.submit(n_new_at, *m) for m in moved] if lay.base_idx.size else []
        # --- plain secondary figures (follow-up side), on a worker --------------------
        fm_job = pool.submit(
            measure_mask,
            fmask,
            region=region,
            px_per_mm=ppm,
            strength=f_own,
            skeleton=np.asarray(seg_f.skeleton, dtype=bool) & fmask,
            labels=labels_f,
            vein_ids=np.asarray(seg_f.vein_ids),
            skin=getattr(seg_f, "leg_mask", None),
        )

        c_b = cb_job.result()
        # The headline counts the baseline veins with a measurable contrast of their own;
        # new veins are still looked for away from every vein the segmentation found.
        counted = _measurable(base, c_b, labels_b, ids_b)

        def core_layout() -> _Layout:
            # threshold sensitivity (the band, below): the baseline mask cut to its stronger
            # 80 %, laid out on a worker from here on (the longest of the band's parts)
            cut = float(np.quantile(c_b[counted], 0.2))
            return layout(counted & (c_b >= cut))

        core_job = pool.submit(core_layout) if counted.any() else None
        if counted is not base:
            lay = layout(counted, side_by_side=True)
        b_sums = _class_sums(c_b, lay)  # shared by the runs on ``lay``

        est = _estimate_maps(
            *_estimate_terms(c_b, c_f, lay, region, new_main, baseline_sums=b_sums), lay, new_main
        )
        pct = est.terms.pct
        n_new_lay = int(est.terms.new)

        def band_pct(c_f_: np.ndarray, lay_: _Layout = lay) -> float:
            # the band's alternative estimates need their figure only, not its maps
            on_lay = lay_ is lay
            terms, _ = _estimate_terms(
                c_b,
                c_f_,
                lay_,
                region,
                new_main,
                baseline_sums=b_sums if on_lay else None,
                n_new=n_new_lay if on_lay else None,
            )
            return terms.pct

        # --- band: three measured spreads --------------------------------------------------
        # The spreads are independent estimates: they run on the two workers while this
        # thread measures the secondary figures, the per-vein table and the warnings.
        tile = max(16, int(round(10.0 * ppm)))
        s = max(1, int(round(residual)))

        def shifted(dx: int, dy: int) -> float:
            return abs(band_pct(_shift(c_f, dx, dy)) - pct)

        def cut_core() -> float:
            assert core_job is not None  # pct is finite: there are baseline veins
            return abs(band_pct(c_f, core_job.result()) - pct)

        def moved_new(n_alt: float) -> float:
            # the new-vein tolerance and contrast gate moved
            t_alt = ImprovementTerms(est.terms.kept, n_alt, est.terms.baseline)
            return abs(t_alt.pct - pct)

        boot_job = pool.submit(
            _tile_bootstrap_sd, est.remaining, est.new_mask, counted, region, tile
        )
        reg_jobs = []
        thr_jobs = []
        thr_moved: list[float] = []
        if math.isfinite(pct):
            thr_jobs = [pool.submit(cut_core)]
            reg_jobs = [
                pool.submit(shifted, dx, dy) for dx, dy in ((s, 0), (-s, 0), (0, s), (0, -s))
            ]
            thr_moved = [moved_new(j.result()) for j in moved_jobs]

        # --- per class ------------------------------------------------------------------
        by_class = _improvement_by_class(est, lay, labels_b, labels_f, region)

        bm = bm_job.result()
        fm = fm_job.result()
        by_length = 100.0 * (1.0 - fm.length_mm / bm.length_mm) if bm.length_mm > 0 else None
        by_area = 100.0 * (1.0 - fm.area_mm2 / bm.area_mm2) if bm.area_mm2 > 0 else None

        # --- per vein -------------------------------------------------------------------
        veins, change, counts = _vein_table(
            est,
            seg_b,
            seg_f,
            base=counted,
            ids_b=ids_b,
            labels_b=labels_b,
            labels_f=labels_f,
            previous=previous,
            ppm=ppm,
        )

        # --- warnings -------------------------------------------------------------------
        if late_inputs is not None:
            more, followup_rgb = late_inputs()
            extra_warnings = [*extra_warnings, *more]
        warnings = _change_warnings(
            extra_warnings,
            pct=pct,
            base=counted,
            change=change,
            veins=veins,
            counts=counts,
            region=region,
            ppm=ppm,
            baseline_rgb=baseline_rgb,
            followup_rgb=followup_rgb,
        )

        boot_sd = boot_job.result()
        reg_dev = max((j.result() for j in reg_jobs), default=0.0)
        thr_dev = max([j.result() for j in thr_jobs] + thr_moved, default=0.0)
        comps = {"bootstrap": boot_sd, "registration": reg_dev, "threshold": thr_dev}
        if math.isfinite(pct):
            half = BAND_K * math.sqrt(boot_sd**2 + reg_dev**2 + thr_dev**2) + BAND_FLOOR_PCT
            band = (pct - half, min(100.0, pct + half))
        else:
            band = (math.nan, math.nan)

        grade = grade_for(pct) if math.isfinite(pct) else None
        return Comparison(
            registration=registration,
            baseline_metrics=bm,
            followup_metrics=fm,
            improvement_pct=pct,
            improvement_band_pct=band,
            improvement_by_class_pct=by_class,
            improvement_by_length_pct=by_length,
            improvement_by_area_pct=by_area,
            grade=grade,
            target_pct=float(target_pct),
            meets_target=bool(math.isfinite(pct) and pct >= target_pct),
            veins=tuple(veins),
            vein_counts=counts,
            warnings=tuple(warnings),
            region=region,
            change_map=change,
            baseline_seg=seg_b,
            followup_seg=seg_f,
            algorithm_version=algorithm_version,
            params=dict(params),
            px_per_mm=ppm,
            band_components=comps,
            frame=frame,
        )
    finally:
        if not read_at.done():  # an error before the supports were laid out
            read_at.set_result(np.zeros(0, np.int64))
        pool.shutdown(wait=True, cancel_futures=True)


def _previous_remaining_maps(
    previous: Sequence[Comparison] | None, shape: tuple[int, ...]
) -> list[np.ndarray]:
    """Per-pixel remaining share of earlier comparisons (baseline frame), oldest first."""
    out: list[np.ndarray] = []
    for p in previous or ():
        if not isinstance(p, Comparison):
            raise ValueError(f"previous must hold Comparison objects, got {type(p).__name__}")
        if p.change_map.shape != tuple(shape):
            raise ValueError(
                "previous comparisons must share this baseline (same frame and size), got "
                f"shape {p.change_map.shape} instead of {tuple(shape)}"
            )
        ids = np.asarray(p.baseline_seg.vein_ids)
        lut = np.ones(int(ids.max()) + 1 if ids.size else 1, dtype=np.float32)
        for v in p.veins:
            if v.status != "new" and v.id < len(lut):
                lut[v.id] = v.remaining
        out.append(lut[ids])
    return out
