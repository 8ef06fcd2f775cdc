"""Truth of the photo-like phantoms: the yardstick for real photographs must be exact."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest

from vein_tracker.morphology import within_distance
from vein_tracker.optics import optical_density
from vein_tracker.synthetic import identity_capture
from vein_tracker.synthetic._photo_model import (
    SURF_HAND,
    SURF_LEG0,
    VEIN_ID_STRIDE,
    PhotoCapture,
    PhotoPair,
    PhotoScene,
)
from vein_tracker.synthetic.photo import (
    make_photo_pair,
    make_photo_scene,
    photo_pair_truth,
    treat_photo,
    true_improvement_on,
    without_veins,
)
from vein_tracker.synthetic.photo_camera import CAST_GAINS, photo_capture, random_lighting
from vein_tracker.synthetic.photo_render import render_photo
from vein_tracker.synthetic.texture import real_material, real_skin_detail, wood_grain

SHAPE = (600, 800)


def _clean_capture(scene: PhotoScene, *, cast: str = "none") -> PhotoCapture:
    """Identity pose, no noise, blur, lens faults, tone curve, sharpening or JPEG."""
    return PhotoCapture(
        geometry=identity_capture(shape=scene.shape),
        lighting=random_lighting(3),
        cast=cast,
        cast_gains=np.asarray(CAST_GAINS[cast], dtype=np.float64),
    )


def _od_change(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel OD change (max over channels), the global exposure offset removed, and
    where it is measurable.

    The phone's auto exposure meters the whole frame, so removing veins changes every
    pixel by the same OD offset; its median is taken out. Dark pixels (below 60 of 255),
    where one grey level is a large OD step, are not measurable and count as unchanged.
    """
    d = optical_density(a) - optical_density(b)
    d -= np.median(d.reshape(-1, 3), axis=0)
    out = np.abs(d).max(axis=2)
    ok = (a.min(axis=2) >= 60) & (b.min(axis=2) >= 60)
    out[~ok] = 0.0
    return out, ok


@pytest.fixture(scope="module")
def single() -> PhotoScene:
    return make_photo_scene(4, shape=SHAPE, px_per_mm=8.0, tone="fair", hair=0.0, spots=False)


# ---------------------------------------------------------------- exact vein truth


def test_spider_labels_are_where_the_pixels_change(single: PhotoScene) -> None:
    cap = _clean_capture(single)
    no_spider = render_photo(without_veins(single, "spider"), cap)
    full = render_photo(single, cap)
    spider = full.labels == 1
    assert spider.sum() > 200
    change, ok = _od_change(no_spider.rgb, full.rgb)
    # Every spider pixel darkens the photo; every clear change is on or beside one.
    assert np.mean(change[spider & ok] > 0.01) > 0.95
    strong = change > 0.08
    assert strong.sum() > 100
    assert np.mean(within_distance(spider, 1.5)[strong]) > 0.99


def test_a_photo_without_its_veins_keeps_its_noise_and_all_else() -> None:
    """The benchmark reads a vein's visible contrast against the same capture rendered
    without veins: with the phone's noise, tone curve and JPEG, that bare photo differs
    from the photo on and beside the veins, and elsewhere by no more than the auto
    exposure's small shift (the same noise, not a new draw)."""
    pair = make_photo_pair(21, shape=SHAPE, px_per_mm=7.0, tone="light", identity=True)
    photo = pair.baseline
    bare = render_photo(without_veins(pair.baseline_scene), photo.capture)
    assert not bare.labels.any()
    veins = photo.labels > 0
    assert veins.sum() > 500
    diff = photo.rgb.astype(np.float32) - bare.rgb.astype(np.float32)
    far = photo.leg_mask & ~within_distance(veins, 3.0 * photo.px_per_mm)
    shift = np.median(diff[far], axis=0)
    assert np.abs(shift).max() <= 3.0
    # Off the veins the two differ by the exposure's shift and JPEG's rounding of it:
    # much less than the same photo taken again with a second draw of the noise does.
    geometry = replace(photo.capture.geometry, seed=photo.capture.geometry.seed + 1)
    again = render_photo(pair.baseline_scene, replace(photo.capture, geometry=geometry))
    redrawn = photo.rgb.astype(np.float32) - again.rgb.astype(np.float32)
    assert (diff[far] - shift).std() < 0.7 * redrawn[far].std()
    # On the veins the photo is darker.
    assert np.median(diff[veins & photo.leg_mask].sum(axis=1)) < -6.0
    spiders_only = without_veins(pair.baseline_scene, "reticular")
    assert all(v.cls == "spider" for leg in spiders_only.legs for v in leg.surface.veins)
    with pytest.raises(ValueError, match="cls"):
        without_veins(pair.baseline_scene, "varicose")


def test_reticular_labels_cover_the_vein_core(single: PhotoScene) -> None:
    cap = _clean_capture(single)
    ret_only = render_photo(without_veins(single, "spider"), cap)
    base = render_photo(without_veins(single, None), cap)
    ret = ret_only.labels == 2
    assert ret.sum() > 200
    assert not (ret_only.labels == 1).any()
    change, ok = _od_change(ret_only.rgb, base.rgb)
    assert np.mean(change[ret & ok] > 0.01) > 0.95
    # Blurred edges: above 30 % of the peak only within ~0.3 vein widths (≤ 0.8 mm).
    peak = float(np.percentile(change[ret], 95))
    strong = change > 0.3 * peak
    assert np.mean(within_distance(ret, 0.8 * single.px_per_mm)[strong]) > 0.98


def test_truth_maps_agree_with_each_other(single: PhotoScene) -> None:
    r = render_photo(single, _clean_capture(single))
    assert r.labels.shape == r.vein_ids.shape == r.surface.shape == SHAPE
    assert np.array_equal(r.labels > 0, r.vein_ids > 0)
    assert np.all(r.leg_mask[r.labels > 0])
    assert np.all(r.visibility[r.labels > 0] == 1.0)
    assert not r.visibility[r.labels == 0].any()
    assert r.px_per_mm == r.baseline_px_per_mm == 8.0
    assert r.to_baseline_map.shape == (*SHAPE, 2)
    # The outline band lies within 1.5 mm of the skin boundary and covers it.
    edge = cv2.morphologyEx(
        r.leg_mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)
    )
    assert np.all(r.outline_band[edge > 0])
    dist = cv2.distanceTransform((edge == 0).astype(np.uint8), cv2.DIST_L2, 5)
    assert dist[r.outline_band].max() <= 1.5 * 8.0 + 1.5


# ---------------------------------------------------------------- scene contents


def test_both_legs_of_a_two_leg_scene_are_present_with_veins() -> None:
    for layout in ("two", "crossed"):
        scene = make_photo_scene(8, shape=SHAPE, px_per_mm=3.0, layout=layout, tone="olive")
        r = render_photo(scene, _clean_capture(scene), with_pixels=False)
        assert len(r.skin_masks) == 2
        a, b = r.skin_masks
        assert a.mean() > 0.05
        assert b.mean() > 0.05
        assert not (a & b).any()
        legs_with_veins = set(np.unique(r.vein_ids[r.vein_ids > 0]) // VEIN_ID_STRIDE)
        assert legs_with_veins == {1, 2}


def test_hand_occludes_the_veins_it_covers() -> None:
    scene = make_photo_scene(6, shape=SHAPE, px_per_mm=4.0, hand=True)
    cap = _clean_capture(scene)
    with_hand = render_photo(scene, cap)
    bare = render_photo(replace(scene, limbs=()), cap)
    hand = with_hand.hand
    assert hand.sum() > 10_000
    assert np.all(with_hand.surface[hand] == SURF_HAND)
    assert (bare.labels[hand] > 0).sum() > 1000  # veins lie under the hand...
    assert not with_hand.labels[hand].any()  # ...and are not visible, so not truth
    assert not with_hand.leg_mask[hand].any()
    outside = ~within_distance(hand, 2)
    assert np.array_equal(with_hand.labels[outside], bare.labels[outside])


def test_feet_floor_and_backdrop_masks_partition_the_frame() -> None:
    scene = make_photo_scene(2, shape=(800, 600), px_per_mm=2.0, layout="standing", floor="wood")
    r = render_photo(scene, _clean_capture(scene), with_pixels=False)
    assert r.foot.sum() > 1000
    assert r.floor.sum() > 1000
    assert r.background.sum() > 1000
    parts = [r.foot, r.floor, r.background, r.hand, r.clothing, *r.skin_masks]
    total = np.sum([p.astype(np.int32) for p in parts], axis=0)
    assert np.all(total == 1)
    assert not r.labels[~r.leg_mask].any()


def test_casts_change_colours_but_not_truth(single: PhotoScene) -> None:
    plain = render_photo(single, _clean_capture(single))
    for cast in ("tungsten", "fluorescent", "led-blue"):
        tinted = render_photo(single, _clean_capture(single, cast=cast))
        for name in ("labels", "vein_ids", "surface", "outline_band"):
            assert np.array_equal(getattr(plain, name), getattr(tinted, name))
        skin = plain.leg_mask
        ratio = tinted.rgb[skin].mean(axis=0) / plain.rgb[skin].mean(axis=0)
        gains = np.asarray(CAST_GAINS[cast])
        # The channel the cast raises most rises most relative to the others.
        assert int(np.argmax(ratio)) == int(np.argmax(gains))


def test_low_resolution_scene_keeps_sub_pixel_vein_truth() -> None:
    scene = make_photo_scene(5, shape=SHAPE, px_per_mm=2.0, layout="two")
    r = render_photo(scene, _clean_capture(scene), with_pixels=False)
    assert (r.labels == 1).sum() > 50
    assert r.px_per_mm == 2.0


# ---------------------------------------------------------------- pairs


def test_identity_pair_has_zero_true_improvement() -> None:
    pair = make_photo_pair(11, identity=True, shape=SHAPE, px_per_mm=5.0, layout="two", bend_mm=1.0)
    assert pair.identity
    assert pair.true_improvement_pct == 0.0
    assert all(v == 0.0 or math.isnan(v) for v in pair.true_improvement_by_class_pct.values())
    assert set(pair.status_by_vein.values()) == {"persisting"}
    assert not np.array_equal(pair.baseline.rgb, pair.followup.rgb)


def test_a_followup_can_take_the_baseline_capture_steps_it_is_asked_for() -> None:
    """``same_as_baseline`` gives the follow-up the baseline's lights and camera steps it
    names, and leaves everything else of the pair as drawn without it."""
    kw = {"identity": True, "shape": SHAPE, "px_per_mm": 5.0}
    drawn = make_photo_pair(13, **kw)
    shared = make_photo_pair(
        13, same_as_baseline=("light", "tint", "tone", "sharpen", "jpeg"), **kw
    )
    b, f, f0 = shared.baseline.capture, shared.followup.capture, drawn.followup.capture
    assert f.lighting == b.lighting != f0.lighting
    assert (f.tone, f.sharpen) == (b.tone, b.sharpen) != (f0.tone, f0.sharpen)
    assert f.geometry.jpeg_quality == b.geometry.jpeg_quality
    np.testing.assert_array_equal(f.cast_gains, b.cast_gains)
    tungsten = make_photo_pair(13, cast_followup="tungsten", same_as_baseline=("tint",), **kw)
    assert tungsten.followup.capture.cast == "none"
    # the pose, the rest of the camera and the baseline photo are the pair drawn without it
    np.testing.assert_array_equal(f.geometry.homography, f0.geometry.homography)
    assert (f.geometry.noise, f.geometry.blur_sigma) == (f0.geometry.noise, f0.geometry.blur_sigma)
    assert f.chroma_blur == f0.chroma_blur
    np.testing.assert_array_equal(shared.baseline.rgb, drawn.baseline.rgb)
    assert not np.array_equal(shared.followup.rgb, drawn.followup.rgb)
    with pytest.raises(ValueError, match="same_as_baseline"):
        make_photo_pair(13, same_as_baseline=("lens",), **kw)


@pytest.fixture(scope="module")
def treated() -> PhotoPair:
    """Crossed legs, some veins cleared, some faded, and new veins."""
    return make_photo_pair(
        12,
        shape=SHAPE,
        px_per_mm=5.0,
        layout="crossed",
        treatment={"cleared_frac": 0.4, "faded_frac": 0.3, "n_new": 4},
    )


def test_treated_pair_matches_the_definition_from_truth_maps(treated: PhotoPair) -> None:
    pair = treated
    b = pair.baseline
    fol_id = render_photo(
        pair.followup_scene,
        replace(pair.followup.capture, geometry=identity_capture(shape=SHAPE)),
        with_pixels=False,
    )
    region = pair.overlap_mask
    bmask = (b.labels > 0) & region
    remaining = sum(pair.visibility_by_vein[int(i)] for i in b.vein_ids[bmask])
    new = (fol_id.labels > 0) & region & ~(b.labels > 0)
    expected = 100.0 * (1.0 - (remaining + new.sum()) / bmask.sum())
    assert pair.true_improvement_pct == pytest.approx(expected, abs=1e-9)
    assert new.sum() > 0  # the new veins count against
    assert 0.0 < pair.true_improvement_pct < 100.0
    assert {"cleared", "faded", "new"} <= set(pair.status_by_vein.values())


def test_true_improvement_on_some_veins_counts_only_those(treated: PhotoPair) -> None:
    pair = treated
    b = pair.baseline
    base_ids = {int(i) for i in np.unique(b.vein_ids[(b.labels > 0) & pair.overlap_mask])}
    new_ids = {k for k, st in pair.status_by_vein.items() if st == "new"}
    every = base_ids | new_ids
    assert true_improvement_on(pair, every, every) == pytest.approx(pair.true_improvement_pct)
    # without the new veins, only the baseline veins' fading counts
    no_new = true_improvement_on(pair, base_ids, ())
    assert no_new > pair.true_improvement_pct
    # the cleared veins alone are 100 % improved, the persisting ones 0 %
    for status, pct in (("cleared", 100.0), ("persisting", 0.0)):
        some = {k for k in base_ids if pair.status_by_vein.get(k) == status}
        assert some
        assert true_improvement_on(pair, some, ()) == pytest.approx(pct)
    assert math.isnan(true_improvement_on(pair, (), new_ids))


def test_overlap_excludes_both_hand_placements_and_the_unseen_frame() -> None:
    pair = make_photo_pair(
        13,
        shape=SHAPE,
        px_per_mm=4.0,
        hand=True,
        pose=1.5,
        treatment={"cleared_frac": 0.5, "move_hand_mm": 15.0},
    )
    base_hand = pair.baseline.hand
    fol_id = render_photo(
        pair.followup_scene,
        replace(pair.followup.capture, geometry=identity_capture(shape=SHAPE)),
        with_pixels=False,
    )
    assert not (pair.overlap_mask & base_hand).any()
    assert not (pair.overlap_mask & fol_id.hand).any()
    assert (base_hand != fol_id.hand).any()  # the hand did move
    assert np.all(pair.baseline.surface[pair.overlap_mask] >= SURF_LEG0)


def test_everything_cleared_without_a_pose_change_is_100_pct() -> None:
    pair = make_photo_pair(
        14, shape=SHAPE, px_per_mm=5.0, pose=0.0, treatment={"cleared_frac": 1.0, "faded_frac": 0.0}
    )
    assert pair.true_improvement_pct == pytest.approx(100.0)
    assert not pair.followup.labels.any()


def test_recanalised_veins_come_back_at_a_later_visit() -> None:
    scene = make_photo_scene(9, shape=SHAPE, px_per_mm=4.0)
    v1 = treat_photo(scene, 1, cleared_frac=0.6, faded_frac=0.2)
    v2 = treat_photo(v1, 2, cleared_frac=0.0, faded_frac=0.0, recanalise_n=2)
    table = v2.vein_table()
    back = [k for k, v in table.items() if v[2] == "recanalised"]
    assert len(back) == 2
    assert all(table[k][3] == 1.0 for k in back)


def test_same_seed_same_pixels_other_seed_differs(single: PhotoScene) -> None:
    cap = photo_capture(5, shape=SHAPE, lighting=random_lighting(5), watermark=True)
    a = render_photo(single, cap)
    b = render_photo(
        make_photo_scene(4, shape=SHAPE, px_per_mm=8.0, tone="fair", hair=0.0, spots=False), cap
    )
    assert np.array_equal(a.rgb, b.rgb)
    assert a.jpeg == b.jpeg
    assert a.watermark.any()
    other = make_photo_scene(5, shape=SHAPE, px_per_mm=8.0, tone="fair", hair=0.0, spots=False)
    assert not np.array_equal(render_photo(other, cap).rgb, a.rgb)


def test_pair_to_dict_is_json_ready() -> None:
    import json

    pair = make_photo_pair(15, identity=True, shape=SHAPE, px_per_mm=4.0)
    json.dumps(pair.to_dict())
    json.dumps(pair.baseline_scene.to_dict())


# ---------------------------------------------------------------- real material


def test_real_photographs_load_from_the_wheel() -> None:
    tile, mm = real_skin_detail()
    assert tile.shape == (384, 384, 3)
    assert mm > 0
    assert np.all(np.abs(tile.reshape(-1, 3).mean(axis=0)) < 1e-3)
    assert 0.01 < float(tile.std()) < 0.3
    for name in ("brick", "gravel", "grass"):
        mat, mm = real_material(name)
        assert mat.shape == (512, 512, 3)
        assert mat.std() > 0.01
    grain, _ = wood_grain()
    assert grain.shape[2] == 3
    assert grain[..., 0].mean() > grain[..., 2].mean()


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"px_per_mm": 0.5}, "px_per_mm"),
        ({"tone": "green"}, "tone"),
        ({"layout": "sitting"}, "layout"),
        ({"backdrop": "moon"}, "backdrop"),
        ({"floor": "lava"}, "floor"),
        ({"skin": "scaly"}, "skin"),
        ({"hair": -1.0}, "hair"),
        ({"shape": (10, 10)}, "shape"),
    ],
)
def test_make_photo_scene_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_photo_scene(1, **kwargs)


def test_pairs_captures_and_renders_reject_bad_arguments(single: PhotoScene) -> None:
    with pytest.raises(ValueError, match="cast_followup"):
        make_photo_pair(1, cast_followup="sodium", shape=SHAPE)
    with pytest.raises(ValueError, match="pose"):
        make_photo_pair(1, pose=-1.0, shape=SHAPE)
    with pytest.raises(ValueError, match="treatment"):
        make_photo_pair(1, identity=True, treatment={"cleared_frac": 0.5}, shape=SHAPE)
    with pytest.raises(ValueError, match="cast"):
        photo_capture(1, shape=SHAPE, lighting=random_lighting(1), cast="sodium")
    with pytest.raises(ValueError, match="seed"):
        make_photo_scene(-1, shape=SHAPE)
    with pytest.raises(ValueError, match="shape"):
        render_photo(single, photo_capture(1, shape=(300, 400), lighting=random_lighting(1)))
    with pytest.raises(ValueError, match="scene"):
        render_photo("scene", _clean_capture(single))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="recanalise"):
        treat_photo(single, 1, recanalise=[7])
    with pytest.raises(ValueError, match="recanalise_n"):
        treat_photo(single, 1, recanalise_n=-2)
    with pytest.raises(ValueError, match="move_hand_mm"):
        treat_photo(single, 1, move_hand_mm=-1.0)
    pair = make_photo_pair(2, identity=True, shape=SHAPE, px_per_mm=4.0)
    with pytest.raises(ValueError, match="identity geometry"):
        photo_pair_truth(pair.baseline_scene, pair.followup_scene, pair.followup, pair.followup)
