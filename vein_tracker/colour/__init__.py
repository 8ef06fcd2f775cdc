"""Colour: the leg (skin) mask, colour normalisation of a follow-up onto its baseline,
colour differences, and the equalisation of the two visits' captures.

Owns the photometric side of making two visits comparable. It must not register photos
(:mod:`vein_tracker.registration`) nor segment veins or measure their contrast
(:mod:`vein_tracker.segmentation`).

- :mod:`.skin`: :func:`skin_mask`, :func:`vein_like_mask`;
- :mod:`.normalise`: the colour model (per-channel OD offsets and a smooth neutral
  field), :func:`fit_colour`, :func:`apply_colour_fit`, :func:`normalise_colour`;
- :mod:`.delta_e`: the mean CIEDE2000 difference (:func:`delta_e2000`, scikit-image's
  formula);
- :mod:`.equalise`: the chroma low-pass both visits get, the JPEG quality a photo was
  saved with, and the baseline brought to the follow-up's capture.
"""

from __future__ import annotations

from .delta_e import DELTA_E_SAMPLES, delta_e2000
from .equalise import (
    blur_rgb,
    chroma_lowpass,
    equalise_to_followup,
    estimate_jpeg_quality,
    gain_and_compress,
    jpeg_round_trip,
)
from .normalise import (
    ColourFit,
    ColourFitInput,
    ColourNormalisation,
    apply_colour_fit,
    fit_colour,
    normalise_colour,
    prepare_colour_fit,
)
from .skin import skin_interior, skin_mask, vein_like_mask

__all__ = [
    "DELTA_E_SAMPLES",
    "ColourFit",
    "ColourFitInput",
    "ColourNormalisation",
    "apply_colour_fit",
    "blur_rgb",
    "chroma_lowpass",
    "delta_e2000",
    "equalise_to_followup",
    "estimate_jpeg_quality",
    "fit_colour",
    "gain_and_compress",
    "jpeg_round_trip",
    "normalise_colour",
    "prepare_colour_fit",
    "skin_interior",
    "skin_mask",
    "vein_like_mask",
]
