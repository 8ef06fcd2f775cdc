"""Photos: decode before storing, consent, dedupe, baseline, and atomic writes under faults.

A write killed midway (SIGKILL of a real process at chosen points, a failing rename,
a full disk) must leave neither a half file under its final name nor a database row
without its file; ``fsck`` reports and cleans what an interrupted write leaves.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vein_tracker.errors import PhotoError, StorageError
from vein_tracker.storage import SYSTEM_ACTOR
from vein_tracker.storage.backup import fsck
from vein_tracker.storage.photostore import sha256_hex

from .conftest import photo_bytes

_CHILD = r"""
import os, signal, sys
from pathlib import Path
from vein_tracker.storage import SYSTEM_ACTOR, Passwords, fast_test_hasher, open_repository
import vein_tracker.storage.photostore as ps

mode, path, area, visit = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
repo = open_repository(passwords=Passwords(fast_test_hasher()))

def die(*_a, **_k):
    os.kill(os.getpid(), signal.SIGKILL)

if mode == "mid_write":
    real_write = os.write
    def half_then_die(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        die()
    ps.os.write = half_then_die
elif mode == "before_rename":
    ps.os.fsync = die  # the temporary file's fsync comes just before the rename
elif mode == "before_commit":
    real_put = repo.store.put
    def put_then_die(data):
        real_put(data)
        die()
    repo.store.put = put_then_die
repo.add_photo(SYSTEM_ACTOR, area, visit, path.read_bytes(), filename=path.name)
print("stored")
"""


def _objects(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "photos" / "objects").rglob("*") if p.is_file())


def _temps(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "photos" / "tmp").iterdir())


def test_photo_is_decoded_and_described(clinic):
    p = clinic.repo.get_photo(clinic.aest, clinic.p1.id)
    assert (p.width, p.height, p.format) == (400, 300, "JPEG")
    assert p.sha256 == sha256_hex(photo_bytes(1))
    assert p.size_bytes == len(photo_bytes(1))
    assert p.px_per_mm == 8.0
    assert p.is_baseline
    assert p.original_filename == "a1.jpg"
    assert p.session_number == 1
    photo = clinic.repo.load_photo(clinic.aest, clinic.p2.id)
    assert photo.rgb.shape == (300, 400, 3)
    assert photo.px_per_mm == 8.0


def test_bad_file_leaves_no_row_and_no_file(clinic, data_dir):
    repo = clinic.repo
    before_rows = repo.list_photos(clinic.aest, client_id=clinic.a.id)
    before_files = _objects(data_dir)
    for bad in (b"", b"not an image at all", photo_bytes(5)[:600], b"%PDF-1.4 fake"):
        with pytest.raises(PhotoError):
            repo.add_photo(clinic.aest, clinic.area_a.id, clinic.v2.id, bad, filename="x.jpg")
    assert repo.list_photos(clinic.aest, client_id=clinic.a.id) == before_rows
    assert _objects(data_dir) == before_files
    assert _temps(data_dir) == []


def test_identical_reupload_is_deduplicated(clinic, data_dir):
    repo = clinic.repo
    n_files = len(_objects(data_dir))
    again = repo.add_photo(clinic.aest, clinic.area_a.id, clinic.v2.id, photo_bytes(2))
    assert again.id == clinic.p2.id
    # The same bytes for another area are a new record but not a new file.
    other = repo.create_area(clinic.aest, clinic.a.id, side="right", view="medial", region="knee")
    copy = repo.add_photo(clinic.aest, other.id, clinic.v2.id, photo_bytes(2))
    assert copy.id != clinic.p2.id
    assert copy.sha256 == clinic.p2.sha256
    assert copy.is_baseline  # first photo of its area
    assert len(_objects(data_dir)) == n_files
    assert len(repo.list_photos(clinic.aest, client_id=clinic.a.id)) == 3


def test_baseline_rules(clinic):
    repo = clinic.repo
    assert repo.baseline_photo(clinic.client_a, clinic.area_a.id).id == clinic.p1.id
    assert repo.get_area(clinic.aest, clinic.area_a.id).baseline_photo_id == clinic.p1.id
    repo.set_baseline(clinic.aest, clinic.p2.id)
    assert repo.baseline_photo(clinic.aest, clinic.area_a.id).id == clinic.p2.id
    flags = {p.id: p.is_baseline for p in repo.list_photos(clinic.aest, area_id=clinic.area_a.id)}
    assert flags == {clinic.p1.id: False, clinic.p2.id: True}


def test_photo_inputs_are_checked(clinic):
    repo = clinic.repo
    with pytest.raises(ValueError, match="different clients"):
        repo.add_photo(clinic.aest, clinic.area_a.id, clinic.vb.id, photo_bytes(9))
    with pytest.raises(TypeError, match="bytes"):
        repo.add_photo(clinic.aest, clinic.area_a.id, clinic.v2.id, "a string")
    with pytest.raises(ValueError, match="px_per_mm"):
        repo.add_photo(clinic.aest, clinic.area_a.id, clinic.v2.id, photo_bytes(9), px_per_mm=-1)
    with pytest.raises(ValueError, match="px_per_mm"):
        repo.update_photo(clinic.aest, clinic.p1.id, px_per_mm=float("nan"))
    p = repo.add_photo(
        clinic.aest,
        clinic.area_a.id,
        clinic.v2.id,
        photo_bytes(9),
        filename="../../etc/passwd\x00.jpg",
        capture_report={"sharpness": float("nan"), "ok": True, "advice": ("hold still",)},
    )
    assert p.original_filename == "passwd.jpg"
    assert p.capture_report == {"sharpness": None, "ok": True, "advice": ["hold still"]}


def test_damaged_file_is_detected_on_read(clinic, data_dir):
    path = clinic.repo.store.path_for(clinic.p1.sha256)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(StorageError, match="damaged"):
        clinic.repo.get_photo_bytes(clinic.aest, clinic.p1.id)
    report = fsck(clinic.settings, grace_s=0)
    assert not report.ok
    assert [c.split()[0] for c in report.corrupt] == [clinic.p1.sha256]
    path.unlink()
    report = fsck(clinic.settings, grace_s=0)
    assert [m.split()[0] for m in report.missing] == [clinic.p1.sha256]
    with pytest.raises(StorageError, match="missing"):
        clinic.repo.get_photo_bytes(clinic.aest, clinic.p1.id)


def test_disk_full_leaves_nothing(clinic, data_dir, monkeypatch):
    import vein_tracker.storage.photostore as ps

    before_files = _objects(data_dir)
    before_rows = clinic.repo.list_photos(clinic.aest, client_id=clinic.a.id)

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ps.os, "write", full)
    with pytest.raises(StorageError, match="disk .* is full"):
        clinic.repo.add_photo(clinic.aest, clinic.area_a.id, clinic.v2.id, photo_bytes(11))
    monkeypatch.undo()
    assert _objects(data_dir) == before_files
    assert _temps(data_dir) == []
    assert clinic.repo.list_photos(clinic.aest, client_id=clinic.a.id) == before_rows


def test_failed_rename_leaves_nothing(clinic, data_dir, monkeypatch):
    def broken(self: Path, target: object) -> Path:
        raise OSError(errno.EIO, "I/O error")

    before_files = _objects(data_dir)
    monkeypatch.setattr(Path, "replace", broken)
    with pytest.raises(StorageError, match="nothing was stored"):
        clinic.repo.add_photo(clinic.aest, clinic.area_a.id, clinic.v2.id, photo_bytes(12))
    monkeypatch.undo()
    assert _objects(data_dir) == before_files
    assert _temps(data_dir) == []
    assert len(clinic.repo.list_photos(clinic.aest, client_id=clinic.a.id)) == 2


# File-level faults do not depend on the database; the commit-time one runs on both.
@pytest.mark.parametrize(
    ("backend", "mode"),
    [
        ("sqlite", "mid_write"),
        ("sqlite", "before_rename"),
        ("sqlite", "before_commit"),
        pytest.param("postgres", "before_commit", marks=pytest.mark.postgres),
    ],
    indirect=["backend"],
)
def test_killed_upload_leaves_no_half_file_and_no_row(clinic, data_dir, tmp_path, mode):
    repo = clinic.repo
    data = photo_bytes(20 + len(mode))
    sha = sha256_hex(data)
    src = tmp_path / "upload.jpg"
    src.write_bytes(data)
    before_rows = repo.list_photos(clinic.aest, client_id=clinic.a.id)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(src), str(clinic.area_a.id), str(clinic.v2.id)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # No row, whatever the point of death.
    assert repo.list_photos(clinic.aest, client_id=clinic.a.id) == before_rows
    final = repo.store.path_for(sha)
    report = fsck(clinic.settings, grace_s=0)
    assert report.ok  # nothing referenced is lost
    if mode == "before_commit":
        # The file is complete and durable but no row names it: an orphan.
        assert sha256_hex(final.read_bytes()) == sha
        assert report.orphans == (sha,)
    else:
        assert not final.exists()
        assert len(report.temp_files) == 1
    cleaned = fsck(clinic.settings, clean=True, grace_s=0)
    assert cleaned.cleaned == 1
    after = fsck(clinic.settings, grace_s=0)
    assert (after.ok, after.orphans, after.temp_files) == (True, (), ())
    # The next start works and the upload can be retried.
    again = repo.add_photo(clinic.aest, clinic.area_a.id, clinic.v2.id, data)
    assert repo.get_photo_bytes(clinic.aest, again.id) == data


def test_fsck_grace_keeps_fresh_orphans(clinic):
    orphan = clinic.repo.store.put(photo_bytes(99))
    report = fsck(clinic.settings, clean=True)  # default grace: 10 minutes
    assert report.orphans == (orphan,)
    assert report.cleaned == 0
    assert clinic.repo.store.exists(orphan)


def test_system_actor_writes_are_attributed(clinic):
    p = clinic.repo.add_photo(SYSTEM_ACTOR, clinic.area_a.id, clinic.v2.id, photo_bytes(31))
    assert p.uploaded_by == "system"
