"""Which difference between two captures moves an identity pair's figure.

Run: ``python benchmarks/capture_ablation.py [--seeds calibration|benchmark]
[--per-group N] [--variants V ...] [--jpeg-quality Q]``.

An identity pair (``benchmarks/photolike.py``'s identity group: the same leg, untreated,
true improvement 0) differs only in its capture: the pose, the lights and each step of
the camera's processing. Each variant photographs the follow-up again with some of
these taken from the baseline's capture (``make_photo_pair``'s ``same_as_baseline``),
all else drawn as before, and ``measure.compare`` reads it twice:

- on the product's own baseline vein map (``auto``: what ``photolike.py`` measures);
- on the phantom's true map, given as ``baseline_labels`` (``truth``: the contrast
  reading alone, with no selection of the veins' pixels).

Variants: ``as-is``; one of ``FOLLOWUP_CAN_SHARE`` each; ``camera`` (every camera step,
the lights still changed); ``all`` (lights and camera: only the pose differs);
``still`` (all, and the same pose: only the draw of the noise differs). It prints each
pair's |estimate| and, per variant, their median and largest. Pairs the product refuses
are left out. ``--jpeg-quality`` saves both photos of every pair at quality ``Q``
(default: each photo's own draw, 72-94).
"""

from __future__ import annotations

import argparse
import sys

from photolike import PER_GROUP, SEED_BASE, median_max, pair_seed, pair_spec

from vein_tracker import measure
from vein_tracker.errors import VeinTrackerError
from vein_tracker.synthetic.photo import FOLLOWUP_CAN_SHARE, make_photo_pair

CAMERA = tuple(n for n in FOLLOWUP_CAN_SHARE if n != "light")
VARIANTS: dict[str, tuple[str, ...]] = {
    "as-is": (),
    **{n: (n,) for n in FOLLOWUP_CAN_SHARE},
    "camera": CAMERA,
    "all": FOLLOWUP_CAN_SHARE,
    "still": FOLLOWUP_CAN_SHARE,  # and the same pose: only the noise's draw differs
}
MAPS = ("auto", "truth")


def readings(
    seed: int, i: int, variant: str, jpeg_quality: int | None = None
) -> dict[str, float] | None:
    """|estimate| of identity pair ``i`` on each map under ``variant``; None when the
    product refuses the pair."""
    kw = pair_spec("identity", i, seed)
    if variant == "still":
        kw.update(pose=0.0, bend_mm=0.0)
    if jpeg_quality is not None:
        kw["jpeg_quality"] = jpeg_quality
    pair = make_photo_pair(seed, same_as_baseline=VARIANTS[variant], **kw)
    b, f = pair.baseline, pair.followup
    ppm = float(b.px_per_mm)
    try:
        auto = measure.compare(b.jpeg, f.jpeg, px_per_mm=ppm)
        truth = measure.compare(b.jpeg, f.jpeg, px_per_mm=ppm, baseline_labels=b.labels)
    except VeinTrackerError:
        return None
    return {"auto": abs(auto.improvement_pct), "truth": abs(truth.improvement_pct)}


def table(rows: dict[str, list[dict[str, float]]]) -> str:
    head = f"{'variant':<14} {'n':>2} " + " ".join(f"{m + ' med/max':>16}" for m in MAPS)
    lines = [head, "-" * len(head)]
    for name, rs in rows.items():
        cells = [median_max([r[m] for r in rs]) for m in MAPS]
        lines.append(f"{name:<14} {len(rs):>2} " + " ".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", choices=sorted(SEED_BASE), default="calibration")
    ap.add_argument("--per-group", type=int, default=PER_GROUP)
    ap.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--jpeg-quality", type=int, choices=range(1, 101), metavar="Q", default=None)
    a = ap.parse_args(argv)
    rows: dict[str, list[dict[str, float]]] = {v: [] for v in a.variants}
    for i in range(min(a.per_group, PER_GROUP)):
        seed = pair_seed(a.seeds, "identity", i)
        for name in a.variants:
            r = readings(seed, i, name, a.jpeg_quality)
            if r is None:
                print(f"  pair {i} seed {seed} {name:<14} refused", flush=True)
                continue
            rows[name].append(r)
            figs = " ".join(f"{m} {r[m]:6.1f}" for m in MAPS)
            print(f"  pair {i} seed {seed} {name:<14} {figs}", flush=True)
    jpeg = "" if a.jpeg_quality is None else f", JPEG quality {a.jpeg_quality}"
    print(f"\nidentity pairs, {a.seeds} seeds{jpeg}: |estimate| (true 0), points")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
