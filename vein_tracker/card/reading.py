"""Reading the card in a photo, and applying the colour correction it gives.

:func:`read_card` returns a :class:`CardReading`; :func:`apply_correction` applies its
correction to a photo. The steps live beside this module: :mod:`.markers` finds the card
and its homography, :mod:`.colour_fit` samples the patches and fits the correction; this
module checks that the card faces the camera, assembles the reading and applies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import cv2
import numpy as np

from ..io import Photo, as_rgb
from .colour_fit import _encode_srgb, _fit_colour, _sample_patches
from .layout import CARD_SIZE_MM, PATCHES
from .markers import MIN_MARKERS, _apply_h, _detect_markers, _fit_card, _local_scales

#: Largest accepted ratio of the two local scales at the card's centre: beyond it the
#: card is seen too obliquely (over ~60 degrees) for its scale to stand for the skin's.
_MAX_ANISOTROPY = 2.0


@dataclass(frozen=True, eq=False)
class CardReading:
    """What a photo's calibration card says about scale and colour.

    Coordinates are photo pixels (x right, y down) with OpenCV's convention (pixel
    centres at integers); card coordinates are mm from the card's top-left corner.

    Attributes
    ----------
    px_per_mm : float
        Scale at the card's centre, pixels per millimetre: the geometric mean of the two
        local scales (``sqrt(|det J|)`` of the card-to-photo map). It is the scale of the
        skin only if the card lies on the skin (or at the same distance from the camera)
        and faces the camera about as the skin does.
    scale_anisotropy : float
        Ratio of the larger to the smaller local scale at the card's centre (1 = card
        facing the camera; 2 = seen at 60 degrees).
    homography : ndarray, shape (3, 3), float64
        Maps card (x, y) mm to photo (x, y) px.
    corners_px : ndarray, shape (4, 2), float64
        The card's outline in the photo: top-left, top-right, bottom-right, bottom-left.
    marker_ids : tuple of int
        Markers found and used.
    reprojection_px : float
        RMS distance between the detected marker corners and the fitted card, px.
    patch_names : tuple of str
    reference_srgb : ndarray, shape (N, 3), uint8
        Nominal patch colours (what the card prints).
    measured_srgb : ndarray, shape (N, 3), float64
        Patch colours in the photo (trimmed mean in linear light, encoded as sRGB
        0-255); NaN for a patch outside the photo.
    patch_used : tuple of bool
        Patches the colour fit used (measured, uniform, not clipped, not an outlier).
    tone_curves : ndarray, shape (3, 256), float64, or None
        First step of the colour correction: for each channel (R, G, B) and each sRGB
        code 0-255 of the photo, its linear value with the camera's tone curve and the
        cast's gain undone (fitted on the neutral patches). None with ``correction``.
    correction : ndarray, shape (3, 3), float64, or None
        Second step: a matrix in linear RGB, ``corrected = correction @ tone_curves[:,
        code]`` per pixel, fitted by least squares on all usable patches. Given only
        when every patch it uses ends within :data:`MAX_PATCH_DE` of its reference; None
        when too few patches are usable or they disagree (``colour_note`` says why).
    delta_e_before, delta_e_after : tuple of float
        CIEDE2000 between each patch's reference and its colour in the photo, before
        and after the correction (NaN where not measured; after is NaN without a
        correction). Patches left out of the fit are reported too.
    colour_note : str or None
        Why a patch was left out or no correction was fitted; None when all is well.
    """

    px_per_mm: float
    scale_anisotropy: float
    homography: np.ndarray
    corners_px: np.ndarray
    marker_ids: tuple[int, ...]
    reprojection_px: float
    patch_names: tuple[str, ...]
    reference_srgb: np.ndarray
    measured_srgb: np.ndarray
    patch_used: tuple[bool, ...]
    tone_curves: np.ndarray | None
    correction: np.ndarray | None
    delta_e_before: tuple[float, ...]
    delta_e_after: tuple[float, ...]
    colour_note: str | None = None

    def _stat(self, values: tuple[float, ...], fn: Any) -> float | None:
        used = [v for v, u in zip(values, self.patch_used, strict=True) if u and math.isfinite(v)]
        return float(fn(used)) if used else None

    @property
    def delta_e_before_mean(self) -> float | None:
        """Mean CIEDE2000 before correction over the patches the fit used."""
        return self._stat(self.delta_e_before, np.mean)

    @property
    def delta_e_after_mean(self) -> float | None:
        """Mean CIEDE2000 after correction over the patches the fit used."""
        return self._stat(self.delta_e_after, np.mean)

    @property
    def delta_e_after_max(self) -> float | None:
        """Largest CIEDE2000 after correction over the patches the fit used."""
        return self._stat(self.delta_e_after, np.max)

    def mask(self, shape: tuple[int, int], *, margin_mm: float = 2.0) -> np.ndarray:
        """The card's area in a photo of ``shape``, grown by ``margin_mm`` on each side.

        Parameters
        ----------
        shape : (H, W)
        margin_mm : float
            Extra border (the card's shadow, a finger holding it), mm, >= 0.

        Returns
        -------
        ndarray, shape (H, W), bool
        """
        if len(shape) < 2 or shape[0] < 1 or shape[1] < 1:
            raise ValueError(f"shape must be (H, W) with positive sides, got {shape!r}")
        if not math.isfinite(margin_mm) or margin_mm < 0:
            raise ValueError(f"margin_mm must be >= 0, got {margin_mm!r}")
        w, h = CARD_SIZE_MM
        m = float(margin_mm)
        outline = np.array([[-m, -m], [w + m, -m], [w + m, h + m], [-m, h + m]], np.float64)
        pts = _apply_h(self.homography, outline)
        out = np.zeros((int(shape[0]), int(shape[1])), np.uint8)
        # fillConvexPoly takes fixed-point coordinates: 8 fractional bits.
        cv2.fillConvexPoly(out, np.round(pts * 256).astype(np.int32), 1, cv2.LINE_8, 8)
        return out.astype(bool)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays)."""

        def num(v: float) -> float | None:
            return round(float(v), 4) if math.isfinite(v) else None

        patches = []
        for i, name in enumerate(self.patch_names):
            measured = self.measured_srgb[i]
            patches.append(
                {
                    "name": name,
                    "reference_srgb": [int(c) for c in self.reference_srgb[i]],
                    "measured_srgb": (
                        [round(float(c), 2) for c in measured]
                        if np.all(np.isfinite(measured))
                        else None
                    ),
                    "used": self.patch_used[i],
                    "delta_e_before": num(self.delta_e_before[i]),
                    "delta_e_after": num(self.delta_e_after[i]),
                }
            )

        def opt(v: float | None) -> float | None:
            return None if v is None else round(v, 3)

        return {
            "px_per_mm": round(self.px_per_mm, 4),
            "scale_anisotropy": round(self.scale_anisotropy, 4),
            "marker_ids": list(self.marker_ids),
            "reprojection_px": round(self.reprojection_px, 4),
            "corners_px": [[round(float(x), 2), round(float(y), 2)] for x, y in self.corners_px],
            "homography": [[float(v) for v in row] for row in self.homography],
            "colour_correction": (
                None
                if self.correction is None
                else [[round(float(v), 6) for v in row] for row in self.correction]
            ),
            "delta_e_before_mean": opt(self.delta_e_before_mean),
            "delta_e_after_mean": opt(self.delta_e_after_mean),
            "delta_e_after_max": opt(self.delta_e_after_max),
            "colour_note": self.colour_note,
            "patches": patches,
        }


def read_card(photo: Photo | np.ndarray) -> CardReading | None:
    """Find the calibration card in a photo and read its scale and colours.

    Parameters
    ----------
    photo : Photo or ndarray, shape (H, W, 3), dtype uint8
        Upright sRGB photo.

    Returns
    -------
    CardReading or None
        None when no card is found: fewer than :data:`MIN_MARKERS` of its markers are
        visible, or they do not fit the card's layout (too far apart, mirrored, seen
        more obliquely than about 60 degrees). A card is never read from markers that
        disagree, so a partly hidden card gives its true scale or None.

    Raises
    ------
    ValueError
        If ``photo`` is not an ``(H, W, 3) uint8`` array or a Photo.

    Notes
    -----
    Markers are found on a copy reduced to :data:`DETECT_MAX_SIDE` (a photo without
    markers is rejected there, in a few tens of milliseconds), then their corners are
    refined to sub-pixel precision on the full photo. The card-to-photo homography is a
    least-squares fit of all marker corners (16 points with four markers). The same
    pixels always give the same reading.
    """
    rgb = as_rgb(photo)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    found = _detect_markers(gray)
    if len(found) < MIN_MARKERS:
        return None
    fit = _fit_card(found)
    if fit is None:
        return None
    h, rms, ids = fit
    centre = (CARD_SIZE_MM[0] / 2.0, CARD_SIZE_MM[1] / 2.0)
    s_max, s_min = _local_scales(h, centre)
    if s_min <= 0 or s_max / s_min > _MAX_ANISOTROPY:
        return None
    w, hh = CARD_SIZE_MM
    corners = _apply_h(h, np.array([[0.0, 0.0], [w, 0.0], [w, hh], [0.0, hh]]))
    samples = _sample_patches(rgb, h)
    colour = _fit_colour(samples)
    measured = np.array(
        [
            _encode_srgb(s.linear) * 255.0 if np.all(np.isfinite(s.linear)) else s.linear
            for s in samples
        ]
    )
    reference = np.array([p.srgb for p in PATCHES], np.uint8)
    for a in (h, corners, measured, reference, colour.tone_curves, colour.matrix):
        if a is not None:
            a.setflags(write=False)
    return CardReading(
        px_per_mm=math.sqrt(s_max * s_min),
        scale_anisotropy=s_max / s_min,
        homography=h,
        corners_px=corners,
        marker_ids=ids,
        reprojection_px=rms,
        patch_names=tuple(p.name for p in PATCHES),
        reference_srgb=reference,
        measured_srgb=measured,
        patch_used=colour.used,
        tone_curves=colour.tone_curves,
        correction=colour.matrix,
        delta_e_before=tuple(float(v) for v in colour.before),
        delta_e_after=tuple(float(v) for v in colour.after),
        colour_note="; ".join(colour.notes) if colour.notes else None,
    )


# --------------------------------------------------------------------------- correction


@cache
def _encode_lut() -> np.ndarray:
    lin = np.arange(65536, dtype=np.float64) / 65535.0
    lut: np.ndarray = np.round(_encode_srgb(lin) * 255.0).astype(np.uint8)
    return lut


def apply_correction(rgb: Photo | np.ndarray, reading: CardReading) -> np.ndarray:
    """Apply a card's colour correction to a photo.

    Parameters
    ----------
    rgb : Photo or ndarray, shape (H, W, 3), dtype uint8
        sRGB photo (usually the one the card was read from).
    reading : CardReading
        With a ``correction`` (not None).

    Returns
    -------
    ndarray, shape (H, W, 3), dtype uint8
        The corrected sRGB photo (a new array; the input is not modified). Colours the
        correction pushes outside sRGB are clipped.

    Raises
    ------
    ValueError
        If ``rgb`` is not an ``(H, W, 3) uint8`` image, or ``reading`` has no correction.
    """
    arr = as_rgb(rgb)
    if not isinstance(reading, CardReading):
        raise ValueError(f"reading must be a CardReading, got {type(reading).__name__}")
    if reading.correction is None or reading.tone_curves is None:
        raise ValueError(
            "reading has no colour correction (" + (reading.colour_note or "no patches") + ")"
        )
    curves = reading.tone_curves
    m = reading.correction.astype(np.float32)
    lut = _encode_lut()
    out = np.empty_like(arr)
    rows = max(1, 1_000_000 // max(1, arr.shape[1]))
    for y0 in range(0, arr.shape[0], rows):
        block = arr[y0 : y0 + rows]
        lin = np.empty(block.shape, np.float32)
        for c in range(3):
            lin[..., c] = curves[c].astype(np.float32)[block[..., c]]
        fixed = cv2.transform(lin, m)
        idx = np.clip(fixed * 65535.0 + 0.5, 0, 65535).astype(np.uint16)
        out[y0 : y0 + rows] = lut[idx]
    return out
