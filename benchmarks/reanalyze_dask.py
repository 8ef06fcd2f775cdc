"""Re-analysis throughput of a clinic group's set-up: PostgreSQL + S3 store + Dask workers.

Run: ``python benchmarks/reanalyze_dask.py [--pairs 4] [--shape 1500 2000] [--rounds 3]
[--pg-url URL]``

What a clinic group deploys (docs/SCALE_OUT.md), on this machine: a PostgreSQL
database (``--pg-url``, else a throw-away cluster of the installed PostgreSQL), moto's
S3-compatible server over HTTP on 127.0.0.1 as the photo store, and
``dask.distributed.LocalCluster`` worker processes that need no disk of the coordinator
(each has its own scratch folder and knows only the database URL, the store URL and the
AWS variables). A clinic of ``--pairs`` phantom pairs (JPEG, 92) with stale
analyses is seeded once; each row re-analyses a fresh copy of its database
(``CREATE DATABASE ... TEMPLATE``) with ``vein_tracker.reanalyze.reanalyze``, in
``--rounds`` interleaved rounds (the median is reported):

* ``serial``: every pair in this process, on the same database and store (the baseline);
* ``dask, 1 worker`` and ``dask, 2 workers``: single-thread worker processes (the pair's
  own two analysis threads run inside each).

It prints wall time, pairs per minute, CPU seconds per pair (serial row: this process's
CPU time) and the ratio to the serial row, with the stored bytes per photo and per
analysis's masks that the cost model of docs/SCALE_OUT.md uses. Cluster start-up and
the import of the analysis code (long-lived workers have it) are not timed. The machine
is shared: the load average is printed with the results.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.s3_server import list_keys, moto_server, s3_env  # noqa: E402
from vein_tracker import ALGORITHM_VERSION, services, synthetic  # noqa: E402
from vein_tracker.io import encode_image  # noqa: E402
from vein_tracker.reanalyze import (  # noqa: E402
    ReanalysisSummary,
    close_worker_repositories,
    reanalyze,
)
from vein_tracker.storage import (  # noqa: E402
    SYSTEM_ACTOR,
    Passwords,
    Screening,
    fast_test_hasher,
    open_repository,
)

OLD_VERSION = "0.0.1"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL cluster on a free port of 127.0.0.1 (run as ``postgres`` under root)."""
    roots = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not roots:
        raise SystemExit("PostgreSQL is not installed: give --pg-url")
    bindir = roots[-1].parent
    base = Path(tempfile.mkdtemp(prefix="vt-bench-pg-"))
    base.chmod(0o755)  # the postgres user must reach its cluster
    run_as: list[str] = []
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, user="postgres")
    port = _free_port()
    data = base / "data"
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "vt"],
        check=True,
        capture_output=True,
    )
    pg_ctl = [*run_as, str(bindir / "pg_ctl"), "-D", str(data)]
    subprocess.run(
        [
            *pg_ctl,
            "-w",
            "-l",
            str(base / "log"),
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://vt@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _admin(server_url: str, sql: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(sql))
    finally:
        engine.dispose()


def _db_url(server_url: str, name: str) -> str:
    return f"{server_url.rpartition('/')[0]}/{name}"


def seed(n_pairs: int, shape: tuple[int, int]) -> None:
    """A clinic (from the environment's settings) with ``n_pairs`` stale analyses."""
    repo = open_repository(passwords=Passwords(fast_test_hasher()))
    try:
        client = repo.create_client(SYSTEM_ACTOR, name="Bench Client", screening=Screening())
        day0 = date(2026, 1, 5)
        repo.record_consent(SYSTEM_ACTOR, client.id, kind="treatment_photography", signed_at=day0)
        for i in range(n_pairs):
            pair = synthetic.make_pair(100 + i, shape=shape, tone=tuple(synthetic.TONES)[i % 5])
            area = repo.create_area(
                SYSTEM_ACTOR,
                client.id,
                side=("left", "right")[i % 2],
                view="posterior",
                region=("calf", "thigh", "knee")[i % 3],
                note=f"bench {i}",
            )
            ids = []
            for d, rgb in ((i, pair.baseline.rgb), (21 + i, pair.followup.rgb)):
                visit = repo.create_visit(
                    SYSTEM_ACTOR,
                    client.id,
                    visit_date=day0 + timedelta(days=d),
                    sclerosant="sodium_tetradecyl_sulfate",
                    area_ids=(area.id,),
                )
                photo = repo.add_photo(
                    SYSTEM_ACTOR, area.id, visit.id, encode_image(rgb, quality=92)
                )
                ids.append(photo.id)
            repo.save_analysis(
                SYSTEM_ACTOR,
                ids[0],
                ids[1],
                params=services.AnalysisParams().to_dict(),
                result={"improvement_pct": None},
                algorithm_version=OLD_VERSION,
            )
    finally:
        repo.close()


def _dask_run(n_workers: int, env: dict[str, str], folder: Path) -> ReanalysisSummary:
    """Re-analyse on a fresh LocalCluster whose workers share no folder with this process."""
    from dask.distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=n_workers,
        processes=True,
        threads_per_worker=1,
        dashboard_address=":0",  # a free port (None still takes 8787)
        local_directory=str(folder),
        env={**env, "VEIN_TRACKER_DATA": "data"},
    ) as cluster:
        with Client(cluster, set_as_default=False) as client:
            # Long-lived workers have the pipeline imported: not timed.
            client.run(importlib.import_module, "vein_tracker.measure")
        return reanalyze(executor="dask", scheduler=cluster.scheduler_address, show_progress=False)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=4, help="pairs in the clinic (default 4)")
    ap.add_argument(
        "--shape", type=int, nargs=2, default=(1500, 2000), metavar=("H", "W"), help="photo size"
    )
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--pg-url", default=None, help="a PostgreSQL server URL (default: throw-away)")
    args = ap.parse_args(argv)
    if args.pairs < 1 or args.rounds < 1:
        ap.error("--pairs and --rounds must be at least 1")
    shape = (int(args.shape[0]), int(args.shape[1]))
    importlib.import_module("vein_tracker.measure")  # the serial row's process, likewise

    load0 = os.getloadavg()
    runs: dict[str, list[ReanalysisSummary]] = {}
    cpu_per_pair: list[float] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vt_bench_dask_")))
        server_url = args.pg_url or stack.enter_context(throwaway_postgres())
        s3 = stack.enter_context(moto_server(tmp))
        bucket = s3.new_bucket()
        env = s3_env(s3, bucket, "clinic")
        template = f"bench_{uuid.uuid4().hex[:10]}"
        _admin(server_url, f'CREATE DATABASE "{template}"')
        saved = dict(os.environ)
        os.environ.update(env)
        os.environ["VEIN_TRACKER_DATA"] = str(tmp / "coordinator")
        os.environ.pop("VEIN_TRACKER_ENCRYPTION_KEY", None)
        try:
            os.environ["VEIN_TRACKER_DB_URL"] = _db_url(server_url, template)
            print(f"Seeding {args.pairs} pairs of {shape[1]} × {shape[0]} px (not timed)...")
            seed(args.pairs, shape)
            seeded = list_keys(s3, bucket, "clinic/")
            # Rounds interleave the rows, so a change of the shared machine's load
            # during the run falls on every row alike.
            for r in range(args.rounds):
                for n in (0, 1, 2):
                    label = "serial (baseline)" if n == 0 else f"dask, {n} worker{'s' * (n > 1)}"
                    print(f"  round {r + 1}: {label}...", flush=True)
                    name = f"{template}_{r}_{n}"
                    _admin(server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                    url = _db_url(server_url, name)
                    os.environ["VEIN_TRACKER_DB_URL"] = url
                    services.clear_analysis_cache()
                    if n == 0:
                        c0 = time.process_time()
                        summary = reanalyze(executor="serial", show_progress=False)
                        cpu_per_pair.append((time.process_time() - c0) / max(1, summary.done))
                        close_worker_repositories()
                    else:
                        summary = _dask_run(
                            n, {**env, "VEIN_TRACKER_DB_URL": url}, tmp / f"w{r}{n}"
                        )
                    runs.setdefault(label, []).append(summary)
                    _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            after = list_keys(s3, bucket, "clinic/")
        finally:
            os.environ.clear()
            os.environ.update(saved)
            _admin(server_url, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
    photo_bytes = sum(len(b) for b in seeded.values()) / len(seeded)
    masks_per_pair = sum(len(b) for k, b in after.items() if k not in seeded) / args.pairs
    load1 = os.getloadavg()
    print()
    print(
        f"Re-analysis throughput to algorithm {ALGORITHM_VERSION} over PostgreSQL + S3 (moto, "
        f"HTTP on 127.0.0.1): {args.pairs} pairs of {shape[1]} × {shape[0]} px, median of "
        f"{args.rounds} interleaved rounds"
    )
    print(
        f"machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), shared; "
        f"load average {load0[0]:.1f} at start, {load1[0]:.1f} at end"
    )
    print(
        f"{'executor':<22}{'done':>6}{'failed':>7}{'wall s':>9}{'pairs/min':>11}"
        f"{'s/pair':>8}{'vs serial':>11}   wall s of each round"
    )
    base = statistics.median(s.seconds for s in runs["serial (baseline)"])
    for label, summaries in runs.items():
        wall = statistics.median(s.seconds for s in summaries)
        done = min(s.done for s in summaries)
        failed = max(s.failed for s in summaries)
        each = ", ".join(f"{s.seconds:.1f}" for s in summaries)
        print(
            f"{label:<22}{done:>6}{failed:>7}{wall:>9.1f}{60 * done / wall:>11.2f}"
            f"{wall / max(1, done):>8.2f}{base / wall:>10.2f}×   {each}"
        )
        for s in summaries:
            for o in s.outcomes:
                if o.status == "failed":
                    print(f"    failed pair {o.task.analysis_id}: {o.error}")
    print(f"CPU per pair (serial rows, this process): {statistics.median(cpu_per_pair):.2f} s")
    print(
        f"stored per photo: {photo_bytes / 1e6:.2f} MB; per analysis's masks: "
        f"{masks_per_pair / 1e3:.0f} kB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
