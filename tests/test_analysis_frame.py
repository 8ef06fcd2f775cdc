"""The analysis frame: fine photos are compared at the analysis scale, results come back in
the photos' own pixels (homography, boxes, masks written by the CLI, review pictures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from vein_tracker import measure
from vein_tracker import synthetic as syn
from vein_tracker.io import load_mask_png, photo_from_array, save_image
from vein_tracker.measure import ANALYSIS_PX_PER_MM, analysis_frame
from vein_tracker.measure.frame import centre_scale


@pytest.mark.parametrize(
    ("b_shape", "f_shape", "ppm", "b_out", "f_out"),
    [
        # a 12 MP phone photo of a 200 mm field (20 px/mm): halved
        ((3000, 4000), (3000, 4000), None, (1500, 2000), (1500, 2000)),
        # already at the analysis scale, or within the slack: as it is
        ((1500, 2000), (1500, 2000), None, (1500, 2000), (1500, 2000)),
        ((1800, 2400), (1800, 2400), None, (1800, 2400), (1800, 2400)),
        # a given scale wins over the frame-size estimate
        ((1500, 2000), (1500, 2000), 25.0, (600, 800), (600, 800)),
        ((3000, 4000), (3000, 4000), 10.0, (3000, 4000), (3000, 4000)),
        # a follow-up from another camera, same framing: brought to the baseline's scale
        ((3000, 4000), (1500, 2000), None, (1500, 2000), (1500, 2000)),
        ((3000, 4000), (6000, 8000), None, (1500, 2000), (1500, 2000)),
        # held the other way round
        ((3000, 4000), (4000, 3000), None, (1500, 2000), (2000, 1500)),
        # never enlarged
        ((600, 800), (600, 800), 2.0, (600, 800), (600, 800)),
    ],
)
def test_analysis_frame_shapes(
    b_shape: tuple[int, int],
    f_shape: tuple[int, int],
    ppm: float | None,
    b_out: tuple[int, int],
    f_out: tuple[int, int],
) -> None:
    fr = analysis_frame(b_shape, f_shape, ppm)
    assert fr.photo_shape == b_shape
    assert fr.followup_photo_shape == f_shape
    assert fr.baseline_shape == b_out
    assert fr.followup_shape == f_out
    assert fr.reduced == (b_out != b_shape)
    assert fr.scale == pytest.approx(b_out[1] / b_shape[1], rel=1e-3)


def _centroid(img: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    w = img.astype(np.float64)
    return np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])


def test_centre_convention_matches_cv2_resize() -> None:
    """A bright blob resized by cv2 (INTER_AREA) lands where the frame's matrix says."""
    photo = np.zeros((400, 600), np.float32)
    cv2.circle(photo, (437, 121), 6, 1.0, -1)
    fr = analysis_frame((400, 600, 3), (400, 600, 3), 25.0)
    small = cv2.resize(
        photo, (fr.baseline_shape[1], fr.baseline_shape[0]), interpolation=cv2.INTER_AREA
    )
    to_analysis = centre_scale(fr.photo_shape, fr.baseline_shape)
    p = to_analysis @ np.array([*_centroid(photo), 1.0])
    assert np.allclose(p[:2] / p[2], _centroid(small), atol=0.02)


def test_photo_homography_lifts_an_analysis_map() -> None:
    """A follow-up -> baseline map known in photo pixels survives the trip to the analysis
    frame and back, for different baseline and follow-up sizes."""
    fr = analysis_frame((3000, 4000), (2400, 3200), None)
    h_photo = np.array([[1.05, 0.08, -40.0], [-0.07, 0.98, 65.0], [1e-6, -2e-6, 1.0]])
    # analysis H = S_b · H_photo · S_f^-1, with S the photo -> analysis matrices
    s_b = centre_scale(fr.photo_shape, fr.baseline_shape)
    assert fr.followup_shape == (1500, 2000)
    sf = np.diag([fr.followup_shape[1] / 3200, fr.followup_shape[0] / 2400, 1.0])
    sf[0, 2] = 0.5 * sf[0, 0] - 0.5
    sf[1, 2] = 0.5 * sf[1, 1] - 0.5
    h_analysis = s_b @ h_photo @ np.linalg.inv(sf)
    back = fr.photo_homography(h_analysis)
    pts = np.array([[0, 0, 1], [3199, 0, 1], [1600, 1200, 1], [0, 2399, 1]], np.float64)
    a = pts @ back.T
    b = pts @ h_photo.T
    assert np.allclose(a[:, :2] / a[:, 2:], b[:, :2] / b[:, 2:], atol=1e-6)


def test_to_photo_and_boxes_cover_the_same_pixels() -> None:
    fr = analysis_frame((1200, 1600), (1200, 1600), 20.0)
    assert fr.baseline_shape == (600, 800)
    m = np.zeros(fr.baseline_shape, bool)
    m[100:150, 200:260] = True
    big = fr.to_photo(m)
    assert big.shape == (1200, 1600)
    assert big.dtype == bool
    ys, xs = np.nonzero(big)
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (400, 200, 519, 299)
    assert fr.box_to_photo((200, 100, 60, 50)) == (400, 200, 120, 100)
    labels = np.zeros(fr.baseline_shape, np.uint8)
    labels[10:20, 30:40] = 4
    up = fr.to_photo(labels)
    assert up.dtype == np.uint8
    assert set(np.unique(up)) == {0, 4}
    assert np.count_nonzero(up) == 4 * np.count_nonzero(labels)
    with pytest.raises(ValueError, match="shape"):
        fr.to_photo(np.zeros((10, 10), bool))


# --------------------------------------------------------------------------- end to end

SHAPE = (1200, 1600)
PPM = 16.0  # a 100 mm field: analysed at 10 px/mm, 750 x 1000


@pytest.fixture(scope="module")
def fine_pair() -> syn.PhantomPair:
    cap = syn.random_capture(5, shape=SHAPE, blur_sigma=0.3, bend_px=0.0)
    return syn.make_pair(5, shape=SHAPE, px_per_mm=PPM, tone="fair", capture=cap)


@pytest.fixture(scope="module")
def fine_cmp(fine_pair: syn.PhantomPair) -> measure.Comparison:
    return measure.compare(
        photo_from_array(fine_pair.baseline.rgb, px_per_mm=PPM),
        photo_from_array(fine_pair.followup.rgb),
        px_per_mm=PPM,
    )


def test_fine_pair_is_analysed_at_the_analysis_scale(fine_cmp: measure.Comparison) -> None:
    c = fine_cmp
    assert c.frame is not None
    assert c.frame.reduced
    assert c.change_map.shape == (750, 1000)
    assert c.px_per_mm == pytest.approx(ANALYSIS_PX_PER_MM, rel=1e-3)
    d = c.to_dict()
    assert d["px_per_mm"] == pytest.approx(PPM, rel=1e-3)
    assert d["analysis"]["px_per_mm"] == pytest.approx(ANALYSIS_PX_PER_MM, rel=1e-3)
    assert d["analysis"]["baseline_shape"] == [750, 1000]
    # areas and lengths are in mm: independent of the pixel grid
    assert d["region_area_cm2"] == pytest.approx(
        np.count_nonzero(c.region) / ANALYSIS_PX_PER_MM**2 / 100.0, rel=1e-3
    )


def test_fine_pair_measures_the_truth(
    fine_pair: syn.PhantomPair, fine_cmp: measure.Comparison
) -> None:
    assert abs(fine_cmp.improvement_pct - fine_pair.true_improvement_pct) <= 6.0
    lo, hi = fine_cmp.improvement_band_pct
    assert lo <= fine_pair.true_improvement_pct <= hi


def test_fine_pair_homography_in_photo_pixels(
    fine_pair: syn.PhantomPair, fine_cmp: measure.Comparison
) -> None:
    h_true = np.asarray(fine_pair.followup.capture.homography)
    h = np.asarray(fine_cmp.to_dict()["registration"]["homography"])
    ys, xs = np.mgrid[200:1000:100, 200:1400:100]
    pts = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], axis=1).astype(np.float64)

    def apply(m: np.ndarray) -> np.ndarray:
        p = pts @ m.T
        return p[:, :2] / p[:, 2:]

    # half an analysis pixel is 0.8 photo px
    assert np.abs(apply(h) - apply(h_true)).max() < 1.5


def test_fine_pair_boxes_in_photo_pixels(fine_cmp: measure.Comparison) -> None:
    d = fine_cmp.to_dict()
    assert d["vein_changes"]
    # a vein's box holds its pixels the comparison counts: those in the compared region
    big = fine_cmp.to_photo(fine_cmp.baseline_seg.mask & fine_cmp.region)
    assert big.shape == SHAPE
    for v, ch in zip(fine_cmp.veins, d["vein_changes"], strict=True):
        x, y, w, h = ch["bbox"]
        assert min(x, y) >= 0
        assert x + w <= SHAPE[1]
        assert y + h <= SHAPE[0]
        if ch["status"] != "new":
            # the photo-size mask of that vein (in the region) lies inside its photo box
            sel = fine_cmp.to_photo(np.asarray(fine_cmp.baseline_seg.vein_ids) == v.id)
            ys, xs = np.nonzero(sel & big)
            if ys.size:
                assert x <= xs.min() <= xs.max() < x + w
                assert y <= ys.min() <= ys.max() < y + h


def test_cli_writes_masks_at_photo_size(
    fine_pair: syn.PhantomPair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from vein_tracker.cli import main

    b, f = tmp_path / "b.png", tmp_path / "f.png"
    save_image(fine_pair.baseline.rgb, b)
    save_image(fine_pair.followup.rgb, f)
    outs = {k: tmp_path / f"{k}.png" for k in ("bm", "fm", "cm")}
    code = main(
        [
            "analyze",
            str(b),
            str(f),
            "--px-per-mm",
            str(PPM),
            "--json",
            "--baseline-mask",
            str(outs["bm"]),
            "--followup-mask",
            str(outs["fm"]),
            "--change-map",
            str(outs["cm"]),
        ]
    )
    assert code == 0
    d = json.loads(capsys.readouterr().out)
    assert d["px_per_mm"] == pytest.approx(PPM, rel=1e-3)
    for p in outs.values():
        assert load_mask_png(p).shape == SHAPE
    assert load_mask_png(outs["bm"]).any()


def test_review_pictures_share_one_size(fine_pair: syn.PhantomPair, fine_cmp: Any) -> None:
    from vein_tracker.services import AnalysisParams, review_from_comparison

    r = review_from_comparison(
        fine_cmp,
        fine_pair.baseline.rgb,
        baseline_photo_id=1,
        followup_photo_id=2,
        params=AnalysisParams(),
    )
    shape = r.baseline.shape[:2]
    for arr in (r.followup, r.baseline_labels, r.followup_labels, r.change_map, r.region):
        assert arr.shape[:2] == shape
    assert r.region.dtype == bool
    assert r.region.any()
