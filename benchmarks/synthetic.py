"""Phantom generator timing: median wall and CPU time per render, at 3, 12 and 24 MP.

Baseline, run in the same process on the same frame: a cv2 JPEG encode + decode,
the cheapest thing any photo pipeline does with an image of that size.

Run: ``python benchmarks/synthetic.py [--runs N]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import cv2

from vein_tracker import synthetic as S


def _median(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for shape in [(1500, 2000), (3000, 4000), (4000, 6000)]:
        leg = S.make_leg(1, shape=shape)
        cap = S.random_capture(3, shape=shape, bend_px=5.0)
        img = S.render(leg).rgb

        def jpeg_roundtrip(img=img) -> object:  # type: ignore[no-untyped-def]
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
            return cv2.imdecode(buf, cv2.IMREAD_COLOR)

        base_wall, _ = _median(jpeg_roundtrip, args.runs)
        frame = f"{shape[1]}x{shape[0]}"
        for name, fn in [
            ("render identity", lambda leg=leg: S.render(leg)),
            ("render random+bend", lambda leg=leg, cap=cap: S.render(leg, cap)),
        ]:
            wall, cpu = _median(fn, args.runs)
            rows.append((name, frame, wall, cpu, base_wall))
    print("| case | frame | median wall s | median CPU s | baseline JPEG enc+dec s | ratio |")
    print("|---|---|---|---|---|---|")
    for name, frame, wall, cpu, base in rows:
        print(f"| {name} | {frame} | {wall:.2f} | {cpu:.2f} | {base:.3f} | {wall / base:.0f}x |")


if __name__ == "__main__":
    main()
