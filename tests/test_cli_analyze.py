"""`vein-tracker analyze`: the JSON contract, the output files and the exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vein_tracker import synthetic as syn
from vein_tracker.cli import main
from vein_tracker.io import save_image, save_mask_png

SHAPE = (600, 800)


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A treated phantom pair on disk: baseline PNG, follow-up JPEG as the camera wrote it."""
    d = tmp_path_factory.mktemp("analyze")
    pair = syn.make_pair(11, shape=SHAPE, tone="fair", cleared_frac=0.6, faded_frac=0.2)
    b = d / "baseline.png"
    f = d / "followup.jpg"
    save_image(pair.baseline.rgb, b)
    if pair.followup.jpeg is not None:
        f.write_bytes(pair.followup.jpeg)
    else:
        save_image(pair.followup.rgb, f, quality=92)
    other = syn.make_pair(12345, shape=SHAPE, tone="brown")  # another leg entirely
    o = d / "other.png"
    save_image(other.baseline.rgb, o)
    labels = d / "true_map.png"
    save_mask_png(pair.baseline.labels, labels)  # 0 none, 1 spider, 2 reticular
    return {
        "labels": str(labels),
        "true_labels": pair.baseline.labels,
        "dir": d,
        "baseline": str(b),
        "followup": str(f),
        "other": str(o),
        "truth": pair.true_improvement_pct,
        "ppm": f"{pair.baseline.px_per_mm}",
    }


@pytest.fixture(scope="module")
def analyzed(pair_files: dict[str, Any]) -> dict[str, Any]:
    """One run with --json and every output file (shared by the contract tests)."""
    d: Path = pair_files["dir"]
    outs = {k: d / f"{k}.png" for k in ("bmask", "fmask", "overlay", "cmap")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vein_tracker",
            "analyze",
            pair_files["baseline"],
            pair_files["followup"],
            "--json",
            "--px-per-mm",
            pair_files["ppm"],
            "--baseline-mask",
            str(outs["bmask"]),
            "--followup-mask",
            str(outs["fmask"]),
            "--overlay",
            str(outs["overlay"]),
            "--change-map",
            str(outs["cmap"]),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return {"proc": proc, "outs": outs}


def test_analyze_json_contract(analyzed: dict[str, Any], pair_files: dict[str, Any]) -> None:
    proc = analyzed["proc"]
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1  # one JSON object, nothing else on stdout
    d = json.loads(lines[0])
    reg = d["registration"]
    assert reg["ok"] is True
    assert reg["reason"] is None
    h = np.asarray(reg["homography"], dtype=float)
    assert h.shape == (3, 3)
    assert 0.0 <= reg["quality"] <= 1.0
    assert isinstance(reg["residual_px"], float)
    for visit in ("baseline", "followup"):
        m = d[visit]
        for key in ("length_mm", "area_mm2", "burden"):
            assert isinstance(m[key], float)
            assert m[key] >= 0
        assert set(m["by_class"]) == {"spider", "reticular"}
        for c in m["by_class"].values():
            assert {"length_mm", "area_mm2", "burden"} <= set(c)
    assert d["baseline"]["area_mm2"] > d["followup"]["area_mm2"]  # treated: fewer veins
    pct = d["improvement_pct"]
    lo, hi = d["improvement_band_pct"]
    assert lo <= pct <= hi <= 100.0
    assert set(d["improvement_by_class_pct"]) == {"spider", "reticular"}
    assert d["grade"] in ("0-25", "26-50", "51-75", "76-100")
    assert d["target_pct"] == 75.0
    # "met" is read from the band's low end, "likely" from the estimate (issue 22).
    assert d["meets_target"] is (lo >= 75.0)
    assert d["target_status"] == ("met" if lo >= 75.0 else "likely" if pct >= 75.0 else "not yet")
    assert {"cleared", "faded", "persisting", "new"} <= set(d["veins"])
    assert all(isinstance(n, int) for n in d["veins"].values())
    assert isinstance(d["warnings"], list)
    # the number itself: a smaller version of the benchmark's standard-pair target
    assert abs(pct - pair_files["truth"]) <= 6.0
    assert lo - 1.0 <= pair_files["truth"] <= hi + 1.0


def test_analyze_homography_maps_followup_to_baseline(analyzed: dict[str, Any]) -> None:
    d = json.loads(analyzed["proc"].stdout)
    pair = syn.make_pair(11, shape=SHAPE, tone="fair", cleared_frac=0.6, faded_frac=0.2)
    h_est = np.asarray(d["registration"]["homography"])
    h_true = np.asarray(pair.followup.capture.homography)
    pts = np.array([[200.0, 150.0, 1.0], [600.0, 450.0, 1.0], [400.0, 300.0, 1.0]]).T
    a = h_est @ pts
    b = h_true @ pts
    err = np.hypot(*(a[:2] / a[2] - b[:2] / b[2]))
    assert err.max() < 3.0  # px, in the upright photos


def test_analyze_output_files(analyzed: dict[str, Any], pair_files: dict[str, Any]) -> None:
    outs = analyzed["outs"]
    for key in ("bmask", "fmask", "overlay", "cmap"):
        assert outs[key].exists(), key
    with Image.open(outs["bmask"]) as im:
        assert im.size == (SHAPE[1], SHAPE[0])
        bm = np.asarray(im)
    assert set(np.unique(bm)) <= {0, 255}
    assert (bm == 255).mean() > 0.001
    with Image.open(outs["fmask"]) as im:
        assert im.size == (SHAPE[1], SHAPE[0])
    with Image.open(outs["cmap"]) as im:
        cm = np.asarray(im)
    assert cm.shape == SHAPE
    assert set(np.unique(cm)) <= {0, 1, 2, 3, 4, 5}
    assert (cm == 1).any()  # some veins cleared
    with Image.open(outs["overlay"]) as im:
        assert im.mode == "RGB"
        assert im.size == (SHAPE[1], SHAPE[0])


def test_analyze_text_summary_and_roi(
    pair_files: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    roi = np.zeros(SHAPE, bool)
    roi[:, : SHAPE[1] // 2] = True
    roi_path = tmp_path / "roi.png"
    save_mask_png(roi, roi_path)
    code = main(
        [
            "analyze",
            pair_files["baseline"],
            pair_files["followup"],
            "--px-per-mm",
            pair_files["ppm"],
            "--roi",
            str(roi_path),
            "--baseline-mask",
            str(tmp_path / "b.png"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Improvement:" in out
    assert "Veins:" in out
    with Image.open(tmp_path / "b.png") as im:
        bm = np.asarray(im)
    # the written mask is the baseline segmentation; the ROI limits the measurement only
    assert bm.shape == SHAPE


def test_analyze_roi_limits_measurement(pair_files: dict[str, Any], tmp_path: Path) -> None:
    from vein_tracker.io import load_photo
    from vein_tracker.measure import compare

    b = load_photo(pair_files["baseline"], px_per_mm=float(pair_files["ppm"]))
    f = load_photo(pair_files["followup"])
    roi = np.zeros(SHAPE, bool)
    roi[: SHAPE[0] // 2, :] = True
    c = compare(b, f, roi=roi)
    assert not (c.region & ~roi).any()
    assert not c.change_map[~roi].any()


def test_unregistrable_pair_exits_3_with_reason(
    pair_files: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["analyze", pair_files["baseline"], pair_files["other"], "--json"])
    captured = capsys.readouterr()
    assert code == 3
    assert captured.out == ""  # no improvement printed
    assert captured.err.startswith("vein-tracker: ")
    assert len(captured.err.strip()) > 20  # a reason a clinic user can act on


def test_unregistrable_pair_subprocess(pair_files: dict[str, Any]) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vein_tracker",
            "analyze",
            pair_files["baseline"],
            pair_files["other"],
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 3
    assert "improvement" not in proc.stdout.lower()
    assert proc.stderr.strip()


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["{missing}", "{f}"], id="missing-baseline"),
        pytest.param(["{b}", "{notimage}"], id="followup-not-an-image"),
        pytest.param(["{b}", "{f}", "--px-per-mm", "-3"], id="negative-scale"),
        pytest.param(["{b}", "{f}", "--px-per-mm", "abc"], id="scale-not-a-number"),
        pytest.param(["{b}", "{f}", "--roi", "{badroi}"], id="roi-wrong-size"),
        pytest.param(["{b}", "{f}", "--roi", "{emptyroi}"], id="roi-empty"),
        pytest.param(["{b}", "{f}", "--baseline-mask", "{dir}/mask.jpg"], id="mask-not-png"),
        pytest.param(["{b}", "{f}", "--overlay", "{dir}/nope/o.png"], id="no-such-folder"),
        pytest.param(["{b}", "{f}", "--sensitivity", "2"], id="sensitivity-out-of-range"),
        pytest.param(["{b}", "{f}", "--baseline-map", "{badroi}"], id="map-wrong-size"),
        pytest.param(["{b}", "{f}", "--baseline-map", "{f}"], id="map-not-png"),
        pytest.param(["{b}", "{f}", "--baseline-map", "{notimage}"], id="map-not-an-image"),
        pytest.param(["{b}", "{f}", "--baseline-map", "{missing}"], id="map-missing"),
        pytest.param(["{b}"], id="missing-followup-argument"),
    ],
)
def test_bad_input_exits_2(
    args: list[str],
    pair_files: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a photo")
    bad_roi = tmp_path / "bad_roi.png"
    save_mask_png(np.ones((50, 60), bool), bad_roi)
    empty_roi = tmp_path / "empty_roi.png"
    save_mask_png(np.zeros(SHAPE, bool), empty_roi)
    subs = {
        "missing": str(tmp_path / "nothing.jpg"),
        "b": pair_files["baseline"],
        "f": pair_files["followup"],
        "notimage": str(not_image),
        "badroi": str(bad_roi),
        "emptyroi": str(empty_roi),
        "dir": str(tmp_path),
    }
    argv = ["analyze", *(a.format(**subs) for a in args), "--json"]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.strip()
    if "--baseline-map" in args:  # a bad map: one line saying what is wrong
        assert captured.err.startswith("vein-tracker: ")
        assert len(captured.err.strip().splitlines()) == 1


@pytest.mark.parametrize("known_classes", [True, False])
def test_baseline_map_is_measured_instead_of_segmenting(
    known_classes: bool,
    pair_files: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--baseline-map with the phantom's true map: the baseline's veins are the map's
    (0/1/2 with classes; 0/255 without, classes then found from colour)."""
    truth = pair_files["true_labels"]
    path = pair_files["labels"]
    if not known_classes:
        path = str(tmp_path / "mask.png")
        save_mask_png(truth > 0, path)  # 0/255
    out_mask = tmp_path / "b.png"
    code = main(
        [
            "analyze",
            pair_files["baseline"],
            pair_files["followup"],
            "--json",
            "--px-per-mm",
            pair_files["ppm"],
            "--baseline-map",
            path,
            "--baseline-mask",
            str(out_mask),
        ]
    )
    d = json.loads(capsys.readouterr().out)
    assert code == 0
    with Image.open(out_mask) as im:
        assert np.array_equal(np.asarray(im) > 0, truth > 0)
    assert abs(d["improvement_pct"] - pair_files["truth"]) <= 6.0
