"""`vein-tracker analyze`: percent improvement between a baseline and a follow-up photo.

Exit statuses: 0 scored; 2 bad input (unreadable photo or mask, bad option, an
output path that is not a writable .png); 3 the pair cannot be registered (the
reason goes to stderr and no improvement is printed). With ``--json`` one JSON
object goes to stdout (``Comparison.to_dict()``). Heavy imports happen inside
:func:`run`, so ``vein-tracker --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from exc
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return v


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "analyze",
        help="percent improvement between a baseline and a follow-up photo",
        description=(
            "Register the follow-up onto the baseline, normalise colour, segment both and "
            "report the improvement in the baseline frame over the region seen in both photos. "
            "Exit status 2: bad input; 3: the pair cannot be registered (reason on stderr)."
        ),
    )
    p.add_argument("baseline", help="baseline photo (JPEG, PNG, TIFF, WebP, HEIC)")
    p.add_argument("followup", help="follow-up photo of the same area")
    p.add_argument(
        "--px-per-mm",
        type=_positive_float,
        default=None,
        metavar="F",
        help="scale of the baseline, pixels per millimetre (default: estimated)",
    )
    p.add_argument(
        "--roi", metavar="MASK.png", help="region of interest, a mask PNG on the baseline"
    )
    p.add_argument(
        "--baseline-map",
        metavar="MAP.png",
        help="measure this baseline vein map instead of segmenting the baseline: an 8-bit PNG "
        "of the baseline photo's size (or of its analysis frame's), non-zero = vein; 1 = "
        "spider, 2 = reticular where the classes are known (other values: classes found "
        "from colour)",
    )
    p.add_argument(
        "--sensitivity",
        type=float,
        default=0.5,
        metavar="S",
        help="segmentation sensitivity in [0, 1] (default 0.5)",
    )
    p.add_argument("--target-pct", type=float, default=None, metavar="P", help="target, percent")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--baseline-mask", metavar="OUT.png", help="write the baseline vein mask (255 = vein)"
    )
    p.add_argument(
        "--followup-mask",
        metavar="OUT.png",
        help="write the follow-up vein mask in the baseline frame (255 = vein)",
    )
    p.add_argument(
        "--overlay", metavar="OUT.png", help="write the change map painted on the baseline photo"
    )
    p.add_argument(
        "--change-map",
        metavar="OUT.png",
        help="write the change map codes (0 none, 1 cleared, 2 faded, 3 persisting, 4 new, "
        "5 recanalised) as an 8-bit PNG in the baseline frame",
    )
    p.set_defaults(func=run, one_shot_analysis=True)


_OUTPUTS = ("baseline_mask", "followup_mask", "overlay", "change_map")


def _check_outputs(args: argparse.Namespace) -> None:
    from ..errors import PhotoError

    for name in _OUTPUTS:
        value = getattr(args, name)
        if value is None:
            continue
        path = Path(value)
        if path.suffix.lower() != ".png":
            raise PhotoError(f"--{name.replace('_', '-')} must name a .png file, got {path.name!r}")
        if not path.parent.is_dir():
            raise PhotoError(
                f"--{name.replace('_', '-')}: folder {str(path.parent)!r} does not exist"
            )


def _write_outputs(args: argparse.Namespace, comparison: Any, baseline_rgb: Any) -> None:
    from ..errors import PhotoError
    from ..io import save_image, save_mask_png

    try:
        if args.baseline_mask:
            save_mask_png(comparison.to_photo(comparison.baseline_seg.mask), args.baseline_mask)
        if args.followup_mask:
            save_mask_png(comparison.to_photo(comparison.followup_seg.mask), args.followup_mask)
        if args.change_map:
            save_mask_png(comparison.to_photo(comparison.change_map), args.change_map)
        if args.overlay:
            from ..services import change_overlay

            change = comparison.to_photo(comparison.change_map)
            save_image(change_overlay(baseline_rgb, change), args.overlay)
    except OSError as exc:
        raise PhotoError(f"Could not write an output file: {exc.strerror or exc}.") from exc


def _load_baseline_map(path: str, baseline: Any, followup: Any, px_per_mm: float | None) -> Any:
    """The ``--baseline-map`` PNG as a label map (uint8 0/1/2) or, when it holds other
    vein values, a vein mask (bool), in the analysis frame compare works in.

    Raises
    ------
    PhotoError
        Unreadable, not a PNG, or of neither size.
    """
    import numpy as np

    from ..errors import PhotoError
    from ..io import load_label_png
    from ..measure import analysis_frame
    from ..measure.given_map import map_in_frame

    arr = load_label_png(path, what="baseline map")
    vein = arr > 0
    labels = arr if bool(np.all(arr[vein] <= 2)) else vein
    b_shape, f_shape = baseline.rgb.shape[:2], followup.rgb.shape[:2]
    ppm = px_per_mm if px_per_mm is not None else baseline.px_per_mm
    frame = analysis_frame(b_shape, f_shape, ppm)
    try:
        return map_in_frame(labels, photo_shape=b_shape, frame_shape=frame.baseline_shape)
    except ValueError as exc:
        (h, w), (fh, fw) = b_shape, frame.baseline_shape
        raise PhotoError(
            f"The baseline map is {arr.shape[1]}×{arr.shape[0]} px but the baseline photo is "
            f"{w}×{h} px (analysed at {fw}×{fh}): draw it on the baseline photo."
        ) from exc


def _summary(d: dict[str, Any]) -> str:
    band = d["improvement_band_pct"]
    pct = d["improvement_pct"]
    lines = []
    conf = d.get("confidence") or {}
    if conf.get("level") == "low":
        # A low-confidence figure is never shown bare: the reasons come first.
        lines.append("LOW CONFIDENCE: " + " ".join(conf.get("reasons", [])))
    if pct is None:
        lines.append("Improvement: not computable (no veins at baseline in the compared region)")
    else:
        lines.append(
            f"Improvement: {pct:.1f} % (range {band[0]:.1f}–{band[1]:.1f} %), grade {d['grade']}, "
            f"target {d['target_pct']:.0f} % {'met' if d['meets_target'] else 'not met'}"
        )
    cls = d["improvement_by_class_pct"]
    lines.append(
        "By class: "
        + ", ".join(f"{k} {v:.1f} %" if v is not None else f"{k} n/a" for k, v in cls.items())
    )
    lines.append("Veins: " + ", ".join(f"{n} {k}" for k, n in d["veins"].items()))
    reg = d["registration"]
    lines.append(
        f"Alignment: quality {reg['quality']:.2f}, residual "
        + (f"{reg['residual_px']:.1f} px" if reg.get("residual_px") is not None else "n/a")
    )
    lines.extend(f"Warning: {w}" for w in d["warnings"])
    lines.extend(f"Note: {n}" for n in conf.get("notes", []))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from ..errors import PhotoError
    from ..io import load_mask_png, load_photo

    if not 0.0 <= args.sensitivity <= 1.0:
        raise PhotoError(f"--sensitivity must be in [0, 1], got {args.sensitivity}")
    if args.target_pct is not None and not (0 < args.target_pct <= 100):
        raise PhotoError(f"--target-pct must be in (0, 100], got {args.target_pct}")
    _check_outputs(args)
    # The two photos decode on worker threads (the decoders release the GIL) while this
    # thread imports the analysis modules.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="load") as pool:
        b_job = pool.submit(load_photo, args.baseline, px_per_mm=args.px_per_mm)
        f_job = pool.submit(load_photo, args.followup)
        from .. import colour, registration, segmentation  # noqa: F401  (compare's own imports)
        from ..measure import compare

        baseline = b_job.result()
        followup = f_job.result()
    roi = None
    if args.roi:
        roi = load_mask_png(args.roi, shape=baseline.rgb.shape[:2])
        if not roi.any():
            raise PhotoError("The region-of-interest mask is empty: draw the area to measure.")
    labels = None
    if args.baseline_map:
        labels = _load_baseline_map(args.baseline_map, baseline, followup, args.px_per_mm)
    comparison = compare(
        baseline,
        followup,
        roi=roi,
        px_per_mm=args.px_per_mm,
        sensitivity=args.sensitivity,
        target_pct=args.target_pct,
        baseline_labels=labels,
    )
    _write_outputs(args, comparison, baseline.rgb)
    d = comparison.to_dict()
    if args.json:
        sys.stdout.write(json.dumps(d, allow_nan=False) + "\n")
    else:
        print(_summary(d))
    return 0
