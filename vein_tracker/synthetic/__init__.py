"""Leg phantoms with exact ground truth: the yardstick every other module is measured against.

A phantom is a leg on a backdrop, built in optical density (OD): skin tone (melanin amount),
smooth mottling, neutral shading from the leg's curvature, and absorbers that add in OD
(spider veins along the haemoglobin direction, reticular veins along the deep-vein direction,
freckles and moles along melanin, near-neutral hair). A "photo" is the scene seen through a
:class:`Capture` (homography, optional smooth bend, exposure, white balance, blur, noise, JPEG).

Geometry lives in the leg's own baseline frame (pixels at ``Leg.px_per_mm``, x right, y down),
so a leg rendered at another resolution shows the same scene. Every photo comes with its
truth: vein footprint and class labels, vein ids, remaining visibility, leg and distractor
masks, and the exact map from each photo pixel to the baseline frame.

Not modelled (yet): injection-site redness, trapped blood, stocking marks, tattoos,
vignetting and flash glare.

This package generates and renders; it must not segment, register or measure real photos.
All randomness comes from ``numpy.random.Generator`` seeded by the caller (no global RNG):
the same seed and arguments give identical pixels.

Modules: ``_model`` (constants and dataclasses), ``legs`` (:func:`make_leg`), ``treatment``
(:func:`treat`), ``camera`` (captures and their pixel maps), ``scene`` (the scene in OD),
``rendering`` (:func:`render`: photography), ``truth`` (:func:`make_pair`, the true
improvement).

Photo-like phantoms (scenes that look like clinic photographs: two legs, hands, feet,
floors, real backgrounds, lights, casts, phone cameras; exact truth): ``photo``
(:func:`make_photo_scene`, :func:`treat_photo`, :func:`make_photo_pair`,
:func:`without_veins`, :func:`true_improvement_on`), ``photo_render``
(:func:`render_photo`), ``photo_camera`` (lights, casts, :func:`photo_capture`),
``anatomy`` (legs, hands, feet, vein networks), ``texture`` (real photographic material
from scikit-image and skin micro-texture), ``backgrounds``, ``_photo_model``.
"""

from __future__ import annotations

from vein_tracker.synthetic._checks import default_px_per_mm
from vein_tracker.synthetic._model import (
    TONES,
    VEIN_CLASSES,
    VEIN_STATUSES,
    Bruise,
    Capture,
    Leg,
    LegOutline,
    PhantomPair,
    Rendered,
    Spot,
    Stroke,
    Vein,
)
from vein_tracker.synthetic._photo_model import (
    PhotoCapture,
    PhotoLeg,
    PhotoPair,
    PhotoRendered,
    PhotoScene,
)
from vein_tracker.synthetic.camera import identity_capture, random_capture
from vein_tracker.synthetic.legs import make_leg
from vein_tracker.synthetic.photo import (
    make_photo_pair,
    make_photo_scene,
    treat_photo,
    true_improvement_on,
    without_veins,
)
from vein_tracker.synthetic.photo_camera import photo_capture, random_lighting
from vein_tracker.synthetic.photo_render import render_photo
from vein_tracker.synthetic.rendering import render
from vein_tracker.synthetic.treatment import treat
from vein_tracker.synthetic.truth import make_pair, pair_truth, true_improvement

__all__ = [
    "TONES",
    "VEIN_CLASSES",
    "VEIN_STATUSES",
    "Bruise",
    "Capture",
    "Leg",
    "LegOutline",
    "PhantomPair",
    "PhotoCapture",
    "PhotoLeg",
    "PhotoPair",
    "PhotoRendered",
    "PhotoScene",
    "Rendered",
    "Spot",
    "Stroke",
    "Vein",
    "default_px_per_mm",
    "identity_capture",
    "make_leg",
    "make_pair",
    "make_photo_pair",
    "make_photo_scene",
    "pair_truth",
    "photo_capture",
    "random_capture",
    "random_lighting",
    "render",
    "render_photo",
    "treat",
    "treat_photo",
    "true_improvement",
    "true_improvement_on",
    "without_veins",
]
