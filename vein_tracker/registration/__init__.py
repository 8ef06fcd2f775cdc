"""Registration: map a follow-up photo of a treatment area onto its baseline photo.

Owns the geometric alignment and its failure detection. It must not normalise
colour (:mod:`vein_tracker.colour`) nor segment veins.

Method
------
1. **Features** (:mod:`.features`). Both photos are reduced to a working resolution
   and projected, in optical density, on the neutral axis: exposure and white balance
   are OD offsets, so a local high-pass and contrast normalisation remove them. Vein-
   like pixels (blood's chroma), which treatment removes on purpose, carry no features,
   while melanin (freckles, moles, texture), hair and the leg outline do. SIFT on that
   channel, on skin only.
2. **Coarse homography** (:func:`.features.match_features`). Lowe ratio test,
   ``cv2.USAC_MAGSAC``.
3. **Sub-pixel refinement** (:mod:`.refine`). ECC with a homography motion model
   (``cv2.findTransformECCWithMask``) on the high-passed channel, restricted to skin,
   at a finer working resolution.
4. **Non-rigid refinement** (optional, :mod:`.refine`). DIS optical flow between the
   baseline and the homography-warped follow-up, smoothed by normalised convolution on
   skin and bounded; kept only when it lowers the photometric residual.
5. **Moved parts** (:mod:`.motion`). What moved once the leg is aligned (a hand placed
   again) is found by matching blocks both ways; it is left out of the checks, the
   non-rigid flow and :attr:`Registration.agrees`.
6. **Checks** (:mod:`.checks`). Inlier count and ratio, plausibility of the homography
   (scale, anisotropy, perspective), overlap, normalised correlation on skin after
   warping, and sharpness of the follow-up against the baseline. Any failure gives
   ``ok=False`` with a reason a clinic user can act on; :func:`register` never raises
   for an unusable pair.

:func:`register` is those steps one after the other (:mod:`.align`); the result and the
warping of follow-up pixels are in :mod:`.result`. Conventions: a homography maps
follow-up pixel (x, y) to baseline pixel (x, y), at full resolution, in upright photos.
``flow`` is a residual displacement field in the baseline frame: baseline pixel ``p``
sees the homography-warped follow-up at ``p + flow(p)``, i.e. the follow-up at
``H^-1(p + flow(p))``.
"""

from __future__ import annotations

from ..capture import CaptureReport, assess_capture
from .align import align_features, register
from .checks import sharpness
from .features import FeatureMatch, PhotoFeatures, match_features, matching_channel, photo_features
from .result import Registration, RegistrationChecks

__all__ = [
    "CaptureReport",
    "FeatureMatch",
    "PhotoFeatures",
    "Registration",
    "RegistrationChecks",
    "align_features",
    "assess_capture",
    "match_features",
    "matching_channel",
    "photo_features",
    "register",
    "sharpness",
]
