"""`vein-tracker segment`: vein map of one photo (mask, class labels, overlay, JSON summary)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PhotoError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "segment",
        help="find spider and reticular veins in one photo",
        description=(
            "Segment spider (red-purple, < 1 mm) and reticular (blue-green, 1-3 mm) veins in "
            "a leg photo. Writes a mask PNG (255 = vein), a labels PNG (0 none, 1 spider, "
            "2 reticular) and an overlay, all the size of the upright photo."
        ),
    )
    p.add_argument("photo", help="photo file (JPEG, PNG, HEIC, TIFF, WebP)")
    p.add_argument(
        "--px-per-mm",
        type=_positive_float,
        default=None,
        help="scale in pixels per millimetre (default: estimated from the leg's width, else "
        "the frame size)",
    )
    p.add_argument("--roi", default=None, help="region of interest PNG (non-zero = inside)")
    p.add_argument(
        "--sensitivity",
        type=_unit_float,
        default=0.5,
        help="0..1, higher finds fainter veins (default 0.5)",
    )
    p.add_argument("--mask-out", default=None, help="write the vein mask PNG here")
    p.add_argument("--labels-out", default=None, help="write the class labels PNG here")
    p.add_argument("--overlay", default=None, help="write an overlay image (.png/.jpg) here")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=run, one_shot_analysis=True)


def _write(path: str, data: bytes) -> str:
    target = Path(path)
    try:
        target.write_bytes(data)
    except OSError as exc:
        raise PhotoError(f"Could not write {target.name!r}: {exc.strerror or exc}.") from exc
    return str(target)


def _write_mask(path: str, mask: np.ndarray) -> str:
    from ..io import save_mask_png

    try:
        return str(save_mask_png(mask, path))
    except OSError as exc:
        raise PhotoError(f"Could not write {Path(path).name!r}: {exc.strerror or exc}.") from exc


def run(args: argparse.Namespace) -> int:
    from ..io import encode_image, load_mask_png, load_photo
    from ..segmentation import overlay, segment

    photo = load_photo(args.photo)
    roi = None
    if args.roi is not None:
        roi = load_mask_png(Path(args.roi), shape=photo.shape)
        if not roi.any():
            raise PhotoError("The region-of-interest mask is empty: draw the area to analyse.")
    for name in ("mask_out", "labels_out", "overlay"):
        path = getattr(args, name)
        if path is not None and Path(path).suffix.lower() not in (".png", ".jpg", ".jpeg"):
            raise PhotoError(f"{path!r}: output images must end in .png (or .jpg for --overlay).")
    for name in ("mask_out", "labels_out"):
        path = getattr(args, name)
        if path is not None and Path(path).suffix.lower() != ".png":
            raise PhotoError(f"{path!r}: masks are written as PNG; use a .png name.")
    try:
        seg = segment(photo, px_per_mm=args.px_per_mm, roi=roi, sensitivity=args.sensitivity)
    except ValueError as exc:
        if isinstance(exc, PhotoError):
            raise
        raise PhotoError(str(exc)) from exc

    written: dict[str, str] = {}
    if args.mask_out:
        written["mask"] = _write_mask(args.mask_out, seg.mask)
    if args.labels_out:
        written["labels"] = _write_mask(args.labels_out, seg.labels)
    if args.overlay:
        fmt = "PNG" if Path(args.overlay).suffix.lower() == ".png" else "JPEG"
        written["overlay"] = _write(
            args.overlay, encode_image(overlay(photo, seg.labels), format=fmt)
        )

    summary = seg.to_dict()
    if args.json:
        out = {"photo": photo.metadata(), "segmentation": summary, "outputs": written}
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        by = summary["by_class"]
        scale = f"{seg.px_per_mm:.2f} px/mm" + (" (estimated)" if seg.px_per_mm_estimated else "")
        conf = summary.get("confidence") or {}
        if conf.get("level") == "low":
            # A low-confidence map is never shown bare: the reasons come first.
            print("LOW CONFIDENCE: " + " ".join(conf.get("reasons", [])))
        print(
            f"{Path(args.photo).name}: {by['spider']['count']} spider vein(s), "
            f"{by['spider']['length_mm']:.1f} mm; {by['reticular']['count']} reticular vein(s), "
            f"{by['reticular']['length_mm']:.1f} mm; scale {scale}"
        )
        for note in conf.get("notes", []):
            print(f"  note: {note}")
        for kind, path in written.items():
            print(f"  {kind}: {path}")
    return 0
