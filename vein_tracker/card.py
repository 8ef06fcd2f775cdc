"""The printed scale-and-colour card: its layout, its PDF, and reading it in a photo.

Clinical photography puts a scale and a colour reference in the frame. This module owns
the card that does it for vein_tracker:

- :func:`card_pdf` makes the printable card (one A4 or Letter page, true size);
- :func:`card_image` renders the same layout as pixels (for tests and phantoms);
- :func:`read_card` finds the card in a photo and returns a :class:`CardReading`: the
  scale at the card's plane (px/mm), the card's outline in the photo, the patch colours
  and a colour correction fitted to them, with CIEDE2000 errors before and after;
- :func:`apply_correction` applies that colour correction to a photo.

The card (100 x 64 mm, landscape) carries four ArUco markers of OpenCV's ``DICT_4X4_50``
(ids 10 TL, 11 TR, 12 BR, 13 BL, 12 mm each) in its corners, twelve colour patches (six
neutrals, light/medium/dark skin, red, green, blue), a 60 mm ruler with millimetre ticks,
the clinic's name and a short instruction. Card coordinates are millimetres from the
card's top-left corner, x right, y down.

Colour reference. The patches are what the PDF paints: their sRGB values are known by
construction (the neutrals and the dark skin, light skin, red, green and blue are the
familiar ColorChecker Classic values). A printer reproduces them only approximately, so
the correction maps a photo onto the *nominal* card colours: what it guarantees across
visits is consistency, as long as the same printed card is used.

This module must not segment, register or measure veins; it reads the card only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import cv2
import numpy as np

from .io import Photo, as_rgb
from .optics import srgb_to_linear

# --------------------------------------------------------------------------- layout

#: Card size in millimetres, ``(width, height)``.
CARD_SIZE_MM = (100.0, 64.0)
#: OpenCV ArUco dictionary of the markers (4x4 bits: the largest cells for a given
#: marker size, so the card still reads in a whole-leg photo at ~2 px/mm).
ARUCO_DICTIONARY = "DICT_4X4_50"
#: Marker ids, in the order top-left, top-right, bottom-right, bottom-left of the card.
MARKER_IDS = (10, 11, 12, 13)
#: Side of each marker (its black border included), mm: 6 cells of 2 mm.
MARKER_SIZE_MM = 12.0
#: Top-left corner of each marker on the card, mm, in :data:`MARKER_IDS` order.
MARKER_ORIGINS_MM = ((4.0, 4.0), (84.0, 4.0), (84.0, 48.0), (4.0, 48.0))
#: Length of the millimetre ruler, mm.
RULER_LENGTH_MM = 60.0
#: What the printout must be: the card reads at true size only when printed so.
PRINT_SCALE_NOTE = "Print at 100 % (actual size), no fit-to-page."

_RULER_X0_MM = 20.0
_RULER_Y_MM = 49.5
_OUTLINE_MM = 0.3
_OUTLINE_RGB = (150, 150, 150)
_TEXT_X0_MM = 20.0
_TEXT_WIDTH_MM = 60.0
_FONT = "DejaVu"
_MAX_TEXT_CHARS = 120


@dataclass(frozen=True)
class CardPatch:
    """One colour patch of the card.

    Attributes
    ----------
    name : str
    srgb : tuple of int
        Nominal sRGB (D65) value painted, ``(R, G, B)`` in 0-255.
    box_mm : tuple of float
        ``(x, y, width, height)`` on the card, mm from its top-left corner.
    """

    name: str
    srgb: tuple[int, int, int]
    box_mm: tuple[float, float, float, float]

    @property
    def neutral(self) -> bool:
        """A grey patch (its channels within 2 levels): these fit the tone curves."""
        return max(self.srgb) - min(self.srgb) <= 2


_PATCH_COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("white", (243, 243, 242)),
    ("neutral 8", (200, 200, 200)),
    ("neutral 6.5", (160, 160, 160)),
    ("neutral 5", (122, 122, 121)),
    ("neutral 3.5", (85, 85, 85)),
    ("black", (52, 52, 52)),
    ("light skin", (194, 150, 130)),
    ("medium skin", (160, 114, 90)),
    ("dark skin", (115, 82, 68)),
    ("red", (175, 54, 60)),
    ("green", (70, 148, 73)),
    ("blue", (56, 61, 150)),
)
_PATCH_W_MM, _PATCH_H_MM = 14.0, 12.0
_PATCH_PITCH_X_MM, _PATCH_PITCH_Y_MM = 15.6, 14.0
_PATCH_X0_MM, _PATCH_Y0_MM = 4.0, 19.0

#: The colour patches, row by row (neutrals first, then skins and primaries).
PATCHES: tuple[CardPatch, ...] = tuple(
    CardPatch(
        name,
        rgb,
        (
            _PATCH_X0_MM + (i % 6) * _PATCH_PITCH_X_MM,
            _PATCH_Y0_MM + (i // 6) * _PATCH_PITCH_Y_MM,
            _PATCH_W_MM,
            _PATCH_H_MM,
        ),
    )
    for i, (name, rgb) in enumerate(_PATCH_COLOURS)
)


@dataclass(frozen=True)
class _Rect:
    x: float
    y: float
    w: float
    h: float
    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class _Text:
    x: float  # left, mm
    y: float  # baseline, mm
    text: str
    size_pt: float
    bold: bool = False


def _font_path(bold: bool) -> str:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return str(resources.files("vein_tracker") / "fonts" / name)


def _pt_to_mm(pt: float) -> float:
    return pt * 25.4 / 72.0


@cache
def _font(bold: bool, size_px: int) -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(_font_path(bold), size_px)


def _text_width_mm(text: str, size_pt: float, *, bold: bool) -> float:
    # Advance widths scale linearly with the size: measure once at 200 px per em.
    return float(_font(bold, 200).getlength(text)) / 200.0 * _pt_to_mm(size_pt)


@dataclass(frozen=True)
class _Fit:
    text: str
    size_pt: float


def _fit_text(text: str, *, width_mm: float, size_pt: float, min_pt: float, bold: bool) -> _Fit:
    size = size_pt
    text = text[:_MAX_TEXT_CHARS]  # the rest could never fit: keep the loop below short
    while size > min_pt and _text_width_mm(text, size, bold=bold) > width_mm:
        size = max(min_pt, size - 0.5)
    while len(text) > 1 and _text_width_mm(text, size, bold=bold) > width_mm:
        text = text[:-2].rstrip() + "…"
    return _Fit(text, size)


@cache
def _marker_bits(marker_id: int) -> np.ndarray:
    """The marker's 6 x 6 cells (border included), True = black."""
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, ARUCO_DICTIONARY))
    img = cv2.aruco.generateImageMarker(dictionary, marker_id, 6, borderBits=1)
    bits: np.ndarray = img < 128
    return bits


def _marker_rects(marker_id: int, x0: float, y0: float) -> list[_Rect]:
    """A black square and the white cells as horizontal runs (few shapes, no seams in black)."""
    cell = MARKER_SIZE_MM / 6.0
    rects = [_Rect(x0, y0, MARKER_SIZE_MM, MARKER_SIZE_MM, (0, 0, 0))]
    bits = _marker_bits(marker_id)
    for row in range(6):
        col = 0
        while col < 6:
            if bits[row, col]:
                col += 1
                continue
            start = col
            while col < 6 and not bits[row, col]:
                col += 1
            rects.append(
                _Rect(
                    x0 + start * cell, y0 + row * cell, (col - start) * cell, cell, (255, 255, 255)
                )
            )
    return rects


def _layout(clinic_name: str) -> tuple[list[_Rect], list[_Text]]:
    """Every shape of the card, in card millimetres; the PDF and the image both draw this."""
    width, height = CARD_SIZE_MM
    o, grey = _OUTLINE_MM, _OUTLINE_RGB
    rects = [
        _Rect(0.0, 0.0, width, height, (255, 255, 255)),
        # Cut outline, drawn inside the card so it stays part of it.
        _Rect(0.0, 0.0, width, o, grey),
        _Rect(0.0, height - o, width, o, grey),
        _Rect(0.0, 0.0, o, height, grey),
        _Rect(width - o, 0.0, o, height, grey),
    ]
    for marker_id, (x0, y0) in zip(MARKER_IDS, MARKER_ORIGINS_MM, strict=True):
        rects.extend(_marker_rects(marker_id, x0, y0))
    rects.extend(_Rect(*p.box_mm, p.srgb) for p in PATCHES)

    black = (0, 0, 0)
    x0, y = _RULER_X0_MM, _RULER_Y_MM
    rects.append(_Rect(x0 - 0.1, y, RULER_LENGTH_MM + 0.2, 0.25, black))
    for mm in range(int(RULER_LENGTH_MM) + 1):
        length = 4.0 if mm % 10 == 0 else 3.0 if mm % 5 == 0 else 2.0
        rects.append(_Rect(x0 + mm - 0.1, y, 0.2, length, black))

    texts: list[_Text] = []
    name = clinic_name.strip() or "Scale and colour card"
    fit = _fit_text(name, width_mm=_TEXT_WIDTH_MM, size_pt=10.0, min_pt=6.0, bold=True)
    texts.append(_Text(_TEXT_X0_MM, 7.6, fit.text, fit.size_pt, bold=True))
    lines = (
        PRINT_SCALE_NOTE,
        f"The ruler must measure {RULER_LENGTH_MM:.0f} mm.",
        "Lay flat on the skin beside the area, in the frame.",
    )
    for i, line in enumerate(lines):
        fit = _fit_text(line, width_mm=_TEXT_WIDTH_MM, size_pt=5.5, min_pt=4.0, bold=False)
        texts.append(_Text(_TEXT_X0_MM, 10.6 + 2.6 * i, fit.text, fit.size_pt))
    for mm in range(0, int(RULER_LENGTH_MM) + 1, 10):
        label = f"{mm}"
        w = _text_width_mm(label, 5.0, bold=False)
        texts.append(_Text(x0 + mm - w / 2.0, y + 6.8, label, 5.0))
    # The unit beside the 0, where there is room (the right end is the marker's margin).
    texts.append(_Text(x0 + 1.6, y + 6.8, "mm", 5.0))
    return rects, texts


def _check_clinic_name(clinic_name: str | None) -> str:
    if clinic_name is None:
        return ""
    if not isinstance(clinic_name, str):
        raise ValueError(f"clinic_name must be a string, got {type(clinic_name).__name__}")
    if any(ord(c) < 32 for c in clinic_name):
        raise ValueError("clinic_name must be one line of text (no control characters)")
    return clinic_name


# --------------------------------------------------------------------------- PDF

_PAPER = {"A4": (210.0, 297.0), "Letter": (215.9, 279.4)}


def card_pdf(*, clinic_name: str | None = None, paper: Literal["A4", "Letter"] = "A4") -> bytes:
    """The printable calibration card: one page with the card at true size.

    Parameters
    ----------
    clinic_name : str, optional
        Printed on the card (shrunk, then shortened with "…", to fit 60 mm).
    paper : {"A4", "Letter"}
        Page size (portrait).

    Returns
    -------
    bytes
        A one-page PDF. The card (100 x 64 mm, :data:`CARD_SIZE_MM`) is centred
        horizontally near the top; a 100 mm check line and the instructions follow.
        It reads at true size only when printed at 100 % ("actual size", no
        fit-to-page): :data:`PRINT_SCALE_NOTE`.
    """
    from fpdf import FPDF

    name = _check_clinic_name(clinic_name)
    if paper not in _PAPER:
        raise ValueError(f"paper must be one of {sorted(_PAPER)}, got {paper!r}")
    page_w, _ = _PAPER[paper]
    pdf = FPDF(orientation="P", unit="mm", format=(page_w, _PAPER[paper][1]))
    pdf.set_auto_page_break(auto=False)
    pdf.set_compression(True)
    pdf.add_font(_FONT, "", _font_path(False))
    pdf.add_font(_FONT, "B", _font_path(True))
    pdf.set_title(f"Scale and colour card - {name}" if name else "Scale and colour card")
    pdf.set_creator("vein_tracker")
    pdf.add_page()

    card_w, card_h = CARD_SIZE_MM
    ox, oy = (page_w - card_w) / 2.0, 40.0
    pdf.set_font(_FONT, "B", 14)
    pdf.text(20.0, 20.0, "Scale and colour card")
    pdf.set_font(_FONT, "", 10)
    pdf.text(20.0, 27.0, PRINT_SCALE_NOTE + " Cut along the grey outline.")

    rects, texts = _layout(name)
    for r in rects:
        pdf.set_fill_color(*r.rgb)
        pdf.rect(ox + r.x, oy + r.y, r.w, r.h, style="F")
    pdf.set_text_color(0, 0, 0)
    for t in texts:
        pdf.set_font(_FONT, "B" if t.bold else "", t.size_pt)
        pdf.text(ox + t.x, oy + t.y, t.text)

    # A 100 mm line to check the printer's scale with any ruler.
    y = oy + card_h + 14.0
    x0 = (page_w - 100.0) / 2.0
    pdf.set_fill_color(0, 0, 0)
    pdf.rect(x0, y, 100.0, 0.3, style="F")
    for mm in (0, 50, 100):
        pdf.rect(x0 + mm - 0.15, y - 2.0, 0.3, 4.3, style="F")
    pdf.set_font(_FONT, "", 9)
    pdf.text(x0, y + 7.0, "Check: this line measures 100 mm on the printout.")

    pdf.set_xy(20.0, y + 14.0)
    pdf.set_font(_FONT, "", 10)
    pdf.multi_cell(
        page_w - 40.0,
        5.0,
        "How to use the card\n"
        '1. Print this page at 100 % scale ("Actual size"); turn off "Fit to page" '
        'and "Shrink to fit". Matte paper is best: gloss reflects the light.\n'
        f"2. Check the scale: the card's ruler measures {RULER_LENGTH_MM:.0f} mm and the "
        "line above 100 mm. If not, print again.\n"
        "3. Cut along the grey outline. Keep the card clean, dry and flat; print a new "
        "one when it fades or bends.\n"
        "4. At each photo, lay the card flat on the skin beside the treatment area (the "
        "same distance from the camera as the veins), whole and uncovered, in the frame.\n"
        "5. Use the same printed card at every visit: another printer gives slightly "
        "different colours.\n"
        "The analysis reads the scale (pixels per millimetre) and a colour correction "
        "from the card, and leaves the card out of the skin it analyses.",
    )
    return bytes(pdf.output())


# --------------------------------------------------------------------------- image

_MAX_RENDER_SIDE = 6000


def card_image(*, px_per_mm: float = 10.0, clinic_name: str | None = None) -> np.ndarray:
    """The card's layout rendered as an image (the same shapes and text as the PDF).

    Parameters
    ----------
    px_per_mm : float
        Resolution, pixels per millimetre, in [1, 60].
    clinic_name : str, optional
        As for :func:`card_pdf`.

    Returns
    -------
    ndarray, shape (round(64 px_per_mm), round(100 px_per_mm), 3), dtype uint8
        sRGB. Pixel column ``i`` covers card x in ``[i, i + 1) / px_per_mm`` mm, so a card
        point (x, y) mm lies at pixel coordinates ``(x * px_per_mm - 0.5,
        y * px_per_mm - 0.5)`` with OpenCV's convention (pixel centres at integers).
        Edges are anti-aliased by area (supersampled).
    """
    from PIL import Image, ImageDraw

    ppm = float(px_per_mm)
    if not math.isfinite(ppm) or not 1.0 <= ppm <= 60.0:
        raise ValueError(f"px_per_mm must be in [1, 60], got {px_per_mm!r}")
    name = _check_clinic_name(clinic_name)
    card_w, card_h = CARD_SIZE_MM
    out_w, out_h = round(card_w * ppm), round(card_h * ppm)
    ss = max(1, min(4, int(_MAX_RENDER_SIDE // out_w)))
    hi = ppm * ss
    canvas = np.full((out_h * ss, out_w * ss, 3), 255, dtype=np.uint8)
    rects, texts = _layout(name)
    for r in rects:
        x0, x1 = round(r.x * hi), round((r.x + r.w) * hi)
        y0, y1 = round(r.y * hi), round((r.y + r.h) * hi)
        canvas[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = r.rgb
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    for t in texts:
        size = max(1, round(_pt_to_mm(t.size_pt) * hi))
        draw.text(
            (t.x * hi, t.y * hi), t.text, font=_font(t.bold, size), fill=(0, 0, 0), anchor="ls"
        )
    arr = np.asarray(img)
    if ss > 1:
        arr = cv2.resize(arr, (out_w, out_h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------- reading

#: The detector works on a copy whose long side is at most this (pixels); corners are
#: then refined on the full photo. Keeps a photo without a card cheap to reject.
DETECT_MAX_SIDE = 1600
#: Fewest markers a reading needs. Two markers leave the far side of the card to
#: extrapolation; three span it.
MIN_MARKERS = 3
#: Patch sampling: the inner part of each patch, this far in from every edge (mm).
_PATCH_INSET_MM = 2.5
#: Share of the pixels trimmed from each end, per channel, before averaging.
_TRIM = 0.2
#: A patch whose 10th-90th percentile spread exceeds this (sRGB levels) is not uniform
#: (covered, shadowed, glare) and is left out of the fit.
_MAX_PATCH_SPREAD = 40.0
#: Share of a patch's pixels that may be clipped (0 or 255 in a channel) before the patch
#: is left out as saturated.
_MAX_CLIPPED = 0.02
#: Fewest patches the colour fit needs (a 3 x 3 matrix has nine unknowns, three per patch).
MIN_PATCHES = 6
#: Fewest neutral patches the tone curves need.
MIN_NEUTRALS = 3
#: Smallest (and, inverted, largest) slope allowed of a tone curve in log-log: a camera's
#: curve is increasing, and a slope outside [1/3, 3] over the card's range is noise.
_MIN_CURVE_SLOPE = 1.0 / 3.0
#: Linear values are floored here before taking logs (sRGB code 0 is 0).
_LIN_FLOOR = 1e-4
#: A colour correction is given only if every patch it keeps is within this CIEDE2000 of
#: its reference after it (on clean, uncovered cards the largest seen is below 2): the
#: promise of issue 21 (ΔE2000 ≤ 3 on the card's patches). At 4, a card partly covered
#: over its neutrals kept a fit whose worst patch was 3.37.
MAX_PATCH_DE = 3.0
#: At most this many patches that disagree with the others (covered, stained) are left
#: out to reach :data:`MAX_PATCH_DE`; beyond that the card gives no correction.
_MAX_DROPPED = 2
#: Largest accepted RMS distance between detected marker corners and the fitted card, as
#: a share of the marker's side in the photo. Blur rounds the corners inwards (about 0.9
#: blur sigma of RMS, common to all markers, so the scale keeps within 0.2 %): 5 % allows
#: a blur of 0.6 mm sigma, beyond what the detector reads anyway.
_MAX_RESIDUAL_FRAC = 0.05
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


def _apply_h(h: np.ndarray, xy: np.ndarray) -> np.ndarray:
    pts = np.asarray(xy, np.float64).reshape(-1, 2)
    q = np.c_[pts, np.ones(len(pts))] @ h.T
    out: np.ndarray = q[:, :2] / q[:, 2:3]
    return out


def _marker_corners_mm(index: int) -> np.ndarray:
    x0, y0 = MARKER_ORIGINS_MM[index]
    s = MARKER_SIZE_MM
    # ArUco's corner order: the marker's top-left, then clockwise.
    return np.array([[x0, y0], [x0 + s, y0], [x0 + s, y0 + s], [x0, y0 + s]], np.float64)


@cache
def _detector() -> Any:
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, ARUCO_DICTIONARY))
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    # Read each cell's bit from its middle only: a blurred photo (0.2-0.3 mm) smears the
    # cell edges, and OpenCV's default margin (0.13 of a cell) then loses one-cell
    # features: at 3-5 px/mm and a blur of 0.3 mm, 1-2 markers of 4 were found instead
    # of 4.
    params.perspectiveRemovePixelPerCell = 8
    params.perspectiveRemoveIgnoredMarginPerCell = 0.35
    return cv2.aruco.ArucoDetector(dictionary, params)


def _detect_markers(gray: np.ndarray) -> dict[int, np.ndarray]:
    """Card markers found in a grey photo: id -> (4, 2) corners in full-resolution px."""
    h, w = gray.shape
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = gray
    if scale < 1.0:
        small = cv2.resize(
            gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    corners, ids, _ = _detector().detectMarkers(small)
    if ids is None:
        return {}
    wanted = set(MARKER_IDS)
    seen: dict[int, list[np.ndarray]] = {}
    for c, i in zip(corners, ids.ravel(), strict=True):
        if int(i) in wanted:
            seen.setdefault(int(i), []).append(np.asarray(c, np.float64).reshape(4, 2))
    found: dict[int, np.ndarray] = {}
    for marker_id, cs in seen.items():
        if len(cs) != 1:
            continue  # the same id twice: two cards or a look-alike; trust neither
        c = cs[0]
        if scale < 1.0:
            # Pixel centres at integers: x_full + 0.5 = (x_small + 0.5) * w / w_small.
            c = (c + 0.5) * np.array([w / small.shape[1], h / small.shape[0]]) - 0.5
            c = _refine_corners(gray, c)
        found[marker_id] = c
    return found


def _refine_corners(gray: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Sub-pixel corners on the full-resolution photo, within the marker's border cell."""
    side = float(np.mean(np.linalg.norm(corners - np.roll(corners, 1, axis=0), axis=1)))
    half = int(np.clip(round(0.5 * side / 6.0), 2, 12))
    pts = corners.astype(np.float32).reshape(-1, 1, 2).copy()
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 40, 0.01)
    refined = cv2.cornerSubPix(gray, pts, (half, half), (-1, -1), criteria)
    out = refined.reshape(4, 2).astype(np.float64)
    # A corner that wandered more than a cell is not trusted: keep the detector's.
    moved = np.linalg.norm(out - corners, axis=1) > side / 6.0
    out[moved] = corners[moved]
    return out


def _fit_card(found: dict[int, np.ndarray]) -> tuple[np.ndarray, float, tuple[int, ...]] | None:
    """Card-to-photo homography from the markers; drops one marker that disagrees."""
    ids = sorted(found)
    while len(ids) >= MIN_MARKERS:
        src = np.concatenate([_marker_corners_mm(MARKER_IDS.index(i)) for i in ids])
        dst = np.concatenate([found[i] for i in ids])
        h, _ = cv2.findHomography(src, dst, 0)
        if h is None or not np.all(np.isfinite(h)):
            return None
        err = np.linalg.norm(_apply_h(h, src) - dst, axis=1)
        side_px = float(np.mean(np.linalg.norm(dst - np.roll(dst, 1, axis=0), axis=1)))
        tol = max(1.0, _MAX_RESIDUAL_FRAC * side_px)
        per_marker = np.sqrt(np.mean(err.reshape(-1, 4) ** 2, axis=1))
        rms = float(np.sqrt(np.mean(err**2)))
        if rms <= tol:
            return h / h[2, 2], rms, tuple(ids)
        ids.pop(int(np.argmax(per_marker)))
    return None


def _local_scales(h: np.ndarray, xy_mm: tuple[float, float]) -> tuple[float, float]:
    """Singular values of the card-to-photo map's Jacobian at a card point (px per mm)."""
    x, y = xy_mm
    q = h @ np.array([x, y, 1.0])
    u, v, s = q
    jac = np.array(
        [
            [(h[0, 0] * s - u * h[2, 0]) / s**2, (h[0, 1] * s - u * h[2, 1]) / s**2],
            [(h[1, 0] * s - v * h[2, 0]) / s**2, (h[1, 1] * s - v * h[2, 1]) / s**2],
        ]
    )
    if np.linalg.det(jac) <= 0:
        return (0.0, 0.0)  # mirrored: not a card seen from its printed side
    sv = np.linalg.svd(jac, compute_uv=False)
    return float(sv[0]), float(sv[1])


def _trimmed_mean(values: np.ndarray) -> np.ndarray:
    n = len(values)
    k = int(n * _TRIM)
    srt = np.sort(values, axis=0)
    kept = srt[k : n - k] if n - 2 * k > 0 else srt
    out: np.ndarray = kept.mean(axis=0)
    return out


@dataclass(frozen=True)
class _PatchSample:
    linear: np.ndarray  # (3,) trimmed mean, linear RGB; NaN when not measured
    spread: float  # 10th-90th percentile, sRGB levels (largest channel)
    clipped: float  # share of pixels with a channel at 0 or 255


def _sample_patches(rgb: np.ndarray, h: np.ndarray) -> list[_PatchSample]:
    img_h, img_w = rgb.shape[:2]
    out = []
    d = _PATCH_INSET_MM
    for p in PATCHES:
        x, y, w, hh = p.box_mm
        inner = np.array(
            [[x + d, y + d], [x + w - d, y + d], [x + w - d, y + hh - d], [x + d, y + hh - d]]
        )
        pts = _apply_h(h, inner)
        lo = np.floor(pts.min(axis=0)).astype(int)
        hi = np.ceil(pts.max(axis=0)).astype(int) + 1
        if lo[0] < 0 or lo[1] < 0 or hi[0] > img_w or hi[1] > img_h:
            out.append(_PatchSample(np.full(3, np.nan), math.inf, 1.0))
            continue
        box = np.zeros((hi[1] - lo[1], hi[0] - lo[0]), np.uint8)
        local = np.round((pts - lo) * 256).astype(np.int32)
        cv2.fillConvexPoly(box, local, 1, cv2.LINE_8, 8)
        pix = rgb[lo[1] : hi[1], lo[0] : hi[0]][box.astype(bool)]
        if len(pix) < 9:
            out.append(_PatchSample(np.full(3, np.nan), math.inf, 1.0))
            continue
        p10, p90 = np.percentile(pix, [10, 90], axis=0)
        clipped = float(np.mean(np.any((pix == 0) | (pix == 255), axis=1)))
        lin = _trimmed_mean(srgb_to_linear(pix).astype(np.float64))
        out.append(_PatchSample(lin, float(np.max(p90 - p10)), clipped))
    return out


def _encode_srgb(lin: np.ndarray) -> np.ndarray:
    """Linear RGB (float, any range) to sRGB in [0, 1] (clipped)."""
    v = np.clip(lin, 0.0, 1.0)
    out: np.ndarray = np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)
    return out


def _lab(lin: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    out: np.ndarray = rgb2lab(_encode_srgb(lin).reshape(-1, 1, 3)).reshape(-1, 3)
    return out


def _delta_e(ref_lab: np.ndarray, lin: np.ndarray) -> np.ndarray:
    from skimage.color import deltaE_ciede2000

    out: np.ndarray = deltaE_ciede2000(ref_lab, _lab(lin))
    return out


def _curve_eval(coef: np.ndarray, lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    """A channel's tone curve in log-log: polynomial inside [lo, hi], straight beyond."""
    deriv = np.polyder(coef)
    xc = np.clip(x, lo, hi)
    y = np.polyval(coef, xc) + np.polyval(deriv, xc) * (x - xc)
    out: np.ndarray = y
    return out


def _fit_curve(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Tone curve of one channel from the neutral patches: ln(reference) over ln(measured).

    Quadratic with four or more neutrals, a power law (straight line) with two or three,
    a plain gain with one; a fit that is not increasing over the patches' range (noise,
    a bad patch) falls back to the simpler one.
    """
    lo, hi = float(x.min()), float(x.max())
    grid = np.linspace(lo, hi, 33)
    for degree in (2, 1):
        if len(x) < degree + 2 or hi - lo < 0.5:
            continue
        coef = np.polyfit(x, y, degree)
        slopes = np.polyval(np.polyder(coef), grid)
        if np.all(slopes >= _MIN_CURVE_SLOPE) and np.all(slopes <= 1.0 / _MIN_CURVE_SLOPE):
            return coef, lo, hi
    return np.array([1.0, float(np.mean(y - x))]), lo, hi


def _fit_model(
    measured: np.ndarray, ref_lin: np.ndarray, neutral: np.ndarray
) -> tuple[list[tuple[np.ndarray, float, float]], np.ndarray]:
    """Per-channel tone curves (on the neutral patches) and a 3 x 3 matrix (all patches)."""
    grey = np.log(ref_lin[neutral].mean(axis=1))
    curves = [
        _fit_curve(np.log(np.maximum(measured[neutral, c], _LIN_FLOOR)), grey) for c in range(3)
    ]
    flat = _linearise(measured, curves)
    sol, *_ = np.linalg.lstsq(flat, ref_lin, rcond=None)
    return curves, sol.T


def _linearise(lin: np.ndarray, curves: Sequence[tuple[np.ndarray, float, float]]) -> np.ndarray:
    out = np.empty_like(lin, dtype=np.float64)
    for c, (coef, lo, hi) in enumerate(curves):
        x = np.log(np.maximum(lin[..., c], _LIN_FLOOR))
        out[..., c] = np.exp(_curve_eval(coef, lo, hi, x))
    return out


def _fit_colour(samples: Sequence[_PatchSample]) -> _ColourFit:
    ref_srgb = np.array([p.srgb for p in PATCHES], np.float64)
    ref_lin = srgb_to_linear((ref_srgb / 255.0).astype(np.float32)).astype(np.float64)
    ref_lab = _lab(ref_lin)
    neutral = np.array([p.neutral for p in PATCHES])
    measured = np.array([s.linear for s in samples])
    notes: list[str] = []
    used = np.array([bool(np.all(np.isfinite(s.linear))) for s in samples])
    if not used.all():
        notes.append("outside the photo: " + _names(~used))
    clipped = used & np.array([s.clipped > _MAX_CLIPPED for s in samples])
    if clipped.any():
        notes.append("clipped (over- or under-exposed): " + _names(clipped))
    uneven = used & ~clipped & np.array([s.spread > _MAX_PATCH_SPREAD for s in samples])
    if uneven.any():
        notes.append("not uniform (covered, shadow or glare): " + _names(uneven))
    used &= ~clipped & ~uneven

    finite = np.all(np.isfinite(measured), axis=1)
    before = np.full(len(PATCHES), np.nan)
    before[finite] = _delta_e(ref_lab[finite], measured[finite])
    after = np.full(len(PATCHES), np.nan)
    enough = used.sum() >= MIN_PATCHES and (used & neutral).sum() >= MIN_NEUTRALS
    found = _consistent_fit(measured, ref_lin, ref_lab, neutral, used) if enough else None
    if found is None:
        if enough:
            notes.append(
                "no colour correction: the patches disagree with each other (one covered, "
                f"stained or faded?); no fit keeps every patch within {MAX_PATCH_DE:g} "
                "CIEDE2000"
            )
        else:
            notes.append(
                f"no colour correction: {int(used.sum())} usable patches "
                f"({int((used & neutral).sum())} neutral); {MIN_PATCHES} "
                f"({MIN_NEUTRALS} neutral) needed"
            )
        return _ColourFit(None, None, tuple(bool(u) for u in used), before, after, notes)
    kept, fit = found
    if (used & ~kept).any():
        notes.append("disagrees with the other patches: " + _names(used & ~kept))
    used = kept
    after[finite] = _delta_e(ref_lab[finite], _correct(measured[finite], *fit))
    curves, matrix = fit
    codes = srgb_to_linear(np.arange(256, dtype=np.uint8)).astype(np.float64)
    table = _linearise(np.repeat(codes[:, None], 3, axis=1), curves).T
    table[:, 0] = 0.0  # black stays black
    return _ColourFit(table, matrix, tuple(bool(u) for u in used), before, after, notes)


def _consistent_fit(
    measured: np.ndarray,
    ref_lin: np.ndarray,
    ref_lab: np.ndarray,
    neutral: np.ndarray,
    used: np.ndarray,
) -> tuple[np.ndarray, tuple[list[tuple[np.ndarray, float, float]], np.ndarray]] | None:
    """The fit of the most patches that agree: every kept patch within MAX_PATCH_DE.

    Tries all the usable patches, then without each one, then without each pair (at most
    79 fits of a fraction of a millisecond each). Greedily dropping the worst patch is
    not enough: a covered neutral bends the tone curves, and then the *coloured* patches
    look worst. Among fits that drop as many patches, the one with the smallest largest
    error wins (ties: the first in patch order), so the result is deterministic.
    """
    candidates = [int(i) for i in np.flatnonzero(used)]
    for k in range(_MAX_DROPPED + 1):
        best: tuple[float, np.ndarray, Any] | None = None
        for drop in itertools.combinations(candidates, k):
            keep = used.copy()
            keep[list(drop)] = False
            if keep.sum() < MIN_PATCHES or (keep & neutral).sum() < MIN_NEUTRALS:
                continue
            fit = _fit_model(measured[keep], ref_lin[keep], neutral[keep])
            worst = float(_delta_e(ref_lab[keep], _correct(measured[keep], *fit)).max())
            if best is None or worst < best[0]:
                best = (worst, keep, fit)
        if best is not None and best[0] <= MAX_PATCH_DE:
            return best[1], best[2]
    return None


def _correct(
    lin: np.ndarray, curves: Sequence[tuple[np.ndarray, float, float]], m: np.ndarray
) -> np.ndarray:
    out: np.ndarray = _linearise(lin, curves) @ m.T
    return out


@dataclass(frozen=True)
class _ColourFit:
    tone_curves: np.ndarray | None
    matrix: np.ndarray | None
    used: tuple[bool, ...]
    before: np.ndarray
    after: np.ndarray
    notes: list[str]


def _names(mask: np.ndarray) -> str:
    return ", ".join(p.name for p, m in zip(PATCHES, mask, strict=True) if m)


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
