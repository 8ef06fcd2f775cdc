"""`vein-tracker register`: JSON contract, exit statuses and the warped output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vein_tracker import synthetic as syn
from vein_tracker.cli import main
from vein_tracker.io import load_photo, save_image, save_mask_png

SHAPE = (600, 800)


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    d = tmp_path_factory.mktemp("pair")
    cap = syn.random_capture(2, shape=SHAPE, blur_sigma=(0.0, 0.4))
    pair = syn.make_pair(2, shape=SHAPE, capture=cap)
    b = save_image(pair.baseline.rgb, d / "baseline.png")
    f = save_image(pair.followup.rgb, d / "followup.png")
    return b, f, np.asarray(pair.followup.capture.homography)


def apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.hstack([pts, np.ones((len(pts), 1))]) @ h.T
    return p[:, :2] / p[:, 2:]


def test_json_contract_and_warped_output(
    pair_files: tuple[Path, Path, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    b, f, h_true = pair_files
    out = tmp_path / "warped.png"
    code = main(["register", str(b), str(f), "--json", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    d = json.loads(captured.out)
    for key in ("ok", "homography", "quality", "residual_px", "inliers", "reason"):
        assert key in d
    assert d["ok"] is True
    assert d["reason"] is None
    assert 0.0 <= d["quality"] <= 1.0
    assert d["inliers"] >= 20
    h = np.array(d["homography"])
    assert h.shape == (3, 3)
    pts = np.array([[200.0, 150.0], [600.0, 150.0], [400.0, 450.0]])
    assert np.abs(apply(h, pts) - apply(h_true, pts)).max() < 1.0
    warped = load_photo(out)
    assert warped.rgb.shape == (*SHAPE, 3)


def test_human_output(
    pair_files: tuple[Path, Path, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    b, f, _ = pair_files
    assert main(["register", str(b), str(f), "--rigid"]) == 0
    out = capsys.readouterr().out
    assert "Registered: quality" in out
    assert "Homography (follow-up -> baseline)" in out


def test_roi_mask(
    pair_files: tuple[Path, Path, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    b, f, _ = pair_files
    roi = np.zeros(SHAPE, bool)
    roi[150:450, 250:550] = True
    mask = save_mask_png(roi, tmp_path / "roi.png")
    assert main(["register", str(b), str(f), "--roi", str(mask), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_unrelated_pair_exits_3_with_reason(
    pair_files: tuple[Path, Path, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    b, _, _ = pair_files
    other = save_image(syn.render(syn.make_leg(31, shape=SHAPE)).rgb, tmp_path / "other.png")
    out = tmp_path / "warped.png"
    code = main(["register", str(b), str(other), "--json", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 3
    d = json.loads(captured.out)
    assert d["ok"] is False
    assert d["reason"]
    assert d["reason"] in captured.err
    assert not out.exists()


def test_bad_inputs_exit_2(
    pair_files: tuple[Path, Path, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    b, f, _ = pair_files
    not_image = tmp_path / "notes.png"
    not_image.write_text("not a photo")
    wrong_roi = save_mask_png(np.ones((10, 10), bool), tmp_path / "small_roi.png")
    empty_roi = save_mask_png(np.zeros(SHAPE, bool), tmp_path / "empty_roi.png")
    cases = [
        ["register", str(tmp_path / "missing.jpg"), str(f)],
        ["register", str(b), str(not_image)],
        ["register", str(b), str(f), "--roi", str(wrong_roi)],
        ["register", str(b), str(f), "--roi", str(empty_roi)],
        ["register", str(b), str(f), "--out", str(tmp_path / "warped.gif")],
        ["register", str(b), str(f), "--out", str(tmp_path / "nowhere" / "w.png")],
        ["register", str(b)],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.strip(), argv
