"""The records commands end to end: seed-demo, backup, restore, fsck, accounts, rekey."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from vein_tracker.cli import main
from vein_tracker.errors import VeinTrackerError
from vein_tracker.io import encode_image
from vein_tracker.storage import SYSTEM_ACTOR, accounts, open_repository
from vein_tracker.storage.seed import DEMO_ACCOUNTS, read_manifest, seed_demo

from .conftest import FAST


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI builds its own repository: give it the test-only cheap argon2 parameters."""
    monkeypatch.setattr(accounts, "default_hasher", accounts.fast_test_hasher)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A tiny demo set: 2 clients, 2 areas for the first, 2 sessions each."""
    d = tmp_path / "sample_images"
    d.mkdir()
    rng = np.random.default_rng(5)
    entries = []
    for client, areas in (
        ("c01", ("left-calf-posterior", "right-thigh-anterior")),
        ("c02", ("left-knee-medial",)),
    ):
        for area in areas:
            for session, day in ((1, "2026-09-01"), (2, "2026-09-29")):
                name = f"{client}_{area}_s{session}.jpg"
                img = (rng.random((260, 300, 3)) * 255).astype(np.uint8)
                (d / name).write_bytes(encode_image(img))
                entry = {"file": name, "client": client, "session": session, "date": day}
                if client == "c01":
                    entry.update(area=area, px_per_mm=6.5)
                entries.append(entry)
    (d / "manifest.json").write_text(json.dumps({"images": entries}))
    return d


def test_manifest_parsing(images):
    entries = read_manifest(images)
    assert len(entries) == 6
    first = entries[0]
    assert (first.client, first.side, first.region, first.view, first.session) == (
        "c01",
        "left",
        "calf",
        "posterior",
        1,
    )
    assert first.px_per_mm == 6.5
    assert entries[-1].px_per_mm is None  # c02 entries have the area in the name only
    (images / "manifest.json").write_text(json.dumps([{"file": "nonsense.jpg", "session": 1}]))
    with pytest.raises(VeinTrackerError, match="cannot tell the area"):
        read_manifest(images)
    with pytest.raises(VeinTrackerError, match="missing"):
        read_manifest(images / "nowhere")


def test_seed_demo_creates_the_clinic(repo, images):
    pairs: list[tuple[int, int]] = []

    def analyse(r, b, f):
        pairs.append((b, f))
        return True

    result = seed_demo(repo, images, analyse=analyse, echo=lambda _s: None)
    assert (result.clients, result.areas, result.visits, result.photos) == (2, 3, 4, 6)
    assert result.analyses == 3
    assert len(pairs) == 3
    assert {a[2] for a in result.accounts} == {"admin", "aesthetician", "marketing", "client"}
    for username, password, role in DEMO_ACCOUNTS:
        assert repo.authenticate(username, password).role == role
    # Some marketing consent is revoked, the rest valid; both clients are cleared.
    consents = [c for cid in (1, 2) for c in repo.list_consents(SYSTEM_ACTOR, cid)]
    assert {c.status() for c in consents if c.kind == "marketing"} == {"valid", "revoked"}
    assert all(c.cleared_for_treatment for c in repo.list_clients(SYSTEM_ACTOR))
    for area in repo.list_areas(SYSTEM_ACTOR, 1):
        assert repo.baseline_photo(SYSTEM_ACTOR, area.id).session_number == 1
    again = seed_demo(repo, images, if_empty=True)
    assert again.skipped


def test_cli_seed_backup_fsck_restore(backend, data_dir, images, tmp_path, capsys, monkeypatch):
    assert main(["seed-demo", "--images", str(images), "--no-analyses"]) == 0
    out = capsys.readouterr().out
    assert "2 clients" in out
    assert "demo.aesthetician" in out
    assert main(["seed-demo", "--if-empty", "--images", str(images)]) == 0
    assert "skipped" in capsys.readouterr().out
    assert main(["users", "--json"]) == 0
    users = json.loads(capsys.readouterr().out)
    assert sorted(u["username"] for u in users) == sorted(a[0] for a in DEMO_ACCOUNTS)
    assert main(["fsck", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["checked"]) == (True, 6)
    assert main(["backup", str(tmp_path / "b.tar"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["photos"] == 6
    target = tmp_path / "restored"
    monkeypatch.delenv("VEIN_TRACKER_DB_URL", raising=False)
    assert main(["restore", str(tmp_path / "b.tar"), "--data-dir", str(target)]) == 0
    assert "all 6 verified" in capsys.readouterr().out
    assert main(["restore", str(tmp_path / "b.tar"), "--data-dir", str(target)]) == 5
    assert "not empty" in capsys.readouterr().err


def test_cli_fsck_reports_loss_with_exit_5(data_dir, images, capsys):
    assert main(["seed-demo", "--images", str(images), "--no-analyses"]) == 0
    victim = next((data_dir / "photos" / "objects").rglob("*"))
    while victim.is_dir():
        victim = next(victim.iterdir())
    victim.unlink()
    capsys.readouterr()
    assert main(["fsck"]) == 5
    captured = capsys.readouterr()
    assert "MISSING" in captured.out
    assert "1 missing" in captured.err


def test_cli_create_admin_and_migrate(data_dir, capsys, monkeypatch):
    monkeypatch.setenv("VEIN_TRACKER_ADMIN_PASSWORD", "admin password from env")
    assert main(["migrate"]) == 0
    assert "revision" in capsys.readouterr().out
    assert main(["create-admin", "--username", "boss"]) == 0
    assert main(["create-admin", "--username", "boss2", "--generate"]) == 0
    out = capsys.readouterr().out
    one_time = out.rsplit(": ", 1)[1].strip()
    monkeypatch.setenv("VEIN_TRACKER_ADMIN_PASSWORD", "short")
    assert main(["create-admin", "--username", "boss3"]) == 1
    assert "at least" in capsys.readouterr().err
    repo = open_repository(passwords=FAST)
    try:
        assert repo.authenticate("boss", "admin password from env").role == "admin"
        assert repo.authenticate("boss2", one_time).role == "admin"
    finally:
        repo.close()
    assert "admin password from env" not in out


def test_cli_rekey(data_dir, images, capsys, monkeypatch):
    assert main(["rekey"]) == 1  # no key configured
    assert main(["seed-demo", "--images", str(images), "--no-analyses"]) == 0
    monkeypatch.setenv("VEIN_TRACKER_ENCRYPTION_KEY", base64.b64encode(bytes(32)).decode())
    capsys.readouterr()
    assert main(["rekey"]) == 0
    assert "Re-encrypted 6 files; 0 left" in capsys.readouterr().out
    blob = next(p for p in (data_dir / "photos" / "objects").rglob("*") if p.is_file())
    assert blob.read_bytes().startswith(b"VTE1")
    assert main(["fsck"]) == 0


SAMPLES = Path(__file__).resolve().parents[2] / "sample_images"


@pytest.mark.skipif(not (SAMPLES / "manifest.json").exists(), reason="sample_images not present")
def test_the_shipped_demo_manifest_is_understood():
    entries = read_manifest(SAMPLES)
    assert len(entries) == len(json.loads((SAMPLES / "manifest.json").read_text())["photos"])
    assert all(e.path.exists() for e in entries)
    assert all(e.sha256 for e in entries)
    areas = {(e.client, e.side, e.region, e.view, e.note) for e in entries}
    assert len(areas) == len({(e.client, e.path.name.split("_")[1]) for e in entries})
