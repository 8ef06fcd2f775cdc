"""The printed scale-and-colour card: its layout, its PDF, and reading it in a photo.

Clinical photography puts a scale and a colour reference in the frame. This package owns
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

The card's parts are modules of this package:

- :mod:`.layout`: the card's size, markers, patches (:data:`PATCHES`), ruler and text,
  in card millimetres;
- :mod:`.printout`: :func:`card_pdf` and :func:`card_image`;
- :mod:`.markers`: finding the markers and fitting the card-to-photo homography;
- :mod:`.colour_fit`: sampling the patches and fitting the colour correction;
- :mod:`.reading`: :func:`read_card`, :class:`CardReading` and :func:`apply_correction`.

Every name is importable from ``vein_tracker.card`` as before.

This package must not segment, register or measure veins; it reads the card only.
"""

from __future__ import annotations

from .colour_fit import MAX_PATCH_DE, MIN_NEUTRALS, MIN_PATCHES
from .layout import (
    ARUCO_DICTIONARY,
    CARD_SIZE_MM,
    MARKER_IDS,
    MARKER_ORIGINS_MM,
    MARKER_SIZE_MM,
    PATCHES,
    PRINT_SCALE_NOTE,
    RULER_LENGTH_MM,
    CardPatch,
)
from .markers import DETECT_MAX_SIDE, MIN_MARKERS
from .printout import card_image, card_pdf
from .reading import CardReading, apply_correction, read_card

__all__ = [
    "ARUCO_DICTIONARY",
    "CARD_SIZE_MM",
    "DETECT_MAX_SIDE",
    "MARKER_IDS",
    "MARKER_ORIGINS_MM",
    "MARKER_SIZE_MM",
    "MAX_PATCH_DE",
    "MIN_MARKERS",
    "MIN_NEUTRALS",
    "MIN_PATCHES",
    "PATCHES",
    "PRINT_SCALE_NOTE",
    "RULER_LENGTH_MM",
    "CardPatch",
    "CardReading",
    "apply_correction",
    "card_image",
    "card_pdf",
    "read_card",
]
