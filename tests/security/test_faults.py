"""Faults: SIGKILL at random points, a full disk, and a database locked by other writers.

The kill loop runs a child process that repeats one kind of work (upload, analysis,
marketing export, backup) on a seeded clinic, and kills it (SIGKILL) after a random
delay once it is ready. The child prints a line after each write it completed; after
every kill the parent checks that

- SQLite's ``PRAGMA integrity_check`` says ``ok`` and the repository finds no problem;
- every photo row has its file and the file's sha256 matches;
- every write the child reported as done is still there (nothing acknowledged is lost),
  every export/backup file under its final name is complete;
- ``fsck --clean`` removes what the kill left (orphans, temporary files), after which fsck
  finds nothing;
- the next start works: ``open_repository`` and a sign-in.

The storage engineer's ``tests/storage/test_photos.py`` kills an upload at three chosen
points and patches ``os.write`` to fail at once; this suite adds random points across four
kinds of work, a write that fails half-way, and the app's upload path.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sec_util import ROOT, open_test_repo, photo_bytes, row_counts, store_files

from tests.clinic_util import Clinic
from tests.conftest import BACKENDS
from vein_tracker import services
from vein_tracker.errors import StorageError
from vein_tracker.storage import db
from vein_tracker.storage.backup import fsck
from vein_tracker.storage.repo.base import Retry

KILLS = 52
OPS = ("upload", "analysis", "export", "backup")

_CHILD = textwrap.dedent(
    """
    import sys, random
    sys.path.insert(0, sys.argv[3])
    from vt_ui_seed import PASSWORD, open_test_repo
    from pathlib import Path
    op, data_dir, seed = sys.argv[1], Path(sys.argv[2]), int(sys.argv[4])
    out_dir = Path(sys.argv[5])
    rng = random.Random(seed)
    repo = open_test_repo(data_dir)
    anna = repo.authenticate("anna", PASSWORD)
    ids = [int(x) for x in sys.argv[6].split(",")]
    area, visit, base, follow = ids
    if op == "upload":
        import numpy as np
        from vein_tracker import services
        from vein_tracker.io import encode_image
    elif op == "analysis":
        from vein_tracker import services
    elif op == "export":
        from vein_tracker.cli import main
    elif op == "backup":
        from vein_tracker.storage.backup import backup
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        if op == "upload":
            img = np.random.default_rng(seed * 1000 + n).integers(0, 255, (300, 400, 3), np.uint8)
            data = encode_image(img, quality=85)
            stored = services.store_upload(
                repo, anna, visit_id=visit, area_id=area, data=data, filename=f"u{n}.jpg"
            )
            print("done", stored.photo.id, stored.photo.sha256, flush=True)
        elif op == "analysis":
            params = services.AnalysisParams(sensitivity=round(rng.uniform(0.2, 0.8), 4))
            services.clear_analysis_cache()
            review = services.analyze_pair(
                repo, anna, baseline_photo_id=base, followup_photo_id=follow, params=params
            )
            info = services.save_analysis(repo, anna, review)
            print("done", info.id, flush=True)
        elif op == "export":
            out = out_dir / f"export-{seed}-{n}.zip"
            rc = main(["export", "--channel", "website", "--out", str(out)])
            print("done" if rc == 0 else "failed", out, flush=True)
        else:
            out = out_dir / f"backup-{seed}-{n}.tar"
            backup(out)
            print("done", out, flush=True)
    """
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    from vt_ui_seed import seed_clinic

    data = tmp_path_factory.mktemp("kill") / "data"
    data.mkdir()
    s = seed_clinic(data)
    return SimpleNamespace(seed=s, data_dir=data, out=data.parent / "out")


def _check_after_kill(data_dir: Path, out_dir: Path, done: list[list[str]], op: str) -> None:
    db = data_dir / "vein_tracker.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        photos = conn.execute("SELECT id, sha256 FROM photos").fetchall()
        analyses = {r[0] for r in conn.execute("SELECT id FROM analyses")}
    conn.close()
    repo = open_test_repo(data_dir)
    try:
        assert repo.integrity_check() == []
        for _, sha in photos:
            assert hashlib.sha256(repo.store.get(sha)).hexdigest() == sha
        # Every write the child acknowledged survived the kill.
        rows = dict(photos)
        for line in done:
            if op == "upload":
                assert rows[int(line[1])] == line[2]
            elif op == "analysis":
                assert int(line[1]) in analyses
            elif op == "export" and line[0] == "done":
                with zipfile.ZipFile(line[1]) as z:
                    assert z.testzip() is None
            elif op == "backup":
                with tarfile.open(line[1]) as t:
                    assert "manifest.json" in t.getnames()
        # Whatever is under a final name in the output folder is complete.
        for p in out_dir.glob("*.zip"):
            with zipfile.ZipFile(p) as z:
                assert z.testzip() is None
        for p in out_dir.glob("*.tar"):
            with tarfile.open(p) as t:
                assert "manifest.json" in t.getnames()
        report = fsck(repo.settings, clean=True, grace_s=0)
        assert report.ok, report.to_dict()
        after = fsck(repo.settings, grace_s=0)
        assert (after.ok, after.orphans, after.temp_files) == (True, (), ())
        assert repo.authenticate("anna", "correct-horse-42").role == "aesthetician"
    finally:
        repo.close()


@pytest.mark.slow
def test_sigkill_loop_loses_nothing(seeded: SimpleNamespace) -> None:
    s = seeded.seed
    seeded.out.mkdir(exist_ok=True)
    rng = random.Random(20261125)
    ids = f"{s.area_a},{s.visit_a2},{s.baseline_a},{s.followup_a}"
    env = {**os.environ, "VEIN_TRACKER_DATA": str(seeded.data_dir), "PYTHONPATH": str(ROOT)}
    env.pop("VEIN_TRACKER_DB_URL", None)
    env.pop("VEIN_TRACKER_ENCRYPTION_KEY", None)
    kills: Counter[str] = Counter()
    completed: Counter[str] = Counter()
    for i in range(KILLS):
        op = OPS[i % len(OPS)]
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD,
                op,
                str(seeded.data_dir),
                str(ROOT / "tests" / "ui"),
                str(i),
                str(seeded.out),
                ids,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.strip() == "ready", proc.stderr.read() if proc.stderr else ""
        # Every other kill waits for one acknowledged write first, so the check that
        # acknowledged writes survive always has something to check.
        early: list[str] = []
        if i % 8 >= 4:
            line = proc.stdout.readline()
            assert line.startswith(("done", "failed")), line
            early.append(line)
        time.sleep(rng.uniform(0.0, {"analysis": 3.0, "export": 2.0, "backup": 0.8}.get(op, 1.0)))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        out = "".join(early) + out
        if proc.returncode != -signal.SIGKILL:
            pytest.fail(f"{op} child ended by itself ({proc.returncode}): {err[-2000:]}")
        kills[op] += 1
        done = [line.split() for line in out.splitlines() if line.strip()]
        completed[op] += sum(1 for d in done if d[0] == "done")
        _check_after_kill(seeded.data_dir, seeded.out, done, op)
    assert sum(kills.values()) >= 50
    print(
        f"\nkills per operation: {dict(kills)}; writes completed before a kill: {dict(completed)}"
    )


# ------------------------------------------------------------------ disk full


def _fail_after(limit: int) -> Any:
    """An ``os.write`` that writes ``limit`` bytes in total, then fails with ENOSPC."""
    real = os.write
    written = [0]

    def write(fd: int, data: Any) -> int:
        room = limit - written[0]
        if room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real(fd, bytes(data)[:room])
        written[0] += n
        return n

    return write


@pytest.mark.parametrize("limit", [0, 1, 4096, 20000])
def test_disk_full_during_app_upload_leaves_nothing(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    import vein_tracker.storage.photostore as ps

    r, c = clinic.repo, clinic
    data = photo_bytes(4242)
    assert len(data) > limit
    rows, files = row_counts(r.engine), store_files(c.data_dir)
    monkeypatch.setattr(ps.os, "write", _fail_after(limit))
    with pytest.raises(StorageError) as info:
        services.store_upload(
            r, c.aest, visit_id=c.v2.id, area_id=c.area_a.id, data=data, filename="x.jpg"
        )
    monkeypatch.undo()
    assert "full" in str(info.value)
    assert "\n" not in str(info.value)
    assert row_counts(r.engine) == rows
    assert store_files(c.data_dir) == files  # no half file, no temporary file
    report = fsck(r.settings, grace_s=0)
    assert (report.ok, report.orphans, report.temp_files) == (True, (), ())
    # Once there is room again the same upload succeeds.
    stored = services.store_upload(
        r, c.aest, visit_id=c.v2.id, area_id=c.area_a.id, data=data, filename="x.jpg"
    )
    assert r.get_photo_bytes(c.aest, stored.photo.id) == data


def test_disk_full_at_fsync_leaves_nothing(clinic: Clinic, monkeypatch: pytest.MonkeyPatch) -> None:
    import vein_tracker.storage.photostore as ps

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    r, c = clinic.repo, clinic
    rows, files = row_counts(r.engine), store_files(c.data_dir)
    monkeypatch.setattr(ps.os, "fsync", full)
    with pytest.raises(StorageError):
        r.add_photo(c.aest, c.area_a.id, c.v2.id, photo_bytes(4343))
    monkeypatch.undo()
    assert row_counts(r.engine) == rows
    assert store_files(c.data_dir) == files


# ------------------------------------------------------------------ locked database


def _hold_write_lock(db: Path, seconds: float, started: threading.Event) -> None:
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        started.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_sqlite_lock_held_briefly_is_waited_out(clinic: Clinic) -> None:
    r, c = clinic.repo, clinic
    started = threading.Event()
    t = threading.Thread(
        target=_hold_write_lock, args=(c.data_dir / "vein_tracker.db", 1.0, started)
    )
    t.start()
    assert started.wait(10)
    p = r.add_photo(c.aest, c.area_a.id, c.v2.id, photo_bytes(5151))
    t.join()
    assert r.get_photo_bytes(c.aest, p.id) == photo_bytes(5151)


_LOCKER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


def test_sqlite_lock_held_for_long_gives_a_clear_error(
    clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the write lock longer than the retries: every retry is made
    on the production schedule, then a StorageError that says what to do, no row, no
    traceback-like message, and the next write works. SQLite's own wait is cut to 50 ms
    and the retry waits are recorded instead of slept (they cost 40 s otherwise)."""
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 50)
    waits: list[float] = []
    r, c = open_test_repo(clinic.settings, retry=Retry(sleep=waits.append)), clinic
    rows = row_counts(r.engine)
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(c.data_dir / "vein_tracker.db"), "600"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(StorageError, match="busy") as info:
            r.create_client(c.aest, name="Locked Out")
        assert "\n" not in str(info.value)
        assert "Traceback" not in str(info.value)
        assert waits == list(Retry().waits()) == [0.05, 0.1, 0.2]
    finally:
        proc.kill()
        proc.wait()
    assert row_counts(r.engine) == rows
    assert r.create_client(c.aest, name="After The Lock").name == "After The Lock"
    r.close()


def _writers(
    settings: Any, aest: Any, client_id: int, *, threads: int, per_thread: int
) -> list[BaseException]:
    errors: list[BaseException] = []
    repo = open_test_repo(settings)

    def work(k: int) -> None:
        try:
            for j in range(per_thread):
                repo.create_visit(aest, client_id, notes=f"w{k}-{j}", same_day=True)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    repo.close()
    return errors


_PROC_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    from sec_util import make_settings, open_test_repo
    from vein_tracker.storage import Actor
    import dataclasses
    settings = make_settings(Path(sys.argv[2]))
    if sys.argv[3] != "-":
        settings = dataclasses.replace(settings, db_url=sys.argv[3])
    aest = Actor(user_id=int(sys.argv[4]), username="erin.aesth", role="aesthetician")
    repo = open_test_repo(settings)
    for j in range(int(sys.argv[6])):
        repo.create_visit(aest, int(sys.argv[5]), notes=f"p{sys.argv[7]}-{j}", same_day=True)
    repo.close()
    print("ok", flush=True)
    """
)


def _concurrent_writes(settings: Any, c: Clinic, db_url: str) -> None:
    """4 threads × 10 writes here and 2 processes × 10 writes at the same time."""
    repo = open_test_repo(settings)
    before = len(repo.list_visits(c.aest, c.b.id))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _PROC_WRITER,
                str(Path(__file__).resolve().parent),
                str(settings.data_dir),
                db_url,
                str(c.aest.user_id),
                str(c.b.id),
                "10",
                str(k),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for k in range(2)
    ]
    errors = _writers(settings, c.aest, c.b.id, threads=4, per_thread=10)
    outs = [p.communicate(timeout=300) for p in procs]
    assert errors == []
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert out.strip() == "ok"
    visits = repo.list_visits(c.aest, c.b.id)
    repo.close()
    expected = sorted(
        [f"w{k}-{j}" for k in range(4) for j in range(10)]
        + [f"p{k}-{j}" for k in range(2) for j in range(10)]
    )
    # None lost, none twice, nothing else written.
    assert sorted(v.notes for v in visits[before:]) == expected
    assert [v.session_number for v in visits] == list(range(1, before + len(expected) + 1))


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_concurrent_writers(clinic: Clinic, backend: str) -> None:
    """4 threads and 2 processes write at once: every write lands once (SQLite in WAL
    mode; PostgreSQL with its row locks)."""
    if backend == "sqlite":
        with sqlite3.connect(clinic.data_dir / "vein_tracker.db") as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        conn.close()
    db_url = clinic.settings.db_url if backend == "postgres" else "-"
    _concurrent_writes(clinic.settings, clinic, db_url)
