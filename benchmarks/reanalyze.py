"""Throughput of batch re-analysis (issue 9): pairs per minute with 1 and 2 workers.

Run: ``python benchmarks/reanalyze.py [--pairs 4] [--shape 1500 2000] [--dask]``

Seeds a throw-away clinic (SQLite + local photo store in a temporary folder) with
``--pairs`` treatment areas, each with a phantom baseline and follow-up JPEG
(``vein_tracker.synthetic``) and an analysis stored by an older algorithm version. Each
row re-analyses a fresh copy of that clinic with ``vein_tracker.reanalyze.reanalyze``:

* ``serial`` (in this process, no pool): the baseline;
* ``local`` with 1 and 2 worker processes (spawn);
* with ``--dask``, a ``dask.distributed.LocalCluster`` of 2 single-thread worker processes.

It prints wall time, pairs per minute and the speed-up over ``local`` with 1 worker.
The machine is shared: the load average is printed with the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vein_tracker import ALGORITHM_VERSION, services, synthetic  # noqa: E402
from vein_tracker.config import Settings, get_settings  # noqa: E402
from vein_tracker.io import encode_image  # noqa: E402
from vein_tracker.reanalyze import ReanalysisSummary, reanalyze  # noqa: E402
from vein_tracker.storage import (  # noqa: E402
    SYSTEM_ACTOR,
    Passwords,
    Screening,
    fast_test_hasher,
    open_repository,
)

OLD_VERSION = "0.0.1"


def settings_for(data_dir: Path) -> Settings:
    return dataclasses.replace(
        get_settings(),
        data_dir=data_dir,
        db_url=f"sqlite:///{data_dir / 'vein_tracker.db'}",
        encryption_key=None,
    )


def seed(data_dir: Path, n_pairs: int, shape: tuple[int, int]) -> None:
    """A clinic with ``n_pairs`` areas, each with a stale analysis of its photo pair."""
    repo = open_repository(settings_for(data_dir), passwords=Passwords(fast_test_hasher()))
    try:
        client = repo.create_client(SYSTEM_ACTOR, name="Bench Client", screening=Screening())
        day0 = date(2026, 1, 5)
        repo.record_consent(SYSTEM_ACTOR, client.id, kind="treatment_photography", signed_at=day0)
        regions = ("calf", "thigh", "knee")
        for i in range(n_pairs):
            pair = synthetic.make_pair(100 + i, shape=shape, tone=tuple(synthetic.TONES)[i % 5])
            area = repo.create_area(
                SYSTEM_ACTOR,
                client.id,
                side=("left", "right")[i % 2],
                view="posterior",
                region=regions[i % 3],
                note=f"bench {i}",
            )
            visits = [
                repo.create_visit(
                    SYSTEM_ACTOR,
                    client.id,
                    visit_date=day0 + timedelta(days=d),
                    sclerosant="sodium_tetradecyl_sulfate",
                    area_ids=(area.id,),
                )
                for d in (i, 21 + i)
            ]
            b = repo.add_photo(
                SYSTEM_ACTOR, area.id, visits[0].id, encode_image(pair.baseline.rgb, quality=92)
            )
            f = repo.add_photo(
                SYSTEM_ACTOR,
                area.id,
                visits[1].id,
                pair.followup.jpeg or encode_image(pair.followup.rgb, quality=92),
            )
            repo.save_analysis(
                SYSTEM_ACTOR,
                b.id,
                f.id,
                params=services.AnalysisParams().to_dict(),
                result={"improvement_pct": None},
                algorithm_version=OLD_VERSION,
            )
    finally:
        repo.close()


def run(template: Path, work: Path, label: str, **kwargs: Any) -> ReanalysisSummary:
    target = work / label.replace(" ", "_")
    shutil.copytree(template, target)
    summary = reanalyze(settings=settings_for(target), show_progress=False, **kwargs)
    shutil.rmtree(target)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=4, help="pairs in the clinic (default 4)")
    ap.add_argument(
        "--shape", type=int, nargs=2, default=(1500, 2000), metavar=("H", "W"), help="photo size"
    )
    ap.add_argument("--dask", action="store_true", help="add a LocalCluster row (2 workers)")
    args = ap.parse_args(argv)
    if args.pairs < 1:
        ap.error("--pairs must be at least 1")
    shape = (int(args.shape[0]), int(args.shape[1]))
    load0 = os.getloadavg()
    rows: list[tuple[str, ReanalysisSummary]] = []
    with tempfile.TemporaryDirectory(prefix="vt_bench_re_") as tmp:
        template = Path(tmp) / "template"
        template.mkdir()
        print(f"Seeding {args.pairs} pairs of {shape[1]} × {shape[0]} px (not timed)...")
        seed(template, args.pairs, shape)
        work = Path(tmp)
        cases: tuple[tuple[str, dict[str, Any]], ...] = (
            ("serial (baseline)", {"executor": "serial"}),
            ("local, 1 worker", {"executor": "local", "workers": 1}),
            ("local, 2 workers", {"executor": "local", "workers": 2}),
        )
        for label, kw in cases:
            print(f"  {label}...", flush=True)
            rows.append((label, run(template, work, label, **kw)))
        if args.dask:
            from dask.distributed import LocalCluster

            print("  dask LocalCluster, 2 workers...", flush=True)
            # dask workers read their settings from their own environment, as on a real
            # cluster: set it before the worker processes start.
            target = work / "dask"
            shutil.copytree(template, target)
            saved = {k: os.environ.get(k) for k in ("VEIN_TRACKER_DATA", "VEIN_TRACKER_DB_URL")}
            os.environ["VEIN_TRACKER_DATA"] = str(target)
            os.environ.pop("VEIN_TRACKER_DB_URL", None)
            try:
                with LocalCluster(
                    n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
                ) as cluster:
                    s = reanalyze(
                        settings=settings_for(target),
                        executor="dask",
                        scheduler=cluster.scheduler_address,
                        show_progress=False,
                    )
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            rows.append(("dask LocalCluster, 2 workers", s))
    load1 = os.getloadavg()
    print()
    print(
        f"Re-analysis throughput to algorithm {ALGORITHM_VERSION}: {args.pairs} pairs of "
        f"{shape[1]} × {shape[0]} px; cores {os.cpu_count()}; load average {load0[0]:.1f} "
        f"at start, {load1[0]:.1f} at end (machine shared)"
    )
    print(
        f"{'executor':<30}{'workers':>8}{'done':>6}{'failed':>7}{'wall s':>9}"
        f"{'pairs/min':>11}{'vs 1 worker':>13}"
    )
    one = next((s for label, s in rows if label == "local, 1 worker"), None)
    for label, s in rows:
        speed = s.pairs_per_minute / one.pairs_per_minute if one and one.pairs_per_minute else 0
        print(
            f"{label:<30}{s.workers:>8}{s.done:>6}{s.failed:>7}{s.seconds:>9.1f}"
            f"{s.pairs_per_minute:>11.2f}{speed:>12.2f}×"
        )
        for o in s.outcomes:
            if o.status == "failed":
                print(f"    failed pair {o.task.analysis_id}: {o.error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
