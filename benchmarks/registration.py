"""Benchmark of registration and colour normalisation on phantom pairs (issue 3).

Run: ``python benchmarks/registration.py [--pairs 30] [--large 3] [--threads 1]``

Prints, for rigid and for bent (non-rigid) phantom pairs at 2000×1500 with the
issue's capture changes, the alignment error over follow-up leg pixels against the
generator's exact map (median, 95th percentile, max, pooled over all pairs; the
worst pair), the success rate and the time per pair — for ``register`` and for a
plain ORB + RANSAC homography baseline in the same run, with the ratios. Then the
refusal rate on unrelated legs and on photos blurred beyond use, the timing at
4000×3000, and the colour error (ΔE2000 on skin) of identity pairs after
normalisation, against a grey-world gain baseline.

Phantom generation is not timed. Timing uses ``cv2.setNumThreads(--threads)``; with one
thread the process CPU time is the single-core cost even on a busy machine, where wall
time also counts waiting for the CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from vein_tracker import synthetic as syn
from vein_tracker.colour import delta_e2000, normalise_colour, skin_mask
from vein_tracker.registration import register

SHAPE = (1500, 2000)
LARGE = (3000, 4000)


@dataclass
class Result:
    ok: bool
    errors: np.ndarray  # px, empty when not ok
    seconds: float
    cpu: float
    reason: str | None = None


def true_errors(
    mapper: Callable[[np.ndarray], np.ndarray], rendered: syn.Rendered, step: int
) -> np.ndarray:
    """Errors (baseline px) of a follow-up -> baseline mapping over follow-up leg pixels
    whose true baseline position lies inside the baseline frame."""
    h, w = rendered.rgb.shape[:2]
    ys, xs = np.nonzero(rendered.leg_mask)
    ys, xs = ys[::step], xs[::step]
    truth = rendered.to_baseline_map[ys, xs].astype(np.float64)
    inside = (truth[:, 0] >= 0) & (truth[:, 0] < w) & (truth[:, 1] >= 0) & (truth[:, 1] < h)
    q = np.stack([xs, ys], axis=1).astype(np.float64)[inside]
    return np.asarray(np.linalg.norm(mapper(q) - truth[inside], axis=1))


def apply_h(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.hstack([pts, np.ones((len(pts), 1))]) @ h.T
    return p[:, :2] / p[:, 2:]


def orb_ransac(baseline: np.ndarray, followup: np.ndarray) -> np.ndarray | None:
    """Plain baseline: ORB on full-resolution grey, cross-checked Hamming matches, RANSAC."""
    orb = cv2.ORB.create(nfeatures=5000)
    gb = cv2.cvtColor(baseline, cv2.COLOR_RGB2GRAY)
    gf = cv2.cvtColor(followup, cv2.COLOR_RGB2GRAY)
    kb, db = orb.detectAndCompute(gb, None)
    kf, df = orb.detectAndCompute(gf, None)
    if db is None or df is None or len(kb) < 4 or len(kf) < 4:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(df, db)
    if len(matches) < 4:
        return None
    pf = np.array([kf[m.queryIdx].pt for m in matches], dtype=np.float32)
    pb = np.array([kb[m.trainIdx].pt for m in matches], dtype=np.float32)
    h, inl = cv2.findHomography(pf, pb, cv2.RANSAC, 3.0)
    if h is None or inl is None or int(inl.sum()) < 10:
        return None
    # Warp too, so both methods deliver the aligned follow-up.
    cv2.warpPerspective(followup, h, (baseline.shape[1], baseline.shape[0]))
    return np.asarray(h, dtype=np.float64)


def run_ours(pair: syn.PhantomPair, step: int) -> Result:
    c, t = time.process_time(), time.perf_counter()
    reg = register(pair.baseline.rgb, pair.followup.rgb)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    if not reg.ok:
        return Result(False, np.empty(0), dt, dc, reg.reason)
    return Result(True, true_errors(reg.map_points, pair.followup, step), dt, dc)


def run_orb(pair: syn.PhantomPair, step: int) -> Result:
    c, t = time.process_time(), time.perf_counter()
    h = orb_ransac(pair.baseline.rgb, pair.followup.rgb)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    if h is None:
        return Result(False, np.empty(0), dt, dc, "no homography")
    return Result(True, true_errors(lambda q: apply_h(h, q), pair.followup, step), dt, dc)


def make_pairs(n: int, shape: tuple[int, int], *, bend: bool, seed0: int) -> list[syn.PhantomPair]:
    pairs = []
    for i in range(n):
        seed = seed0 + i
        rng = np.random.default_rng([seed, 3])
        bend_px = float(rng.uniform(4.0, 8.0)) * shape[1] / SHAPE[1] if bend else 0.0
        cap = syn.random_capture(seed, shape=shape, bend_px=bend_px)
        cleared = float(rng.uniform(0.3, 0.9))
        faded = float(min(0.2, 1.0 - cleared))
        pairs.append(
            syn.make_pair(seed, shape=shape, capture=cap, cleared_frac=cleared, faded_frac=faded)
        )
    return pairs


def summarise(results: list[Result]) -> dict[str, float]:
    ok = [r for r in results if r.ok]
    pooled = np.concatenate([r.errors for r in ok]) if ok else np.array([np.nan])
    return {
        "success": 100.0 * len(ok) / max(len(results), 1),
        "median": float(np.median(pooled)),
        "p95": float(np.percentile(pooled, 95)),
        "max": float(np.max(pooled)),
        "worst_pair_median": max((float(np.median(r.errors)) for r in ok), default=np.nan),
        "pairs_max_le_1_5": 100.0
        * sum(float(r.errors.max()) <= 1.5 for r in ok)
        / max(len(results), 1),
        "time": statistics.median(r.seconds for r in results),
        "cpu": statistics.median(r.cpu for r in results),
    }


def print_table(title: str, ours: dict[str, float], orb: dict[str, float]) -> None:
    print(f"\n{title}")
    print(f"| {'metric':30} | {'register':>10} | {'ORB+RANSAC':>10} | {'ratio ORB/ours':>14} |")
    print(f"|{'-' * 32}|{'-' * 12}|{'-' * 12}|{'-' * 16}|")
    rows = [
        ("median error px", "median"),
        ("95th percentile error px", "p95"),
        ("max error px", "max"),
        ("worst pair median px", "worst_pair_median"),
        ("pairs with max <= 1.5 px %", "pairs_max_le_1_5"),
        ("success %", "success"),
        ("wall time per pair s (median)", "time"),
        ("CPU time per pair s (median)", "cpu"),
    ]
    for label, key in rows:
        a, b = ours[key], orb[key]
        ratio = b / a if a and np.isfinite(a) and np.isfinite(b) else float("nan")
        print(f"| {label:30} | {a:10.3f} | {b:10.3f} | {ratio:14.2f} |")


def refusal_table(n: int) -> None:
    if n <= 0:
        return
    print("\nPairs that must be refused (2000×1500)")
    print(f"| {'case':30} | {'refused':>8} | {'reason names the cause':>22} | example reason")
    print(f"|{'-' * 32}|{'-' * 10}|{'-' * 24}|{'-' * 40}")
    unrelated = []
    for i in range(n):
        a = syn.make_pair(500 + i, shape=SHAPE)
        b = syn.make_pair(600 + i, shape=SHAPE)
        unrelated.append(register(a.baseline.rgb, b.followup.rgb))
    blurred = []
    for i in range(n):
        rng = np.random.default_rng([700 + i, 5])
        # Beyond use: σ 4-8 px at 10 px/mm (0.4-0.8 mm) wipes out sub-millimetre veins.
        cap = syn.random_capture(700 + i, shape=SHAPE, blur_sigma=float(rng.uniform(4.0, 8.0)))
        p = syn.make_pair(700 + i, shape=SHAPE, capture=cap)
        if i % 2:
            blurred.append(register(p.baseline.rgb, p.followup.rgb))
        else:  # a blurred baseline against a sharp follow-up
            blurred.append(register(p.followup.rgb, p.baseline.rgb))
    for label, regs, cause in (
        ("unrelated legs", unrelated, "same area"),
        ("one photo blurred (σ 4-8 px)", blurred, "blurred"),
    ):
        refused = sum(not r.ok for r in regs)
        named = sum((not r.ok) and cause in (r.reason or "") for r in regs)
        example = next((r.reason for r in regs if not r.ok and r.reason), "")
        pct_refused = 100 * refused / len(regs)
        pct_named = 100 * named / len(regs)
        print(f"| {label:30} | {pct_refused:7.0f}% | {pct_named:21.0f}% | {example[:90]}")


def large_table(n: int, step: int) -> None:
    if n <= 0:
        return
    print("\n4000×3000 (12 MP) rigid pairs")
    pairs = make_pairs(n, LARGE, bend=False, seed0=900)
    ours = [run_ours(p, step * 4) for p in pairs]
    orb = [run_orb(p, step * 4) for p in pairs]
    print_table("", summarise(ours), summarise(orb))


def colour_table(n: int) -> None:
    if n <= 0:
        return
    print("\nColour: identity pairs (same leg, untreated; new pose, exposure ±20 %, WB ±8 %)")
    de_before, de_ours, de_gw = [], [], []
    times = []
    for i in range(n):
        seed = 800 + i
        leg = syn.make_leg(seed, shape=SHAPE)
        b = syn.render(leg, syn.identity_capture(shape=SHAPE, noise=0.004, jpeg_quality=90))
        f = syn.render(leg, syn.random_capture(seed, shape=SHAPE))
        reg = register(b.rgb, f.rgb)
        if not reg.ok:
            print(f"  pair {seed}: not registered ({reg.reason})")
            continue
        skin = skin_mask(b.rgb) & reg.valid
        t = time.process_time()
        norm = normalise_colour(b.rgb, reg.warped, mask=skin)
        times.append(time.process_time() - t)
        de_before.append(norm.delta_e_before)
        de_ours.append(norm.delta_e)
        # Baseline: grey-world gains on skin (ratio of channel means), no illumination field.
        ref = b.rgb[skin].astype(np.float64)
        img = reg.warped[skin].astype(np.float64)
        gains = ref.mean(axis=0) / np.maximum(img.mean(axis=0), 1e-6)
        gw = np.clip(reg.warped.astype(np.float64) * gains, 0, 255).round().astype(np.uint8)
        de_gw.append(delta_e2000(b.rgb, gw, mask=skin))
    print(f"| {'metric':34} | {'value':>8} |")
    print(f"|{'-' * 36}|{'-' * 10}|")
    print(f"| {'pairs':34} | {len(de_ours):8d} |")
    print(f"| {'mean ΔE2000 before normalisation':34} | {np.mean(de_before):8.2f} |")
    print(f"| {'mean ΔE2000 grey-world baseline':34} | {np.mean(de_gw):8.2f} |")
    print(f"| {'mean ΔE2000 normalise_colour':34} | {np.mean(de_ours):8.2f} |")
    print(f"| {'max pair ΔE2000 normalise_colour':34} | {np.max(de_ours):8.2f} |")
    print(f"| {'ratio grey-world / ours':34} | {np.mean(de_gw) / np.mean(de_ours):8.2f} |")
    print(f"| {'normalise_colour CPU s (median)':34} | {statistics.median(times):8.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=30, help="pairs per table (default 30)")
    ap.add_argument("--refusals", type=int, default=10, help="unrelated/blurred pairs each")
    ap.add_argument("--large", type=int, default=3, help="4000×3000 pairs to time (default 3)")
    ap.add_argument("--colour", type=int, default=10, help="identity pairs for colour")
    ap.add_argument("--threads", type=int, default=1, help="cv2 threads (default 1)")
    ap.add_argument("--step", type=int, default=13, help="leg-pixel subsampling for errors")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"cv2 threads: {cv2.getNumThreads()}; phantoms {SHAPE[1]}×{SHAPE[0]}; "
        f"load average {load:.1f} on {os.cpu_count()} cores"
    )

    for bend, title in ((False, "Rigid pairs"), (True, "Non-rigid pairs (bend 4-8 px)")):
        if args.pairs <= 0:
            break
        pairs = make_pairs(args.pairs, SHAPE, bend=bend, seed0=1000 if bend else 0)
        ours = [run_ours(p, args.step) for p in pairs]
        orb = [run_orb(p, args.step) for p in pairs]
        for p, r in zip(pairs, ours, strict=True):
            if not r.ok:
                print(f"  seed {p.followup.capture.seed}: refused: {r.reason}")
        print_table(f"{title}, {len(pairs)} pairs at 2000×1500", summarise(ours), summarise(orb))
    refusal_table(args.refusals)
    large_table(args.large, args.step)
    colour_table(args.colour)


if __name__ == "__main__":
    main()
