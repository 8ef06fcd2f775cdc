"""Tests of vein_tracker.skin: every skin region, found relative to the scene's light.

Photo-like phantoms (two legs, casts) are rendered small (480 x 640 px at 3 px/mm), so
the module's fixtures stay a few seconds each; plain synthetic scenes test the physics
(a cast is a gain per linear channel, shading a neutral factor). Known limit: brown
skin under strong tungsten is as warm as a dark wooden floor and is not taken for skin
(see ``skin._MAX_CAST``), unless its chroma varies as skin's does
(``skin._MAX_WARM_CAST_WITH_SKIN_SIGN``).
"""

from __future__ import annotations

import numpy as np
import pytest

from vein_tracker.optics import NEUTRAL_OD, linear_to_srgb_u8
from vein_tracker.skin import CHROMA_BASIS, MAX_VEIN_HOLE_MM, SkinMap, find_skin
from vein_tracker.synthetic.photo import make_photo_pair

PPM = 3.0
SHAPE = (480, 640)


def _coverage(found: SkinMap, masks: tuple[np.ndarray, ...]) -> list[float]:
    return [float((m & found.mask).sum() / m.sum()) for m in masks if m.sum() > 0.01 * m.size]


def _false_share(found: SkinMap, photo: object) -> float:
    """Share of the found skin that is none of the legs, hands or feet."""
    allowed = photo.leg_mask | photo.hand | photo.foot  # type: ignore[attr-defined]
    return float((found.mask & ~allowed).sum() / max(found.mask.sum(), 1))


@pytest.fixture(scope="module")
def two_legs_green_cast() -> object:
    return make_photo_pair(
        5,
        shape=SHAPE,
        px_per_mm=PPM,
        layout="two",
        tone="medium",
        identity=True,
        treatment=None,
        cast_followup="fluorescent",
    )


@pytest.fixture(scope="module")
def crossed_tungsten() -> object:
    return make_photo_pair(
        8,
        shape=SHAPE,
        px_per_mm=PPM,
        layout="crossed",
        tone="medium",
        identity=True,
        treatment=None,
        cast_followup="tungsten",
    )


# A leg counts as found when the skin covers 80 % of it (benchmarks/photolike.py's rule).
FOUND = 0.8


def test_both_legs_are_skin(two_legs_green_cast: object) -> None:
    b = two_legs_green_cast.baseline  # type: ignore[attr-defined]
    found = find_skin(b.rgb, px_per_mm=b.px_per_mm)
    cov = _coverage(found, b.skin_masks)
    assert len(cov) == 2
    assert min(cov) >= FOUND, cov
    assert found.regions >= 1
    assert _false_share(found, b) < 0.03
    # Daylight: no cast to speak of.
    assert found.cast_od < 0.15, found.cast_chroma


def test_green_cast_skin_still_found(two_legs_green_cast: object) -> None:
    f = two_legs_green_cast.followup  # type: ignore[attr-defined]
    found = find_skin(f.rgb, px_per_mm=f.px_per_mm)
    assert found.found
    cov = _coverage(found, f.skin_masks)
    assert len(cov) == 2
    assert min(cov) >= FOUND, cov
    assert _false_share(found, f) < 0.03
    # A fluorescent (green) light shifts the chroma across melanin's axis, positively.
    assert found.cast_chroma[1] > 0.1, found.cast_chroma


def test_crossed_legs_under_tungsten(crossed_tungsten: object) -> None:
    for photo in (crossed_tungsten.baseline, crossed_tungsten.followup):  # type: ignore[attr-defined]
        found = find_skin(photo.rgb, px_per_mm=photo.px_per_mm)
        cov = _coverage(found, photo.skin_masks)
        assert len(cov) == 2
        assert min(cov) >= FOUND, cov
        assert _false_share(found, photo) < 0.05
    # Tungsten is warm: the cast moves the skin along melanin's axis, outwards.
    fol = crossed_tungsten.followup  # type: ignore[attr-defined]
    assert find_skin(fol.rgb, px_per_mm=fol.px_per_mm).cast_chroma[0] > 0.1


def _scene(
    skin_rgb: tuple[float, float, float],
    backdrop_rgb: tuple[float, float, float],
    *,
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0),
    bands: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Vertical cylinders of skin (linear RGB ``skin_rgb``, Lambert-shaded) on a flat
    backdrop, under a light of linear ``gains``: sRGB image and the true skin mask."""
    h, w = 300, 400
    lin = np.empty((h, w, 3), np.float32)
    lin[:] = backdrop_rgb
    truth = np.zeros((h, w), bool)
    rng = np.random.default_rng(0)
    xs = np.arange(w)
    for k in range(bands):
        cx = (k + 1) * w / (bands + 1)
        r = 0.32 * w / (bands + 1)
        u = (xs - cx) / r
        inside = np.abs(u) < 1.0
        shade = np.where(inside, np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0)) * 0.8 + 0.2, 0.0)
        lin[:, inside] = np.asarray(skin_rgb, np.float32) * shade[inside][None, :, None]
        truth[:, inside] = True
    lin *= 1.0 + 0.02 * rng.standard_normal((h, w, 1)).astype(np.float32)
    lin *= np.asarray(gains, np.float32)
    return linear_to_srgb_u8(lin), truth


LIGHTS = {
    "daylight": (1.0, 1.0, 1.0),
    "tungsten": (1.3, 1.0, 0.6),
    "fluorescent": (0.9, 1.15, 0.72),
    "led-blue": (0.8, 0.96, 1.32),
}
SCENES = {
    "light-grey": ((0.62, 0.40, 0.30), (0.55, 0.55, 0.55)),  # light skin, grey wall
    "brown-white": ((0.20, 0.09, 0.05), (0.85, 0.85, 0.82)),  # brown skin, white studio
    "medium-wood": ((0.45, 0.27, 0.19), (0.20, 0.05, 0.012)),  # medium skin, dark oak floor
}
# Medium skin on oak under a blue LED is the one scene chroma cannot settle: the oak,
# pulled towards blue, is skin-coloured, and the skin, bluish, is still a plausible
# (cool) surface, so the warmer oak would be taken for the leg. Left out, not hidden.
CASES = [
    (scene, light)
    for scene in SCENES
    for light in LIGHTS
    if (scene, light) != ("medium-wood", "led-blue")
]


@pytest.mark.parametrize(("scene", "light"), CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_skin_found_under_any_light(scene: str, light: str) -> None:
    skin, backdrop = SCENES[scene]
    rgb, truth = _scene(skin, backdrop, gains=LIGHTS[light])
    found = find_skin(rgb)
    assert found.found
    inside = float(found.mask[truth].mean())
    outside = float(found.mask[~truth].mean())
    assert inside >= 0.9, (inside, found.skin_chroma, found.cast_chroma)
    assert outside <= 0.02, (outside, found.skin_chroma, found.cast_chroma)
    assert found.regions == 2


def test_cast_is_read_as_the_lights_shift() -> None:
    """The same scene under daylight and under tungsten: the cast estimate moves by the
    chroma of tungsten's gains (OD offsets -ln(gains))."""
    from vein_tracker.skin import od_chroma

    skin, grey = (0.62, 0.40, 0.30), (0.55, 0.55, 0.55)
    gains = (1.3, 1.0, 0.6)
    day = find_skin(_scene(skin, grey)[0])
    warm = find_skin(_scene(skin, grey, gains=gains)[0])
    expected = od_chroma(-np.log(np.asarray(gains, np.float32)))
    moved = np.subtract(warm.skin_chroma, day.skin_chroma)
    assert np.allclose(moved, expected, atol=0.08), (moved, expected)


@pytest.fixture(scope="module")
def brown_under_tungsten() -> object:
    return make_photo_pair(
        31,
        shape=SHAPE,
        px_per_mm=PPM,
        layout="crossed",
        tone="brown",
        identity=True,
        treatment=None,
        cast_followup="tungsten",
    )


def test_skin_like_the_baselines_under_a_cast_past_one_lamps(brown_under_tungsten: object) -> None:
    """Brown skin under strong tungsten light, through the phone's tone curve, lies past
    any one lamp's cast from the skin locus (here +0.77 in c1, past even the +0.75 a
    surface varying as skin's does may take): alone, the follow-up shows no skin. Given
    the baseline's skin (the same legs), the surface that moved least from its colour is
    the skin: both legs, and nothing else."""
    b = brown_under_tungsten.baseline  # type: ignore[attr-defined]
    f = brown_under_tungsten.followup  # type: ignore[attr-defined]
    base = find_skin(b.rgb, px_per_mm=PPM)
    assert base.found
    assert not find_skin(f.rgb, px_per_mm=PPM).found
    found = find_skin(f.rgb, px_per_mm=PPM, like=base)
    assert found.found
    cov = _coverage(found, f.skin_masks)
    assert len(cov) == 2
    assert min(cov) >= FOUND, cov
    assert _false_share(found, f) < 0.01
    # Still read as a strong warm cast, so the result carries the note.
    assert found.cast_chroma[0] > 0.3
    assert found.heavy_cast


def test_like_changes_nothing_when_skin_is_found_alone(two_legs_green_cast: object) -> None:
    b = two_legs_green_cast.baseline  # type: ignore[attr-defined]
    f = two_legs_green_cast.followup  # type: ignore[attr-defined]
    alone = find_skin(f.rgb, px_per_mm=PPM)
    like = find_skin(f.rgb, px_per_mm=PPM, like=find_skin(b.rgb, px_per_mm=PPM))
    np.testing.assert_array_equal(like.mask, alone.mask)
    assert like.cast_chroma == alone.cast_chroma


def test_no_skin_in_a_blue_or_black_frame() -> None:
    """A blue cloth would need a cast no lamp gives to be skin; black has no colour."""
    rng = np.random.default_rng(1)
    blue = np.empty((200, 300, 3), np.float32)
    blue[:] = (0.06, 0.09, 0.20)  # denim
    blue *= 1.0 + 0.05 * rng.standard_normal((200, 300, 1)).astype(np.float32)
    found = find_skin(linear_to_srgb_u8(blue))
    assert not found.found
    assert not found.mask.any()
    assert not find_skin(np.zeros((200, 300, 3), np.uint8)).found


def _grey_backdrop_with_patch(patch: tuple[float, float, float]) -> np.ndarray:
    """A plain grey backdrop filling a 400 x 600 frame, with a 100 x 100 px patch (4 %)."""
    lin = np.full((400, 600, 3), 0.55, np.float32)
    lin[150:250, 250:350] = patch
    lin *= 1.0 + 0.02 * np.random.default_rng(0).standard_normal((400, 600, 1)).astype(np.float32)
    return linear_to_srgb_u8(lin)


def test_small_skin_on_a_grey_backdrop_is_the_skin() -> None:
    """A grey backdrop could be skin under a cold lamp, but a skin-coloured patch beside it
    says the light is neutral: the patch is the skin, and no cast is read."""
    rgb = _grey_backdrop_with_patch((0.62, 0.40, 0.30))
    found = find_skin(rgb, px_per_mm=2.0)
    assert found.found
    truth = np.zeros(rgb.shape[:2], bool)
    truth[150:250, 250:350] = True
    assert (found.mask & truth).sum() >= 0.9 * truth.sum()
    assert (found.mask & ~truth).sum() <= 0.1 * truth.sum()
    assert np.hypot(*found.cast_chroma) <= 0.05


def test_a_small_skin_coloured_patch_does_not_displace_a_large_skin() -> None:
    """The rule is for frames whose large surfaces are all plain grey: beside a large
    skin-coloured region the small patch (another skin tone) is not the skin."""
    lin = np.full((400, 600, 3), 0.55, np.float32)
    lin[:, :360] = (0.62, 0.40, 0.30)
    lin[150:250, 420:520] = (0.30, 0.17, 0.11)
    lin *= 1.0 + 0.02 * np.random.default_rng(0).standard_normal((400, 600, 1)).astype(np.float32)
    found = find_skin(linear_to_srgb_u8(lin), px_per_mm=2.0)
    big = np.zeros((400, 600), bool)
    big[:, :360] = True
    assert found.found
    assert (found.mask & big).sum() >= 0.9 * big.sum()
    assert not found.mask[150:250, 420:520].any()


def test_a_hole_wider_than_a_vein_is_not_skin_and_a_vein_wide_one_is() -> None:
    """Inside a skin region, the background seen through a loop of skin (a thumb and the
    fingers of a hand holding the leg) is wider than any vein: it is left out, and its
    rim is an outline. A reticular vein (3 mm) and a mole (3 mm), darker than the skin
    and of another colour, are filled as skin. (A wide hole of skin colour, a leg seen
    between the fingers of a hand of another tone, stays filled:
    ``tests/test_registration.py``'s hand placed again.)"""
    ppm = 4.0
    lin = np.full((600, 800, 3), 0.55, np.float32)  # a grey backdrop around the skin
    lin[60:540, 80:720] = (0.62, 0.40, 0.30)
    wide = np.zeros((600, 800), bool)
    wide[200:260, 200:300] = True  # 15 x 25 mm of backdrop seen through the skin
    lin[wide] = 0.55
    vein = np.zeros((600, 800), bool)
    vein[400:412, 150:650] = True  # 3 mm wide, 125 mm long
    lin[vein] = (0.30, 0.22, 0.24)
    yy, xx = np.mgrid[:600, :800]
    mole = (yy - 200) ** 2 + (xx - 550) ** 2 <= 6**2  # 3 mm across
    lin[mole] = (0.20, 0.11, 0.07)
    lin *= 1.0 + 0.02 * np.random.default_rng(0).standard_normal((600, 800, 1)).astype(np.float32)
    found = find_skin(linear_to_srgb_u8(lin), px_per_mm=ppm)
    assert found.found
    assert MAX_VEIN_HOLE_MM > 3.0  # the widest reticular vein
    assert MAX_VEIN_HOLE_MM < 15.0  # the hole's narrower side
    assert found.mask[wide].mean() <= 0.05
    assert found.mask[vein].mean() >= 0.95
    assert found.mask[mole].all()


def test_small_skin_region_is_dropped_with_a_scale() -> None:
    rgb, truth = _scene((0.62, 0.40, 0.30), (0.55, 0.55, 0.55), bands=2)
    # At 0.5 px/mm each band is about 85 x 600 mm, far above the floor; at 20 px/mm it
    # is about 2 x 15 mm, too small to be a leg.
    assert find_skin(rgb, px_per_mm=0.5).regions == 2
    small = find_skin(rgb, px_per_mm=20.0)
    assert small.regions == 0
    assert not small.found


def test_result_is_json_ready() -> None:
    rgb, _ = _scene((0.62, 0.40, 0.30), (0.55, 0.55, 0.55))
    d = find_skin(rgb).to_dict()
    assert set(d) >= {"found", "regions", "fraction", "cast_chroma", "cast_od", "heavy_cast"}
    assert d["regions"] == 2


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), "10"])
def test_bad_px_per_mm_raises(value: object) -> None:
    rgb, _ = _scene((0.62, 0.40, 0.30), (0.55, 0.55, 0.55))
    with pytest.raises(ValueError, match="px_per_mm"):
        find_skin(rgb, px_per_mm=value)  # type: ignore[arg-type]


def test_input_not_modified() -> None:
    rgb, _ = _scene((0.62, 0.40, 0.30), (0.55, 0.55, 0.55))
    before = rgb.copy()
    find_skin(rgb, px_per_mm=1.0)
    assert np.array_equal(rgb, before)


@pytest.fixture(scope="module")
def brown_crossed_before_a_beige_wall() -> object:
    """benchmarks/photolike.py's identity pair 2 (calibration seed): brown crossed legs
    before a pale wall; the follow-up under a tungsten lamp, where the wall looks more
    like skin than the legs do."""
    return make_photo_pair(
        17002,
        tone="brown",
        shape=(1800, 2400),
        px_per_mm=5.275557775375004,
        layout="crossed",
        bend_mm=1.2497940181928062,
        treatment=None,
        identity=True,
        cast_followup="tungsten",
    )


def test_the_surface_where_the_baselines_skin_lies_is_the_skin(
    brown_crossed_before_a_beige_wall: object,
) -> None:
    """Alone, the follow-up's skin is the legs: the beige wall is as plausible a skin
    colour under the lamp, but its chroma does not vary along melanin's axis as skin's
    does. By colour alone (the surface that moved least from the baseline's skin) it is
    the wall, since the lamp moved every surface alike. Told where the baseline's skin
    lies, the finding takes the legs, and so does the measuring step handed the wall."""
    from vein_tracker.measure.frame import resize_mask
    from vein_tracker.measure.steps import skin_like_baseline

    pair = brown_crossed_before_a_beige_wall
    b, f = pair.baseline, pair.followup  # type: ignore[attr-defined]
    base = find_skin(b.rgb, px_per_mm=float(b.px_per_mm))
    assert base.found
    assert max(_coverage(base, b.skin_masks)) >= FOUND
    assert _false_share(base, b) < 0.05
    alone = find_skin(f.rgb)
    assert _false_share(alone, f) < 0.05
    assert not alone.warmer_rival  # the legs, past one lamp's cast, are the warmest
    # The front leg whole; the back leg loses the strip in the front leg's cast shadow,
    # as in the baseline (dark, its chroma far from the lit skin's): a known limit.
    assert max(_coverage(alone, f.skin_masks)) >= FOUND
    by_colour = find_skin(f.rgb, like=base, like_first=True)
    assert _false_share(by_colour, f) > 0.9  # the wall
    where = resize_mask(base.mask, f.rgb.shape[:2])
    placed = find_skin(f.rgb, like=base, like_first=True, where=where)
    assert _false_share(placed, f) < 0.05
    assert max(_coverage(placed, f.skin_masks)) >= FOUND
    chosen = skin_like_baseline(f.rgb, by_colour, base)
    np.testing.assert_array_equal(chosen.mask, placed.mask)
    assert skin_like_baseline(f.rgb, alone, base) is alone


def test_like_first_and_where_change_nothing_when_the_own_skin_is_in_place(
    two_legs_green_cast: object,
) -> None:
    from vein_tracker.measure.steps import skin_like_baseline

    b = two_legs_green_cast.baseline  # type: ignore[attr-defined]
    f = two_legs_green_cast.followup  # type: ignore[attr-defined]
    alone = find_skin(f.rgb, px_per_mm=PPM)
    chosen = skin_like_baseline(f.rgb, alone, find_skin(b.rgb, px_per_mm=PPM))
    assert chosen is alone


def _chroma_scene(
    legs: tuple[float, float],
    legs_spread: tuple[float, float],
    backdrop: tuple[float, float],
    backdrop_spread: tuple[float, float],
    backdrop_neutral: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Two shaded legs on a backdrop, each surface drawn from its OD chroma ``(c1, c2)``
    with a Gaussian spread per chroma axis (skin's varies along melanin's axis, c1; a
    painted wall's alike in both): sRGB image and the true legs' mask."""
    h, w = 300, 400
    rng = np.random.default_rng(0)
    truth = np.zeros((h, w), bool)
    neutral = np.full((h, w), backdrop_neutral, np.float32)
    for x0, x1 in ((60, 170), (230, 340)):
        truth[:, x0:x1] = True
        u = (np.arange(x0, x1) - (x0 + x1) / 2) / ((x1 - x0) / 2)
        neutral[:, x0:x1] = 3.0 + 0.8 * u**2  # dark legs, shaded at their sides
    chroma = np.empty((h, w, 2), np.float32)
    for mask, centre, spread in ((truth, legs, legs_spread), (~truth, backdrop, backdrop_spread)):
        noise = rng.standard_normal((int(mask.sum()), 2)) * np.asarray(spread)
        chroma[mask] = np.asarray(centre) + noise
    od = neutral[..., None] * (NEUTRAL_OD / np.linalg.norm(NEUTRAL_OD)) + chroma @ CHROMA_BASIS
    return linear_to_srgb_u8(np.exp(-od).astype(np.float32)), truth


def test_skin_varying_as_skin_is_found_past_one_lamps_cast() -> None:
    """Brown legs under a tungsten lamp stronger than one lamp's cast (c1 +0.64 from the
    skin locus, as a phone's tone curve makes it), before a beige wall the lamp made
    skin-coloured bar a green tint: the legs' chroma varies along melanin's axis, the
    wall's does not, and nothing is skin-coloured as photographed, so the legs are the
    skin and the lamp is the cast."""
    rgb, truth = _chroma_scene((1.91, 0.01), (0.08, 0.03), (0.46, 0.16), (0.018, 0.012), 1.6)
    found = find_skin(rgb)
    assert found.found
    assert found.mask[truth].mean() >= 0.9
    assert found.mask[~truth].mean() <= 0.02
    assert found.cast_chroma[0] > 0.6
    assert found.heavy_cast
    assert not found.warmer_rival  # the warmest surface was taken


def test_a_warmer_surface_set_aside_for_a_milder_light_is_a_rival() -> None:
    """Brown legs that one strong warm lamp would make skin-coloured (c1 +0.66 from the
    skin locus), before a pale wall that is skin-coloured as photographed. The milder
    light wins, so the wall is taken for the skin; the colours fit the other scene as
    well, and the finding says so, as does the segmentation's confidence."""
    from vein_tracker.confidence import photo_reasons
    from vein_tracker.scale import Scale

    rgb, truth = _chroma_scene((1.81, -0.09), (0.08, 0.03), (0.49, -0.04), (0.03, 0.02), 1.6)
    found = find_skin(rgb)
    assert found.found
    assert found.mask[~truth].mean() >= 0.9  # the wall, as the rule says
    assert found.warmer_rival
    given = Scale(6.0, "given", 6.0, 6.0, "given")
    codes = {
        r.code: r.lowers
        for r in photo_reasons(
            scale=given, skin_fraction=0.5, skin_found=True, skin_uncertain=found.warmer_rival
        )
    }
    assert codes == {"skin_uncertain": True}
    assert photo_reasons(scale=given, skin_fraction=0.5, skin_found=True) == []


def test_a_photo_whose_skin_may_be_the_wall_is_low_confidence() -> None:
    """A phantom of the same scene: crossed brown legs under tungsten before a beige wall
    (600 x 800 px). Alone, the follow-up's skin is the wall, and its segmentation says
    the skin may be the wrong surface; the baseline, under daylight, has no such doubt."""
    from vein_tracker import measure
    from vein_tracker.segmentation import segment

    pair = make_photo_pair(
        17007,
        shape=(600, 800),
        px_per_mm=2.16,
        tone="brown",
        layout="crossed",
        bend_mm=0.34,
        treatment=None,
        identity=True,
        cast_followup="tungsten",
    )
    f = pair.followup
    alone = find_skin(f.rgb, px_per_mm=2.16)
    assert _false_share(alone, f) > 0.9
    assert alone.warmer_rival
    seg_f = segment(f.rgb, px_per_mm=2.16)
    assert seg_f.confidence.level == "low"
    assert "skin_uncertain" in seg_f.confidence.to_dict()["codes"]
    seg_b = segment(pair.baseline.rgb, px_per_mm=2.16)
    assert "skin_uncertain" not in seg_b.confidence.to_dict()["codes"]
    # Compared, the follow-up's skin is found where the baseline's lies: no doubt. With
    # that photo as the baseline, the comparison's confidence carries it.
    kept = measure.compare(pair.baseline.jpeg, f.jpeg, px_per_mm=2.16)
    assert kept.confidence is not None
    assert "skin_uncertain" not in kept.confidence.to_dict()["codes"]
    doubted = measure.compare(f.jpeg, pair.baseline.jpeg, px_per_mm=2.16)
    assert doubted.confidence is not None
    assert doubted.confidence.level == "low"
    assert "skin_uncertain" in doubted.confidence.to_dict()["codes"]


def test_skin_coloured_legs_keep_a_textured_warm_floor_out() -> None:
    """The converse: light legs on the skin locus under daylight, on a warm wooden floor
    whose grain varies along melanin's axis as skin does, and which a lamp past one
    lamp's cast would make skin-coloured. Skin-coloured as photographed, the legs are
    the skin."""
    rgb, truth = _chroma_scene((0.50, -0.15), (0.04, 0.03), (1.91, 0.01), (0.08, 0.03), 3.0)
    found = find_skin(rgb)
    assert found.found
    assert found.mask[truth].mean() >= 0.9
    assert found.mask[~truth].mean() <= 0.02
    assert abs(found.cast_chroma[0]) < 0.05
    assert not found.warmer_rival  # the floor, past one lamp's cast, was no candidate
