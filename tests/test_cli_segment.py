"""`vein-tracker segment` end to end on a phantom photo file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vein_tracker import synthetic
from vein_tracker.cli import main
from vein_tracker.io import save_image, save_mask_png

SHAPE = (600, 800)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, synthetic.Rendered]:
    leg = synthetic.make_leg(
        1, shape=SHAPE, px_per_mm=10.0, tone="medium", n_spider_clusters=2, n_reticular=1
    )
    r = synthetic.render(leg)
    path = tmp_path_factory.mktemp("cli") / "leg.png"
    save_image(r.rgb, path)
    return path, r


def test_segment_writes_masks_overlay_and_json(
    phantom: tuple[Path, synthetic.Rendered], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo, r = phantom
    mask_p, lab_p, ov_p = tmp_path / "m.png", tmp_path / "l.png", tmp_path / "o.png"
    code = main(
        [
            "segment",
            str(photo),
            "--px-per-mm",
            "10",
            "--mask-out",
            str(mask_p),
            "--labels-out",
            str(lab_p),
            "--overlay",
            str(ov_p),
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    mask = np.asarray(Image.open(mask_p))
    labels = np.asarray(Image.open(lab_p))
    ov = np.asarray(Image.open(ov_p))
    assert mask.shape == SHAPE
    assert labels.shape == SHAPE
    assert ov.shape == (*SHAPE, 3)
    assert set(np.unique(mask)) == {0, 255}
    assert set(np.unique(labels)) == {0, 1, 2}
    assert np.array_equal(mask == 255, labels > 0)
    truth = r.labels > 0
    dice = 2.0 * ((mask == 255) & truth).sum() / ((mask == 255).sum() + truth.sum())
    assert dice >= 0.85
    seg = out["segmentation"]
    assert seg["px_per_mm"] == 10.0
    assert seg["px_per_mm_estimated"] is False
    assert seg["vein_pixels"] == int((mask == 255).sum())
    assert seg["by_class"]["spider"]["count"] >= 1
    assert seg["by_class"]["reticular"]["count"] >= 1
    assert out["photo"]["width"] == SHAPE[1]
    assert set(out["outputs"]) == {"mask", "labels", "overlay"}


def test_segment_human_output_and_estimated_scale(
    phantom: tuple[Path, synthetic.Rendered], capsys: pytest.CaptureFixture[str]
) -> None:
    photo, _ = phantom
    assert main(["segment", str(photo)]) == 0
    text = capsys.readouterr().out
    assert "spider" in text
    assert "(estimated)" in text


def test_segment_with_roi(
    phantom: tuple[Path, synthetic.Rendered], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo, _ = phantom
    roi = np.zeros(SHAPE, bool)
    roi[:, :400] = True
    roi_p = save_mask_png(roi, tmp_path / "roi.png")
    mask_p = tmp_path / "m.png"
    args = ["segment", str(photo), "--px-per-mm", "10", "--roi", str(roi_p)]
    assert main([*args, "--mask-out", str(mask_p)]) == 0
    mask = np.asarray(Image.open(mask_p)) > 0
    assert not mask[:, 400:].any()
    capsys.readouterr()


@pytest.mark.parametrize(
    "extra",
    [
        ["--px-per-mm", "-3"],
        ["--px-per-mm", "abc"],
        ["--px-per-mm", "1000"],
        ["--sensitivity", "2"],
        ["--mask-out", "out.gif"],
        ["--labels-out", "labels.jpg"],
        ["--roi", "missing.png"],
    ],
)
def test_segment_bad_arguments_exit_2(
    phantom: tuple[Path, synthetic.Rendered],
    tmp_path: Path,
    extra: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    photo, _ = phantom
    fixed = [str(tmp_path / a) if a.endswith((".gif", ".jpg", ".png")) else a for a in extra]
    assert main(["segment", str(photo), *fixed]) == 2
    assert capsys.readouterr().err


def test_segment_bad_photo_or_roi_exit_2(
    phantom: tuple[Path, synthetic.Rendered], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo, _ = phantom
    assert main(["segment", str(tmp_path / "nope.jpg")]) == 2
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    assert main(["segment", str(junk)]) == 2
    small = save_mask_png(np.ones((10, 10), bool), tmp_path / "small.png")
    assert main(["segment", str(photo), "--roi", str(small)]) == 2
    empty = save_mask_png(np.zeros(SHAPE, bool), tmp_path / "empty.png")
    assert main(["segment", str(photo), "--roi", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "vein-tracker:" in err
