"""`vein-tracker export` and `vein-tracker report` end to end, on SQLite in a tmp data dir."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from vein_tracker import export as ex
from vein_tracker import synthetic as sy
from vein_tracker.cli import main
from vein_tracker.io import encode_image
from vein_tracker.storage import (
    SYSTEM_ACTOR,
    Passwords,
    Screening,
    fast_test_hasher,
    open_repository,
)
from vein_tracker.storage.repository import Repository

STAFF = SYSTEM_ACTOR
PASSWORD = "Cli-test-passw0rd!"


@pytest.fixture
def repo(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Repository]:
    monkeypatch.setenv("VEIN_TRACKER_CLINIC_NAME", "CLI Clinic")
    monkeypatch.delenv("VEIN_TRACKER_PASSWORD", raising=False)
    r = open_repository(passwords=Passwords(fast_test_hasher()))
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def seeded(repo: Repository) -> dict[str, int]:
    """Two clients with one analysed pair each; only the first consents to 'website'."""
    pair = sy.make_pair(7, shape=(300, 400), capture=sy.identity_capture())
    before = encode_image(pair.baseline.rgb, format="PNG")
    after = encode_image(pair.followup.rgb, format="PNG")
    today = dt.date.today()
    ids = {}
    for name, scopes in (("Jane Doe", ["website"]), ("John Roe", ["print"])):
        c = repo.create_client(STAFF, name=name, screening=Screening())
        repo.record_consent(STAFF, c.id, kind="treatment_photography", signed_at=today)
        repo.record_consent(STAFF, c.id, kind="marketing", scopes=scopes)
        area = repo.create_area(STAFF, c.id, side="left", view="posterior", region="calf")
        v1 = repo.create_visit(
            STAFF, c.id, visit_date=today - timedelta(weeks=6), area_ids=[area.id]
        )
        v2 = repo.create_visit(STAFF, c.id, visit_date=today, area_ids=[area.id])
        pb = repo.add_photo(STAFF, area.id, v1.id, before)
        pf = repo.add_photo(STAFF, area.id, v2.id, after)
        repo.save_analysis(
            STAFF,
            pb.id,
            pf.id,
            params={},
            result={
                "improvement_pct": 82.0,
                "improvement_band_pct": [76.0, 88.0],
                "grade": "76-100",
                "registration": {"ok": True, "homography": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]},
            },
        )
        ids[name] = c.id
    repo.create_user(STAFF, "market", PASSWORD, "marketing")
    repo.create_user(STAFF, "aesth", PASSWORD, "aesthetician")
    repo.create_user(STAFF, "jane", PASSWORD, "client", client_id=ids["Jane Doe"])
    return ids


def test_export_command_as_marketing(
    seeded: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    repo: Repository,
) -> None:
    out = tmp_path / "pairs.zip"
    monkeypatch.setenv("VEIN_TRACKER_PASSWORD", PASSWORD)
    argv = ["export", "--channel", "website", "--min-improvement", "75", "--out", str(out)]
    assert main([*argv, "--as", "market", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert len(summary["exported"]) == 1
    assert summary["skipped"] == []
    with zipfile.ZipFile(out) as zf:
        manifest = ex.read_manifest(zf.read("manifest.csv"))
        assert len(manifest) == 1
        data = zf.read(manifest[0]["file"])
    assert manifest[0]["file"] == f"images/{manifest[0]['pair_id']}.jpg"
    # No digest in the manifest: a digest of the file would be a handle on it for no one.
    assert hashlib.sha256(data).hexdigest() not in zf_text(out)
    with Image.open(io.BytesIO(data)) as im:
        assert not im.getexif()
        assert "icc_profile" not in im.info
    assert b"Jane" not in out.read_bytes()
    assert not list(tmp_path.glob(".vt-*"))  # no temporary file left
    events = repo.list_audit(STAFF, action="export", ok=True)
    assert [(e.username, e.client_id) for e in events] == [("market", seeded["Jane Doe"])]


def test_export_command_refusals(
    seeded: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "pairs.zip"
    argv = ["export", "--channel", "website", "--out", str(out)]
    # No password available and no terminal: a clear message, exit 2.
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main([*argv, "--as", "market"]) == 2
    assert "VEIN_TRACKER_PASSWORD" in capsys.readouterr().err
    monkeypatch.setenv("VEIN_TRACKER_PASSWORD", "wrong-password-123")
    assert main([*argv, "--as", "market"]) == 4
    monkeypatch.setenv("VEIN_TRACKER_PASSWORD", PASSWORD)
    for user in ("aesth", "jane"):
        assert main([*argv, "--as", user]) == 4
        err = capsys.readouterr().err
        assert err.startswith("vein-tracker: ")
        assert "Traceback" not in err
    assert not out.exists()
    assert main(["export", "--channel", "billboard", "--out", str(out)]) == 2
    assert main([*argv[:-1], str(tmp_path / "missing" / "x.zip")]) == 2
    assert main(["export", "--channel", "print", "--opacity", "3", "--out", str(out)]) == 2


def zf_text(path: Path) -> str:
    """The manifest of a ZIP as text."""
    with zipfile.ZipFile(path) as zf:
        return zf.read("manifest.csv").decode("utf-8")


def test_export_command_as_local_operator(
    seeded: dict[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "print.zip"
    rc = main(["export", "--channel", "print", "--layout", "stacked", "--out", str(out)])
    assert rc == 0
    assert "exported 1 pair(s) for print" in capsys.readouterr().err
    with zipfile.ZipFile(out) as zf:
        (row,) = ex.read_manifest(zf.read("manifest.csv"))
    assert row["channel"] == "print"
    assert "consent_scope" not in row


def test_report_command(
    seeded: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    repo: Repository,
) -> None:
    jane = seeded["Jane Doe"]
    out = tmp_path / "report.pdf"
    monkeypatch.setenv("VEIN_TRACKER_PASSWORD", PASSWORD)
    assert main(["report", str(jane), "--out", str(out), "--as", "aesth"]) == 0
    assert out.read_bytes()[:5] == b"%PDF-"
    assert main(["report", str(jane), "--out", str(out), "--as", "jane", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["client_id"] == jane
    # Another client's report, or a marketing account: refused, nothing written.
    other = tmp_path / "other.pdf"
    assert main(["report", str(seeded["John Roe"]), "--out", str(other), "--as", "jane"]) == 4
    assert main(["report", str(jane), "--out", str(other), "--as", "market"]) == 4
    assert not other.exists()
    assert main(["report", "abc", "--out", str(other)]) == 2
    assert main(["report", "999", "--out", str(other)]) != 0
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        pytest.skip("pdftoppm not installed - rendering check skipped (tests/test_report.py)")
    subprocess.run([pdftoppm, "-r", "40", "-png", str(out), str(tmp_path / "p")], check=True)
    assert list(tmp_path.glob("p-*.png"))
    events = repo.list_audit(STAFF, action="report")
    assert {e.username for e in events} == {"aesth", "jane"}


def test_console_script_help() -> None:
    for cmd in ("export", "report"):
        proc = subprocess.run(
            [sys.executable, "-m", "vein_tracker", cmd, "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0
        assert "--as USERNAME" in proc.stdout
        assert "VEIN_TRACKER_PASSWORD" in proc.stdout
