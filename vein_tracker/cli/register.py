"""`vein-tracker register`: align a follow-up photo onto its baseline.

Exit statuses: 0 registered; 2 bad input (unreadable photo or mask, an output path
that is not a writable image); 3 the pair cannot be registered (the reason goes to
stderr; with ``--json`` the JSON object is still printed on stdout). Heavy imports
happen inside :func:`run`, so ``vein-tracker --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "register",
        help="align a follow-up photo onto its baseline",
        description=(
            "Find the homography that maps follow-up pixels (x, y) onto baseline pixels "
            "(x, y), in the photos as loaded upright. Exit status 2: bad input; 3: the pair "
            "cannot be registered (reason on stderr)."
        ),
    )
    p.add_argument("baseline", help="baseline photo (JPEG, PNG, TIFF, WebP, HEIC)")
    p.add_argument("followup", help="follow-up photo of the same area")
    p.add_argument(
        "--roi", metavar="MASK.png", help="region of interest, a mask PNG on the baseline"
    )
    p.add_argument(
        "--out",
        metavar="WARPED.png",
        help="write the follow-up warped into the baseline frame (.png, .jpg or .webp)",
    )
    p.add_argument("--rigid", action="store_true", help="homography only (no non-rigid refinement)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=run, one_shot_analysis=True)


def run(args: argparse.Namespace) -> int:
    from ..errors import PhotoError
    from ..io import load_mask_png, load_photo, save_image
    from ..registration import register as register_pair

    out: Path | None = None
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() not in _IMAGE_SUFFIXES:
            raise PhotoError(f"--out must name a .png, .jpg or .webp file, got {out.name!r}")
        if not out.parent.is_dir():
            raise PhotoError(f"--out: folder {str(out.parent)!r} does not exist")
    baseline = load_photo(args.baseline)
    followup = load_photo(args.followup)
    roi = None
    if args.roi:
        roi = load_mask_png(args.roi, shape=baseline.rgb.shape[:2])
        if not roi.any():
            raise PhotoError("The region-of-interest mask is empty: draw the area to align on.")
    reg = register_pair(baseline, followup, roi=roi, nonrigid=not args.rigid)
    full = reg.to_dict()
    payload = {
        "ok": full["ok"],
        "homography": full["homography"],
        "quality": full["quality"],
        "residual_px": full["residual_px"],
        "inliers": full["inliers"],
        "reason": full["reason"],
        "inlier_ratio": full["inlier_ratio"],
        "nonrigid": full["nonrigid"],
        "checks": full["checks"],
    }
    if args.json:
        sys.stdout.write(json.dumps(payload, allow_nan=False) + "\n")
    if not reg.ok:
        print(f"vein-tracker: {reg.reason}", file=sys.stderr)
        return 3
    if out is not None:
        try:
            save_image(reg.warped, out)
        except OSError as exc:
            raise PhotoError(f"Could not write {out.name!r}: {exc.strerror or exc}.") from exc
    if not args.json:
        h = reg.homography
        print(
            f"Registered: quality {reg.quality:.2f}, residual {reg.residual_px:.2f} px, "
            f"{reg.inliers} inliers ({100 * reg.inlier_ratio:.0f} %)"
            + (", non-rigid refinement" if reg.flow is not None else "")
        )
        print("Homography (follow-up -> baseline):")
        for row in h:
            print("  " + "  ".join(f"{v: .6g}" for v in row))
        if out is not None:
            print(f"Warped follow-up written to {out}")
    return 0
