"""Error of the headline with the phantom's true baseline map, against the automatic map.

Run: ``python benchmarks/baseline_map.py [--per-group 5] [--shape 1500 2000] [--groups ...]``.

``vein-tracker analyze B F --baseline-map MAP.png`` measures on the given baseline vein
map instead of segmenting the baseline (what a reviewed map does in the app). With the
phantom's true map (``make_pair(...).baseline.labels``: 1 spider, 2 reticular) the
baseline side is exact, so what error is left comes from the follow-up side alone
(registration, the follow-up's segmentation and contrast). For each pair of the accuracy
benchmark's groups and seeds (``benchmarks/improvement.py``: seeds from 1000) it runs
``measure.compare`` twice, with the automatic map and with the true map, and prints per
group the median and maximum absolute error against ``true_improvement_pct`` both ways
and how many pairs the true map brought closer. One pair also goes through the CLI
(``analyze --baseline-map`` on PNG files, a subprocess) to check it gives the library's
figure.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from improvement import GROUPS, pair_for

from vein_tracker import measure
from vein_tracker.errors import RegistrationError
from vein_tracker.io import photo_from_array, save_image


@dataclass
class Row:
    group: str
    seed: int
    tone: str
    truth: float
    auto: float
    true_map: float
    refused: str | None = None


def run_pair(group: str, i: int, shape: tuple[int, int], seed0: int) -> Row:
    pair, tone = pair_for(group, i, shape, seed0)
    seed = seed0 + 97 * GROUPS.index(group) + i
    ppm = float(pair.baseline.px_per_mm)
    b = photo_from_array(pair.baseline.rgb, px_per_mm=ppm)
    f = photo_from_array(pair.followup.rgb)
    truth = float(pair.true_improvement_pct)
    try:
        auto = measure.compare(b, f, px_per_mm=ppm)
        given = measure.compare(b, f, px_per_mm=ppm, baseline_labels=pair.baseline.labels)
    except RegistrationError as exc:
        return Row(group, seed, tone, truth, math.nan, math.nan, refused=str(exc))
    return Row(group, seed, tone, truth, float(auto.improvement_pct), float(given.improvement_pct))


def _f(v: float, nd: int = 2) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.{nd}f}"


def table(rows: list[Row]) -> str:
    head = (
        f"{'group':<13} {'n':>3} {'refused':>7} {'auto med':>9} {'auto max':>9} "
        f"{'true med':>9} {'true max':>9} {'closer':>7} {'ratio':>6}"
    )
    lines = [head, "-" * len(head)]
    for g in (*GROUPS, "all"):
        rs = [r for r in rows if g in ("all", r.group)]
        ok = [r for r in rs if r.refused is None]
        if not rs:
            continue
        ea = [abs(r.auto - r.truth) for r in ok]
        et = [abs(r.true_map - r.truth) for r in ok]
        closer = sum(t <= a for a, t in zip(ea, et, strict=True))
        med_a = statistics.median(ea) if ea else math.nan
        med_t = statistics.median(et) if et else math.nan
        lines.append(
            f"{g:<13} {len(rs):>3} {len(rs) - len(ok):>7} {_f(med_a):>9} "
            f"{_f(max(ea, default=math.nan)):>9} {_f(med_t):>9} "
            f"{_f(max(et, default=math.nan)):>9} {f'{closer}/{len(ok)}':>7} "
            f"{_f(med_t / med_a if med_a else math.nan):>6}"
        )
    return "\n".join(lines)


def cli_check(shape: tuple[int, int], seed0: int) -> str:
    """``analyze --baseline-map`` (subprocess, PNG files) against the library on one pair."""
    pair, _ = pair_for("standard", 0, shape, seed0)
    ppm = float(pair.baseline.px_per_mm)
    lib = measure.compare(
        photo_from_array(pair.baseline.rgb, px_per_mm=ppm),
        photo_from_array(pair.followup.rgb),
        px_per_mm=ppm,
        baseline_labels=pair.baseline.labels,
    )
    with tempfile.TemporaryDirectory() as d:
        bp, fp, mp = (Path(d) / n for n in ("b.png", "f.png", "map.png"))
        save_image(pair.baseline.rgb, bp)
        save_image(pair.followup.rgb, fp)
        from PIL import Image

        Image.fromarray(pair.baseline.labels, mode="L").save(mp)
        cmd = [
            sys.executable,
            "-m",
            "vein_tracker",
            "analyze",
            str(bp),
            str(fp),
            "--baseline-map",
            str(mp),
            "--px-per-mm",
            f"{ppm}",
            "--json",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            return f"CLI failed ({proc.returncode}): {proc.stderr.strip()}"
        out: dict[str, Any] = json.loads(proc.stdout)
    return (
        f"CLI analyze --baseline-map: {out['improvement_pct']:.2f} %, library "
        f"{lib.improvement_pct:.2f} %, truth {pair.true_improvement_pct:.2f} %"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-group", type=int, default=5)
    ap.add_argument("--shape", type=int, nargs=2, default=(1500, 2000), metavar=("H", "W"))
    ap.add_argument("--groups", nargs="*", default=list(GROUPS))
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--no-cli", action="store_true")
    a = ap.parse_args()
    shape = (int(a.shape[0]), int(a.shape[1]))
    seed0 = 1_000  # the accuracy benchmark's seeds (calibration uses 90 000)
    rows = []
    for g in a.groups:
        for i in range(a.per_group):
            r = run_pair(g, i, shape, seed0)
            rows.append(r)
            if a.verbose:
                print(
                    f"{g:<13} seed {r.seed} {r.tone:<6} truth {_f(r.truth)} auto {_f(r.auto)} "
                    f"true-map {_f(r.true_map)}{' REFUSED ' + r.refused if r.refused else ''}",
                    flush=True,
                )
    print(f"Absolute error of improvement_pct, points ({shape[1]}x{shape[0]} phantoms)")
    print("auto: the automatic baseline map; true: the phantom's true map (--baseline-map)")
    print(table(rows))
    if not a.no_cli:
        print(cli_check(shape, seed0))


if __name__ == "__main__":
    main()
