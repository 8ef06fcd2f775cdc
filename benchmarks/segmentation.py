"""Benchmark of vein segmentation (issue 4) on phantom baselines, with a Frangi baseline.

Run: ``python benchmarks/segmentation.py [--per-tone 5] [--shape 1500 2000] [--no-12mp]``

For every skin tone it renders ``--per-tone`` phantom baselines (hair, freckles and moles
on) and prints, per tone and overall:

* Dice of the vein mask against the true footprint;
* centreline recall and precision with a 2 px tolerance;
* class accuracy on true vein pixels that were found;
* the fraction of hair and freckle pixels (off the true veins) marked as vein;
* median time per photo;

and the same for the baseline ``skimage.filters.frangi`` (green channel, dark ridges,
Otsu threshold over the leg), with the ratio. Then a vein-free phantom with a brown
staining streak and a bruise (fraction of their area marked as vein), and the time of
one 4000 × 3000 photo.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skimage.filters import frangi, threshold_otsu  # noqa: E402
from skimage.morphology import skeletonize  # noqa: E402

from vein_tracker import synthetic  # noqa: E402
from vein_tracker.segmentation import segment  # noqa: E402

TONES = ("light", "fair", "medium", "olive", "brown")
TOL_PX = 2


def _near(mask: np.ndarray, tol: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tol + 1, 2 * tol + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def score(
    pred_mask: np.ndarray,
    pred_labels: np.ndarray | None,
    pred_skel: np.ndarray | None,
    r: synthetic.Rendered,
    tol_px: int = TOL_PX,
) -> dict[str, float]:
    """Dice, centreline recall/precision (``tol_px``), class accuracy, hair/freckle FP."""
    truth = r.labels > 0
    inter = float((pred_mask & truth).sum())
    denom = float(pred_mask.sum() + truth.sum())
    dice = 2.0 * inter / denom if denom else 1.0
    t_skel = skeletonize(truth)
    p_skel = pred_skel if pred_skel is not None else skeletonize(pred_mask)
    recall = float(_near(p_skel, tol_px)[t_skel].mean()) if t_skel.any() else 1.0
    precision = float(_near(t_skel, tol_px)[p_skel].mean()) if p_skel.any() else 1.0
    found = truth & pred_mask
    if pred_labels is not None and found.any():
        cls_acc = float((pred_labels[found] == r.labels[found]).mean())
    else:
        cls_acc = float("nan")
    look = (r.hair | r.freckles) & ~_near(truth, 1)
    fp_look = float(pred_mask[look].mean()) if look.any() else 0.0
    return {
        "dice": dice,
        "recall": recall,
        "precision": precision,
        "cls_acc": cls_acc,
        "fp_hair_freckle": fp_look,
    }


def frangi_baseline(rgb: np.ndarray, leg: np.ndarray) -> np.ndarray:
    """The textbook pipeline: Frangi (dark ridges) on the green channel, Otsu over the leg."""
    g = rgb[..., 1].astype(np.float64) / 255.0
    v = frangi(g, sigmas=(1, 2, 3, 4, 6), black_ridges=True)
    vals = v[leg]
    if not vals.size or vals.max() <= 0:
        return np.zeros(leg.shape, bool)
    return (v > threshold_otsu(vals)) & leg


def _fmt(rows: list[dict[str, float]], key: str) -> float:
    vals = [r[key] for r in rows if not np.isnan(r[key])]
    return float(np.mean(vals)) if vals else float("nan")


Rows = dict[str, list[dict[str, float]]]


def run_phantoms(
    shape: tuple[int, int], per_tone: int, *, baseline: bool, camera: bool
) -> tuple[Rows, Rows]:
    """Segment ``per_tone`` phantom baselines of each tone (and run the Frangi baseline on
    them): the scores by tone, ours and the baseline's."""
    ours: Rows = defaultdict(list)
    base: Rows = defaultdict(list)
    seed = 1000
    for tone in TONES:
        for _ in range(per_tone):
            seed += 1
            leg = synthetic.make_leg(seed, shape=shape, tone=tone, hair=True, freckles=True)
            cap = None
            if camera:
                cap = synthetic.identity_capture(
                    shape=shape, noise=0.004, blur_sigma=0.5, jpeg_quality=90, seed=seed
                )
            r = synthetic.render(leg, cap)
            t0 = time.perf_counter()
            c0 = time.process_time()
            seg = segment(r.rgb, px_per_mm=r.px_per_mm)
            dt = time.perf_counter() - t0
            row = score(seg.mask, seg.labels, seg.skeleton, r)
            row["time_s"] = dt
            row["cpu_s"] = time.process_time() - c0
            ours[tone].append(row)
            if baseline:
                t0 = time.perf_counter()
                bmask = frangi_baseline(r.rgb, r.leg_mask)
                bdt = time.perf_counter() - t0
                brow = score(bmask, None, None, r)
                brow["time_s"] = bdt
                brow["cpu_s"] = float("nan")
                base[tone].append(brow)
            print(
                f"  seed {seed} {tone:<6} dice {row['dice']:.3f} rec {row['recall']:.3f} "
                f"prec {row['precision']:.3f} cls {row['cls_acc']:.3f} "
                f"fp {row['fp_hair_freckle']:.4f} t {dt:.3f}s",
                flush=True,
            )
    return ours, base


def print_tables(shape: tuple[int, int], ours: Rows, base: Rows) -> None:
    """The per-tone tables of ours and of the baseline, and their ratio."""
    cols = ("dice", "recall", "precision", "cls_acc", "fp_hair_freckle")
    hdr = f"{'tone':<8}{'n':>3} {'Dice':>6} {'recall':>7} {'prec':>6} {'class':>6} "
    hdr += f"{'FP hair+frk':>11} {'t med s':>8} {'cpu med s':>9}"
    for name, res in (("vein_tracker.segmentation", ours), ("baseline frangi+otsu", base)):
        if not any(res.values()):
            continue
        print(f"\n{name} ({shape[1]}x{shape[0]})")
        print(hdr)
        allrows: list[dict[str, float]] = []
        for tone in TONES:
            rows = res[tone]
            allrows += rows
            vals = [_fmt(rows, c) for c in cols]
            tmed = statistics.median(r["time_s"] for r in rows)
            cmed = statistics.median(r["cpu_s"] for r in rows)
            print(
                f"{tone:<8}{len(rows):>3} {vals[0]:>6.3f} {vals[1]:>7.3f} {vals[2]:>6.3f} "
                f"{vals[3]:>6.3f} {vals[4] * 100:>10.2f}% {tmed:>8.3f} {cmed:>9.3f}"
            )
        vals = [_fmt(allrows, c) for c in cols]
        tmed = statistics.median(r["time_s"] for r in allrows)
        cmed = statistics.median(r["cpu_s"] for r in allrows)
        print(
            f"{'all':<8}{len(allrows):>3} {vals[0]:>6.3f} {vals[1]:>7.3f} {vals[2]:>6.3f} "
            f"{vals[3]:>6.3f} {vals[4] * 100:>10.2f}% {tmed:>8.3f} {cmed:>9.3f}"
        )
        dices = [_fmt(res[t], "dice") for t in TONES]
        print(f"lowest tone Dice {min(dices):.3f}")
    if any(base.values()):
        ao = [r for t in TONES for r in ours[t]]
        ab = [r for t in TONES for r in base[t]]
        d_o, d_b = _fmt(ao, "dice"), _fmt(ab, "dice")
        t_o = statistics.median(r["time_s"] for r in ao)
        t_b = statistics.median(r["time_s"] for r in ab)
        print(
            f"\nratio ours/baseline: Dice {d_o / max(d_b, 1e-9):.2f}x, "
            f"speed {t_b / max(t_o, 1e-9):.1f}x faster"
        )


def print_lookalikes(shape: tuple[int, int]) -> None:
    """Look-alikes on a vein-free phantom: brown staining streak and bruise."""
    print("\nlook-alikes on vein-free phantoms (fraction of their area marked as vein)")
    print(f"{'seed':>6} {'tone':<8} {'stain':>8} {'bruise':>8}")
    for i, tone in enumerate(TONES):
        # Every vein cleared: the follow-up is vein-free, with staining along the
        # cleared veins and bruises at the treated sites.
        pair = synthetic.make_pair(
            500 + i,
            shape=shape,
            tone=tone,
            cleared_frac=1.0,
            faded_frac=0.0,
            staining=True,
            bruising=True,
            capture=synthetic.identity_capture(shape=shape),
        )
        fr = pair.followup
        seg = segment(fr.rgb, px_per_mm=fr.px_per_mm)
        st = float(seg.mask[fr.stain].mean()) if fr.stain.any() else float("nan")
        br = float(seg.mask[fr.bruise].mean()) if fr.bruise.any() else float("nan")
        print(
            f"{500 + i:>6} {tone:<8} {st * 100:>7.2f}% {br * 100:>7.2f}%  "
            f"(true vein px {int((fr.labels > 0).sum())}, found {int(seg.mask.sum())})"
        )


def print_12mp() -> None:
    """The time and scores of one 4000 x 3000 photo."""
    leg = synthetic.make_leg(77, shape=(3000, 4000), tone="medium")
    r = synthetic.render(leg)
    ts, cs = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        c0 = time.process_time()
        seg = segment(r.rgb, px_per_mm=r.px_per_mm)
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    row = score(seg.mask, seg.labels, seg.skeleton, r)
    # The same 0.2 mm centreline tolerance as 2 px at 2000 × 1500 is 4 px here.
    row_mm = score(seg.mask, seg.labels, seg.skeleton, r, tol_px=2 * TOL_PX)
    print(
        f"\n4000x3000: median {statistics.median(ts):.3f} s wall, "
        f"{statistics.median(cs):.3f} s CPU over {len(ts)} runs; "
        f"Dice {row['dice']:.3f} class {row['cls_acc']:.3f}; centreline rec/prec "
        f"{row['recall']:.3f}/{row['precision']:.3f} at 2 px, "
        f"{row_mm['recall']:.3f}/{row_mm['precision']:.3f} at 4 px (0.2 mm)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-tone", type=int, default=5, help="phantoms per skin tone (5 → 25)")
    ap.add_argument("--shape", type=int, nargs=2, default=(1500, 2000), metavar=("H", "W"))
    ap.add_argument("--no-baseline", action="store_true", help="skip the Frangi baseline")
    ap.add_argument("--no-12mp", action="store_true", help="skip the 4000 × 3000 timing")
    ap.add_argument("--no-lookalikes", action="store_true", help="skip the stain/bruise check")
    ap.add_argument(
        "--camera",
        action="store_true",
        help="photograph the baselines like a phone (noise, blur 0.5 px, JPEG 90) instead of "
        "the generator's default clean identity capture",
    )
    args = ap.parse_args(argv)
    shape = (int(args.shape[0]), int(args.shape[1]))
    ours, base = run_phantoms(
        shape, args.per_tone, baseline=not args.no_baseline, camera=args.camera
    )
    print_tables(shape, ours, base)
    if not args.no_lookalikes:
        print_lookalikes(shape)
    if not args.no_12mp:
        print_12mp()
    return 0


if __name__ == "__main__":
    sys.exit(main())
