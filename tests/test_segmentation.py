"""Tests of vein_tracker.segmentation against phantoms with exact truth.

Phantoms are 600 × 800 px at 10 px/mm (a 8 cm frame) with two spider clusters and one
reticular vein, so the default suite stays fast; the full-size figures live in
``benchmarks/segmentation.py``.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from vein_tracker import synthetic
from vein_tracker.errors import PhotoError
from vein_tracker.io import photo_from_array
from vein_tracker.segmentation import (
    Segmentation,
    VeinContrast,
    estimate_px_per_mm,
    leg_mask,
    overlay,
    segment,
    vein_contrast,
)

SHAPE = (600, 800)
PPM = 10.0


def _leg(seed: int, tone: str, **kw: object) -> synthetic.Leg:
    kw.setdefault("n_spider_clusters", 2)
    kw.setdefault("n_reticular", 1)
    return synthetic.make_leg(seed, shape=SHAPE, px_per_mm=PPM, tone=tone, **kw)  # type: ignore[arg-type]


def _near(mask: np.ndarray, tol: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tol + 1, 2 * tol + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def _scores(seg: Segmentation, r: synthetic.Rendered) -> dict[str, float]:
    from skimage.morphology import skeletonize

    truth = r.labels > 0
    dice = 2.0 * float((seg.mask & truth).sum()) / float(seg.mask.sum() + truth.sum())
    t_skel = skeletonize(truth)
    recall = float(_near(seg.skeleton, 2)[t_skel].mean())
    precision = float(_near(t_skel, 2)[seg.skeleton].mean())
    found = truth & seg.mask
    cls_acc = float((seg.labels[found] == r.labels[found]).mean())
    look = (r.hair | r.freckles) & ~_near(truth, 1)
    fp = float(seg.mask[look].mean())
    return {"dice": dice, "recall": recall, "precision": precision, "cls": cls_acc, "fp": fp}


@pytest.fixture(scope="module")
def light() -> synthetic.Rendered:
    return synthetic.render(_leg(1, "light"))


@pytest.fixture(scope="module")
def light_seg(light: synthetic.Rendered) -> Segmentation:
    return segment(light.rgb, px_per_mm=PPM)


# ------------------------------------------------------------------ accuracy


@pytest.mark.parametrize(("seed", "tone"), [(1, "light"), (2, "medium"), (1, "brown")])
def test_phantom_accuracy(seed: int, tone: str) -> None:
    r = synthetic.render(_leg(seed, tone))
    assert (r.labels == 1).any()
    assert (r.labels == 2).any()
    assert r.hair.any()
    seg = segment(r.rgb, px_per_mm=PPM)
    s = _scores(seg, r)
    assert s["dice"] >= 0.85, s
    assert s["recall"] >= 0.90, s
    assert s["precision"] >= 0.90, s
    assert s["cls"] >= 0.95, s
    assert s["fp"] <= 0.02, s


@pytest.mark.parametrize(("seed", "tone"), [(1, "light"), (3, "fair"), (2, "medium")])
def test_phantom_accuracy_through_a_phone_jpeg(seed: int, tone: str) -> None:
    """A phone-like photo: sensor noise, 0.5 px blur and JPEG quality 88 (4:2:0 chroma).

    JPEG stores colour at half resolution in 8 x 8 blocks; the colour projections must
    not turn its block errors into veins, nor lose the veins. Measured at this size:
    Dice 0.86/0.83/0.86, recall 0.94/0.98/0.88, precision 0.96/0.93/0.92. Darker tones
    (olive, brown) are still below the issue's targets through JPEG (see the benchmark's
    ``--camera`` table): their faint veins lose most of their chroma to the compression.
    """
    cap = synthetic.identity_capture(
        shape=SHAPE, noise=0.004, blur_sigma=0.5, jpeg_quality=88, seed=seed
    )
    r = synthetic.render(_leg(seed, tone), cap)
    assert r.jpeg is not None
    seg = segment(r.rgb, px_per_mm=PPM)
    s = _scores(seg, r)
    assert s["dice"] >= 0.80, s
    assert s["recall"] >= 0.85, s
    assert s["precision"] >= 0.90, s
    assert s["cls"] >= 0.95, s
    assert s["fp"] <= 0.02, s


def test_each_class_is_found_with_its_width(
    light: synthetic.Rendered, light_seg: Segmentation
) -> None:
    for code in (1, 2):
        truth = light.labels == code
        pred = light_seg.labels == code
        dice = 2.0 * float((truth & pred).sum()) / float(truth.sum() + pred.sum())
        assert dice >= 0.85, (code, dice)
        # Pixel-accurate width: the found area matches the true footprint within 15 %.
        assert 0.85 <= pred.sum() / truth.sum() <= 1.15, (code, pred.sum(), truth.sum())


def test_hair_freckles_and_moles_are_not_veins() -> None:
    leg = _leg(5, "fair", n_spider_clusters=0, n_reticular=0)
    r = synthetic.render(leg)
    assert r.hair.sum() > 500
    assert (r.freckles | r.moles).any()
    seg = segment(r.rgb, px_per_mm=PPM)
    look = r.hair | r.freckles | r.moles
    assert seg.mask[look].mean() <= 0.01
    assert seg.mask.sum() <= 0.001 * seg.mask.size


def test_staining_and_bruise_are_not_veins() -> None:
    pair = synthetic.make_pair(
        11,
        shape=SHAPE,
        px_per_mm=PPM,
        tone="medium",
        n_spider_clusters=3,
        n_reticular=2,
        cleared_frac=1.0,
        faded_frac=0.0,
        staining=True,
        bruising=True,
        capture=synthetic.identity_capture(shape=SHAPE),
    )
    f = pair.followup
    assert not (f.labels > 0).any()  # every vein cleared: a vein-free photo
    assert f.stain.any()
    assert f.bruise.any()
    seg = segment(f.rgb, px_per_mm=PPM)
    assert seg.mask[f.stain].mean() <= 0.01
    assert seg.mask[f.bruise].mean() <= 0.01
    con = vein_contrast(f.rgb, px_per_mm=PPM)
    # The contrast maps ignore the brown stain (melanin direction). Within 10 mm of the
    # leg's outline the reticular map also carries the steep edge shading, so the check
    # is made inside.
    inner = cv2.distanceTransform(f.leg_mask.astype(np.uint8), cv2.DIST_L2, 5) > 10 * PPM
    stain = f.stain & inner & ~_near(f.bruise, 20)
    assert stain.sum() > 1000
    assert abs(float(np.median(con.spider[stain]))) < 0.01
    assert abs(float(np.median(con.reticular[stain]))) < 0.01


# ------------------------------------------------------------------ invariants


def test_blank_image_gives_empty_mask() -> None:
    skin = np.empty((400, 500, 3), np.uint8)
    skin[:] = (205, 160, 140)
    seg = segment(skin, px_per_mm=PPM)
    assert not seg.mask.any()
    assert not seg.skeleton.any()
    assert seg.veins == ()
    assert np.abs(seg.strength).max() < 1e-3
    grey = np.full((300, 300, 3), 128, np.uint8)
    assert not segment(grey, px_per_mm=PPM).mask.any()


def test_mask_unchanged_by_horizontal_flip(
    light: synthetic.Rendered, light_seg: Segmentation
) -> None:
    flipped = segment(np.ascontiguousarray(light.rgb[:, ::-1]), px_per_mm=PPM)
    back = flipped.mask[:, ::-1]
    # Tolerance: 2 % of the vein pixels may differ (ties in non-maximum suppression).
    assert (back ^ light_seg.mask).sum() <= 0.02 * light_seg.mask.sum()
    assert np.array_equal(flipped.labels[:, ::-1] > 0, back)


@pytest.mark.parametrize("exposure", [0.85, 1.15])
def test_mask_unchanged_by_exposure(
    light: synthetic.Rendered, light_seg: Segmentation, exposure: float
) -> None:
    cap = synthetic.identity_capture(shape=SHAPE, exposure=exposure)
    r = synthetic.render(_leg(1, "light"), cap)
    seg = segment(r.rgb, px_per_mm=PPM)
    # Exposure is an OD offset, which the contrast cancels exactly; 8-bit quantisation
    # still moves single boundary pixels. Tolerance: 5 % of the vein pixels may differ,
    # and no differing piece is larger than 1 mm².
    diff = seg.mask ^ light_seg.mask
    assert diff.sum() <= 0.05 * light_seg.mask.sum()
    n, lab = cv2.connectedComponents(diff.astype(np.uint8), connectivity=8)
    assert np.bincount(lab[diff]).max() <= PPM**2


def test_contrast_is_linear_and_ignores_white_balance(light: synthetic.Rendered) -> None:
    leg = _leg(1, "light")
    base = vein_contrast(light.rgb, px_per_mm=PPM)
    assert isinstance(base, VeinContrast)
    faded = synthetic.treat(leg, 3, cleared_frac=0.0, faded_frac=1.0, fade_to=0.5)
    cap = synthetic.identity_capture(shape=SHAPE, exposure=0.9, wb_gains=(1.08, 1.0, 0.93))
    rf = synthetic.render(faded, cap)
    fol = vein_contrast(rf.rgb, px_per_mm=PPM, leg_mask=light.leg_mask)
    for code, name in ((1, "spider"), (2, "reticular")):
        core = (light.labels == code) & ~_near(light.hair, 2)
        cb = getattr(base, name)[core]
        cf = getattr(fol, name)[core]
        strong = cb > 0.05
        ratio = float(np.median(cf[strong] / cb[strong]))
        assert ratio == pytest.approx(0.5, abs=0.08), (name, ratio)
    # Same scene, new white balance: the contrast does not move.
    rw = synthetic.render(leg, cap)
    again = vein_contrast(rw.rgb, px_per_mm=PPM, leg_mask=light.leg_mask)
    veins = light.labels > 0
    for name in ("spider", "reticular"):
        d = np.abs(getattr(again, name)[veins] - getattr(base, name)[veins])
        # 8-bit quantisation alone moves the spider map by ~0.015 OD per pixel.
        assert float(np.median(d)) < 0.02, name
    # Skin without veins reads ≈ 0.
    inner = cv2.distanceTransform(light.leg_mask.astype(np.uint8), cv2.DIST_L2, 5) > 10 * PPM
    skin = inner & ~_near(light.labels > 0, 15) & ~_near(light.hair, 2)
    assert abs(float(np.median(base.spider[skin]))) < 0.01
    assert abs(float(np.median(base.reticular[skin]))) < 0.01


# ------------------------------------------------------------------ result structure


def test_result_is_consistent(light: synthetic.Rendered, light_seg: Segmentation) -> None:
    seg = light_seg
    assert seg.mask.shape == SHAPE
    assert seg.mask.dtype == bool
    assert seg.labels.dtype == np.uint8
    assert set(np.unique(seg.labels)) <= {0, 1, 2}
    assert np.array_equal(seg.mask, seg.labels > 0)
    assert seg.strength.dtype == np.float32
    assert seg.strength.shape == SHAPE
    assert not (seg.skeleton & ~seg.mask).any()
    assert seg.vein_ids.dtype == np.int32
    assert np.array_equal(seg.vein_ids > 0, seg.mask)
    ids = [v.id for v in seg.veins]
    assert len(ids) == len(set(ids))
    assert set(np.unique(seg.vein_ids[seg.mask])) == set(ids)
    assert {v.cls for v in seg.veins} == {"spider", "reticular"}
    for v in seg.veins:
        sel = seg.vein_ids == v.id
        assert v.area_mm2 == pytest.approx(sel.sum() / PPM**2)
        code = 1 if v.cls == "spider" else 2
        assert (seg.labels[sel] == code).all()
    spider_w = [v.width_mm for v in seg.veins if v.cls == "spider" and v.length_mm > 3]
    retic_w = [v.width_mm for v in seg.veins if v.cls == "reticular" and v.length_mm > 3]
    assert max(spider_w) < 1.2
    assert min(retic_w) > 0.8
    assert not seg.px_per_mm_estimated
    assert seg.px_per_mm == PPM
    assert not (seg.mask & ~seg.leg_mask).any()
    by = seg.strength_by_class
    assert set(by) == {"spider", "reticular"}
    assert np.array_equal(seg.strength[seg.labels == 1], by["spider"][seg.labels == 1])
    d = json.loads(json.dumps(seg.to_dict()))
    assert d["vein_pixels"] == int(seg.mask.sum())
    assert d["by_class"]["spider"]["count"] == sum(v.cls == "spider" for v in seg.veins)


def test_vein_contrast_matches_segmentation(
    light: synthetic.Rendered, light_seg: Segmentation
) -> None:
    con = vein_contrast(light.rgb, px_per_mm=PPM)
    assert light_seg.contrast is not None
    assert np.array_equal(con.spider, light_seg.contrast.spider)
    assert np.array_equal(con.reticular, light_seg.contrast.reticular)
    assert not con.spider[~con.leg_mask].any()
    json.dumps(con.to_dict())
    with pytest.raises(ValueError, match="labels"):
        con.of_class(np.zeros((3, 3), np.uint8))


def test_no_veins_off_the_leg(light: synthetic.Rendered, light_seg: Segmentation) -> None:
    off = ~_near(light.leg_mask, 2)
    assert not light_seg.mask[off].any()
    assert not light_seg.strength[off].any()


def test_leg_mask_is_the_leg_segment_finds(
    light: synthetic.Rendered, light_seg: Segmentation
) -> None:
    """compare segments a blurred copy of the baseline on the leg of the photo as taken."""
    leg = leg_mask(light.rgb, px_per_mm=PPM)
    assert leg.dtype == bool
    assert leg.shape == light.rgb.shape[:2]
    np.testing.assert_array_equal(leg, light_seg.leg_mask)
    # the scale estimated from the frame, as segment does without one
    small = cv2.resize(light.rgb, (400, 300), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(leg_mask(small), segment(small).leg_mask)
    with pytest.raises(ValueError, match="px_per_mm"):
        leg_mask(light.rgb, px_per_mm=-1.0)


def test_neutral_map_darkens_as_the_veins_do(
    light: synthetic.Rendered, light_seg: Segmentation
) -> None:
    """A vein darkens the skin by its class's share of neutral OD; skin reads ≈ 0."""
    from vein_tracker.segmentation import NEUTRAL_PER_CLASS

    neutral = light_seg.neutral
    assert neutral is not None
    assert neutral.shape == light_seg.mask.shape
    assert neutral.dtype == np.float32
    for code in (1, 2):
        sel = light_seg.labels == code
        ratio = float(neutral[sel].sum() / light_seg.strength[sel].sum())
        assert ratio == pytest.approx(NEUTRAL_PER_CLASS[code], rel=0.25)
    skin = light_seg.leg_mask & ~_near(light_seg.mask, 10)
    assert abs(float(np.median(neutral[skin]))) < 0.01
    assert not neutral[~light_seg.leg_mask].any()


def test_roi_limits_the_result(light: synthetic.Rendered, light_seg: Segmentation) -> None:
    roi = np.zeros(SHAPE, bool)
    roi[:, : SHAPE[1] // 2] = True
    seg = segment(light.rgb, px_per_mm=PPM, roi=roi)
    assert not seg.mask[~roi].any()
    assert not seg.leg_mask[~roi].any()
    inner = roi.copy()
    inner[:, SHAPE[1] // 2 - 30 :] = False
    assert (seg.mask[inner] == light_seg.mask[inner]).mean() > 0.99


def test_a_resolved_scale_is_used_as_it_is(light: synthetic.Rendered) -> None:
    """segment() takes a Scale the caller has already resolved (a comparison estimates
    the baseline's once): the same veins as with its number, and the scale reported as
    it came, estimated with its range."""
    from vein_tracker.scale import estimate_scale

    est = estimate_scale(light.rgb)
    assert est.estimated
    leg = leg_mask(light.rgb, px_per_mm=est.px_per_mm)
    by_scale = segment(light.rgb, px_per_mm=est, leg_mask=leg)
    by_number = segment(light.rgb, px_per_mm=est.px_per_mm, leg_mask=leg)
    np.testing.assert_array_equal(by_scale.labels, by_number.labels)
    assert by_scale.scale == est
    assert by_scale.px_per_mm_estimated
    assert not by_number.px_per_mm_estimated
    assert by_scale.px_per_mm == pytest.approx(est.px_per_mm)


def test_sensitivity_orders_the_masks(light: synthetic.Rendered) -> None:
    low = segment(light.rgb, px_per_mm=PPM, sensitivity=0.1)
    high = segment(light.rgb, px_per_mm=PPM, sensitivity=0.9)
    assert low.mask.sum() <= high.mask.sum()


def test_scale_from_photo_or_estimated(light: synthetic.Rendered) -> None:
    est = segment(light.rgb)
    assert est.px_per_mm_estimated
    assert est.px_per_mm == pytest.approx(estimate_px_per_mm(light.rgb))
    # This phantom's leg (both outlines in view, 400-520 px wide) is read as an adult
    # lower leg, 70-150 mm wide: a range, reported with the estimate.
    assert est.scale is not None
    assert est.scale.source == "estimated"
    assert est.scale.method == "leg width"
    assert est.scale.low < est.px_per_mm < est.scale.high
    photo = photo_from_array(light.rgb, px_per_mm=PPM)
    seg = segment(photo)
    assert not seg.px_per_mm_estimated
    assert seg.px_per_mm == PPM


def test_higher_resolution_photo_is_reduced_and_upsampled() -> None:
    leg = _leg(1, "light")
    r2 = synthetic.render(leg, shape=(SHAPE[0] * 2, SHAPE[1] * 2))
    seg = segment(r2.rgb, px_per_mm=2 * PPM)
    assert seg.mask.shape == r2.labels.shape
    s = _scores(seg, r2)
    assert s["dice"] >= 0.85, s
    assert s["cls"] >= 0.95, s
    assert np.array_equal(seg.vein_ids > 0, seg.mask) or (
        ((seg.vein_ids > 0) ^ seg.mask).mean() < 0.001
    )
    # The skeleton stays one connected line per vein (no dotted upsampling).
    n_sk, _ = cv2.connectedComponents(seg.skeleton.astype(np.uint8), connectivity=8)
    n_mask, _ = cv2.connectedComponents(seg.mask.astype(np.uint8), connectivity=8)
    assert n_sk <= 2 * n_mask


def test_overlay_colours_the_classes(light: synthetic.Rendered, light_seg: Segmentation) -> None:
    out = overlay(light.rgb, light_seg.labels)
    assert out.shape == light.rgb.shape
    assert out.dtype == np.uint8
    assert (out[light_seg.labels == 1] == (255, 40, 90)).all()
    assert (out[light_seg.labels == 2] == (40, 200, 255)).all()
    assert (out[light_seg.labels == 0] <= light.rgb[light_seg.labels == 0]).all()
    with pytest.raises(ValueError, match="labels"):
        overlay(light.rgb, light_seg.labels[:10])
    with pytest.raises(ValueError, match="dim"):
        overlay(light.rgb, light_seg.labels, dim=2.0)


# ------------------------------------------------------------------ bad input

GOOD = np.full((300, 300, 3), 150, np.uint8)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((300, 300), np.uint8),
        np.zeros((300, 300, 4), np.uint8),
        np.zeros((300, 300, 3), np.float32),
    ],
)
def test_bad_image_raises(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="image"):
        segment(image)
    with pytest.raises(ValueError, match="image"):
        vein_contrast(image, px_per_mm=PPM)


def test_non_array_raises() -> None:
    with pytest.raises(TypeError):
        segment([[1, 2, 3]])  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), True, "0.5", None])
def test_bad_sensitivity_raises(value: object) -> None:
    with pytest.raises(ValueError, match="sensitivity"):
        segment(GOOD, sensitivity=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0.0, -3.0, float("inf"), float("nan"), 1e6, "10", True])
def test_bad_px_per_mm_raises(value: object) -> None:
    with pytest.raises(ValueError, match="px_per_mm"):
        segment(GOOD, px_per_mm=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="px_per_mm"):
        vein_contrast(GOOD, px_per_mm=value)  # type: ignore[arg-type]


def test_vein_contrast_needs_a_scale() -> None:
    with pytest.raises(ValueError, match="px_per_mm"):
        vein_contrast(GOOD, px_per_mm=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["roi", "leg_mask"])
@pytest.mark.parametrize(
    "mask",
    [np.ones((10, 10), bool), np.ones((300, 300), np.uint8), np.ones((300, 300, 1), bool)],
)
def test_bad_masks_raise(name: str, mask: np.ndarray) -> None:
    with pytest.raises(ValueError, match=name):
        segment(GOOD, px_per_mm=PPM, **{name: mask})


def test_photo_error_is_a_value_error() -> None:
    # The CLI maps both to exit status 2; library callers may catch ValueError.
    assert issubclass(PhotoError, ValueError)


def test_inputs_are_not_modified(light: synthetic.Rendered) -> None:
    rgb = light.rgb.copy()
    roi = np.ones(SHAPE, bool)
    leg = light.leg_mask.copy()
    segment(rgb, px_per_mm=PPM, roi=roi, leg_mask=leg)
    assert np.array_equal(rgb, light.rgb)
    assert roi.all()
    assert np.array_equal(leg, light.leg_mask)


@pytest.mark.parametrize(
    ("ppm", "work", "half"),
    [
        (10.0, (2000, 1500), (1000, 750)),
        (10.23, (2000, 1500), (1000, 750)),  # within 5 %: not resampled by 2 %
        (10.4, (2000, 1500), (1000, 750)),
        (12.0, (1667, 1250), (834, 625)),  # a real reduction, then a whole half
        (5.1, (2000, 1500), (2000, 1500)),  # the half level is the photo itself
        (7.0, (2000, 1500), (1429, 1071)),
    ],
)
def test_levels_reduce_by_whole_factors_when_that_near(
    ppm: float, work: tuple[int, int], half: tuple[int, int]
) -> None:
    from vein_tracker.segmentation.levels import _levels

    work_size, ppm_work, half_size, _, _ = _levels((1500, 2000), ppm)
    assert work_size == work
    assert half_size == half
    assert ppm_work == pytest.approx(ppm * work[0] / 2000)


def _paint_spider(
    rgb: np.ndarray, lines: list[tuple[int, int, int, int]], od: np.ndarray | None = None
) -> np.ndarray:
    """``rgb`` with 0.4 mm spider veins of 0.5 OD drawn along ``lines`` (x0, y0, x1, y1),
    in blood's OD unless another ``od`` direction is given."""
    from vein_tracker.optics import HAEMOGLOBIN_OD, od_to_srgb_u8, optical_density

    drawn = np.zeros(rgb.shape[:2], np.float32)
    for x0, y0, x1, y1 in lines:
        cv2.line(drawn, (x0, y0), (x1, y1), 1.0, thickness=4, lineType=cv2.LINE_AA)
    drawn = cv2.GaussianBlur(drawn, (0, 0), 0.7)
    direction = HAEMOGLOBIN_OD if od is None else od
    return od_to_srgb_u8(optical_density(rgb) + 0.5 * drawn[..., None] * direction)


def test_a_lone_speck_is_not_a_spider_vein_but_a_network_piece_is() -> None:
    skin = synthetic.render(_leg(5, "light", n_spider_clusters=0, n_reticular=0)).rgb
    speck = (400, 300, 430, 300)  # 3 mm, alone
    lone = segment(_paint_spider(skin, [speck]), px_per_mm=PPM)
    assert lone.mask[296:305, 400:431].mean() < 0.05
    # The same speck 3 mm from a 20 mm spider vein: one network, both kept.
    network = segment(_paint_spider(skin, [speck, (400, 330, 600, 340)]), px_per_mm=PPM)
    assert network.mask[296:305, 403:428].any(axis=0).mean() > 0.8
    assert network.mask[330:345, 420:580].any(axis=0).mean() > 0.8


def test_a_spider_coloured_line_that_does_not_darken_the_luminance_is_not_a_vein(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A line with a spider vein's colour but 0.4 of its darkness (the OD of blood with
    most of its neutral part taken out: what the noise of JPEG's half-resolution colour
    makes) is dropped; a vein of the same spider contrast beside it, which darkens the
    luminance as blood does, is kept. With the rule off the colour-only line is found, so
    the rule is what drops it."""
    from vein_tracker.optics import HAEMOGLOBIN_OD, NEUTRAL_OD

    darkness = float(HAEMOGLOBIN_OD @ NEUTRAL_OD) * NEUTRAL_OD
    colour_only = HAEMOGLOBIN_OD - 0.6 * darkness
    skin = synthetic.render(_leg(5, "light", n_spider_clusters=0, n_reticular=0)).rgb
    vein, colour = (330, 220, 560, 250), (330, 330, 560, 360)  # 23 mm each, 11 mm apart
    rgb = _paint_spider(_paint_spider(skin, [vein]), [colour], od=colour_only)
    seg = segment(rgb, px_per_mm=PPM)
    assert _along(seg, vein) > 0.8
    assert _along(seg, colour) < 0.1

    import vein_tracker.segmentation.footprint as footprint

    monkeypatch.setattr(footprint, "_SPIDER_MIN_LUMA_SHARE", 0.0)
    assert _along(segment(rgb, px_per_mm=PPM), colour) > 0.8


def test_a_patch_wider_than_a_reticular_vein_is_not_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 12 x 6 mm patch of deep-vein colour (mottling, or shading the light made) is found
    as a reticular piece 3.6 mm wide (a band of its area and centreline), wider than a
    reticular vein is (1-3 mm), and is dropped; a 1.8 mm reticular vein above it is kept
    (1.7 mm as a band). With the rule off the patch is
    found, so the rule is what drops it."""
    from vein_tracker.optics import DEEP_VEIN_OD, od_to_srgb_u8, optical_density

    skin = synthetic.render(_leg(5, "light", n_spider_clusters=0, n_reticular=0)).rgb
    vein = np.zeros(SHAPE, np.float32)
    cv2.line(vein, (300, 200), (600, 230), 1.0, thickness=18, lineType=cv2.LINE_AA)
    patch = np.zeros(SHAPE, np.float32)
    cv2.ellipse(patch, (450, 380), (60, 30), 10, 0, 360, 1.0, -1, cv2.LINE_AA)
    od = 0.3 * (cv2.GaussianBlur(vein, (0, 0), 3) + cv2.GaussianBlur(patch, (0, 0), 8))
    rgb = od_to_srgb_u8(optical_density(skin) + od[..., None] * DEEP_VEIN_OD)
    in_patch = (slice(340, 420), slice(390, 510))

    seg = segment(rgb, px_per_mm=PPM)
    assert seg.mask[190:245, 320:580].any(axis=0).mean() > 0.9
    assert not seg.mask[in_patch].any()

    import vein_tracker.segmentation.footprint as footprint

    monkeypatch.setattr(footprint, "_RETIC_MAX_WIDTH_MM", float("inf"))
    assert segment(rgb, px_per_mm=PPM).mask[in_patch].mean() > 0.3


def _along(seg: Segmentation, line: tuple[int, int, int, int]) -> float:
    """Share of the drawn line's length that the vein mask covers (within 3 px)."""
    drawn = np.zeros(SHAPE, np.uint8)
    cv2.line(drawn, line[:2], line[2:], 1, thickness=1)
    near = _near(seg.mask, 3)
    ys, xs = np.nonzero(drawn)
    return float(near[ys, xs].mean())


def test_a_line_running_along_the_leg_outline_is_shading_not_a_vein(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A spider line 5.5 mm inside the leg's outline and parallel to it (the band where
    the leg's curvature shading and a rim light's edge lie) is dropped; the same line
    12 mm in, or one crossing the band at 45 degrees, is kept. With the rule off the
    near line is found, so the rule is what drops it."""
    skin = synthetic.render(_leg(5, "light", n_spider_clusters=0, n_reticular=0)).rgb
    # This leg's left outline runs from x ≈ 174 (y = 100) to x ≈ 150 (y = 400).
    near_line = (229, 100, 214, 300)
    far_line = (294, 100, 278, 300)
    across = (190, 360, 250, 420)
    rgb = _paint_spider(skin, [near_line, far_line, across])
    seg = segment(rgb, px_per_mm=PPM)
    assert _along(seg, near_line) < 0.1
    assert _along(seg, far_line) > 0.8
    assert _along(seg, across) > 0.8

    import vein_tracker.segmentation.footprint as footprint

    monkeypatch.setattr(footprint, "_OUTLINE_FOLLOW_MM", 0.0)
    assert _along(segment(rgb, px_per_mm=PPM), near_line) > 0.8
