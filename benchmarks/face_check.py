"""The export's face check: false alarms on leg photos, and faces found.

The marketing export leaves a pair out when :func:`vein_tracker.export.detect_faces`
finds a face in it. A false alarm costs a good pair (issue 24: a thigh was flagged); a
miss would publish a face. This script measures both, for the cascade alone (as before:
``verify=False``) and with the face-contrast check (``verify=True``), in the same process:

- no face (false alarms): the bundled demo photos (``sample_images/``), photo-like leg
  phantoms (``synthetic.make_photo_pair``, baseline and follow-up), the classic leg
  phantoms (``synthetic.make_pair``) and scikit-image's bundled photographs without a
  person;
- a face (detections): scikit-image's astronaut, and faces pasted into the demo photos
  at 1/8 to 2/5 of the frame, upright and turned 90 degrees: the astronaut's head in
  colour and faces of ``skimage.data.lfw_subset`` in grey. A face counts as found when
  a box shares at least half of the smaller box with it (a box elsewhere is no find).

Nothing is downloaded: every image ships with the package or scikit-image.

Usage: ``python benchmarks/face_check.py [--phantoms 8]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _u8(img: np.ndarray) -> np.ndarray:
    if img.dtype != np.uint8:
        img = np.clip(img * 255.0 if img.max() <= 1.0 else img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def no_face_images(n_phantoms: int) -> Iterator[tuple[str, np.ndarray]]:
    from skimage import data

    from vein_tracker import synthetic
    from vein_tracker.io import load_photo

    for p in sorted((ROOT / "sample_images").glob("*.jpg")):
        yield "demo photos", load_photo(p.read_bytes()).rgb
    for seed in range(n_phantoms):
        pair = synthetic.make_photo_pair(seed)
        yield "photo-like phantoms", pair.baseline.rgb
        yield "photo-like phantoms", pair.followup.rgb
    for seed in range(n_phantoms):
        pair = synthetic.make_pair(seed, shape=(750, 1000))
        yield "leg phantoms", pair.baseline.rgb
        yield "leg phantoms", pair.followup.rgb
    for name in ("coffee", "chelsea", "rocket", "hubble_deep_field", "horse", "brick", "grass"):
        yield "scikit-image photos", _u8(getattr(data, name)())


def face_images(seed: int = 0) -> Iterator[tuple[str, np.ndarray, tuple[int, int, int, int]]]:
    """Images with one face, and the face's box (x, y, width, height) in px."""
    from skimage import data

    from vein_tracker.io import load_photo

    rng = np.random.default_rng(seed)
    demos = [load_photo(p.read_bytes()).rgb for p in sorted((ROOT / "sample_images").glob("*.jpg"))]
    astro = data.astronaut()
    head = astro[20:220, 130:330]
    yield "astronaut", astro, (130, 20, 200, 200)
    lfw = data.lfw_subset()[:100]
    for k in range(16):
        base = demos[(3 * k + 1) % len(demos)].copy()
        h, w = base.shape[:2]
        side = int(min(h, w) * (0.125, 0.2, 0.3, 0.4)[k % 4])
        if k < 8:
            face = np.asarray(Image.fromarray(head).resize((side, side), Image.Resampling.LANCZOS))
            kind = "astronaut pasted (colour)"
        else:
            grey = _u8(lfw[5 * k])[..., 0]
            face = _u8(
                np.asarray(Image.fromarray(grey).resize((side, side), Image.Resampling.BICUBIC))
            )
            kind = "faces pasted (grey)"
        face = np.rot90(face, (0, 1, 3)[k % 3])
        y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        base[y : y + side, x : x + side] = face
        yield kind, base, (x, y, side, side)


def _covers(found: tuple[int, int, int, int], face: tuple[int, int, int, int]) -> bool:
    """True when the boxes ``found`` and ``face`` (x, y, w, h) share at least half of the
    smaller one (the pasted square holds a head with a margin; the cascade boxes the face)."""
    ix = max(0, min(found[0] + found[2], face[0] + face[2]) - max(found[0], face[0]))
    iy = max(0, min(found[1] + found[3], face[1] + face[3]) - max(found[1], face[1]))
    return ix * iy >= 0.5 * min(found[2] * found[3], face[2] * face[3])


def main() -> None:
    from vein_tracker.export import detect_faces

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phantoms", type=int, default=8, help="phantom pairs of each kind")
    args = ap.parse_args()
    rows: dict[tuple[str, str], list[int]] = {}
    times = {False: 0.0, True: 0.0}
    cases: list[tuple[str, str, np.ndarray, tuple[int, int, int, int] | None]] = [
        ("no face", kind, rgb, None) for kind, rgb in no_face_images(args.phantoms)
    ]
    cases += [("face", kind, rgb, box) for kind, rgb, box in face_images()]
    for truth, kind, rgb, box in cases:
        row = rows.setdefault((truth, kind), [0, 0, 0])
        row[0] += 1
        for i, verify in enumerate((False, True)):
            t0 = time.perf_counter()
            found = detect_faces(rgb, verify=verify)
            times[verify] += time.perf_counter() - t0
            if box is None:
                row[1 + i] += bool(found)
            else:
                row[1 + i] += any(_covers(f, box) for f in found)
    print(f"{'set':<28} {'truth':<8} {'images':>6} {'cascade alone':>14} {'with check':>11}")
    totals = {"no face": [0, 0, 0], "face": [0, 0, 0]}
    for (truth, kind), (n, before, after) in rows.items():
        print(f"{kind:<28} {truth:<8} {n:>6} {before:>14} {after:>11}")
        for j, v in enumerate((n, before, after)):
            totals[truth][j] += v
    n, fa0, fa1 = totals["no face"]
    m, d0, d1 = totals["face"]
    print()
    print(
        f"false alarms (images flagged without a face): {fa0}/{n} = {fa0 / n:.1%} cascade alone, "
        f"{fa1}/{n} = {fa1 / n:.1%} with the check; ratio {fa1 / max(fa0, 1):.2f}"
    )
    print(
        f"faces found: {d0}/{m} = {d0 / m:.1%} cascade alone, {d1}/{m} = {d1 / m:.1%} with "
        "the check"
    )
    print(
        f"time: {times[False]:.1f} s cascade alone, {times[True]:.1f} s with the check; "
        f"ratio {times[True] / max(times[False], 1e-9):.2f}"
    )


if __name__ == "__main__":
    main()
