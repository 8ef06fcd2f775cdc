"""Measuring veins and their change between two visits of one treatment area.

Owns the numbers the clinic and the client rely on: one visit's vein length, area,
width, density and contrast-weighted burden (:func:`measure`), and the baseline/follow-up
comparison (:func:`compare`): percent improvement by the headline formula, its
uncertainty band, quartile grade, target, per-vein status, warnings and a change map,
all in the baseline frame over the region seen in both photos. It registers, normalises
colour and segments through :mod:`vein_tracker.registration`, :mod:`vein_tracker.colour`
and :mod:`vein_tracker.segmentation`, and must not re-implement them.

Where each rule lives:

- :mod:`.pipeline`: :func:`compare`, :func:`remeasure` (again on an existing registration,
  with a new baseline vein map or region) and :func:`measure_visits`, the steps in order;
  :mod:`.steps` the steps themselves; :mod:`.config` the options (:class:`AnalysisConfig`);
- :mod:`.frame`: the analysis frame (the scale a comparison works at);
- :mod:`.given_map`: a baseline vein map given by hand, as the baseline's segmentation;
- :mod:`.figures`: one visit's figures; :mod:`.formula`: the headline formula;
- :mod:`.support`: the veins' supports the contrast ratio is integrated over;
- :mod:`.zero_point`: the contrast skin near veins reads of its own;
- :mod:`.improvement`: the estimate of the formula's terms, per-vein shares, the veins
  counted, per class; :mod:`.new_veins`: what counts as a new vein;
- :mod:`.band`: the uncertainty band; :mod:`.status`: a vein's status;
- :mod:`.veins`: the per-vein table and the change map; :mod:`.warnings`: the warnings;
- :mod:`.results`: :class:`Comparison`, :class:`VeinChange`, :class:`VeinMetrics`.

The quartile grade and the target's reading are :mod:`vein_tracker.outcome`'s.
"""

from __future__ import annotations

from ..outcome import GRADES, grade_for
from ..smoothing import smooth_on_mask
from .band import BAND_FLOOR_PCT, BAND_K
from .config import AnalysisConfig
from .figures import measure, measure_mask, skeleton_length_px
from .formula import ImprovementTerms, improvement_pct, improvement_terms, remaining_fraction
from .frame import ANALYSIS_PX_PER_MM, AnalysisFrame, analysis_frame
from .new_veins import new_vein_mask
from .pipeline import compare, measure_visits, remeasure
from .results import (
    CHANGE_CLEARED,
    CHANGE_FADED,
    CHANGE_NEW,
    CHANGE_NONE,
    CHANGE_PERSISTING,
    CHANGE_RECANALISED,
    CLASS_CODES,
    CLASSES,
    STATUS_CODES,
    STATUSES,
    Comparison,
    VeinChange,
    VeinMetrics,
)
from .status import CLEARED_BELOW, PERSISTING_FROM, status_for

__all__ = [
    "ANALYSIS_PX_PER_MM",
    "BAND_FLOOR_PCT",
    "BAND_K",
    "CHANGE_CLEARED",
    "CHANGE_FADED",
    "CHANGE_NEW",
    "CHANGE_NONE",
    "CHANGE_PERSISTING",
    "CHANGE_RECANALISED",
    "CLASSES",
    "CLASS_CODES",
    "CLEARED_BELOW",
    "GRADES",
    "PERSISTING_FROM",
    "STATUSES",
    "STATUS_CODES",
    "AnalysisConfig",
    "AnalysisFrame",
    "Comparison",
    "ImprovementTerms",
    "VeinChange",
    "VeinMetrics",
    "analysis_frame",
    "compare",
    "grade_for",
    "improvement_pct",
    "improvement_terms",
    "measure",
    "measure_mask",
    "measure_visits",
    "new_vein_mask",
    "remaining_fraction",
    "remeasure",
    "skeleton_length_px",
    "smooth_on_mask",
    "status_for",
]
