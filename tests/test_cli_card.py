"""`vein-tracker card`: write the card, read it back from photo files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_card import (
    CASES,
    card_to_photo,
    photograph,
    place_card,
    plain_skin,
    true_px_per_mm,
)
from vein_tracker.card import MARKER_IDS, read_card
from vein_tracker.cli import main
from vein_tracker.io import save_image


@pytest.fixture(scope="module")
def tungsten_photo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A JPEG of plain skin with the card under a tungsten cast; its true px/mm."""
    case = next(c for c in CASES if c.name == "tungsten")
    h = card_to_photo(case.px_per_mm, case.angle_deg, case.centre, case.perspective)
    rgb = photograph(place_card(plain_skin(), h), case.camera)
    path = tmp_path_factory.mktemp("cli_card") / "leg with card.jpg"
    save_image(rgb, path, quality=95)
    return path, true_px_per_mm(h)


def test_out_writes_a_pdf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "card.pdf"
    assert main(["card", "--out", str(out), "--clinic", "Harbour Vein Clinic"]) == 0
    data = out.read_bytes()
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    printed = capsys.readouterr().out
    assert "100 %" in printed
    assert "no fit-to-page" in printed
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file


def test_out_takes_the_clinic_name_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VEIN_TRACKER_CLINIC_NAME", "Settings Clinic")
    a, b = tmp_path / "a.pdf", tmp_path / "b.pdf"
    assert main(["card", "--out", str(a)]) == 0
    assert main(["card", "--out", str(b), "--clinic", "Given Clinic", "--paper", "Letter"]) == 0
    # The document title (uncompressed in the PDF's info dictionary) names the clinic.
    assert b"/Title (Scale and colour card - Settings Clinic)" in a.read_bytes()
    assert b"/Title (Scale and colour card - Given Clinic)" in b.read_bytes()


def test_read_prints_the_scale_and_the_colour_error(
    tungsten_photo: tuple[Path, float], capsys: pytest.CaptureFixture[str]
) -> None:
    path, truth = tungsten_photo
    assert main(["card", "--read", str(path)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("leg with card.jpg: card found (4 of 4 markers):")
    shown = float(line.split(": ")[2].split(" px/mm")[0].split()[-1])
    assert shown == pytest.approx(truth, rel=0.02)
    assert "before" in line
    assert "after correction" in line


def test_read_json_and_corrected_photo(
    tungsten_photo: tuple[Path, float], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, truth = tungsten_photo
    fixed = tmp_path / "fixed.png"
    assert main(["card", "--read", str(path), "--json", "--corrected", str(fixed)]) == 0
    out = json.loads(capsys.readouterr().out)
    card = out["card"]
    assert card["px_per_mm"] == pytest.approx(truth, rel=0.02)
    assert sorted(card["marker_ids"]) == sorted(MARKER_IDS)
    assert len(card["corners_px"]) == 4
    assert card["delta_e_before_mean"] > 6.0
    assert card["delta_e_after_max"] <= 3.0
    assert out["photo"]["width"] == 1200
    assert out["outputs"] == {"corrected": str(fixed)}
    # The corrected file reads as a card that needs no further correction.
    corrected = np.asarray(Image.open(fixed).convert("RGB"))
    again = read_card(corrected)
    assert again is not None
    assert again.delta_e_before_mean is not None
    assert again.delta_e_before_mean < 1.5
    assert all(math.isfinite(v) for v in card["corners_px"][0])


def test_no_card_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "skin.png"
    save_image(plain_skin((400, 600)), path)
    assert main(["card", "--read", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "No calibration card found in 'skin.png'" in lines[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--out", "card.png"], "use a .pdf name"),
        (["--out", "card.pdf", "--json"], "go with --read"),
        (["--out", "card.pdf", "--clinic", "two\nlines"], "--clinic"),
        (["--read", "photo.jpg", "--clinic", "X"], "goes with --out"),
        (["--read", "photo.jpg", "--corrected", "fixed.tif"], ".png or .jpg"),
    ],
)
def test_bad_arguments_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    save_image(plain_skin((300, 300)), tmp_path / "photo.jpg")
    assert main(["card", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "card.png").exists()


def test_out_and_read_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["card", "--out", "a.pdf", "--read", "b.jpg"]) == 2
    assert "not allowed with" in capsys.readouterr().err
    assert main(["card"]) == 2
    assert "one of the arguments --out --read is required" in capsys.readouterr().err


def test_unreadable_output_folder_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no such folder" / "card.pdf"
    assert main(["card", "--out", str(missing)]) == 2
    assert "Could not write 'card.pdf'" in capsys.readouterr().err
