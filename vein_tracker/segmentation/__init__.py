"""Vein segmentation: the measuring instrument of vein_tracker.

Finds spider veins (telangiectasia: red-purple, < 1 mm) and reticular veins (feeders:
blue-green, 1-3 mm) in an upright leg photo, labels each vein pixel with its class, and
gives the continuous vein contrast that measurement uses for fading.

Method (physics in ``DOMAIN.md``):

1. **Optical density** of linearised sRGB, at a working resolution of about
   :data:`WORK_PX_PER_MM` (photos with more pixels per millimetre are reduced first).
2. **Colour projections.** The OD is projected on weight vectors chosen so that each
   class reads its own amplitude and is blind to the look-alikes:

   * spider ``w_s``: ``w_s·HAEMOGLOBIN = 1``, ``w_s·MELANIN = 0``, ``w_s·NEUTRAL = 0``
     (blind to freckles, moles, staining, hair, shading, exposure);
   * reticular ``w_r``: ``w_r·DEEP_VEIN = 1``, ``w_r·MELANIN = 0``,
     ``w_r·HAEMOGLOBIN = 0``. Deep venous blood is almost "neutral minus melanin"
     in OD, so no projection can reject both neutral and melanin and keep it: the
     reticular channel sees a neutral darkening at 0.45 of its amplitude. Hair and skin
     folds are rejected by width, shape and a chroma test instead;
   * neutral and the deep-vein chroma (bluish, anti-melanin), used for those tests.
3. **Local skin background** of each projection, a normalised Gaussian average over
   leg skin that excludes vein candidates (two passes), at a scale of a few
   millimetres. Subtracting it cancels exposure and white balance (per-channel OD
   offsets), shading, and diffuse bruises, and leaves the vein **contrast** in OD units.
4. **Ridges.** A multi-scale Hessian (Gaussian + separable derivative filters) of each
   contrast map, with scales set in millimetres: spiders at the working resolution,
   reticular veins at a quarter of it. Blobs are suppressed (``λ2/λ1``), centrelines
   are the non-maximum-suppressed ridge pixels, kept by hysteresis and by component
   tests (length, elongation).
5. **Footprint.** Each pixel near a centreline is a vein pixel when its contrast is at
   least a fixed fraction of the contrast at its nearest centreline pixel (the
   half-height rule), so the mask has the vein's width, not the filter's. Spider
   veins come in networks: a lone speck, far from any other vein and a few millimetres
   long in all, is texture (a pore, a freckle's rim, a hair's shadow) and is dropped.
   So is a piece within 8 mm of the leg's outline that runs along it: the leg's
   curvature shading steepens there, and a rim light's edge or a change of pose moves
   that band between visits.

**Phone JPEGs.** JPEG keeps luminance at full resolution but colour (chroma) at half
resolution, in 8 × 8 blocks, and bleeds it across sharp edges; the colour projections
inherit those errors. Blood darkens every channel, so luminance (neutral OD) is used to
keep them out: the ridge maps are guided-filtered by the neutral contrast (structure
without luminance is smoothed away), every centreline must be dark in luminance too,
the hair test allows a thin spider's colour to be smeared over its neighbours, and a
spider's footprint must also reach a share of its seed's full-resolution luminance
contrast. The continuous contrast maps (:func:`vein_contrast`) are not filtered.

Where each part lives:

- :mod:`.pipeline`: :func:`segment`, the steps in order;
- :mod:`.params`: the constants (working scales, classes, projections, thresholds);
- :mod:`.levels`: the resolution levels and :func:`estimate_px_per_mm`;
- :mod:`.leg`: the leg skin searched (:func:`leg_mask`);
- :mod:`.signals`: steps 1-3 (optical density, projections, background, hair) and
  :func:`vein_contrast`;
- :mod:`.ridges`: step 4 (ridges, hysteresis, ridge-vs-step and luminance tests);
- :mod:`.footprint`: step 5 (class labels and skeleton);
- :mod:`.veins`: the connected veins and their ids;
- :mod:`.results`: :class:`Segmentation`, :class:`VeinContrast`, :class:`VeinSegment`;
- :mod:`.drawing`: :func:`overlay`.

This package must not register photos, measure improvement or draw user interface.
"""

from __future__ import annotations

from .drawing import overlay
from .leg import leg_mask as leg_mask
from .levels import estimate_px_per_mm
from .params import ASSUMED_FIELD_MM as ASSUMED_FIELD_MM
from .params import CLASS_NAMES as CLASS_NAMES
from .params import NEUTRAL_PER_CLASS as NEUTRAL_PER_CLASS
from .params import PROJECTION as PROJECTION
from .params import RETICULAR as RETICULAR
from .params import SPIDER as SPIDER
from .params import WORK_PX_PER_MM
from .pipeline import segment
from .results import Segmentation, VeinContrast, VeinSegment
from .ridges import _hysteresis as _hysteresis
from .signals import _signals as _signals
from .signals import vein_contrast

__all__ = [
    "WORK_PX_PER_MM",
    "Segmentation",
    "VeinContrast",
    "VeinSegment",
    "estimate_px_per_mm",
    "overlay",
    "segment",
    "vein_contrast",
]
