"""Records private at rest (issue 24, item 9): 0700 folders and 0600 files whatever the umask.

Under the usual umask 022 a clinic is created, used, backed up and restored; then no
folder or file of the data folder, the backup or the restored copy may be open to the
group or to other local users, the SQLite ``-wal``/``-shm`` files included. ``fsck``
reports anything looser with its path and the ``chmod`` that fixes it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clinic_util import FAST, build_clinic, make_settings
from vein_tracker.cli import main
from vein_tracker.storage import open_repository
from vein_tracker.storage.backup import backup, fsck, restore
from vein_tracker.storage.private import find_loose, make_private_dir, open_private


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _open_to_others(*roots: Path) -> list[str]:
    """Every folder or file under ``roots`` (roots included) with group or other bits."""
    found = []
    for root in roots:
        for path in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode & 0o077:
                found.append(f"{path} {mode:04o}")
    return found


def test_helpers_ignore_the_umask(tmp_path: Path, umask_022: None) -> None:
    made = make_private_dir(tmp_path / "a" / "b")
    fd = open_private(made / "f")
    os.close(fd)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert stat.S_IMODE((made / "f").stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        open_private(made / "f")
    (tmp_path / "open").mkdir()  # made without the helpers: 0755 under this umask
    assert [x.path for x in find_loose([tmp_path])] == [tmp_path / "open"]


def test_clinic_backup_and_restore_are_private_under_umask_022(
    tmp_path: Path, umask_022: None
) -> None:
    data = tmp_path / "clinic" / "data"  # nothing exists yet: the app creates it all
    settings = make_settings(data)
    repo = open_repository(settings, passwords=FAST)
    try:
        c = build_clinic(repo)
        # While the database is open in WAL mode its -wal and -shm files exist.
        wal = [p.name for p in data.iterdir() if p.name.endswith(("-wal", "-shm"))]
        assert sorted(wal) == ["vein_tracker.db-shm", "vein_tracker.db-wal"]
        assert _open_to_others(tmp_path / "clinic") == []
        result = backup(tmp_path / "backups" / "clinic.tar", settings)
    finally:
        repo.close()
    assert result.photos == 4
    target = tmp_path / "restored" / "data"
    target_url = f"sqlite:///{target / 'vein_tracker.db'}"
    restore(result.path, target, db_url=target_url, settings=settings)
    restored_settings = dataclasses.replace(settings, data_dir=target, db_url=target_url)
    restored = open_repository(restored_settings, passwords=FAST)
    try:
        assert restored.get_photo_bytes(c.aest, c.p1.id)
    finally:
        restored.close()
    assert (target / "photos" / "objects").is_dir()
    assert _open_to_others(tmp_path / "clinic", tmp_path / "backups", tmp_path / "restored") == []
    with tarfile.open(result.path) as tar:
        assert {m.mode for m in tar.getmembers()} == {0o600}


def test_fsck_reports_and_fixes_loose_permissions(
    tmp_path: Path,
    umask_022: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("VEIN_TRACKER_DATA", str(data))
    monkeypatch.delenv("VEIN_TRACKER_DB_URL", raising=False)
    monkeypatch.delenv("VEIN_TRACKER_STORE_URL", raising=False)
    settings = make_settings(data)
    repo = open_repository(settings, passwords=FAST)
    try:
        c = build_clinic(repo)
    finally:
        repo.close()
    assert fsck(settings, grace_s=0).loose_permissions == ()
    db = data / "vein_tracker.db"
    folder = data / "photos" / "objects" / c.p1.sha256[:2]
    db.chmod(0o644)
    folder.chmod(0o755)
    report = fsck(settings, grace_s=0)
    assert report.ok  # nothing lost: the records are only too open
    assert not report.private
    # SQLite gives a 0644 database 0644 -wal/-shm files too: fsck names them as well.
    paths = {line.split(" is ")[0].split(" ", 1)[1] for line in report.loose_permissions}
    assert {str(db), str(folder)} <= paths <= {str(db), str(folder), f"{db}-wal", f"{db}-shm"}
    text = "\n".join(report.loose_permissions)
    assert f"chmod 600 {db}" in text
    assert f"chmod 700 {folder}" in text
    assert main(["fsck"]) == 0  # nothing is lost: a warning, not a failure
    out = capsys.readouterr().out
    assert f"NOT PRIVATE: file {db} is 0644" in out
    assert "--fix-permissions" in out
    assert main(["fsck", "--fix-permissions", "--json"]) == 0
    fixed = json.loads(capsys.readouterr().out)
    assert fixed["private"]
    assert fixed["permissions_fixed"] == len(fixed["loose_permissions"]) >= 2
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert fsck(settings, grace_s=0).loose_permissions == ()
    assert _open_to_others(data) == []
