"""The printed card's layout: its size, markers, colour patches, ruler and text.

Every shape is given in card millimetres (from the card's top-left corner, x right,
y down); the PDF and the rendered image (:mod:`.printout`) both draw :func:`_layout`, and
reading a card finds these markers (:mod:`.markers`) and samples these patches
(:mod:`.colour_fit`).

This module must not draw a page or read a photo; it describes the card only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import cv2
import numpy as np

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
