"""Where the photo-like error comes from: the baseline vein map's false pixels, or the
part of each vein it holds.

Run: ``python benchmarks/map_extent.py [--seeds calibration|benchmark] [--groups G ...]
[--per-group N]``.

For each photo-like pair (``benchmarks/photolike.py``'s groups, seeds and scale given)
``measure.compare`` runs on four baseline vein maps, each given as ``baseline_labels``
(what a reviewed map does in the app):

- ``auto``: the product's own map (what ``photolike.py`` measures);
- ``precise``: the automatic map without its false pixels (a perfect precision fix: no
  hair, texture or hand left, the veins' pixels as found);
- ``whole``: every true vein the automatic map touches, with all its pixels (a perfect
  fix of each found vein's extent, no vein found that was not);
- ``truth``: the phantom's whole map.

The same follow-up, registration and measurement serve all four, so the differences are
the map's alone. It prints each pair's figures and, per group and overall, the median and
largest absolute error of each map against ``true_improvement_pct``. Pairs the product
refuses are left out.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np
from photolike import GROUPS, PER_GROUP, SEED_BASE, median_max, pair_seed, pair_spec

from vein_tracker import measure
from vein_tracker.errors import VeinTrackerError
from vein_tracker.synthetic.photo import make_photo_pair

MAPS = ("auto", "precise", "whole", "truth")


@dataclass
class Row:
    group: str
    seed: int
    truth: float
    est: dict[str, float]

    def error(self, name: str) -> float:
        return abs(self.est[name] - self.truth)


def maps_of(
    auto: np.ndarray, true_labels: np.ndarray, true_ids: np.ndarray
) -> dict[str, np.ndarray]:
    """The four baseline maps (0 none, 1 spider, 2 reticular) on the baseline photo."""
    found = auto > 0
    touched = np.unique(true_ids[found & (true_labels > 0)])
    touched = touched[touched > 0]
    return {
        "auto": auto,
        "precise": np.where(found & (true_labels > 0), auto, 0).astype(np.uint8),
        "whole": np.where(np.isin(true_ids, touched), true_labels, 0).astype(np.uint8),
        "truth": true_labels.astype(np.uint8),
    }


def run_pair(group: str, i: int, seed: int) -> Row | None:
    pair = make_photo_pair(seed, **pair_spec(group, i, seed))
    b, f = pair.baseline, pair.followup
    assert b.jpeg is not None
    assert f.jpeg is not None
    ppm = float(b.px_per_mm)
    try:
        auto = measure.compare(b.jpeg, f.jpeg, px_per_mm=ppm)
    except VeinTrackerError:
        return None
    own = np.asarray(auto.to_photo(auto.baseline_seg.labels), np.uint8)
    est = {"auto": float(auto.improvement_pct)}
    for name, labels in maps_of(own, b.labels, b.vein_ids).items():
        if name != "auto":
            c = measure.compare(b.jpeg, f.jpeg, px_per_mm=ppm, baseline_labels=labels)
            est[name] = float(c.improvement_pct)
    return Row(group, seed, float(pair.true_improvement_pct), est)


def table(rows: list[Row]) -> str:
    head = f"{'group':<16} {'n':>2} " + " ".join(f"{m + ' med/max':>16}" for m in MAPS)
    lines = [head, "-" * len(head)]
    for name in (*GROUPS, "overall"):
        rs = [r for r in rows if name in (r.group, "overall")]
        if not rs:
            continue
        cells = [median_max([r.error(m) for r in rs]) for m in MAPS]
        lines.append(f"{name:<16} {len(rs):>2} " + " ".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", choices=sorted(SEED_BASE), default="calibration")
    ap.add_argument("--groups", nargs="*", default=[g for g in GROUPS if g != "low-res"])
    ap.add_argument("--per-group", type=int, default=PER_GROUP)
    a = ap.parse_args(argv)
    rows: list[Row] = []
    for g in a.groups:
        for i in range(min(a.per_group, PER_GROUP)):
            seed = pair_seed(a.seeds, g, i)
            row = run_pair(g, i, seed)
            if row is None:
                print(f"  {g:<15} {i} seed {seed}: refused", flush=True)
                continue
            rows.append(row)
            figs = " ".join(f"{m} {row.est[m]:6.1f}" for m in MAPS)
            print(f"  {g:<15} {i} seed {seed} truth {row.truth:6.1f} {figs}", flush=True)
    print(f"\n{len(rows)} measured photo-like pairs, {a.seeds} seeds: |error|, points")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
