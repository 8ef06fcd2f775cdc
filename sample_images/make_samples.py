"""Regenerate the demo photo set in this folder, byte for byte, from a fixed seed.

Usage (from the repository root)::

    python sample_images/make_samples.py            # (re)write the photos and manifest.json
    python sample_images/make_samples.py --check    # verify the committed files are identical
    python sample_images/make_samples.py --out DIR  # write elsewhere

Every photo is a phantom from :mod:`vein_tracker.synthetic`: three clients, two treatment
areas each, three or four sessions of 1600×1200 JPEG (quality 88). Session 1 is the
baseline; later sessions show the same leg after treatment, photographed again with a
mildly different pose, exposure and white balance.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from vein_tracker import synthetic as syn

SEED = 20260311
SHAPE = (1200, 1600)  # (H, W): 8 px/mm
JPEG_QUALITY = 88


@dataclass(frozen=True)
class Visit:
    """One follow-up: the treatment outcome since the previous visit and the gap before it."""

    weeks_after_previous: int
    cleared_frac: float
    faded_frac: float
    fade_to: float = 0.5
    n_new: int = 0
    recanalise: int = 0  # how many earlier cleared/faded veins re-open
    staining: bool = False
    bruising: bool = False
    matting: bool = False


@dataclass(frozen=True)
class Area:
    name: str
    visits: tuple[Visit, ...]


@dataclass(frozen=True)
class Client:
    code: str
    tone: str
    first_visit: date
    areas: tuple[Area, ...]
    story: str


CLIENTS = (
    Client(
        code="c01",
        tone="fair",
        first_visit=date(2026, 1, 12),
        story="good responder: reaches the 75 % target by the fourth session",
        areas=(
            Area(
                "left-calf-posterior",
                (
                    Visit(3, 0.40, 0.30, staining=True),
                    Visit(4, 0.45, 0.35, bruising=True),
                    Visit(4, 0.55, 0.30),
                ),
            ),
            Area(
                "right-thigh-lateral",
                (
                    Visit(3, 0.35, 0.35),
                    Visit(4, 0.50, 0.30),
                    Visit(4, 0.50, 0.30, staining=True),
                ),
            ),
        ),
    ),
    Client(
        code="c02",
        tone="olive",
        first_visit=date(2026, 2, 2),
        story="partial response with a new vein",
        areas=(
            Area(
                "left-thigh-medial",
                (
                    Visit(2, 0.20, 0.30, bruising=True),
                    Visit(3, 0.20, 0.25, n_new=2),
                ),
            ),
            Area(
                "right-calf-lateral",
                (
                    Visit(2, 0.25, 0.25),
                    Visit(3, 0.15, 0.30, fade_to=0.6),
                    Visit(4, 0.20, 0.20, n_new=1),
                ),
            ),
        ),
    ),
    Client(
        code="c03",
        tone="medium",
        first_visit=date(2026, 1, 19),
        story="late third visit (9 weeks): a treated vein recanalised",
        areas=(
            Area(
                "left-calf-posterior",
                (
                    Visit(3, 0.45, 0.25),
                    Visit(9, 0.10, 0.10, recanalise=2, matting=True),
                    Visit(3, 0.40, 0.20),
                ),
            ),
            Area(
                "left-ankle-medial",
                (
                    Visit(3, 0.40, 0.30),
                    Visit(9, 0.10, 0.10, recanalise=1),
                ),
            ),
        ),
    ),
)


def _area_seed(client_index: int, area_index: int) -> int:
    return SEED + 1000 * client_index + 100 * area_index


def build(out_dir: Path) -> list[dict[str, object]]:
    """Render every photo into ``out_dir``; return the manifest entries."""
    entries: list[dict[str, object]] = []
    for ci, client in enumerate(CLIENTS):
        for ai, area in enumerate(client.areas):
            seed = _area_seed(ci, ai)
            leg0 = syn.make_leg(seed, shape=SHAPE, tone=client.tone)
            base_cap = syn.identity_capture(
                shape=SHAPE, noise=0.004, jpeg_quality=JPEG_QUALITY, seed=seed
            )
            base = syn.render(leg0, base_cap)
            legs = [leg0]
            renders = [base]
            day = client.first_visit
            days = [day]
            for k, visit in enumerate(area.visits):
                prev = legs[-1]
                reopen = [v.id for v in prev.veins if v.status in ("cleared", "faded")]
                reopen = reopen[: visit.recanalise]
                leg = syn.treat(
                    prev,
                    seed + 10 + k,
                    cleared_frac=visit.cleared_frac,
                    faded_frac=visit.faded_frac,
                    fade_to=visit.fade_to,
                    n_new=visit.n_new,
                    recanalise=reopen,
                    staining=visit.staining,
                    bruising=visit.bruising,
                    matting=visit.matting,
                    by="area",
                )
                cap = syn.random_capture(
                    seed + 20 + k,
                    shape=SHAPE,
                    rotation_deg=6.0,
                    scale=0.06,
                    translate=0.04,
                    perspective=0.0003,
                    exposure=0.15,
                    white_balance=0.06,
                    blur_sigma=(0.0, 0.8),
                    jpeg_quality=JPEG_QUALITY,
                    bend_px=3.0,
                    noise=(0.003, 0.006),
                )
                legs.append(leg)
                renders.append(syn.render(leg, cap))
                day = day + timedelta(weeks=visit.weeks_after_previous)
                days.append(day)
            for session, (leg, rendered, when) in enumerate(
                zip(legs, renders, days, strict=True), start=1
            ):
                name = f"{client.code}_{area.name}_s{session}.jpg"
                assert rendered.jpeg is not None
                (out_dir / name).write_bytes(rendered.jpeg)
                if session == 1:
                    improvement = 0.0
                    statuses: dict[str, int] = {"persisting": len(leg.veins)}
                else:
                    pair = syn.pair_truth(leg0, leg, base, rendered)
                    improvement = pair.true_improvement_pct
                    statuses = {}
                    for st in pair.status_by_vein.values():
                        statuses[st] = statuses.get(st, 0) + 1
                entries.append(
                    {
                        "file": name,
                        "client": client.code,
                        "area": area.name,
                        "session": session,
                        "visit_date": when.isoformat(),
                        "tone": client.tone,
                        "px_per_mm": round(rendered.px_per_mm, 3),
                        "true_improvement_pct": round(improvement, 2),
                        "vein_status_counts": dict(sorted(statuses.items())),
                        "sha256": hashlib.sha256(rendered.jpeg).hexdigest(),
                    }
                )
    return entries


def manifest(entries: list[dict[str, object]]) -> str:
    """The manifest JSON text (stable key order, trailing newline)."""
    doc = {
        "generator": "vein_tracker.synthetic (sample_images/make_samples.py)",
        "seed": SEED,
        "shape_hw": list(SHAPE),
        "jpeg_quality": JPEG_QUALITY,
        "true_improvement": (
            "percent vs session 1, in the session-1 frame over the leg seen in both photos: "
            "100 × (1 − (Σ remaining visibility over baseline vein pixels + new vein pixels) "
            "/ baseline vein pixels); see vein_tracker.synthetic.true_improvement"
        ),
        "clients": {c.code: {"tone": c.tone, "story": c.story} for c in CLIENTS},
        "photos": entries,
    }
    return json.dumps(doc, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument(
        "--check", action="store_true", help="regenerate into memory and compare with --out"
    )
    args = parser.parse_args(argv)
    if args.check:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp)
            text = manifest(build(fresh))
            (fresh / "manifest.json").write_text(text, encoding="utf-8")
            bad = [
                p.name
                for p in sorted(fresh.iterdir())
                if not (args.out / p.name).exists()
                or (args.out / p.name).read_bytes() != p.read_bytes()
            ]
        if bad:
            print(f"differ from a fresh build: {', '.join(bad)}", file=sys.stderr)
            return 1
        print("sample_images: every file matches a fresh build")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    entries = build(args.out)
    (args.out / "manifest.json").write_text(manifest(entries), encoding="utf-8")
    total = sum((args.out / str(e["file"])).stat().st_size for e in entries)
    print(f"wrote {len(entries)} photos ({total / 1e6:.1f} MB) and manifest.json to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
