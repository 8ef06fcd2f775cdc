"""`vein-tracker card`: print the calibration card, or read one in a photo.

``--out card.pdf`` writes the printable card (print at 100 %, no fit-to-page);
``--read PHOTO`` finds the card in a photo and reports its scale (px/mm at the card),
the colour error of its patches before and after correction, and its corners. No card
in the photo is bad input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import PhotoError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "card",
        help="print the scale-and-colour card, or read it in a photo",
        description=(
            "Write the printable calibration card (ArUco markers, a millimetre ruler, colour "
            "patches) as a one-page PDF, or read the card in a photo: its scale in pixels per "
            "millimetre at the card (lay the card on the skin, at the veins' distance) and "
            "a colour correction from its patches, with CIEDE2000 before and after. Print the "
            "card at 100 % (actual size), no fit-to-page."
        ),
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", metavar="PDF", help="write the printable card here (.pdf)")
    what.add_argument("--read", metavar="PHOTO", help="read the card in this photo")
    p.add_argument(
        "--clinic",
        default=None,
        help="clinic name printed on the card (default: VEIN_TRACKER_CLINIC_NAME)",
    )
    p.add_argument("--paper", choices=("A4", "Letter"), default="A4", help="page size (default A4)")
    p.add_argument(
        "--corrected",
        metavar="IMAGE",
        default=None,
        help="with --read: write the colour-corrected photo here (.png or .jpg)",
    )
    p.add_argument("--json", action="store_true", help="with --read: print the reading as JSON")
    p.set_defaults(func=run)


def _write(path: Path, data: bytes) -> None:
    """Write through a temporary file and a rename, so a failed write leaves no half file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PhotoError(f"Could not write {path.name!r}: {exc.strerror or exc}.") from exc


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        return _make(args)
    return _read(args)


def _make(args: argparse.Namespace) -> int:
    from ..card import CARD_SIZE_MM, PRINT_SCALE_NOTE, card_pdf
    from ..config import get_settings

    if args.corrected is not None or args.json:
        raise PhotoError("--corrected and --json go with --read PHOTO, not with --out.")
    out = Path(args.out)
    if out.suffix.lower() != ".pdf":
        raise PhotoError(f"{args.out!r}: the card is written as PDF; use a .pdf name.")
    clinic = args.clinic if args.clinic is not None else get_settings().clinic_name
    try:
        data = card_pdf(clinic_name=clinic, paper=args.paper)
    except ValueError as exc:
        raise PhotoError(f"--clinic: {exc}") from exc
    _write(out, data)
    w, h = CARD_SIZE_MM
    print(f"{out}: calibration card {w:.0f} x {h:.0f} mm on {args.paper}. {PRINT_SCALE_NOTE}")
    return 0


def _read(args: argparse.Namespace) -> int:
    from ..card import apply_correction, read_card
    from ..io import encode_image, load_photo

    if args.clinic is not None:
        raise PhotoError("--clinic goes with --out PDF, not with --read.")
    corrected = Path(args.corrected) if args.corrected is not None else None
    if corrected is not None and corrected.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise PhotoError(f"{args.corrected!r}: write the corrected photo as .png or .jpg.")
    photo = load_photo(args.read)
    reading = read_card(photo)
    name = Path(args.read).name
    if reading is None:
        raise PhotoError(
            f"No calibration card found in {name!r}: at least 3 of its 4 corner markers "
            "must be visible, sharp and uncovered."
        )
    if corrected is not None:
        if reading.correction is None:
            raise PhotoError(
                f"The card in {name!r} gives no colour correction: {reading.colour_note}."
            )
        fmt = "PNG" if corrected.suffix.lower() == ".png" else "JPEG"
        _write(corrected, encode_image(apply_correction(photo, reading), format=fmt, quality=95))
    if args.json:
        out = {"photo": photo.metadata(), "card": reading.to_dict()}
        if corrected is not None:
            out["outputs"] = {"corrected": str(corrected)}
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    before, after = reading.delta_e_before_mean, reading.delta_e_after_mean
    colour = (
        f"colour error (CIEDE2000, mean of {sum(reading.patch_used)} patches) "
        f"{before:.1f} before, {after:.1f} after correction"
        if before is not None and after is not None
        else "no colour correction"
    )
    print(
        f"{name}: card found ({len(reading.marker_ids)} of 4 markers): "
        f"{reading.px_per_mm:.2f} px/mm at the card; {colour}"
    )
    if reading.colour_note:
        print(f"  note: {reading.colour_note}")
    if corrected is not None:
        print(f"  corrected: {corrected}")
    return 0
