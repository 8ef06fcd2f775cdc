"""The card made printable: the one-page PDF and the same layout rendered as pixels.

Both draw the shapes of :func:`.layout._layout` at true size; neither reads a photo.
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

from .layout import (
    _FONT,
    CARD_SIZE_MM,
    PRINT_SCALE_NOTE,
    RULER_LENGTH_MM,
    _check_clinic_name,
    _font,
    _font_path,
    _layout,
    _pt_to_mm,
)

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
