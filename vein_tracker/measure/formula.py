"""The headline formula of improvement, exactly as the clinic defines it.

``improvement = 100 × (1 − (Σ_{p ∈ B} min(1, c_f(p) / c_b(p)) + |N|) / |B|)``, with ``B``
the baseline vein pixels in the region seen in both photos, ``c_b`` and ``c_f`` the vein
contrast at baseline and follow-up, and ``N`` the new vein pixels. How ``compare``
estimates its terms robustly is :mod:`.improvement`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..checks import check_mask

__all__ = ["ImprovementTerms", "improvement_pct", "improvement_terms", "remaining_fraction"]


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
    b = check_mask(baseline_mask, shape=shape, name="baseline_mask")
    f = check_mask(followup_mask, shape=shape, name="followup_mask")
    reg = check_mask(region, shape=shape, name="region")
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
