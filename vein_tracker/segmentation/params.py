"""The segmentation's constants: working scales, vein classes, colour projections and
thresholds.

Every threshold is tuned in millimetres (or OD) from the vein classes' widths and optics
(``DOMAIN.md``), never per photo; the methods that read them are in the package's other
modules. Holds constants only (the projection matrix and the OD lookup table are
computed once, at import, from :mod:`vein_tracker.optics`).
"""

from __future__ import annotations

import math

import numpy as np

from ..optics import DEEP_VEIN_OD, HAEMOGLOBIN_OD, MELANIN_OD, NEUTRAL_OD, OD_EPS

#: Resolution (px/mm) at which spider veins are analysed; finer photos are reduced to it.
WORK_PX_PER_MM = 10.0
#: Assumed width of the photographed field along the long side of the frame (mm), used
#: only when the scale is unknown (a 2000 px wide photo of a 20 cm field is 10 px/mm).
ASSUMED_FIELD_MM = 200.0

SPIDER, RETICULAR = 1, 2
CLASS_NAMES = {SPIDER: "spider", RETICULAR: "reticular"}


def _projection_weights() -> np.ndarray:
    """Rows: spider, reticular, neutral, deep-vein chroma (see the module docstring)."""
    w_s = np.linalg.solve(np.stack([HAEMOGLOBIN_OD, MELANIN_OD, NEUTRAL_OD]), [1.0, 0.0, 0.0])
    w_r = np.linalg.solve(np.stack([DEEP_VEIN_OD, MELANIN_OD, HAEMOGLOBIN_OD]), [1.0, 0.0, 0.0])
    chroma = DEEP_VEIN_OD - DEEP_VEIN_OD.mean()
    chroma = chroma / np.linalg.norm(chroma)
    return np.stack([w_s, w_r, NEUTRAL_OD, chroma]).astype(np.float32)


#: 4×3 matrix mapping OD (R, G, B) to (spider, reticular, neutral, deep chroma) signals.
PROJECTION = _projection_weights()

_OD_LUT = (
    -np.log(
        np.maximum(
            np.where(
                (v := np.arange(256) / 255.0) <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4
            ),
            OD_EPS,
        )
    )
).astype(np.float32)

# Tuned in millimetres from the vein classes' widths (DOMAIN.md), never per photo.
_HALF_PX_PER_MM = 5.0  # L1: spider ridges, reticular footprints, colour tests
_RETIC_DETECT_PX_PER_MM = 2.5  # L2: reticular ridges
_BG_PX_PER_MM = 2.5  # the smooth skin background is estimated at a quarter
_SPIDER_SIGMAS_MM = (0.12, 0.2, 0.32)
_RETIC_SIGMAS_MM = (0.35, 0.6, 0.9)
_MIN_SIGMA_PX = 0.6
_BG_SIGMA_MM = (1.5, 4.0, 1.5, 4.0)  # spider, reticular, neutral, chroma
_BG_RIM_MM = (0.4, 1.5, 0.4, 1.5)
# Veins are not sought this close to the frame's edge (mm).
_FRAME_MARGIN_MM = 1.5
# The skin's outline band left out of the leg (mm).
_OUTLINE_MM = 0.75
# Veins are not sought where the photo is darker than this mean OD (sRGB ≈ 57).
_DARK_OD = 3.2
# Veins are not sought this close to the leg's outline: the shading of the leg's curvature
# steepens there (neutral OD, which the reticular channel sees at 0.45).
_EDGE_MARGIN_MM = {SPIDER: 3.0, RETICULAR: 5.0}
_MAX_HALF_WIDTH_MM = {SPIDER: 0.8, RETICULAR: 2.2}
_MIN_LENGTH_MM = {SPIDER: 1.5, RETICULAR: 4.0}
_FOOTPRINT_FRACTION = 0.5
_LUMA_FRACTION = 0.25
_RETIC_SMOOTH_MM = 0.15
# Footprint pixels must exceed this many robust standard deviations of the contrast.
_FOOTPRINT_NOISE_K = {SPIDER: 4.0, RETICULAR: 3.0}
_MIN_AREA_MM2 = 0.2
# Spider veins come in networks, with their feeders: a group of veins (pieces less than
# twice this apart) totalling under this length of centreline is not kept as spiders
# (mm). On the photo-like calibration pairs such lone specks are texture (a pore, a
# freckle's rim, a hair's shadow) nine times in ten: dropping them removed 28 % of the
# false spider area and 1.2 % of the true.
_NETWORK_REACH_MM = 4.0
_MIN_NETWORK_MM = 5.0
# A piece lying within this distance of the leg's outline (mm, mean over its pixels),
# elongated (major axis at least _OUTLINE_FOLLOW_ELONGATION times the minor) and running
# along the outline (|cos| of its axis with the outline's normal under
# _OUTLINE_FOLLOW_COS, i.e. within ~12 degrees of the outline) is the shading of the
# leg's curvature, or a rim light's edge, that moves with the light and the pose: not a
# vein. On the photo-like calibration pairs (27 baselines) such pieces held 4 % of the
# false vein area and none of the true.
_OUTLINE_FOLLOW_MM = 8.0
_OUTLINE_FOLLOW_ELONGATION = 2.0
_OUTLINE_FOLLOW_COS = 0.2
# Where one skin surface lies over another (a crossing leg, a hand on the leg) its edge
# is an outline inside the skin: the shading steps there and a shadow's dark line runs
# along it (segmentation.occlusion._occluding_edges). Such an edge is:
# - a step of the mean OD at the _OCCLUDING_SIGMA_MM scale of at least
#   _OCCLUDING_HI_OD_PER_MM (the chain continues down to _OCCLUDING_LO_OD_PER_MM);
# - still a step _OCCLUDING_REACH_MM either side, by _OCCLUDING_STEP_FRAC of what the
#   gradient says and of the step _OCCLUDING_NEAR_MM either side (a ridge's flank is
#   not: its far side is skin), read within the frame;
# - sharp: the gradient at _OCCLUDING_SHARP_MM, at its best within
#   _OCCLUDING_SHARP_WITHIN_MM across the edge, at least _OCCLUDING_SHARP_RATIO times the
#   coarse one (shading steepens over centimetres);
# - long and gently bent: a span of _OCCLUDING_SPAN_MM, bowing at most _OCCLUDING_BOW of it;
# - joined to the leg's outline (a T-junction), within _OCCLUDING_JUNCTION_MM of where the
#   search starts, _OCCLUDING_CLEAR_MM inside the outline.
# On the 40 photo-like calibration baselines it fires on three (a crossing leg and two
# hands) and on no single leg.
_OCCLUDING_SIGMA_MM = 2.0
_OCCLUDING_HI_OD_PER_MM = 0.07
_OCCLUDING_LO_OD_PER_MM = 0.04
_OCCLUDING_REACH_MM = 6.0
_OCCLUDING_NEAR_MM = 2.0
_OCCLUDING_STEP_FRAC = 0.6
_OCCLUDING_SHARP_MM = 0.7
_OCCLUDING_SHARP_RATIO = 1.8
_OCCLUDING_SHARP_WITHIN_MM = 1.5
_OCCLUDING_SPAN_MM = 30.0
_OCCLUDING_BOW = 0.25
_OCCLUDING_CLEAR_MM = 4.0
_OCCLUDING_JUNCTION_MM = 3.0
# The edge's own width left out around it (mm).
_OCCLUDING_HALF_WIDTH_MM = 1.0
# Where the surface in front hides the skin behind with no step to see (both legs lit
# alike), its outline is found from the silhouette (segmentation.occlusion._hidden_outlines):
# - a notch: the outline turns inward by more than _HIDDEN_NOTCH_DEG, measured
#   _HIDDEN_STEP_MM either side, between arms straight to within _HIDDEN_ARM_DEG over three
#   times that, _HIDDEN_FRAME_MM or more from the frame (a watermark's letters, a wavy
#   outline make no such corner);
# - two notches _HIDDEN_MIN_MM or more apart, each arm within _HIDDEN_ALIGN_DEG of the line
#   between them, are joined by the cubic that leaves each along its arm; a notch joined to
#   none runs on along each arm that stays in the skin to the frame, traced along the edge
#   the photo shows (steps of _HIDDEN_TRACE_STEP_MM, each turning by at most
#   _HIDDEN_TRACE_TURN_DEG towards the strongest edge, and in all by at most _HIDDEN_ALIGN_DEG
#   from the arm: a leg's outline bends, it does not turn a corner), and dropped
#   if it comes within _HIDDEN_TRACE_CLEAR_MM of the skin's outline past its first
#   _HIDDEN_STEP_MM (it meets another outline there, not the frame);
# - the course lies in the skin (_HIDDEN_IN_SKIN of it) and reaches _HIDDEN_DEEP_MM into
#   it; it is moved by at most _HIDDEN_SNAP_MM onto the edge the photo shows (both the
#   edge's response and the move smoothed _HIDDEN_ALONG_MM along the course), and kept
#   when the edge there (the step of the mean OD at _OCCLUDING_SHARP_MM, read
#   _HIDDEN_READ_MM either side and at least that far inside the skin, plus a dark line's
#   height) is at least _HIDDEN_EDGE_OD and _HIDDEN_EDGE_RATIO times the skin's
#   _HIDDEN_CONTROL_MM beside the course, on the side where that is stronger (a course
#   drawn along a hand's or a finger's own edge has that edge on one side).
# On the photo-like calibration pairs (the 45, and two-leg and hand-foot-floor pairs 5-14,
# both photos) it fires on crossing legs and hands only: on no single leg, pair of legs
# apart or foot.
_HIDDEN_STEP_MM = 5.0
_HIDDEN_NOTCH_DEG = 140.0
_HIDDEN_ARM_DEG = 25.0
_HIDDEN_FRAME_MM = 5.0
_HIDDEN_MIN_MM = 20.0
_HIDDEN_ALIGN_DEG = 35.0
_HIDDEN_IN_SKIN = 0.95
_HIDDEN_DEEP_MM = 10.0
_HIDDEN_SNAP_MM = 3.0
_HIDDEN_ALONG_MM = 3.5
_HIDDEN_READ_MM = 1.0
_HIDDEN_EDGE_OD = 0.2
_HIDDEN_EDGE_RATIO = 2.0
_HIDDEN_CONTROL_MM = (6.0, 9.0)
_HIDDEN_TRACE_STEP_MM = 2.0
_HIDDEN_TRACE_TURN_DEG = 6.0
_HIDDEN_TRACE_CLEAR_MM = 2.0
# Neutral OD per unit of vein amplitude, and the excess over it that marks hair (OD).
_NEUTRAL_PER_SPIDER = float(NEUTRAL_OD @ HAEMOGLOBIN_OD)
_NEUTRAL_PER_RETIC = float(NEUTRAL_OD @ DEEP_VEIN_OD)
#: Neutral OD per unit of class contrast a vein of each class carries (label -> share).
NEUTRAL_PER_CLASS = {SPIDER: _NEUTRAL_PER_SPIDER, RETICULAR: _NEUTRAL_PER_RETIC}
# A spider vein darkens the luminance as much as its colour says (NEUTRAL_PER_CLASS):
# a spider piece whose neutral contrast is under this share of what its spider contrast
# implies is colour alone (JPEG's chroma blocks, a smear of redness), not a vein. On 60
# photo-like calibration photos, pieces under 0.5 held 20 % of the false spider area and
# 2 % of the true. True spider networks of clean phantoms read 0.69-1.0.
_SPIDER_MIN_LUMA_SHARE = 0.5
# Reticular veins are 1-3 mm wide (wider ones are varicose, not treated here): a
# reticular piece wider than this (footprint._without_wide_reticular) is a patch of
# shading or mottling, not a vein.
_RETIC_MAX_WIDTH_MM = 3.0
_HAIR_EXCESS_OD = 0.06
_HAIR_EXCESS_REL = 0.5
_HAIR_RIM_MM = 0.2
# Hysteresis: the high threshold is k_hi × the ridge noise (k_hi from the sensitivity),
# never below a floor in OD; the low one a fraction of it.
_K_HI_MAX, _K_HI_MIN = 7.0, 2.5
_FLOOR_OD = {SPIDER: 0.04, RETICULAR: 0.03}
_LO_FRACTION = 0.5
# The local noise floor is measured over this window (mm, Gaussian sigma).
_NOISE_WINDOW_MM = 6.0
# Ridge vs step: flanks read this many ridge scales (at least this many px) across;
# along a centreline piece the weaker flank must be (median) at least this share of the
# stronger, and the luminance step across at most this many times the line's contrast.
_FLANK_SIGMAS = 3.0
_FLANK_MIN_PX = 2.0
_FLANK_BALANCE = 0.1
_STEP_PER_LINE = 2.5
# ... and its luminance line between these multiples of what a vein of its colour
# carries (a thin spider's colour is spread by JPEG's half-resolution chroma: its
# luminance line reads ~2.4x its share on the phone-like phantoms).
# (The reticular channel's wide lines share their luminance with the neutral map's own
# background, which follows them, so only a spider needs a luminance line of its own.)
_DARK_MIN_SHARE = {SPIDER: 0.3, RETICULAR: -np.inf}
_DARK_PER_SHARE = {SPIDER: 5.0, RETICULAR: 2.0}
# A centreline's neutral OD must reach this share of its class contrast (physics: 0.90
# spider, 0.94 deep vein; the background estimate inside clusters lowers it to ~0.7).
_SUPPORT_RATIO = {SPIDER: 0.15, RETICULAR: 0.1}
# Spider contrast at L1 is guided-filtered by the neutral OD (radius px, eps OD²): JPEG's
# blocky half-resolution chroma is smoothed where the luminance is flat and follows the
# luminance where it has structure (a vein darkens every channel).
_GF_RADIUS_PX = 3
_GF_EPS = 1e-3
_GF_EPS_RETIC = 1e-4
# A deep vein's bluish chroma is ≈ 0.34 of its amplitude; hair and folds have none.
_RETIC_CHROMA_RATIO = 0.12
# Mean centreline length per skeleton pixel (mix of straight and diagonal steps).
_SKELETON_STEP = 1.12
# Ridge amplitude of a Gaussian line at its best scale is 2/(3√3) of its peak contrast.
_RIDGE_GAIN = 3.0 * math.sqrt(3.0) / 2.0
