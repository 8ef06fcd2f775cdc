"""Ground truth of the phantom generator: the yardstick must itself be exact."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vein_tracker import synthetic as syn
from vein_tracker.optics import DEEP_VEIN_OD, HAEMOGLOBIN_OD, MELANIN_OD, optical_density

SHAPE = (450, 600)


@pytest.fixture(scope="module")
def leg() -> syn.Leg:
    return syn.make_leg(7, shape=SHAPE, n_spider_clusters=4, n_reticular=3)


@pytest.fixture(scope="module")
def baseline(leg: syn.Leg) -> syn.Rendered:
    return syn.render(leg)


def _expected_improvement(base: syn.Rendered, fol_leg: syn.Leg, fol_labels: np.ndarray) -> float:
    """The ARCHITECTURE definition recomputed from rendered truth maps (identity pose)."""
    region = base.leg_mask
    b = (base.labels > 0) & region
    vis = {v.id: min(1.0, v.visibility) for v in fol_leg.veins}
    remaining = sum(vis[int(i)] for i in base.vein_ids[b])
    new = (fol_labels > 0) & region & ~b
    return 100.0 * (1.0 - (remaining + np.count_nonzero(new)) / np.count_nonzero(b))


# ---------------------------------------------------------------- true improvement


def test_all_cleared_identity_capture_is_100_pct() -> None:
    pair = syn.make_pair(
        3, shape=SHAPE, cleared_frac=1.0, faded_frac=0.0, capture=syn.identity_capture()
    )
    assert pair.true_improvement_pct == pytest.approx(100.0, abs=1e-9)
    assert pair.true_improvement_by_area_pct == pytest.approx(100.0)
    assert pair.true_improvement_by_length_pct == pytest.approx(100.0)
    assert set(pair.status_by_vein.values()) == {"cleared"}
    assert not pair.followup.labels.any()
    assert np.array_equal(pair.overlap_mask, pair.baseline.leg_mask)


def test_nothing_treated_is_0_pct() -> None:
    pair = syn.make_pair(
        4, shape=SHAPE, cleared_frac=0.0, faded_frac=0.0, capture=syn.identity_capture()
    )
    assert pair.true_improvement_pct == pytest.approx(0.0, abs=1e-9)
    assert set(pair.status_by_vein.values()) == {"persisting"}
    assert np.array_equal(pair.followup.labels, pair.baseline.labels)


@pytest.mark.parametrize("fade_to", [0.5, 0.25])
def test_everything_faded_gives_exact_fade(fade_to: float) -> None:
    pair = syn.make_pair(
        5,
        shape=SHAPE,
        cleared_frac=0.0,
        faded_frac=1.0,
        fade_to=fade_to,
        capture=syn.identity_capture(),
    )
    assert pair.true_improvement_pct == pytest.approx(100.0 * (1 - fade_to), abs=1e-6)
    for cls in syn.VEIN_CLASSES:
        assert pair.true_improvement_by_class_pct[cls] == pytest.approx(100 * (1 - fade_to))
    assert set(pair.status_by_vein.values()) == {"faded"}
    # Faded veins are still visible: no gain in area or length.
    assert pair.true_improvement_by_area_pct == pytest.approx(0.0)
    assert pair.true_improvement_by_length_pct == pytest.approx(0.0)


def test_half_cleared_matches_definition_from_truth_maps(
    leg: syn.Leg, baseline: syn.Rendered
) -> None:
    fol = syn.treat(leg, 11, cleared_frac=0.5, faded_frac=0.0)
    statuses = [v.status for v in fol.veins]
    assert statuses.count("cleared") == round(0.5 * len(leg.veins))
    fol_r = syn.render(fol)
    pair = syn.pair_truth(leg, fol, baseline, fol_r)
    expected = _expected_improvement(baseline, fol, fol_r.labels)
    assert pair.true_improvement_pct == pytest.approx(expected, abs=1e-9)
    assert 0.0 < pair.true_improvement_pct < 100.0


def test_area_fractions_hit_the_requested_improvement(leg: syn.Leg) -> None:
    fol = syn.treat(leg, 2, cleared_frac=0.5, faded_frac=0.3, fade_to=0.5, by="area")
    imp = syn.true_improvement(leg, fol)
    # 50 % of the area gone plus 30 % at half contrast = 65 %, up to one vein's share.
    assert imp == pytest.approx(65.0, abs=12.0)


def test_new_veins_count_against(leg: syn.Leg, baseline: syn.Rendered) -> None:
    fol = syn.treat(leg, 3, cleared_frac=0.0, faded_frac=0.0, n_new=4)
    new = [v for v in fol.veins if v.status == "new"]
    assert len(new) == 4
    assert all(not v.in_baseline for v in new)
    assert min(v.id for v in new) > max(v.id for v in leg.veins)
    fol_r = syn.render(fol)
    n_new_px = np.count_nonzero((fol_r.labels > 0) & ~(baseline.labels > 0) & baseline.leg_mask)
    assert n_new_px > 0
    n_b = np.count_nonzero((baseline.labels > 0) & baseline.leg_mask)
    imp = syn.true_improvement(leg, fol)
    assert imp == pytest.approx(-100.0 * n_new_px / n_b, abs=1e-9)
    assert imp < 0
    pair = syn.pair_truth(leg, fol, baseline, fol_r)
    assert pair.true_improvement_pct == pytest.approx(imp)
    assert pair.true_improvement_by_area_pct == pytest.approx(imp)
    assert pair.true_improvement_by_length_pct < 0


def test_recanalised_vein_comes_back(leg: syn.Leg) -> None:
    v1 = syn.treat(leg, 1, cleared_frac=1.0, faded_frac=0.0)
    target = leg.veins[0].id
    v2 = syn.treat(v1, 2, cleared_frac=0.0, faded_frac=0.0, recanalise=[target])
    back = v2.vein(target)
    assert back.status == "recanalised"
    assert back.visibility == 1.0
    assert v2.visit == 2
    r = syn.render(v2)
    assert np.any(r.vein_ids == target)
    assert set(np.unique(r.vein_ids)) == {0, target}
    # The re-opened vein counts as not improved.
    b = syn.render(leg)
    share = np.count_nonzero((b.vein_ids == target) & b.leg_mask) / np.count_nonzero(b.labels)
    assert syn.true_improvement(leg, v2) == pytest.approx(100 * (1 - share), abs=1e-6)


def test_treat_never_mutates_and_is_deterministic(leg: syn.Leg) -> None:
    before = [(v.id, v.visibility, v.status) for v in leg.veins]
    a = syn.treat(leg, 9, staining=True, bruising=True, matting=True, n_new=2)
    b = syn.treat(leg, 9, staining=True, bruising=True, matting=True, n_new=2)
    assert [(v.id, v.visibility, v.status) for v in leg.veins] == before
    assert leg.visit == 0
    assert [(v.id, v.visibility, v.status) for v in a.veins] == [
        (v.id, v.visibility, v.status) for v in b.veins
    ]
    assert a.to_dict() == b.to_dict()
    with pytest.raises(ValueError, match="read-only"):
        leg.veins[0].centreline[0, 0] = 1.0


def test_lookalikes_have_masks_and_do_not_count(leg: syn.Leg) -> None:
    fol = syn.treat(leg, 5, cleared_frac=1.0, faded_frac=0.0, staining=True, bruising=True)
    fol = syn.treat(fol, 6, cleared_frac=0.0, faded_frac=0.0, matting=True)
    r = syn.render(fol)
    assert r.stain.any()
    assert r.matting.any()
    assert not r.labels.any()
    assert syn.true_improvement(leg, fol) == pytest.approx(100.0)
    fol2 = syn.treat(leg, 5, cleared_frac=0.5, faded_frac=0.0, bruising=True)
    assert syn.render(fol2).bruise.any()


# ---------------------------------------------------------------- determinism


def test_rerender_with_identical_pose_gives_identical_pixels(leg: syn.Leg) -> None:
    cap = syn.random_capture(21, shape=SHAPE, bend_px=3.0)
    a = syn.render(leg, cap)
    b = syn.render(leg, cap)
    assert a.jpeg is not None
    assert a.jpeg == b.jpeg
    assert np.array_equal(a.rgb, b.rgb)
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.to_baseline_map, b.to_baseline_map)


def test_same_seed_same_output_other_seed_differs() -> None:
    a = syn.make_pair(8, shape=SHAPE)
    b = syn.make_pair(8, shape=SHAPE)
    c = syn.make_pair(9, shape=SHAPE)
    assert np.array_equal(a.baseline.rgb, b.baseline.rgb)
    assert np.array_equal(a.followup.rgb, b.followup.rgb)
    assert a.true_improvement_pct == b.true_improvement_pct
    assert not np.array_equal(a.baseline.rgb, c.baseline.rgb)


# ---------------------------------------------------------------- geometry of the truth


def _footprint_width_px(leg: syn.Leg, r: syn.Rendered, v: syn.Vein) -> float:
    area = np.count_nonzero(r.vein_ids == v.id)
    half = v.width_mm * leg.px_per_mm / 2
    return (area - math.pi * half**2) / v.length_px()


@pytest.mark.parametrize("cls", ["spider", "reticular"])
def test_label_footprint_width_matches_width_mm(cls: str) -> None:
    spiders, reticular = (3, 0) if cls == "spider" else (0, 3)
    shape = (900, 1200)  # 6 px/mm: spiders 0.6-6 px wide
    leg = syn.make_leg(
        12,
        shape=shape,
        n_spider_clusters=spiders,
        n_reticular=reticular,
        hair=False,
        freckles=False,
        moles=False,
    )
    checked = 0
    for v in leg.veins:
        if v.length_px() < 40 or v.width_mm * leg.px_per_mm < 1:
            continue
        r = syn.render(replace(leg, veins=(v,)))  # alone: no crossing hides its footprint
        assert _footprint_width_px(leg, r, v) == pytest.approx(
            v.width_mm * leg.px_per_mm, abs=1.0
        ), v.id
        checked += 1
        if checked == 4:
            break
    assert checked >= 2


def test_vein_od_profile_integrates_to_width_times_amplitude() -> None:
    leg = syn.make_leg(
        13, shape=SHAPE, n_spider_clusters=2, n_reticular=2, hair=False, freckles=False, moles=False
    )
    clean = syn.render(syn.treat(leg, 0, cleared_frac=1.0, faded_frac=0.0))
    od_clean = optical_density(clean.rgb)
    # Gaussian profile of FWHM w integrates to 1.0645 w; the flat top to w.
    for cls, direction, k in (("spider", HAEMOGLOBIN_OD, 1.0), ("reticular", DEEP_VEIN_OD, 1.0645)):
        only = replace(leg, veins=tuple(v for v in leg.veins if v.cls == cls))
        signal = (optical_density(syn.render(only).rgb) - od_clean) @ direction
        expected = sum(
            k * v.amplitude * v.width_mm * leg.px_per_mm * v.length_px() for v in only.veins
        )
        # Overlaps (max, not sum) and end caps keep this within ~20 %.
        assert signal.sum() == pytest.approx(expected, rel=0.2), cls


def test_vein_colour_directions(leg: syn.Leg, baseline: syn.Rendered) -> None:
    clean = syn.render(syn.treat(leg, 0, cleared_frac=1.0, faded_frac=0.0))
    excess = optical_density(baseline.rgb) - optical_density(clean.rgb)
    spider = (baseline.labels == 1) & ~baseline.hair
    ret = (baseline.labels == 2) & ~baseline.hair
    s = np.median(excess[spider], axis=0)
    t = np.median(excess[ret], axis=0)
    assert s[1] > s[0]
    assert s[2] > s[0]
    assert t[0] > t[2]
    assert t[1] > t[2]
    # Freckles: melanin, B excess above R.
    plain = syn.make_leg(7, shape=SHAPE, n_spider_clusters=4, n_reticular=3, moles=False)
    no_fr = syn.make_leg(
        7, shape=SHAPE, n_spider_clusters=4, n_reticular=3, moles=False, freckles=False
    )
    rp = syn.render(plain)
    ex = optical_density(rp.rgb) - optical_density(syn.render(no_fr).rgb)
    f = np.median(ex[rp.freckles & ~rp.hair & (rp.labels == 0)], axis=0)
    assert f[2] > f[0] > 0


def test_to_baseline_map_matches_homography_for_rigid_capture(leg: syn.Leg) -> None:
    cap = syn.random_capture(31, shape=SHAPE, rotation_deg=8, scale=0.08, translate=0.05)
    r = syn.render(leg, cap)
    h, w = SHAPE
    ys, xs = np.mgrid[0:h:37, 0:w:41]
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    mapped = cv2.perspectiveTransform(pts[None], cap.homography)[0]
    got = r.to_baseline_map[ys.ravel(), xs.ravel()]
    np.testing.assert_allclose(got, mapped, atol=1e-3)
    # The truth follows the map: follow-up labels equal baseline labels sampled there.
    base = syn.render(leg)
    m = np.rint(r.to_baseline_map).astype(int)
    inside = (m[..., 0] >= 0) & (m[..., 0] < w) & (m[..., 1] >= 0) & (m[..., 1] < h)
    sampled = base.labels[m[..., 1].clip(0, h - 1), m[..., 0].clip(0, w - 1)]
    agree = np.mean(sampled[inside] == r.labels[inside])
    assert agree > 0.995


def test_bend_is_smooth_and_bounded(leg: syn.Leg) -> None:
    rigid = syn.random_capture(5, shape=SHAPE)
    bent = syn.random_capture(5, shape=SHAPE, bend_px=6.0)
    assert np.allclose(rigid.homography, bent.homography)
    d = syn.render(leg, bent).to_baseline_map - syn.render(leg, rigid).to_baseline_map
    mag = np.hypot(d[..., 0], d[..., 1])
    # The requested amplitude is reached, not just respected as a bound.
    assert mag.max() > 0.5 * 6.0
    # The bend is one field scaled by bend_px: half the amplitude moves pixels half as far.
    half = syn.random_capture(5, shape=SHAPE, bend_px=3.0)
    d_half = syn.render(leg, half).to_baseline_map - syn.render(leg, rigid).to_baseline_map
    np.testing.assert_allclose(d_half, d / 2.0, atol=0.05)
    # Low frequency: neighbouring pixels move together.
    assert np.abs(np.diff(d, axis=1)).max() < 0.2


def test_overlap_mask_shrinks_with_translation(leg: syn.Leg) -> None:
    cap = syn.random_capture(3, shape=SHAPE, rotation_deg=0, scale=0, translate=0.2)
    pair = syn.pair_truth(leg, leg, syn.render(leg), syn.render(leg, cap))
    assert pair.overlap_mask.sum() < pair.baseline.leg_mask.sum()
    assert not np.any(pair.overlap_mask & ~pair.baseline.leg_mask)
    assert pair.true_improvement_pct == pytest.approx(0.0, abs=1e-9)


def test_exposure_and_white_balance_are_od_offsets(leg: syn.Leg, baseline: syn.Rendered) -> None:
    gains = np.array([1.08, 1.0, 0.9])
    cap = syn.identity_capture(shape=SHAPE, exposure=0.8, wb_gains=gains)
    r = syn.render(leg, cap)
    d = optical_density(r.rgb) - optical_density(baseline.rgb)
    skin = baseline.leg_mask & (baseline.rgb.max(axis=2) < 250) & (baseline.rgb.min(axis=2) > 20)
    offsets = np.median(d[skin], axis=0)
    np.testing.assert_allclose(offsets, -np.log(0.8 * gains), atol=0.02)
    # The offset is the same everywhere (spread only from 8-bit rounding).
    assert np.percentile(np.abs(d[skin] - offsets), 95) < 0.03


def test_leg_mask_is_a_vertical_band_on_a_distinct_backdrop(
    leg: syn.Leg, baseline: syn.Rendered
) -> None:
    h, w = SHAPE
    frac = baseline.leg_mask.mean(axis=1)
    assert np.all((frac > 0.4) & (frac < 0.75))
    n, _ = cv2.connectedComponents(baseline.leg_mask.astype(np.uint8))
    assert n == 2  # background label + one band
    skin = np.median(optical_density(baseline.rgb)[baseline.leg_mask], axis=0)
    back = np.median(optical_density(baseline.rgb)[~baseline.leg_mask], axis=0)
    assert np.abs(skin - back).max() > 0.3
    assert not np.any(baseline.labels[~baseline.leg_mask])
    # Shading: the rim is darker than the middle of the leg.
    od = optical_density(baseline.rgb).mean(axis=2)
    row = h // 2
    cols = np.flatnonzero(baseline.leg_mask[row])
    mid = od[row, cols[len(cols) // 2 - 5 : len(cols) // 2 + 5]].mean()
    rim = od[row, cols[2:6]].mean()
    assert rim > mid + 0.15


@pytest.mark.parametrize("tone", list(syn.TONES))
def test_tones_get_darker(tone: str) -> None:
    leg = syn.make_leg(1, shape=SHAPE, tone=tone)
    r = syn.render(leg)
    med = float(np.median(optical_density(r.rgb)[r.leg_mask][:, 2]))
    assert leg.melanin == syn.TONES[tone]
    light = syn.render(syn.make_leg(1, shape=SHAPE, tone="light"))
    ref = float(np.median(optical_density(light.rgb)[light.leg_mask][:, 2]))
    assert med >= ref + 0.8 * (leg.melanin - syn.TONES["light"]) * MELANIN_OD[2] - 0.02


def test_scale_follows_shape_and_scene_is_resolution_independent(leg: syn.Leg) -> None:
    assert syn.default_px_per_mm((1500, 2000)) == pytest.approx(10.0)
    assert syn.default_px_per_mm((3000, 4000)) == pytest.approx(20.0)
    assert leg.px_per_mm == pytest.approx(3.0)
    big = syn.render(leg, shape=(900, 1200))
    small = syn.render(leg)
    assert big.baseline_px_per_mm == pytest.approx(6.0)
    down = cv2.resize(big.rgb, (600, 450), interpolation=cv2.INTER_AREA)
    assert np.median(np.abs(down.astype(int) - small.rgb.astype(int))) <= 2
    ratio = np.count_nonzero(big.labels) / np.count_nonzero(small.labels)
    assert ratio == pytest.approx(4.0, rel=0.2)


def test_rendered_follow_up_scale(leg: syn.Leg) -> None:
    cap = syn.random_capture(2, shape=SHAPE, perspective=0.0)
    r = syn.render(leg, cap)
    assert r.px_per_mm == pytest.approx(leg.px_per_mm / cap.scale, rel=1e-6)
    assert r.capture is cap
    assert r.to_dict()["vein_px"] == np.count_nonzero(r.labels)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tone": "green"}, "tone"),
        ({"shape": (10, 10)}, "shape"),
        ({"shape": (450,)}, "shape"),
        ({"px_per_mm": 0.0}, "px_per_mm"),
        ({"n_spider_clusters": -1}, "n_spider_clusters"),
        ({"n_reticular": 2.5}, "n_reticular"),
    ],
)
def test_make_leg_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        syn.make_leg(1, **kwargs)


def test_make_leg_rejects_bad_seed() -> None:
    with pytest.raises(ValueError, match="seed"):
        syn.make_leg(-1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cleared_frac": 0.7, "faded_frac": 0.5}, "cleared_frac"),
        ({"cleared_frac": 1.5}, "cleared_frac"),
        ({"faded_frac": -0.1}, "faded_frac"),
        ({"fade_to": 1.0}, "fade_to"),
        ({"fade_to": (0.6, 0.2)}, "fade_to"),
        ({"n_new": -2}, "n_new"),
        ({"recanalise": [9999]}, "recanalise"),
        ({"recanalise": [1]}, "recanalise"),  # persisting: nothing to re-open
        ({"by": "length"}, "by"),
    ],
)
def test_treat_rejects_bad_arguments(leg: syn.Leg, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        syn.treat(leg, 1, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rotation_deg": -1}, "rotation_deg"),
        ({"scale": 0.9}, "scale"),
        ({"jpeg_quality": (0, 200)}, "jpeg_quality"),
        ({"blur_sigma": (2.0, 1.0)}, "blur_sigma"),
        ({"noise": -0.1}, "noise"),
        ({"bend_px": float("nan")}, "bend_px"),
    ],
)
def test_random_capture_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        syn.random_capture(1, **kwargs)


def test_render_and_pair_reject_bad_arguments(leg: syn.Leg) -> None:
    with pytest.raises(ValueError, match="aspect"):
        syn.render(leg, shape=(450, 900))
    with pytest.raises(ValueError, match="capture"):
        syn.render(leg, "identity")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="baseline_capture"):
        syn.make_pair(1, shape=SHAPE, baseline_capture=syn.random_capture(1, shape=SHAPE))
    with pytest.raises(ValueError, match="wb_gains"):
        syn.identity_capture(wb_gains=(1.0, 0.0, 1.0))
    other = syn.make_leg(8, shape=SHAPE)
    with pytest.raises(ValueError, match="followup_leg"):
        syn.true_improvement(leg, other)


# ---------------------------------------------------------------- invariants and serialisation


@settings(max_examples=6, deadline=None)
@given(
    cleared=st.floats(0.0, 0.6),
    faded=st.floats(0.0, 0.4),
    fade_to=st.floats(0.05, 0.95),
    seed=st.integers(0, 10_000),
)
def test_improvement_matches_definition_for_any_treatment(
    cleared: float, faded: float, fade_to: float, seed: int
) -> None:
    shape = (300, 400)
    leg = syn.make_leg(seed, shape=shape, hair=False, freckles=False, moles=False)
    fol = syn.treat(leg, seed, cleared_frac=cleared, faded_frac=faded, fade_to=fade_to)
    base = syn.render(leg)
    fol_r = syn.render(fol)
    pair = syn.pair_truth(leg, fol, base, fol_r)
    assert pair.true_improvement_pct == pytest.approx(
        _expected_improvement(base, fol, fol_r.labels), abs=1e-9
    )
    assert 0.0 <= pair.true_improvement_pct <= 100.0
    # Visibility truth follows the vein ids.
    for v in fol.veins:
        sel = fol_r.vein_ids == v.id
        if sel.any():
            assert np.all(fol_r.visibility[sel] == np.float32(v.visibility))


def test_jpeg_bytes_are_the_rgb_and_quality_is_drawn_in_range(leg: syn.Leg) -> None:
    cap = syn.random_capture(4, shape=SHAPE, jpeg_quality=(70, 75))
    assert cap.jpeg_quality is not None
    assert 70 <= cap.jpeg_quality <= 75
    r = syn.render(leg, cap)
    assert r.jpeg is not None
    assert r.jpeg[:2] == b"\xff\xd8"
    dec = cv2.cvtColor(
        cv2.imdecode(np.frombuffer(r.jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
    )
    assert np.array_equal(dec, r.rgb)
    assert syn.render(leg, syn.random_capture(4, shape=SHAPE, jpeg_quality=None)).jpeg is None


def test_everything_serialises_to_json() -> None:
    pair = syn.make_pair(
        6, shape=SHAPE, n_new=1, staining=True, bruising=True, matting=True, capture=None
    )
    for obj in (pair, pair.followup_leg, pair.followup.capture, pair.followup):
        text = json.dumps(obj.to_dict())
        assert text
    d = pair.to_dict()
    assert d["true_improvement_pct"] == pair.true_improvement_pct
    assert set(d["status_by_vein"].values()) <= set(syn.VEIN_STATUSES)


def test_recanalised_after_fading(leg: syn.Leg) -> None:
    v1 = syn.treat(leg, 1, cleared_frac=0.0, faded_frac=1.0, fade_to=0.3)
    ids = [v.id for v in v1.veins[:2]]
    v2 = syn.treat(v1, 2, cleared_frac=0.0, faded_frac=0.0, recanalise=ids)
    assert [v2.vein(i).status for i in ids] == ["recanalised", "recanalised"]
    assert all(v2.vein(v.id).visibility == pytest.approx(0.3) for v in v1.veins[2:])


@pytest.mark.slow
def test_full_size_pair_truth_is_consistent() -> None:
    """At the default 2000×1500 (10 px/mm): truth follows the map, improvement as defined."""
    cap = syn.random_capture(17, bend_px=6.0)
    pair = syn.make_pair(17, tone="olive", n_new=2, staining=True, bruising=True, capture=cap)
    assert pair.baseline.px_per_mm == pytest.approx(10.0)
    base, fol = pair.baseline, pair.followup
    m = np.rint(fol.to_baseline_map).astype(int)
    h, w = base.shape
    inside = (m[..., 0] >= 0) & (m[..., 0] < w) & (m[..., 1] >= 0) & (m[..., 1] < h)
    fol_leg_truth = syn.render(pair.followup_leg)  # follow-up state in the baseline frame
    sampled = fol_leg_truth.labels[m[..., 1].clip(0, h - 1), m[..., 0].clip(0, w - 1)]
    assert np.mean(sampled[inside] == fol.labels[inside]) > 0.995
    overlap = pair.overlap_mask
    expected = syn.true_improvement(pair.baseline_leg, pair.followup_leg, overlap=overlap)
    assert pair.true_improvement_pct == pytest.approx(expected, abs=1e-9)
    assert 0 < overlap.sum() < base.leg_mask.sum()


@pytest.mark.slow
def test_sample_manifest_truth_regenerates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The committed demo set's truth comes out of make_samples.py again (first area)."""
    root = Path(__file__).resolve().parents[1] / "sample_images"
    spec = importlib.util.spec_from_file_location("make_samples", root / "make_samples.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "make_samples", mod)  # dataclasses look it up
    spec.loader.exec_module(mod)
    first = mod.CLIENTS[0]
    mod.CLIENTS = (replace(first, areas=first.areas[:1]),)
    fresh = mod.build(tmp_path)
    committed = json.loads((root / "manifest.json").read_text(encoding="utf-8"))["photos"]
    keys = ("file", "session", "visit_date", "px_per_mm", "true_improvement_pct")
    assert [{k: e[k] for k in keys} for e in fresh] == [
        {k: e[k] for k in keys} for e in committed[: len(fresh)]
    ]
    assert fresh[-1]["true_improvement_pct"] >= 75.0
