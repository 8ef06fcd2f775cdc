"""Phantom generator timing: median wall and CPU time per render, at 3, 12 and 24 MP,
and of the photo-like phantoms (one photo, and a whole pair with its truth) at the sizes
``benchmarks/photolike.py`` renders.

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
from vein_tracker.synthetic import photo_camera as PC


def _median(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def _classic_rows(shape: tuple[int, int], runs: int) -> list[tuple[str, str, float, float, float]]:
    """Timing rows of the clean phantoms at one frame size."""
    leg = S.make_leg(1, shape=shape)
    cap = S.random_capture(3, shape=shape, bend_px=5.0)
    img = S.render(leg).rgb

    def jpeg_roundtrip() -> object:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)

    def identity() -> object:
        return S.render(leg)

    def random_bend() -> object:
        return S.render(leg, cap)

    base_wall, _ = _median(jpeg_roundtrip, runs)
    frame = f"{shape[1]}x{shape[0]}"
    out = []
    for name, fn in [("render identity", identity), ("render random+bend", random_bend)]:
        wall, cpu = _median(fn, runs)
        out.append((name, frame, wall, cpu, base_wall))
    return out


def _photo_rows(shape: tuple[int, int], runs: int) -> list[tuple[str, str, float, float, float]]:
    """Timing rows of the photo-like phantoms at one frame size."""
    img = S.render(S.make_leg(1, shape=shape)).rgb

    def jpeg_roundtrip() -> object:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)

    base_wall, _ = _median(jpeg_roundtrip, runs)
    frame = f"{shape[1]}x{shape[0]}"
    scene = S.make_photo_scene(2, shape=shape, px_per_mm=6.0, layout="crossed", hand=True)
    pcap = PC.photo_capture(3, shape=shape, lighting=PC.random_lighting(3), watermark=True)

    def one_photo() -> object:
        return S.render_photo(scene, pcap)

    def one_pair() -> object:
        return S.make_photo_pair(4, shape=shape, px_per_mm=6.0, layout="two")

    out = []
    for name, fn in [
        ("render photo-like (2 legs, hand)", one_photo),
        ("photo-like pair + truth", one_pair),
    ]:
        wall, cpu = _median(fn, runs)
        out.append((name, frame, wall, cpu, base_wall))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows: list[tuple[str, str, float, float, float]] = []
    for shape in [(1500, 2000), (3000, 4000), (4000, 6000)]:
        rows.extend(_classic_rows(shape, args.runs))
    for shape in [(1200, 1600), (1500, 2000), (1800, 2400)]:
        rows.extend(_photo_rows(shape, args.runs))
    print("| case | frame | median wall s | median CPU s | baseline JPEG enc+dec s | ratio |")
    print("|---|---|---|---|---|---|")
    for name, frame, wall, cpu, base in rows:
        print(f"| {name} | {frame} | {wall:.2f} | {cpu:.2f} | {base:.3f} | {wall / base:.0f}x |")


if __name__ == "__main__":
    main()
