"""Segmentation on photo-like phantoms: outlines, backgrounds, two legs, casts, scale.

The phantoms (:func:`vein_tracker.synthetic.photo.make_photo_pair`) are real-photo-like
scenes with exact truth, rendered small (600 x 800 px at 6 px/mm, a 10 x 13 cm field)
so each takes a few seconds. The figures asserted were measured on these seeds and are
floors, not targets: the benchmark's (``benchmarks/photolike.py``) are the targets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from vein_tracker.cli import main
from vein_tracker.io import save_image
from vein_tracker.optics import HAEMOGLOBIN_OD, MELANIN_OD, NEUTRAL_OD, od_to_srgb_u8
from vein_tracker.scale import MIN_PX_PER_MM
from vein_tracker.segmentation import Segmentation, segment
from vein_tracker.segmentation.signals import _compute_maps
from vein_tracker.synthetic.photo import make_photo_pair

SHAPE = (600, 800)
PPM = 6.0


def _pair(seed: int, **kw: Any) -> Any:
    return make_photo_pair(seed, shape=SHAPE, px_per_mm=PPM, identity=True, treatment=None, **kw)


def _near(mask: np.ndarray, radius_px: float) -> np.ndarray:
    dist = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    return np.asarray(dist <= radius_px)


def _dice(seg: Segmentation, photo: Any) -> float:
    truth = photo.labels > 0
    return 2.0 * float((truth & seg.mask).sum()) / float(truth.sum() + seg.mask.sum())


def _outline_false(seg: Segmentation, photo: Any) -> int:
    """Vein pixels within 1.5 mm of a skin boundary that are no true vein's."""
    return int((seg.mask & photo.outline_band & ~_near(photo.labels > 0, 0.25 * PPM)).sum())


@pytest.fixture(scope="module")
def white_studio() -> Any:
    return _pair(11, tone="light", backdrop="studio-white")


@pytest.fixture(scope="module")
def black_cloth() -> Any:
    return _pair(11, tone="brown", backdrop="dark")


@pytest.fixture(scope="module")
def crossed_green() -> Any:
    """Two crossed legs; the follow-up under a fluorescent (green) light."""
    return _pair(6, tone="fair", layout="crossed", cast_followup="fluorescent")


@pytest.mark.parametrize("scene", ["white_studio", "black_cloth"])
def test_leg_outline_is_no_vein(scene: str, request: pytest.FixtureRequest) -> None:
    """The bright-to-dark edge where the leg meets a white or a black backdrop gives no
    vein pixel in the outline band, in either photo."""
    pair = request.getfixturevalue(scene)
    for photo in (pair.baseline, pair.followup):
        seg = segment(photo.rgb, px_per_mm=PPM)
        assert photo.outline_band.any()
        assert _outline_false(seg, photo) == 0


def test_veins_found_on_a_photo_like_leg(white_studio: Any) -> None:
    """Known veins are found (Dice measured 0.63 and 0.66 on this pair) and the leg is."""
    for photo in (white_studio.baseline, white_studio.followup):
        seg = segment(photo.rgb, px_per_mm=PPM)
        assert _dice(seg, photo) >= 0.6
        leg = photo.skin_masks[0]
        assert (seg.leg_mask & leg).sum() >= 0.8 * leg.sum()
        assert seg.confidence is not None
        assert seg.confidence.level == "ok"


def test_crossed_legs_both_found_under_a_green_cast(crossed_green: Any) -> None:
    """Both legs are in the leg mask, with and without the cast, and the veins are found
    under the cast (Dice measured 0.64 without, 0.51 with the cast)."""
    floors = {"baseline": 0.6, "followup": 0.45}
    for name, photo in (("baseline", crossed_green.baseline), ("followup", crossed_green.followup)):
        seg = segment(photo.rgb, px_per_mm=PPM)
        legs = [m for m in photo.skin_masks if m.sum() >= 0.01 * m.size]
        assert len(legs) == 2
        for leg in legs:
            assert (seg.leg_mask & leg).sum() >= 0.8 * leg.sum(), name
        assert _dice(seg, photo) >= floors[name], name


@pytest.mark.xfail(
    strict=True,
    reason="known gap (issue 21): the deeply shaded flank of the left leg is not found as "
    "skin, so the leg mask covers 79 % and 76 % of it, under the benchmark's 80 %",
)
def test_two_legs_side_by_side_are_both_found() -> None:
    pair = _pair(5, tone="medium", layout="two")
    for photo in (pair.baseline, pair.followup):
        seg = segment(photo.rgb, px_per_mm=PPM)
        legs = [m for m in photo.skin_masks if m.sum() >= 0.01 * m.size]
        assert len(legs) == 2
        for leg in legs:
            assert (seg.leg_mask & leg).sum() >= 0.8 * leg.sum()


def test_skin_texture_alone_gives_no_vein() -> None:
    """A field of skin with pores, mottle and shading in melanin, neutral and blood
    directions at 0.1-5 mm (no vein) gives no vein pixel."""
    rng = np.random.default_rng(3)
    h, w = SHAPE

    def field(sigma: float, amp: float) -> np.ndarray:
        n = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), sigma)
        return np.asarray(n / n.std() * amp, np.float32)

    od = np.empty((h, w, 3), np.float32)
    od[:] = (0.55, 1.05, 1.35)
    od += (field(1.0, 0.04) + field(6.0, 0.05) + field(30, 0.08))[..., None] * MELANIN_OD
    od += (field(0.8, 0.05) + field(20, 0.1))[..., None] * NEUTRAL_OD
    od += (field(3.0, 0.02) + field(25, 0.04))[..., None] * HAEMOGLOBIN_OD
    seg = segment(od_to_srgb_u8(od), px_per_mm=PPM)
    assert seg.leg_mask.mean() > 0.9
    assert not seg.mask.any()


def _occluding(photo: Any) -> np.ndarray:
    """The edges of one skin surface over another that the segmentation found, at the
    photo's size."""
    occ = _compute_maps(photo.rgb, PPM, None).occluding
    h, w = photo.labels.shape
    return np.asarray(cv2.resize(occ.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0)


@pytest.mark.parametrize(
    ("seed", "kw"),
    [(5, {"tone": "fair", "hand": True}), (10, {"tone": "fair", "layout": "crossed"})],
    ids=["hand", "crossed"],
)
def test_an_edge_of_skin_over_skin_is_an_outline(seed: int, kw: dict[str, Any]) -> None:
    """Where a hand or a crossing leg lies over the leg, its edge is found inside the skin
    (measured: 81 % and 73 % of the edge found lies in the true outline band), and no
    vein is sought along it."""
    photo = _pair(seed, **kw).baseline
    occ = _occluding(photo)
    assert occ.sum() >= 1000
    assert (occ & photo.outline_band).sum() >= 0.7 * occ.sum()
    seg = segment(photo.rgb, px_per_mm=PPM)
    assert not (seg.mask & occ).any()


@pytest.mark.parametrize("scene", ["white_studio", "black_cloth"])
def test_a_single_leg_has_no_edge_inside_its_skin(
    scene: str, request: pytest.FixtureRequest
) -> None:
    """A leg alone, shaded by its own curvature, has no outline inside its skin."""
    pair = request.getfixturevalue(scene)
    for photo in (pair.baseline, pair.followup):
        assert not _occluding(photo).any()


def test_coarse_scale_is_low_confidence(white_studio: Any) -> None:
    """At 2 px/mm spider veins are sub-pixel: the map is low-confidence, with why."""
    seg = segment(white_studio.baseline.rgb, px_per_mm=2.0)
    assert seg.confidence is not None
    assert seg.confidence.level == "low"
    d = seg.confidence.to_dict()
    assert "scale_too_coarse" in d["codes"]
    assert any(f"{MIN_PX_PER_MM:g} px/mm" in r for r in d["reasons"])


def test_estimated_scale_is_said_with_its_range(white_studio: Any) -> None:
    seg = segment(white_studio.baseline.rgb)
    assert seg.scale is not None
    assert seg.scale.source == "estimated"
    assert seg.scale.low <= seg.px_per_mm <= seg.scale.high
    assert seg.confidence is not None
    assert "scale_estimated" in seg.confidence.to_dict()["codes"]


def test_little_skin_is_low_confidence() -> None:
    """A frame that is mostly a plain grey backdrop, with a small patch of skin: the
    backdrop is not taken for skin under a cold lamp, and the patch is found and said to
    be small."""
    lin = np.full((400, 600, 3), 0.55, np.float32)
    lin[150:250, 250:350] = (0.62, 0.40, 0.30)
    lin *= 1.0 + 0.02 * np.random.default_rng(0).standard_normal((400, 600, 1)).astype(np.float32)
    from vein_tracker.optics import linear_to_srgb_u8

    seg = segment(linear_to_srgb_u8(lin), px_per_mm=2.0)
    assert seg.confidence is not None
    assert seg.confidence.level == "low"
    assert "little_skin" in seg.confidence.to_dict()["codes"]


def test_cli_json_says_low_confidence(tmp_path: Path, white_studio: Any) -> None:
    """`segment --json` and `analyze --json` carry the confidence and its reasons."""
    b = tmp_path / "b.png"
    f = tmp_path / "f.png"
    save_image(white_studio.baseline.rgb, b)
    save_image(white_studio.followup.rgb, f)
    out = tmp_path / "seg.json"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["segment", str(b), "--px-per-mm", "2", "--json"]) == 0
    out.write_text(buf.getvalue())
    conf = json.loads(out.read_text())["segmentation"]["confidence"]
    assert conf["level"] == "low"
    assert "scale_too_coarse" in conf["codes"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["analyze", str(b), str(f), "--px-per-mm", "3", "--json"]) == 0
    conf = json.loads(buf.getvalue())["confidence"]
    assert conf["level"] == "low"
    assert "scale_too_coarse" in conf["codes"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["analyze", str(b), str(f), "--px-per-mm", "3"]) == 0
    text = buf.getvalue()
    # The reasons come before the figure.
    assert text.index("LOW CONFIDENCE") < text.index("Improvement")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["segment", str(b), "--px-per-mm", "2"]) == 0
    text = buf.getvalue()
    assert text.startswith("LOW CONFIDENCE: ")
    assert text.index("LOW CONFIDENCE") < text.index("spider vein(s)")


@pytest.fixture(scope="module")
def brown_tungsten_pair() -> Any:
    """The same crossed brown legs, the follow-up under strong tungsten light (no
    treatment: the true improvement is 0)."""
    return make_photo_pair(
        31,
        shape=(900, 1200),
        px_per_mm=6.0,
        layout="crossed",
        tone="brown",
        identity=True,
        treatment=None,
        cast_followup="tungsten",
    )


def test_same_legs_under_a_strong_cast_are_measured_and_flagged(brown_tungsten_pair: Any) -> None:
    """Brown skin under tungsten lies past one lamp's cast from the skin locus; its
    chroma varies as skin's does, so alone the follow-up's legs are still its skin,
    under a heavy cast. The pair is measured, not refused, and says the light changed."""
    from vein_tracker import measure
    from vein_tracker.skin import find_skin

    b, f = brown_tungsten_pair.baseline, brown_tungsten_pair.followup
    alone = find_skin(f.rgb)
    assert alone.found
    assert alone.heavy_cast
    assert (alone.mask & f.leg_mask).sum() >= 0.8 * f.leg_mask.sum()
    assert (alone.mask & ~f.leg_mask).sum() <= 0.05 * alone.mask.sum()
    c = measure.compare(b.jpeg, f.jpeg, px_per_mm=6.0)
    assert c.confidence is not None
    assert c.confidence.level == "low"
    assert "light_changed" in c.confidence.to_dict()["codes"]


def test_light_change_lowers_the_confidence_past_its_threshold() -> None:
    from vein_tracker.confidence import MAX_LIGHT_CHANGE_OD, light_change_reasons

    skin = (1.0, -0.1)
    assert light_change_reasons(skin, (1.0 + 0.9 * MAX_LIGHT_CHANGE_OD, -0.1)) == []
    (reason,) = light_change_reasons(skin, (1.0, -0.1 + 1.1 * MAX_LIGHT_CHANGE_OD))
    assert reason.code == "light_changed"
    assert reason.lowers
    assert f"{1.1 * MAX_LIGHT_CHANGE_OD:.2f} OD" in reason.text


def test_same_light_is_not_a_light_change(white_studio: Any) -> None:
    """Re-captured under the same kind of light (turned, dimmed, re-framed): no flag."""
    from vein_tracker import measure

    c = measure.compare(white_studio.baseline.rgb, white_studio.followup.rgb, px_per_mm=3.0)
    assert c.confidence is not None
    assert "light_changed" not in c.confidence.to_dict()["codes"]


@pytest.mark.xfail(
    strict=True,
    reason="known gap (issue 21): the follow-up's camera applied a stronger tone curve "
    "(S-curve 0.19 -> 0.44, which flattens the shadows) and more sharpening (0.23 -> 0.66) "
    "than the baseline's; the reticular veins read 23 % fainter and the pair 21.0 points "
    "improved. With both captures' tone and sharpening equal it reads 2.5: the contrast "
    "gain between two cameras' processing is not yet estimated and removed",
)
def test_a_change_of_camera_processing_is_not_improvement() -> None:
    from vein_tracker import measure

    # A photo-like identity pair (benchmarks/photolike.py's pair_spec("identity", 0, 10700)).
    ppm = 6.009865295316983
    pair = make_photo_pair(
        10700,
        shape=(1500, 2000),
        px_per_mm=ppm,
        tone="medium",
        layout="single",
        bend_mm=1.1040785349174387,
        identity=True,
        treatment=None,
    )
    # Truth = 0; measured on the true baseline map, so only the contrast reading counts.
    c = measure.compare(
        pair.baseline.jpeg,
        pair.followup.jpeg,
        px_per_mm=ppm,
        baseline_labels=pair.baseline.labels,
    )
    assert abs(c.improvement_pct) <= 3.0
