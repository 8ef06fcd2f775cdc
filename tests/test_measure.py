"""Tests of vein_tracker.measure on known maps: exact figures, the headline formula,
statuses, and the measuring stage of a comparison on segmentations made by hand."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import cv2
import numpy as np
import pytest
from skimage.morphology import skeletonize

from vein_tracker.measure import (
    CHANGE_CLEARED,
    CHANGE_FADED,
    CHANGE_NEW,
    CHANGE_PERSISTING,
    CHANGE_RECANALISED,
    PERSISTING_FROM,
    Comparison,
    grade_for,
    improvement_pct,
    improvement_terms,
    measure,
    measure_mask,
    measure_visits,
    new_vein_mask,
    remaining_fraction,
    skeleton_length_px,
    smooth_on_mask,
    status_for,
)
from vein_tracker.registration import Registration
from vein_tracker.segmentation import Segmentation, VeinContrast

# ------------------------------------------------------------------ skeleton length


def test_skeleton_length_straight_lines() -> None:
    sk = np.zeros((50, 50), bool)
    sk[10, 5:36] = True  # 31 px horizontal
    assert skeleton_length_px(sk) == pytest.approx(30.0)
    sk = np.zeros((50, 50), bool)
    idx = np.arange(5, 26)  # 21 px diagonal
    sk[idx, idx] = True
    assert skeleton_length_px(sk) == pytest.approx(20 * math.sqrt(2))


def test_skeleton_length_l_corner_not_double_counted() -> None:
    sk = np.zeros((20, 20), bool)
    sk[5, 5:11] = True
    sk[5:11, 10] = True
    # 5 px right + 5 px down; the corner's diagonal neighbours are joined through it.
    assert skeleton_length_px(sk) == pytest.approx(10.0)


@pytest.mark.parametrize("radius", [20, 60])
def test_skeleton_length_circle(radius: int) -> None:
    img = np.zeros((2 * radius + 20, 2 * radius + 20), np.uint8)
    cv2.circle(img, (radius + 10, radius + 10), radius, 255, 1)
    sk = skeletonize(img > 0)
    assert skeleton_length_px(sk) == pytest.approx(2 * math.pi * radius, rel=0.05)


def test_skeleton_length_counts_every_link_by_the_rule_at_the_edges_too() -> None:
    """Against a plain count of the rule over every pair of neighbours, on random masks
    (links touching the image's edges included) and on views that are not contiguous."""

    def by_pairs(sk: np.ndarray) -> float:
        h, w = sk.shape
        at = lambda y, x: 0 <= y < h and 0 <= x < w and bool(sk[y, x])  # noqa: E731
        orth = diag = 0
        for y, x in zip(*np.nonzero(sk), strict=True):
            orth += at(y, x + 1) + at(y + 1, x)
            diag += at(y + 1, x + 1) and not (at(y, x + 1) or at(y + 1, x))
            diag += at(y + 1, x - 1) and not (at(y, x - 1) or at(y + 1, x))
        return orth + math.sqrt(2) * diag

    rng = np.random.default_rng(8)
    for _ in range(150):
        h, w = (int(v) for v in rng.integers(1, 25, size=2))
        sk = rng.random((h, w)) > rng.uniform(0.3, 0.95)
        for view in (sk, sk[::-1, ::2]):
            assert skeleton_length_px(view) == pytest.approx(by_pairs(view), abs=1e-9)


def test_skeleton_length_empty_and_bad_input() -> None:
    assert skeleton_length_px(np.zeros((5, 5), bool)) == 0.0
    with pytest.raises(ValueError, match="skeleton"):
        skeleton_length_px(np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match="skeleton"):
        skeleton_length_px(np.zeros((5, 5, 2), bool))


# ------------------------------------------------------------------ measure


def _bar_scene() -> dict[str, np.ndarray]:
    h = w = 200
    mask = np.zeros((h, w), bool)
    mask[50:54, 50:151] = True  # 4 px wide, 101 px long: spider
    mask[120:130, 20:121] = True  # 10 px wide, 101 px long: reticular
    skel = np.zeros((h, w), bool)
    skel[52, 50:151] = True
    skel[125, 20:121] = True
    labels = np.zeros((h, w), np.uint8)
    labels[50:54, 50:151] = 1
    labels[120:130, 20:121] = 2
    ids = np.zeros((h, w), np.int32)
    ids[50:54, 50:151] = 1
    ids[120:130, 20:121] = 2
    strength = np.zeros((h, w), np.float32)
    strength[labels == 1] = 0.3
    strength[labels == 2] = 0.1
    return {"mask": mask, "skeleton": skel, "labels": labels, "vein_ids": ids, "strength": strength}


def test_measure_mask_exact_figures() -> None:
    s = _bar_scene()
    region = np.ones((200, 200), bool)
    m = measure_mask(
        s["mask"],
        region=region,
        px_per_mm=2.0,
        strength=s["strength"],
        skeleton=s["skeleton"],
        labels=s["labels"],
        vein_ids=s["vein_ids"],
    )
    assert m.length_mm == pytest.approx(200 / 2)  # 2 × 100 px
    assert m.area_mm2 == pytest.approx((404 + 1010) / 4)
    assert m.mean_width_mm == pytest.approx(m.area_mm2 / m.length_mm)
    assert m.skin_area_cm2 == pytest.approx(40000 / 4 / 100)
    assert m.density_mm_per_cm2 == pytest.approx(100 / 100)
    assert m.coverage_pct == pytest.approx(100 * 1414 / 40000)
    assert m.burden == pytest.approx((0.3 * 404 + 0.1 * 1010) / 4, rel=1e-5)
    assert m.n_veins == 2
    sp, rt = m.by_class["spider"], m.by_class["reticular"]
    assert sp.length_mm == pytest.approx(50.0)
    assert sp.mean_width_mm == pytest.approx(101 / 50)  # 4 px × 101 px / 4 / 50 mm
    assert rt.area_mm2 == pytest.approx(1010 / 4)
    assert rt.n_veins == 1
    d = m.to_dict()
    assert set(d) >= {"length_mm", "area_mm2", "burden", "by_class"}
    assert set(d["by_class"]) == {"spider", "reticular"}


def test_measure_mask_region_and_skin_restrict() -> None:
    s = _bar_scene()
    region = np.zeros((200, 200), bool)
    region[:, :100] = True  # left half: spider 50 px of 101, reticular 80 of 101
    m = measure_mask(s["mask"], region=region, px_per_mm=1.0, skeleton=s["skeleton"])
    assert m.area_mm2 == pytest.approx(4 * 50 + 10 * 80)
    assert m.length_mm == pytest.approx(49 + 79)
    assert m.burden == 0.0
    skin = np.zeros((200, 200), bool)
    skin[:100, :] = True
    m2 = measure_mask(s["mask"], region=region, px_per_mm=1.0, skeleton=s["skeleton"], skin=skin)
    assert m2.area_mm2 == pytest.approx(4 * 50)
    assert m2.skin_area_cm2 == pytest.approx(100 * 100 / 100)


def test_measure_mask_skeletonizes_when_not_given() -> None:
    mask = np.zeros((60, 200), bool)
    mask[28:33, 20:181] = True
    m = measure_mask(mask, region=np.ones_like(mask), px_per_mm=1.0)
    assert m.length_mm == pytest.approx(160, abs=6)  # skeleton loses ~half a width per end
    assert m.by_class == {}


def test_measure_mask_empty() -> None:
    z = np.zeros((40, 40), bool)
    m = measure_mask(z, region=~z, px_per_mm=1.0)
    assert (m.length_mm, m.area_mm2, m.mean_width_mm, m.burden) == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"px_per_mm": 0.0}, "px_per_mm"),
        ({"px_per_mm": float("nan")}, "px_per_mm"),
        ({"region": np.ones((40, 41), bool)}, "region"),
        ({"region": np.ones((40, 40), np.uint8)}, "region"),
        ({"strength": np.ones((3, 3), np.float32)}, "strength"),
        ({"labels": np.ones((3, 3), np.uint8)}, "labels"),
    ],
)
def test_measure_mask_bad_input(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"region": np.ones((40, 40), bool), "px_per_mm": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        measure_mask(np.zeros((40, 40), bool), **args)


def test_measure_mask_rejects_non_bool_mask() -> None:
    with pytest.raises(ValueError, match="mask"):
        measure_mask(np.zeros((40, 40), np.uint8), region=np.ones((40, 40), bool), px_per_mm=1)


# ------------------------------------------------------------------ headline formula


def test_improvement_pct_exact() -> None:
    shape = (20, 20)
    base = np.zeros(shape, bool)
    base[:5, :] = True  # 100 baseline vein pixels
    c_b = np.ones(shape, np.float32)
    c_f = np.zeros(shape, np.float32)
    c_f[2:3, :] = 0.5  # 20 px faded to half
    c_f[3:4, :10] = 0.5
    c_f[3:4, 10:] = 0.0  # cleared
    c_f[4:5, :] = 1.7  # 20 px brighter than baseline: clipped to 1
    c_f[0:2, :] = 0.0  # 40 px cleared
    fol = base.copy()
    fol[10, :10] = True  # 10 new pixels
    region = np.ones(shape, bool)
    # kept = 20 × 0.5 + 10 × 0.5 + 20 × 1 = 35; new = 10; → 100 × (1 − 45/100) = 55
    assert improvement_pct(c_b, c_f, base, fol, region) == pytest.approx(55.0)
    t = improvement_terms(c_b, c_f, base, fol, region)
    assert (t.kept, t.new, t.baseline) == (pytest.approx(35.0), 10.0, 100.0)


def test_improvement_pct_region_and_edge_cases() -> None:
    shape = (10, 10)
    base = np.zeros(shape, bool)
    base[0, :] = True
    c_b = np.ones(shape, np.float32)
    c_f = np.zeros(shape, np.float32)
    region = np.zeros(shape, bool)
    region[:, :4] = True
    fol = np.zeros(shape, bool)
    fol[5, :] = True  # 4 new pixels inside the region, 6 outside
    assert improvement_pct(c_b, c_f, base, fol, region) == pytest.approx(100 * (1 - 4 / 4))
    # unchanged: 0; a doubled burden: -100
    assert improvement_pct(c_b, c_b, base, base, ~np.zeros(shape, bool)) == pytest.approx(0.0)
    both = base | np.roll(base, 3, axis=0)
    assert improvement_pct(c_b, c_b, base, both, np.ones(shape, bool)) == pytest.approx(-100.0)
    # no baseline vein: NaN; no measurable baseline contrast counts as persisting
    assert math.isnan(improvement_pct(c_b, c_f, np.zeros(shape, bool), fol, region))
    assert improvement_pct(np.zeros(shape, np.float32), c_f, base, base, region) == 0.0
    # negative follow-up contrast counts as cleared
    assert improvement_pct(c_b, -c_b, base, base, region) == pytest.approx(100.0)


def test_improvement_pct_does_not_modify_inputs() -> None:
    rng = np.random.default_rng(1)
    c_b = rng.random((30, 30)).astype(np.float32)
    c_f = rng.random((30, 30)).astype(np.float32)
    b = rng.random((30, 30)) > 0.5
    f = rng.random((30, 30)) > 0.5
    r = np.ones((30, 30), bool)
    copies = [a.copy() for a in (c_b, c_f, b, f, r)]
    improvement_pct(c_b, c_f, b, f, r)
    for a, c in zip((c_b, c_f, b, f, r), copies, strict=True):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.ones((5, 5)), np.ones((5, 4)), None, None, None), "c_f"),
        ((np.ones(5), np.ones(5), None, None, None), "c_b"),
        ((np.ones((5, 5)), np.ones((5, 5)), np.ones((5, 5), np.uint8), None, None), "baseline"),
        ((np.ones((5, 5)), np.ones((5, 5)), None, np.ones((4, 5), bool), None), "followup"),
        ((np.ones((5, 5)), np.ones((5, 5)), None, None, np.ones((5, 5), int)), "region"),
    ],
)
def test_improvement_pct_bad_input(args: tuple[Any, ...], match: str) -> None:
    full = tuple(a if a is not None else np.ones((5, 5), bool) for a in args)
    with pytest.raises(ValueError, match=match):
        improvement_pct(*full)


def test_remaining_fraction() -> None:
    out = remaining_fraction(np.array([1.0, 2.0, 0.0, 1.0]), np.array([0.5, 3.0, 0.2, -1.0]))
    np.testing.assert_allclose(out, [0.5, 1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="same shape"):
        remaining_fraction(np.ones(3), np.ones(4))


# ------------------------------------------------------------------ grade, status


@pytest.mark.parametrize(
    ("pct", "grade"),
    [
        (-40.0, "0-25"),
        (0.0, "0-25"),
        (25.0, "0-25"),
        (25.01, "26-50"),
        (50.0, "26-50"),
        (60.0, "51-75"),
        (75.0, "51-75"),
        (75.5, "76-100"),
        (100.0, "76-100"),
    ],
)
def test_grade_for(pct: float, grade: str) -> None:
    assert grade_for(pct) == grade


def test_grade_for_rejects_nan() -> None:
    with pytest.raises(ValueError, match="improvement"):
        grade_for(float("nan"))


def test_status_for() -> None:
    assert status_for(0.05) == "cleared"
    assert status_for(0.5) == "faded"
    assert status_for(0.95) == "persisting"
    assert status_for(0.9, previous_remaining=[0.1]) == "recanalised"
    assert status_for(0.9, previous_remaining=[0.9]) == "persisting"
    assert status_for(0.3, previous_remaining=[0.1]) == "faded"  # rise 0.2 < 0.3
    with pytest.raises(ValueError, match="remaining"):
        status_for(float("nan"))


# ------------------------------------------------------------------ helpers


def test_smooth_on_mask_constant_and_outside() -> None:
    mask = np.zeros((50, 50), bool)
    mask[20:25, 5:45] = True
    vals = np.where(mask, 0.7, 99.0).astype(np.float32)  # values outside must not leak in
    out = smooth_on_mask(vals, mask, 3.0)
    np.testing.assert_allclose(out[mask], 0.7, rtol=1e-5)
    assert not out[~mask].any()


def test_new_vein_mask_tolerance_and_size() -> None:
    base = np.zeros((80, 80), bool)
    base[20, 10:70] = True
    fol = np.zeros_like(base)
    fol[19:22, 10:70] = True  # same vein, 1 px wider: not new
    fol[50, 10:70] = True  # a new vein, 60 px
    fol[70, 10:13] = True  # 3 px speck: noise
    region = np.ones_like(base)
    new = new_vein_mask(fol, base, region=region, tolerance_px=3, min_area_px=10)
    assert new.sum() == 60
    assert new[50, 10:70].all()


def test_new_vein_mask_needs_the_darkening_of_a_vein() -> None:
    """A new piece must darken the skin as a vein of its class does: a colour fringe
    (hardly darker) and hair (far darker) are not new veins."""
    from vein_tracker.segmentation import NEUTRAL_PER_CLASS

    base = np.zeros((90, 80), bool)
    base[5, 10:70] = True
    fol = np.zeros_like(base)
    labels = np.zeros(base.shape, np.uint8)
    strength = np.zeros(base.shape, np.float32)
    neutral = np.zeros(base.shape, np.float32)
    for y, dark in ((30, 1.0), (50, 0.1), (70, 2.5)):  # vein, colour fringe, hair
        fol[y, 10:70] = True
        labels[y, 10:70] = 1
        strength[y, 10:70] = 0.2
        neutral[y, 10:70] = dark * NEUTRAL_PER_CLASS[1] * 0.2
    kw = {"region": np.ones_like(base), "tolerance_px": 3, "min_area_px": 10}
    assert new_vein_mask(fol, base, strength=strength, **kw).sum() == 180  # no darkening test
    new = new_vein_mask(fol, base, strength=strength, neutral=neutral, labels=labels, **kw)
    assert new[30, 10:70].all()
    assert new.sum() == 60


# ------------------------------------------------------------------ compare core on known maps


def _seg(
    mask: np.ndarray,
    labels: np.ndarray,
    strength: np.ndarray,
    ids: np.ndarray,
    *,
    contrast: VeinContrast | None = None,
) -> Segmentation:
    """A segmentation made by hand: a centreline through the middle of each vein."""
    sk = np.zeros_like(mask)
    for vid in np.unique(ids[ids > 0]):
        ys, xs = np.nonzero(ids == vid)
        sk[int(np.median(ys)), xs.min() : xs.max() + 1] = True
    return Segmentation(
        mask=mask,
        labels=labels,
        strength=strength,
        skeleton=sk & mask,
        vein_ids=ids.astype(np.int32),
        veins=(),
        px_per_mm=2.0,
        px_per_mm_estimated=False,
        leg_mask=np.ones_like(mask),
        contrast=contrast,
    )


def _reg(shape: tuple[int, int], residual: float = 0.5) -> Registration:
    """An identity registration of two frames of ``shape``."""
    return Registration(
        ok=True,
        reason=None,
        homography=np.eye(3),
        flow=None,
        warped=np.zeros((*shape, 3), np.uint8),
        valid=np.ones(shape, bool),
        inliers=150,
        inlier_ratio=0.9,
        residual_px=residual,
        quality=0.9,
        followup_shape=shape,
    )


def _three_veins(remaining: tuple[float, float, float], *, new: bool) -> tuple[Any, Any]:
    h, w = 240, 300
    mask = np.zeros((h, w), bool)
    ids = np.zeros((h, w), np.int32)
    labels = np.zeros((h, w), np.uint8)
    for k, y in enumerate((40, 100, 160)):
        mask[y : y + 4, 40:260] = True
        ids[y : y + 4, 40:260] = k + 1
        labels[y : y + 4, 40:260] = 1 if k < 2 else 2
    c_b = np.where(mask, 0.25, 0.0).astype(np.float32)
    c_f = np.zeros_like(c_b)
    f_mask = np.zeros_like(mask)
    for k, r in enumerate(remaining):
        sel = ids == k + 1
        c_f[sel] = 0.25 * r
        if r >= 0.4:
            f_mask |= sel
    f_labels = np.where(f_mask, labels, 0).astype(np.uint8)
    f_ids = np.where(f_mask, ids, 0)
    if new:
        f_mask[210:213, 40:200] = True
        f_labels[210:213, 40:200] = 1
        f_ids[210:213, 40:200] = 9
        c_f[210:213, 40:200] = 0.25
    return _seg(mask, labels, c_b, ids), _seg(f_mask, f_labels, c_f, f_ids)


def _core(
    seg_b: Segmentation, seg_f: Segmentation, previous: Any = None, *, px_per_mm: float = 2.0
) -> Comparison:
    shape = seg_b.mask.shape
    return measure_visits(
        _reg(shape),
        seg_b,
        seg_f,
        region=np.ones(shape, bool),
        px_per_mm=px_per_mm,
        target_pct=75.0,
        previous=previous,
    )


def test_compare_core_statuses_and_exact_improvement() -> None:
    seg_b, seg_f = _three_veins((0.0, 0.5, 1.0), new=True)
    c = _core(seg_b, seg_f)
    # baseline 3 × 880 px; kept 0 + 440 + 880; new 480 px
    expected = 100 * (1 - (440 + 880 + 480) / 2640)
    assert c.improvement_pct == pytest.approx(expected, abs=1e-3)
    lo, hi = c.improvement_band_pct
    assert lo < c.improvement_pct < hi
    st = {v.id: v.status for v in c.veins}
    assert st[1] == "cleared"
    assert st[2] == "faded"
    assert st[3] == "persisting"
    faded = next(v for v in c.veins if v.id == 2)
    assert faded.faded_pct == pytest.approx(50.0, abs=0.1)
    assert c.vein_counts == {
        "cleared": 1,
        "faded": 1,
        "persisting": 1,
        "new": 1,
        "recanalised": 0,
    }
    assert (c.change_map[40:44, 40:260] == CHANGE_CLEARED).all()
    assert (c.change_map[100:104, 40:260] == CHANGE_FADED).all()
    assert (c.change_map[160:164, 40:260] == CHANGE_PERSISTING).all()
    assert (c.change_map[210:213, 40:200] == CHANGE_NEW).all()
    # per class: spider veins 1 and 2 (+ new spider 480 px), reticular vein 3
    assert c.improvement_by_class_pct["spider"] == pytest.approx(
        100 * (1 - (440 + 480) / 1760), abs=1e-3
    )
    assert c.improvement_by_class_pct["reticular"] == pytest.approx(0.0, abs=1e-3)
    assert c.grade == grade_for(expected)
    assert c.meets_target is False


def test_compare_core_leaves_out_a_baseline_vein_without_contrast_of_its_own() -> None:
    """A wide patch the baseline segmentation took for a reticular vein, standing hardly
    out of the skin (contrast 0.02 against its class's 0.25), persists unchanged: its
    share cannot be measured, so it is counted neither as kept nor as treated."""
    seg_b, seg_f = _three_veins((0.0, 0.5, 1.0), new=False)
    patch = (slice(190, 210), slice(60, 100))  # 800 px, fewer than vein 3's 880
    for seg, contrast in ((seg_b, 0.02), (seg_f, 0.02)):
        seg.mask[patch] = True
        seg.labels[patch] = 2
        seg.vein_ids[patch] = 4
        seg.strength[patch] = contrast
    c = _core(seg_b, seg_f)
    # the three veins alone: baseline 3 x 880 px, kept 0 + 440 + 880
    assert c.improvement_pct == pytest.approx(100 * (1 - (440 + 880) / 2640), abs=1e-3)
    assert {v.id for v in c.veins} == {1, 2, 3}
    assert (c.change_map[patch] == 0).all()
    # with the patch standing out as a vein does (0.25), it is a persisting vein
    seg_b.strength[patch] = seg_f.strength[patch] = 0.25
    c = _core(seg_b, seg_f)
    assert c.improvement_pct == pytest.approx(100 * (1 - (440 + 880 + 800) / 3440), abs=1e-3)
    assert {v.id: v.status for v in c.veins}[4] == "persisting"


def test_compare_core_identity_is_zero_and_all_cleared_is_100() -> None:
    seg_b, seg_f = _three_veins((1.0, 1.0, 1.0), new=False)
    c = _core(seg_b, seg_f)
    assert c.improvement_pct == pytest.approx(0.0, abs=1e-3)
    assert c.vein_counts["persisting"] == 3
    seg_b, seg_f = _three_veins((0.0, 0.0, 0.0), new=False)
    c = _core(seg_b, seg_f)
    assert c.improvement_pct == pytest.approx(100.0, abs=1e-3)
    assert c.meets_target is True
    assert c.grade == "76-100"
    assert c.improvement_band_pct[1] <= 100.0


def test_compare_core_recanalised_with_previous() -> None:
    seg_b, seg_f1 = _three_veins((0.1, 0.5, 1.0), new=False)
    first = _core(seg_b, seg_f1)
    _, seg_f2 = _three_veins((0.9, 0.5, 1.0), new=False)
    second = _core(seg_b, seg_f2, previous=[first])
    st = {v.id: v.status for v in second.veins}
    assert st[1] == "recanalised"
    assert st[2] == "faded"
    assert second.vein_counts["recanalised"] == 1
    assert (second.change_map[40:44, 40:260] == CHANGE_RECANALISED).all()
    assert any("recanalisation" in w for w in second.warnings)


def test_compare_core_previous_must_share_baseline() -> None:
    seg_b, seg_f = _three_veins((0.1, 0.5, 1.0), new=False)
    first = _core(seg_b, seg_f)
    with pytest.raises(ValueError, match="previous"):
        _core(seg_b, seg_f, previous=["not a comparison"])
    small = _seg(
        seg_b.mask[:100, :100],
        seg_b.labels[:100, :100],
        seg_b.strength[:100, :100],
        seg_b.vein_ids[:100, :100],
    )
    with pytest.raises(ValueError, match="previous"):
        _core(small, small, previous=[first])


def test_compare_core_noise_does_not_bias_persisting_veins() -> None:
    """min(1, c_f/c_b) on noisy pixels would read a persisting vein as improved."""
    seg_b, seg_f = _three_veins((1.0, 1.0, 1.0), new=False)
    rng = np.random.default_rng(3)
    noisy = seg_f.strength + rng.normal(0, 0.06, seg_f.strength.shape).astype(np.float32)
    seg_f = dataclasses.replace(seg_f, strength=noisy)
    c = _core(seg_b, seg_f, px_per_mm=4.0)  # 4 px wide veins are 1 mm wide
    pixelwise = improvement_pct(
        seg_b.strength, noisy, seg_b.mask, seg_f.mask, np.ones_like(seg_b.mask)
    )
    assert pixelwise > 5.0  # the bias the smoothing removes
    assert abs(c.improvement_pct) < 1.5
    assert c.improvement_band_pct[0] <= 0.0 <= c.improvement_band_pct[1]


def test_compare_core_persisting_veins_scattered_both_ways_read_unchanged() -> None:
    """Unchanged veins read a few % darker or fainter each (light, pose, JPEG): clipping
    each at 1 would keep only the fainter ones and read improvement that is not there."""
    seg_b, seg_f = _three_veins((0.92, 1.08, 1.0), new=False)
    c = _core(seg_b, seg_f)
    per_vein_clip = 100 * (1 - (0.92 * 880 + 880 + 880) / 2640)
    assert per_vein_clip > 2.5
    assert c.improvement_pct == pytest.approx(0.0, abs=1e-3)
    assert c.vein_counts["persisting"] == 3
    # a cleared vein keeps its own share beside them
    seg_b, seg_f = _three_veins((0.0, 0.92, 1.08), new=False)
    c = _core(seg_b, seg_f)
    assert c.improvement_pct == pytest.approx(100 * (1 - 1760 / 2640), abs=1e-3)
    assert {v.id: v.status for v in c.veins}[1] == "cleared"


def test_compare_core_a_persisting_vein_counts_one_and_a_faded_vein_its_share() -> None:
    """Recaptured unchanged veins often all read a little fainter (JPEG's dead zone on
    dark skin): a vein reading at or above PERSISTING_FROM counts 1, as persisting;
    just below it, the vein is faded and keeps its own share."""
    assert PERSISTING_FROM == 0.8
    seg_b, seg_f = _three_veins((0.9, 0.85, 0.8), new=False)
    c = _core(seg_b, seg_f)
    assert c.improvement_pct == pytest.approx(0.0, abs=1e-3)
    assert c.vein_counts["persisting"] == 3
    seg_b, seg_f = _three_veins((0.78, 0.9, 1.0), new=False)
    c = _core(seg_b, seg_f)
    assert c.improvement_pct == pytest.approx(100 * (1 - (0.78 * 880 + 1760) / 2640), abs=0.2)
    st = {v.id: v.status for v in c.veins}
    assert st == {1: "faded", 2: "persisting", 3: "persisting"}
    assert {v.id: round(v.remaining, 2) for v in c.veins}[1] == pytest.approx(0.78, abs=0.01)


def test_compare_core_a_vein_of_the_other_class_alongside_does_not_leak_into_the_share() -> None:
    """A persisting spider running 2 px beside a cleared reticular vein lies inside the
    reticular vein's margin, and the reticular vein inside the spider's: neither lends
    the other its contrast."""
    h, w = 220, 300
    mask = np.zeros((h, w), bool)
    ids = np.zeros((h, w), np.int32)
    labels = np.zeros((h, w), np.uint8)
    mask[100:108, 40:261] = True  # reticular, 8 px wide: cleared
    ids[100:108, 40:261] = 1
    labels[100:108, 40:261] = 2
    mask[110:112, 40:261] = True  # spider, 2 px wide: persisting
    ids[110:112, 40:261] = 2
    labels[110:112, 40:261] = 1
    c_b = np.where(mask, 0.25, 0.0).astype(np.float32)
    c_f = np.where(ids == 2, 0.25, 0.0).astype(np.float32)
    f_mask = ids == 2
    seg_b = _seg(mask, labels, c_b, ids)
    seg_f = _seg(f_mask, np.where(f_mask, labels, 0).astype(np.uint8), c_f, ids * f_mask)
    c = _core(seg_b, seg_f)
    rem = {v.id: v.remaining for v in c.veins}
    assert rem[1] == pytest.approx(0.0, abs=0.02)
    assert rem[2] == pytest.approx(1.0, abs=0.02)
    assert {v.id: v.status for v in c.veins} == {1: "cleared", 2: "persisting"}
    assert c.improvement_pct == pytest.approx(100 * 1768 / 2210, abs=0.5)


def _with_class_maps(seg: Segmentation, offset: float) -> Segmentation:
    """The segmentation with per-class contrast maps carrying ``offset`` on all skin."""
    lab = seg.labels
    spider = np.where(lab == 1, seg.strength, 0.0).astype(np.float32) + offset
    retic = np.where(lab == 2, seg.strength, 0.0).astype(np.float32) + offset
    maps = VeinContrast(spider=spider, reticular=retic, leg_mask=seg.leg_mask, px_per_mm=2.0)
    return dataclasses.replace(seg, strength=np.maximum(spider, retic), contrast=maps)


def test_compare_core_zero_point_is_removed_from_both_visits_alike() -> None:
    """Skin reading a small contrast in both visits: a cleared vein reads 0 and a
    persisting vein the follow-up's segmentation missed still reads unchanged."""
    seg_b, seg_f = _three_veins((0.0, 1.0, 1.0), new=False)
    seg_b = _with_class_maps(seg_b, 0.03)
    # the follow-up's segmentation misses vein 3 (its contrast is still there)
    f_mask = seg_f.mask & (seg_b.vein_ids != 3)
    c_f = np.where(seg_b.vein_ids > 0, seg_f.strength, 0.0).astype(np.float32)
    seg_f = dataclasses.replace(
        seg_f,
        mask=f_mask,
        labels=np.where(f_mask, seg_f.labels, 0).astype(np.uint8),
        vein_ids=np.where(f_mask, seg_f.vein_ids, 0).astype(np.int32),
        strength=c_f,
    )
    seg_f = dataclasses.replace(_with_class_maps(seg_f, 0.03), labels=seg_f.labels, mask=f_mask)
    # class maps of the follow-up: vein 3 (reticular) is still in the reticular map
    assert seg_f.contrast is not None
    retic = np.where(seg_b.vein_ids == 3, 0.25, 0.0).astype(np.float32) + 0.03
    seg_f = dataclasses.replace(
        seg_f, contrast=dataclasses.replace(seg_f.contrast, reticular=retic)
    )
    c = _core(seg_b, seg_f)
    assert c.improvement_pct == pytest.approx(100 / 3, abs=0.5)
    st = {v.id: v.status for v in c.veins}
    assert st == {1: "cleared", 2: "persisting", 3: "persisting"}


def test_comparison_to_dict_contract() -> None:
    import json

    seg_b, seg_f = _three_veins((0.0, 0.5, 1.0), new=True)
    d = _core(seg_b, seg_f).to_dict()
    json.dumps(d, allow_nan=False)
    assert set(d) >= {
        "registration",
        "baseline",
        "followup",
        "improvement_pct",
        "improvement_band_pct",
        "improvement_by_class_pct",
        "grade",
        "target_pct",
        "meets_target",
        "veins",
        "warnings",
    }
    assert set(d["registration"]) >= {"ok", "homography", "quality", "residual_px", "reason"}
    assert set(d["veins"]) >= {"cleared", "faded", "persisting", "new"}
    assert set(d["baseline"]["by_class"]) == {"spider", "reticular"}
    assert len(d["improvement_band_pct"]) == 2


# ------------------------------------------------------------------ smoothing and zero point


@pytest.mark.parametrize(
    ("shape", "sigma"), [((150, 200), 15.0), ((96, 128), 6.0), ((60, 80), 2.0)]
)
def test_sparse_smooth_is_a_gaussian_of_the_map_at_its_pixels(
    shape: tuple[int, int], sigma: float
) -> None:
    """From a map's values on its source pixels alone, SparseSmooth gives the Gaussian of
    the map (zero elsewhere) at its destination pixels: against a full-resolution Gaussian,
    to a few % (wide kernels run on a reduced grid), exactly for narrow ones."""
    from vein_tracker.smoothing import SparseSmooth

    rng = np.random.default_rng(5)
    values = rng.random(shape, dtype=np.float32)
    src = rng.random(shape) < 0.2
    dst = src & (rng.random(shape) < 0.5)
    k = int(2 * math.ceil(3 * sigma) + 1)
    full = cv2.GaussianBlur(np.where(src, values, 0).astype(np.float32), (k, k), sigma)
    src_idx, dst_idx = np.flatnonzero(src), np.flatnonzero(dst)
    got = SparseSmooth(shape, src_idx, dst_idx, sigma)(values.ravel()[src_idx])
    want = full.ravel()[dst_idx]
    m = int(3 * sigma)
    inner = np.zeros(shape, bool)
    inner[m:-m, m:-m] = True
    at_inner = inner.ravel()[dst_idx]
    scale = float(full.mean())
    assert np.abs(got - want)[at_inner].max() <= 0.05 * scale
    assert np.abs(got - want).max() <= 0.15 * scale


def test_sparse_smooth_averages_partial_edge_blocks_over_their_own_pixels() -> None:
    """A frame that is not a whole number of blocks: a constant map on every pixel reads
    the constant everywhere (the edge blocks are means of their own pixels)."""
    from vein_tracker.smoothing import SparseSmooth

    shape = (103, 157)
    every = np.arange(shape[0] * shape[1])
    got = SparseSmooth(shape, every, every, 15.0)(np.full(every.size, 0.7, np.float32))
    np.testing.assert_allclose(got, 0.7, rtol=1e-5)


def _ring_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, VeinContrast]:
    """A ring of skin around a band of veins with labels of both classes, and class maps
    constant on the ring (0.02 spider, 0.04 reticular) with vein contrast on the band; the
    contrast ``c`` read along each pixel's class (the larger map where it has none)."""
    shape = (150, 200)
    rng = np.random.default_rng(12)
    band = np.zeros(shape, bool)
    band[60:90, 30:170] = True
    ring = np.zeros(shape, bool)
    ring[20:130, 10:190] = True
    ring &= ~band
    labels = np.where(band, rng.integers(0, 3, size=shape), 0).astype(np.uint8)
    vein = np.where(band, rng.random(shape), 0).astype(np.float32)
    sp = (0.02 + vein).astype(np.float32)
    rt = (0.04 + 2 * vein).astype(np.float32)
    maps = VeinContrast(spider=sp, reticular=rt, leg_mask=np.ones(shape, bool), px_per_mm=10.0)
    return ring, labels, maps.of_class(labels), maps


def test_zero_point_of_maps_constant_on_the_ring_is_that_constant() -> None:
    """Each pixel's zero point is measured on the map it is read from: with maps constant
    on the ring, each pixel loses its own map's constant (the larger map's, 0.04, where
    it has no class); read at a few pixels only, the same there and 0 elsewhere."""
    from vein_tracker.measure.zero_point import ZeroField, zeroed, zeroed_at

    ring, labels, c, maps = _ring_scene()
    zero = ZeroField(ring, 10.0)
    assert zero.ok
    want = c - np.where(labels == 1, 0.02, 0.04).astype(np.float32)
    np.testing.assert_allclose(zeroed(c, maps, labels, zero), want, atol=1e-5)
    np.testing.assert_allclose(zeroed(c, None, labels, zero), c - 0.04, atol=1e-5)
    at = np.flatnonzero(np.random.default_rng(1).random(c.shape) < 0.1)
    for m, expected in ((maps, want), (None, c - 0.04)):
        got = zeroed_at(c, m, labels, zero, at).reshape(-1)
        np.testing.assert_allclose(got[at], expected.reshape(-1)[at], atol=1e-5)
        off = np.ones(c.size, bool)
        off[at] = False
        assert not got[off].any()


def test_zero_point_needs_a_ring() -> None:
    """Too few ring pixels: no zero point, the map is left as it is."""
    from vein_tracker.measure.zero_point import ZeroField, zeroed

    _, labels, c, maps = _ring_scene()
    thin = ZeroField(np.zeros(c.shape, bool), 10.0)
    assert not thin.ok
    np.testing.assert_array_equal(zeroed(c, None, labels, thin), c)


# ------------------------------------------------------------------ warnings


def test_lookalike_warnings_read_the_follow_up_or_only_its_grid() -> None:
    """A brown patch along a treated vein is named staining; compare hands over only the
    normalised follow-up's grid, which gives the same warnings as the whole image."""
    from vein_tracker.measure.warnings import lookalike_step, lookalike_warnings

    ppm = 10.0
    shape = (300, 400)
    rng = np.random.default_rng(5)
    b = np.clip(rng.normal((200, 160, 140), 2.0, (*shape, 3)), 0, 255).astype(np.uint8)
    treated = np.zeros(shape, bool)
    treated[150, 80:320] = True
    f = b.copy()
    # haemosiderin: a wide brownish band (blue and green absorbed more than red)
    f[120:180, 90:310] = np.clip(f[120:180, 90:310] * (0.97, 0.88, 0.80), 0, 255).astype(np.uint8)
    region = np.ones(shape, bool)
    whole = lookalike_warnings(b, f, treated, region, ppm)
    step = lookalike_step(ppm)
    assert step > 1
    grid = lookalike_warnings(b, f[::step, ::step], treated, region, ppm)
    assert grid == whole
    assert any(w.startswith("suspected staining") for w in whole)
    assert lookalike_warnings(b, b, treated, region, ppm) == []


def test_measure_figures_of_a_segmentation() -> None:
    """measure() reads a segmentation's own maps: the figures of measure_mask on them."""
    s = _bar_scene()
    seg = _seg(s["mask"], s["labels"], s["strength"], s["vein_ids"])
    region = np.ones(s["mask"].shape, bool)
    direct = measure_mask(
        seg.mask,
        region=region,
        px_per_mm=2.0,
        strength=seg.strength,
        skeleton=seg.skeleton,
        labels=seg.labels,
        vein_ids=seg.vein_ids,
        skin=seg.leg_mask,
    )
    assert measure(seg, region=region) == direct
    assert measure(seg, region=region, px_per_mm=4.0).area_mm2 == pytest.approx(direct.area_mm2 / 4)


def test_the_region_compared_leaves_out_what_the_follow_up_does_not_show_as_skin() -> None:
    """A glove or a sleeve laid over the leg at the follow-up hides the veins under it:
    they must not read as cleared, so the region compared is the baseline's leg that
    the follow-up covers, shows alike and shows as skin (less a 0.5 mm margin), inside
    the region of interest."""
    from vein_tracker.measure.steps import REGION_MARGIN_MM, compared_region
    from vein_tracker.skin import SkinMap

    shape, ppm = (200, 300), 6.0
    leg = np.zeros(shape, bool)
    leg[20:180, 40:260] = True
    f_mask = np.ones(shape, bool)
    f_mask[60:120, 100:200] = False  # a glove over the leg at the follow-up
    f_skin = SkinMap(f_mask, 1, (1e4,), (0.0, 0.0), (0.4, -0.12), float(f_mask.mean()), True)
    reg = _reg(shape)
    region = compared_region(leg, reg, f_skin, None, ppm)

    # distance (px) to the glove: nothing within the margin, all the leg beyond it
    margin = REGION_MARGIN_MM * ppm
    to_glove = cv2.distanceTransform(f_mask.astype(np.uint8), cv2.DIST_L2, 5)
    assert not (region & (to_glove < margin)).any()
    assert (leg & (to_glove > margin + 1.5) & ~region).sum() == 0
    roi = np.zeros(shape, bool)
    roi[:, :150] = True
    assert not (compared_region(leg, reg, f_skin, roi, ppm) & ~roi).any()
