"""Re-analysis on Dask workers that share no disk: PostgreSQL + an S3-compatible store.

The clinic lives in PostgreSQL and its photos in a bucket on moto's S3-compatible server
(real HTTP on 127.0.0.1). A ``LocalCluster`` of two worker processes runs the pairs;
each worker works in its own private folder (its ``local_directory``, made its working
directory) and knows only the database URL, the store URL and the AWS variables: its
data folder is a relative ``data`` that no one else sees. The figures must equal a
serial run of the same photos on a local SQLite clinic, a worker killed in the middle
of the run must cost no finished pair, and no photo byte may reach a worker's folder.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed.diagnostics.plugin import WorkerPlugin

from tests.s3_server import MotoServer, list_keys, moto_server, s3_env, use_s3
from tests.test_reanalyze import OLD, Pair, _jpegs, _open, seed_pairs
from vein_tracker import ALGORITHM_VERSION, services
from vein_tracker.cli import main
from vein_tracker.reanalyze import PairOutcome, close_worker_repositories, reanalyze
from vein_tracker.storage import SYSTEM_ACTOR

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SEEDS = (3, 4, 5, 6)


class PrivateFolder(WorkerPlugin):
    """A dask worker plugin: the worker's working directory becomes its own local folder."""

    name = "vt-private-folder"

    def setup(self, worker: Any) -> None:
        os.chdir(worker.local_directory)


def seed_clinic(photos: list[tuple[bytes, bytes]]) -> list[Pair]:
    """The re-analysis tests' batch (:func:`tests.test_reanalyze.seed_pairs`) in the clinic
    the settings name (a local folder, or PostgreSQL and a bucket)."""
    repo = _open()
    try:
        return seed_pairs(repo, photos)
    finally:
        repo.close()


@pytest.fixture(scope="module")
def photos() -> list[tuple[bytes, bytes]]:
    return [_jpegs(seed) for seed in SEEDS]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto")) as s:
        yield s


def _results(pairs: list[Pair]) -> list[dict[str, Any]]:
    """Each pair's current-version analysis (id, figures, mask addresses), in order."""
    repo = _open()
    try:
        out = []
        for pair in pairs:
            key = (pair.baseline_id, pair.followup_id)
            rows = repo.list_analyses(SYSTEM_ACTOR, pair.area_id, latest_only=False)
            rows = [a for a in rows if (a.baseline_photo_id, a.followup_photo_id) == key]
            assert {a.algorithm_version for a in rows} == {OLD, ALGORITHM_VERSION}
            [current] = [a for a in rows if a.algorithm_version == ALGORITHM_VERSION]
            out.append({"id": current.id, "result": current.result, "masks": current.masks})
        return out
    finally:
        repo.close()


def _figures(results: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    return [(r["result"], r["masks"]) for r in results]


def test_dask_workers_without_shared_disk_match_serial_and_survive_a_killed_worker(
    photos: list[tuple[bytes, bytes]],
    server: MotoServer,
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The reference: the same photos in a local SQLite clinic, re-analysed serially.
    monkeypatch.setenv("VEIN_TRACKER_DATA", str(tmp_path / "reference"))
    for name in ("VEIN_TRACKER_DB_URL", "VEIN_TRACKER_STORE_URL", "VEIN_TRACKER_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    services.clear_analysis_cache()
    reference_pairs = seed_clinic(photos)
    serial = reanalyze(executor="serial", show_progress=False)
    close_worker_repositories()
    assert (serial.planned, serial.done, serial.failed) == (len(SEEDS), len(SEEDS), 0)
    expected = _figures(_results(reference_pairs))

    # The clinic group: PostgreSQL and a bucket; this process is the coordinator.
    bucket = server.new_bucket()
    coordinator = tmp_path / "coordinator"
    monkeypatch.setenv("VEIN_TRACKER_DATA", str(coordinator))
    monkeypatch.setenv("VEIN_TRACKER_DB_URL", pg_url)
    use_s3(monkeypatch, server, bucket, "clinic")
    pairs = seed_clinic(photos)
    order = {p.old_analysis_id: i for i, p in enumerate(pairs)}
    assert len(list_keys(server, bucket, "clinic/")) > 2 * len(SEEDS)  # photos and a mask

    from dask.distributed import Client, LocalCluster

    workers_root = tmp_path / "workers"
    worker_env = {
        **s3_env(server, bucket, "clinic"),
        "VEIN_TRACKER_DB_URL": pg_url,
        "VEIN_TRACKER_DATA": "data",  # relative: inside each worker's private folder
    }
    killed: list[int] = []
    first_done: list[PairOutcome] = []
    with (
        LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=":0",  # a free port: None still binds the HTTP server to 8787
            local_directory=str(workers_root),
            env=worker_env,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        client.register_plugin(PrivateFolder())
        pids = client.run(os.getpid)
        assert len(pids) == 2
        folders = client.run(os.getcwd)
        assert all(Path(f).is_relative_to(workers_root) for f in folders.values())
        assert len(set(folders.values())) == 2
        lock = threading.Lock()

        def kill_a_busy_worker(outcome: PairOutcome) -> None:
            # After the first pair is saved, kill a worker that is in the middle of another.
            with lock:
                if killed:
                    return
                first_done.append(outcome)
                busy = [w for w, keys in client.processing().items() if keys]
                victim = pids.get(busy[0]) if busy else None
                if victim is not None:
                    os.kill(victim, signal.SIGKILL)
                    killed.append(victim)

        first = reanalyze(
            executor="dask",
            scheduler=cluster.scheduler_address,
            show_progress=False,
            on_result=kill_a_busy_worker,
        )
        assert killed, "no worker was busy when the first pair finished"
        saved_first = order[first_done[0].task.analysis_id]
        id_before_kill = _results(pairs)[saved_first]["id"]
        # Whether dask finished the run on the survivor or left pairs stale, a rerun
        # through the command line completes it without redoing a finished pair.
        capsys.readouterr()
        argv = ["reanalyze", "--executor", "dask", "--scheduler", cluster.scheduler_address]
        assert main([*argv, "--json", "--no-progress"]) == 0
        rerun = json.loads(capsys.readouterr().out)
        assert rerun["failed"] == 0
        assert first.done + first.skipped + rerun["done"] + rerun["skipped"] >= len(SEEDS)
        worker_folders = [Path(f) for f in client.run(os.getcwd).values()]

    results = _results(pairs)
    assert _figures(results) == expected  # identical figures and mask bytes to the serial run
    assert results[saved_first]["id"] == id_before_kill  # the pair saved first was kept
    repo = _open()
    try:
        saves = repo.list_audit(SYSTEM_ACTOR, action="analysis_save")
    finally:
        repo.close()
    # One old-version save per pair from the seeding, one new one per pair: nothing twice.
    assert len(saves) == 2 * len(SEEDS)
    # Nothing stale is left for a later run either.
    assert main(["reanalyze", "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["planned"] == 0

    # No photo byte reached a worker's folder (nor the coordinator's data folder).
    needles = [b[len(b) // 2 : len(b) // 2 + 64] for pair in photos for b in pair]
    for root in [workers_root, coordinator, *worker_folders]:
        for path in (p for p in root.rglob("*") if p.is_file()) if root.exists() else ():
            data = path.read_bytes()
            assert not any(n in data for n in needles), path
    assert not any((f / "data").exists() for f in worker_folders)
