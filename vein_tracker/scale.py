"""The scale of a photo (pixels per millimetre) and where it comes from.

A scale is *given* (the user typed it, or the photo carries it), read from a printed
calibration *card* in the frame (:mod:`vein_tracker.card`), or *estimated*. An estimate
is honest about its uncertainty: adult lower legs are 70-150 mm wide seen from the
front, so the width of a leg whose two outlines are in the frame gives the scale within
about a factor of two; a close-up that shows no outline falls back on the field a clinic
photo usually frames (:data:`ASSUMED_FIELD_MM` along the long side), wider still.

Spider veins are under 1 mm wide: below :data:`MIN_PX_PER_MM` they are one or two
pixels wide and a measurement of them is not to be trusted.

This module reads scale only; it must not segment veins or register photos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from .checks import check_px_per_mm
from .io import Photo, as_rgb
from .morphology import skeleton_of

__all__ = [
    "ASSUMED_FIELD_MM",
    "LEG_WIDTH_MM",
    "MIN_PX_PER_MM",
    "Scale",
    "estimate_scale",
    "resolve_scale",
    "scale_from_skin",
]

#: Below this scale spider veins (< 1 mm) are too few pixels wide to measure.
MIN_PX_PER_MM = 5.0
#: Field along the long side of a clinic photo of one treatment area, mm (a fallback).
ASSUMED_FIELD_MM = 200.0
#: The field's plausible range, mm: a 10 cm close-up to a 40 cm view of the lower leg.
FIELD_RANGE_MM = (100.0, 400.0)
#: Width of an adult lower leg seen from the front, mm: typical and plausible range
#: (ankle about 70, calf 100-130, knee about 100, lower thigh up to 150).
LEG_WIDTH_MM = (100.0, 70.0, 150.0)

ScaleSource = Literal["given", "card", "estimated"]


@dataclass(frozen=True)
class Scale:
    """A photo's scale and how it was found.

    Attributes
    ----------
    px_per_mm : float
        The scale used.
    source : {"given", "card", "estimated"}
    low, high : float
        Plausible range of the scale, px/mm (equal to ``px_per_mm`` unless estimated).
    method : str
        ``"given"``, ``"card"``, ``"leg width"`` (from the width of a leg in the frame)
        or ``"field"`` (the frame taken as :data:`ASSUMED_FIELD_MM` wide).
    """

    px_per_mm: float
    source: ScaleSource
    low: float
    high: float
    method: str

    @property
    def estimated(self) -> bool:
        return self.source == "estimated"

    @property
    def too_coarse(self) -> bool:
        """Whether spider veins cannot be measured at this scale (the estimate's upper end
        is used: an estimate is given the benefit of the doubt)."""
        return self.high < MIN_PX_PER_MM if self.estimated else self.px_per_mm < MIN_PX_PER_MM

    def scaled(self, factor: float) -> Scale:
        """The same scale for a copy of the photo resized by ``factor``."""
        return Scale(
            self.px_per_mm * factor, self.source, self.low * factor, self.high * factor, self.method
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "px_per_mm": round(self.px_per_mm, 4),
            "source": self.source,
            "method": self.method,
            "range": [round(self.low, 3), round(self.high, 3)],
        }


def _leg_width_px(mask: np.ndarray) -> float | None:
    """Median width (px of ``mask``) of the skin regions where both outlines are in view."""
    if mask.sum() < 100:
        return None
    pad = np.pad(mask.astype(np.uint8), 1)
    dist = cv2.distanceTransform(pad, cv2.DIST_L2, 5)[1:-1, 1:-1]
    sk = skeleton_of(mask)
    ys, xs = np.nonzero(sk)
    if len(ys) < 20:
        return None
    r = dist[ys, xs]
    h, w = mask.shape
    # The largest disc at a skeleton pixel touches the outline on both sides; where it
    # would reach the frame, the frame cut the leg and its width is not seen.
    to_frame = np.minimum.reduce([xs, ys, w - 1 - xs, h - 1 - ys]).astype(np.float32)
    ok = (r + 2.0 < to_frame) & (r >= 3.0)
    if ok.sum() < max(20, 0.2 * len(ys)):
        return None
    # The widest parts of the skeleton are the legs' (not a foot's toes or a hand's
    # fingers): the upper half of the widths.
    widths = 2.0 * r[ok]
    return float(np.median(widths[widths >= np.median(widths)]))


def estimate_scale(photo: Photo | np.ndarray, *, skin: np.ndarray | None = None) -> Scale:
    """Estimate the scale of a photo that has no card and no given scale.

    Parameters
    ----------
    photo : Photo or ndarray, shape (H, W, 3), uint8
    skin : ndarray, shape (H, W), bool, optional
        Its skin (:func:`vein_tracker.skin.find_skin`); found when not given.

    Returns
    -------
    Scale
        ``source="estimated"``; ``method="leg width"`` when a leg's two outlines are in
        the frame, else ``"field"``.
    """
    rgb = as_rgb(photo)
    if skin is None:
        from .skin import find_skin

        skin = find_skin(rgb).mask
    return scale_from_skin(skin)


def scale_from_skin(skin: np.ndarray) -> Scale:
    """:func:`estimate_scale` from a photo's skin mask alone.

    Parameters
    ----------
    skin : ndarray, shape (H, W), bool
        The skin of a photo of that shape.

    Returns
    -------
    Scale
        ``source="estimated"``.
    """
    h, w = skin.shape[:2]
    long_side = float(max(h, w))
    side = 512.0
    f = min(1.0, side / long_side)
    small = (
        cv2.resize(skin.astype(np.uint8), (max(1, round(w * f)), max(1, round(h * f)))) > 0
        if f < 1.0
        else skin
    )
    width = _leg_width_px(small)
    if width is not None:
        width_px = width / f
        nominal, lo_mm, hi_mm = LEG_WIDTH_MM
        return Scale(
            width_px / nominal, "estimated", width_px / hi_mm, width_px / lo_mm, "leg width"
        )
    lo_mm, hi_mm = FIELD_RANGE_MM
    return Scale(
        long_side / ASSUMED_FIELD_MM, "estimated", long_side / hi_mm, long_side / lo_mm, "field"
    )


def resolve_scale(
    photo: Photo | np.ndarray,
    *,
    px_per_mm: float | None = None,
    card_px_per_mm: float | None = None,
    skin: np.ndarray | None = None,
) -> Scale:
    """The scale to use: the given one, else the card's, else an estimate.

    Parameters
    ----------
    photo : Photo or ndarray, shape (H, W, 3), uint8
        A :class:`~vein_tracker.io.Photo` carrying ``px_per_mm`` counts as given.
    px_per_mm : float, optional
        A scale the user gave.
    card_px_per_mm : float, optional
        The scale a calibration card in the photo gives.
    skin : ndarray, shape (H, W), bool, optional
        The photo's skin, for the estimate.

    Returns
    -------
    Scale

    Raises
    ------
    ValueError
        A given or card scale outside the plausible range.
    """
    if px_per_mm is None and isinstance(photo, Photo) and photo.px_per_mm:
        px_per_mm = photo.px_per_mm
    if px_per_mm is not None:
        v = check_px_per_mm(px_per_mm)
        return Scale(v, "given", v, v, "given")
    if card_px_per_mm is not None:
        v = check_px_per_mm(card_px_per_mm, name="card_px_per_mm")
        return Scale(v, "card", v, v, "card")
    return estimate_scale(photo, skin=skin)


def describe_range(scale: Scale) -> str:
    """``"5.2 px/mm (3.5-7.4)"``: the scale and, when estimated, its range."""
    if not scale.estimated or math.isclose(scale.low, scale.high):
        return f"{scale.px_per_mm:.1f} px/mm"
    return f"{scale.px_per_mm:.1f} px/mm ({scale.low:.1f}-{scale.high:.1f})"
