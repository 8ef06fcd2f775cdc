"""What moved between the visits once the leg is aligned (vein_tracker.registration.motion).

The first scenes are neutral optical density on the registration's refine grid (1000 px
long side): skin texture shared by both photos, each photo's own noise, a change of
exposure and shading, and either an object placed again (a hand) or veins that cleared
and faded. The last is a photo-like leg held by a hand placed again, through ``compare``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

import vein_tracker.registration.align as align
from vein_tracker.confidence import registration_reasons
from vein_tracker.measure import compare
from vein_tracker.morphology import dilate_disc
from vein_tracker.registration.motion import moved_parts
from vein_tracker.synthetic.photo import make_photo_pair

SHAPE = (750, 1000)


def _texture(rng: np.random.Generator, amp: float) -> np.ndarray:
    """Band-limited texture (pores, creases, relief) at a few scales, OD."""
    out = np.zeros(SHAPE, np.float32)
    for sigma in (1.5, 4.0, 10.0):
        n = cv2.GaussianBlur(rng.standard_normal(SHAPE).astype(np.float32), (0, 0), sigma)
        out += n / (float(n.std()) + 1e-9)
    return amp * out / 3.0


def _leg() -> np.ndarray:
    leg = np.zeros(SHAPE, bool)
    leg[:, 150:850] = True
    return leg


def _hand(cy: int, cx: int) -> np.ndarray:
    """A hand's footprint: a palm and four fingers (bool)."""
    m = np.zeros(SHAPE, np.uint8)
    cv2.ellipse(m, (cx, cy), (110, 75), 0, 0, 360, 1, -1)
    for k in range(4):
        y = cy - 60 + 40 * k
        cv2.line(m, (cx + 60, y), (cx + 200, y + 10), 1, 26)
    return m > 0


def _capture(rng: np.random.Generator, scene: np.ndarray, exposure: float) -> np.ndarray:
    """A photo of ``scene`` (OD): exposure offset, a shading gradient, pixel noise."""
    ramp = np.linspace(0.0, 0.15, SHAPE[1], dtype=np.float32)[None, :]
    noise = 0.01 * rng.standard_normal(SHAPE).astype(np.float32)
    return scene + exposure + ramp + noise


def test_a_hand_placed_again_is_found_where_it_lay_in_each_photo() -> None:
    """A hand with its own creases lies on the leg at baseline and 13 mm away at the
    follow-up (24 and 14 px here): both its places are found, and nothing else."""
    rng = np.random.default_rng(1)
    skin = 0.5 + _texture(rng, 0.03)
    hand_tex = 0.3 + _texture(rng, 0.08)
    hand_b, hand_f = _hand(330, 330), _hand(344, 354)
    scene_b = np.where(hand_b, hand_tex, skin)
    shifted = np.roll(hand_tex, (14, 24), axis=(0, 1))
    scene_f = np.where(hand_f, shifted, skin)
    od_b = _capture(rng, scene_b, 0.0)
    od_f = _capture(rng, scene_f, 0.2)
    leg = _leg()

    moved = moved_parts(od_b, od_f, leg, leg)

    hands = (hand_b | hand_f) & leg
    assert (moved & hands).sum() >= 0.8 * hands.sum()
    elsewhere = leg & ~dilate_disc(hands, 40)
    assert (moved & elsewhere).sum() <= 0.02 * elsewhere.sum()
    assert not (moved & ~leg).any()


def test_veins_that_cleared_or_faded_did_not_move() -> None:
    """Treatment changes the veins, not where the skin is: spider and reticular veins
    cleared or faded to half between the photos, under another exposure, are no
    displacement."""
    rng = np.random.default_rng(2)
    skin = 0.5 + _texture(rng, 0.02)
    veins_b = np.zeros(SHAPE, np.float32)
    veins_f = np.zeros(SHAPE, np.float32)
    for k in range(14):
        layer = np.zeros(SHAPE, np.uint8)
        p = rng.integers((160, 0), (840, 750), size=(4, 2))
        cv2.polylines(layer, [p.astype(np.int32)], False, 1, 3 if k % 3 else 10)
        vein = cv2.GaussianBlur(layer.astype(np.float32), (0, 0), 1.0) * 0.15
        veins_b += vein
        veins_f += vein * (0.0 if k % 2 else 0.5)
    leg = _leg()

    moved = moved_parts(
        _capture(rng, skin + veins_b, 0.0), _capture(rng, skin + veins_f, -0.1), leg, leg
    )

    assert not moved.any()


def test_a_leg_aligned_to_a_pixel_did_not_move() -> None:
    """What the alignment leaves (a pixel of residual, a sub-millimetre bend) is not a
    move."""
    rng = np.random.default_rng(3)
    skin = 0.5 + _texture(rng, 0.04)
    leg = _leg()
    moved = moved_parts(
        _capture(rng, skin, 0.0), _capture(rng, np.roll(skin, (1, 2), axis=(0, 1)), 0.05), leg, leg
    )
    assert not moved.any()


@pytest.fixture(scope="module")
def hand_moved_8mm() -> Any:
    """A photo-like olive leg held by a bare hand that is placed again about 8 mm away at
    the follow-up (too little of the view for all the skin to disagree), half its veins
    cleared."""
    return make_photo_pair(
        37,
        tone="olive",
        shape=(1200, 1600),
        px_per_mm=5.7,
        layout="single",
        hand=True,
        glove=False,
        treatment={"cleared_frac": 0.5, "move_hand_mm": 8.0},
    )


def test_a_hand_placed_again_is_left_out_of_the_comparison_and_said(
    hand_moved_8mm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hand lies on the leg in both photos, a little elsewhere each time: both its
    places are left out of the region compared, the result says so, and the figure is
    nearer the truth than when the hand is compared as if it were leg (its creases and
    finger gaps read as cleared veins, the leg it covers as changed)."""
    pair = hand_moved_8mm
    b, f = pair.baseline, pair.followup
    assert b.jpeg is not None
    assert f.jpeg is not None
    c = compare(b.jpeg, f.jpeg, px_per_mm=5.7)

    assert c.registration.checks.moved_share > 0.0
    hands = (b.hand | c.registration.warp(f.hand)) & c.baseline_seg.leg_mask
    assert hands.sum() > 0
    assert (c.region & hands).sum() <= 0.2 * hands.sum()
    assert "part_moved" in c.to_dict()["confidence"]["codes"]

    monkeypatch.setattr(align, "moved_parts", lambda od_b, *_: np.zeros(od_b.shape, bool))
    compared_as_leg = compare(b.jpeg, f.jpeg, px_per_mm=5.7)
    assert (compared_as_leg.region & hands).sum() > 0.8 * hands.sum()
    truth = pair.true_improvement_pct
    assert abs(c.improvement_pct - truth) < abs(compared_as_leg.improvement_pct - truth) - 10.0


def test_a_part_left_out_is_noted_and_a_large_one_lowers_the_confidence() -> None:
    """A small moved part is left out and noted; past a quarter of the skin the figure
    speaks for too little of the view and is low-confidence; when all the skin disagrees
    the stronger reason (part_changed) is the one given."""
    small = registration_reasons(0.9, 0.8, 0.1)
    assert [(r.code, r.lowers) for r in small] == [("part_moved", False)]
    assert "10 %" in small[0].text
    large = registration_reasons(0.9, 0.8, 0.4)
    assert [(r.code, r.lowers) for r in large] == [("part_moved", True)]
    assert [r.code for r in registration_reasons(0.9, 0.2, 0.4)] == ["part_changed"]
    assert registration_reasons(0.9, 0.8, 0.0) == []
