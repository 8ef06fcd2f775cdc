"""Upload-time capture feedback against phantoms with known pose, blur and exposure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vein_tracker import synthetic as syn
from vein_tracker.capture import CaptureReport, assess_capture
from vein_tracker.io import photo_from_array

SHAPE = (600, 800)


@pytest.fixture(scope="module")
def leg() -> syn.Leg:
    return syn.make_leg(4, shape=SHAPE, tone="fair")


@pytest.fixture(scope="module")
def baseline(leg: syn.Leg) -> np.ndarray:
    return syn.render(leg, syn.identity_capture(shape=SHAPE, noise=0.004, jpeg_quality=90)).rgb


def test_good_photo_is_ok_without_advice(baseline: np.ndarray) -> None:
    rep = assess_capture(baseline)
    assert isinstance(rep, CaptureReport)
    assert rep.ok
    assert rep.advice == ()
    assert 0.3 < rep.leg_fraction < 0.8
    assert rep.scale is None
    assert rep.rotation_deg is None
    assert rep.offset_px is None
    d = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert d["ok"] is True
    assert d["advice"] == []


def test_blurred_photo_gets_retake_advice(leg: syn.Leg) -> None:
    blurred = syn.render(leg, syn.identity_capture(shape=SHAPE, blur_sigma=3.0, noise=0.004)).rgb
    rep = assess_capture(blurred)
    assert not rep.ok
    assert any("blurred" in a for a in rep.advice)
    sharp = assess_capture(syn.render(leg, syn.identity_capture(shape=SHAPE, noise=0.004)).rgb)
    assert rep.sharpness < 0.5 * sharp.sharpness


def test_dark_photo(leg: syn.Leg) -> None:
    dark = syn.render(leg, syn.identity_capture(shape=SHAPE, exposure=0.12, noise=0.002)).rgb
    rep = assess_capture(dark)
    assert not rep.ok
    assert any("too dark" in a for a in rep.advice)


def test_overexposed_photo(leg: syn.Leg) -> None:
    bright = syn.render(leg, syn.identity_capture(shape=SHAPE, exposure=2.5)).rgb
    rep = assess_capture(bright)
    assert not rep.ok
    assert any("overexposed" in a for a in rep.advice)
    # Blown-out skin is not mistaken for a small leg.
    assert not any("closer" in a for a in rep.advice)


def test_small_leg_asks_to_move_closer(baseline: np.ndarray) -> None:
    # The same leg photographed from twice as far: half the size, centred on the backdrop.
    h, w = SHAPE
    small = baseline[::2, ::2]
    canvas = np.empty_like(baseline)
    canvas[:] = baseline[5, 5]  # backdrop colour
    canvas[h // 4 : h // 4 + small.shape[0], w // 4 : w // 4 + small.shape[1]] = small
    rep = assess_capture(canvas)
    assert rep.leg_fraction < 0.2
    assert any("closer" in a and "cm" in a for a in rep.advice)


@pytest.mark.parametrize("seed", [4, 9])
def test_pose_against_baseline(leg: syn.Leg, baseline: np.ndarray, seed: int) -> None:
    cap = syn.random_capture(
        seed, shape=SHAPE, rotation_deg=10, scale=0.15, translate=0.02, blur_sigma=0.2
    )
    follow = syn.render(leg, cap).rgb
    rep = assess_capture(follow, baseline)
    assert rep.matches_baseline is True
    # The capture's homography turns the photo by rotation_deg (clockwise on screen, y
    # down) onto the baseline, so its content is turned that much counter-clockwise.
    assert rep.rotation_deg is not None
    assert rep.rotation_deg == pytest.approx(cap.rotation_deg, abs=0.3)
    # capture.scale is baseline px per photo px: the leg looks 1/scale as large.
    assert rep.scale == pytest.approx(1.0 / cap.scale, rel=0.01)
    assert rep.offset_px is not None
    if abs(cap.rotation_deg) > 3:
        # Content turned counter-clockwise means the camera turned clockwise: undo it.
        turn = "counter-clockwise" if cap.rotation_deg > 0 else "clockwise"
        expected = f"Rotate the camera {abs(cap.rotation_deg):.0f}° {turn}."
        assert expected in rep.advice
    if 1.0 / cap.scale < 0.95:
        assert any("smaller" in a and "closer" in a for a in rep.advice)
    if 1.0 / cap.scale > 1.05:
        assert any("larger" in a and "further away" in a for a in rep.advice)
    assert rep.exposure_ev_vs_baseline is not None


def test_offset_direction(baseline: np.ndarray) -> None:
    # A photo whose frame sits 120 px left of the baseline's: the baseline centre is to
    # the right of this photo's centre, so the camera should move right.
    h, w = SHAPE
    shifted = np.empty_like(baseline)
    shifted[:, 120:] = baseline[:, : w - 120]
    shifted[:, :120] = baseline[:, :1]
    rep = assess_capture(photo_from_array(shifted, px_per_mm=4.0), baseline)
    assert rep.offset_px is not None
    assert rep.offset_px[0] == pytest.approx(120, abs=2)
    assert abs(rep.offset_px[1]) < 2
    # 120 px at 4 px/mm is 3 cm.
    assert any("3.0 cm to the right" in a or "3 cm to the right" in a for a in rep.advice)


def test_unrelated_photo_does_not_match(baseline: np.ndarray) -> None:
    other = syn.render(syn.make_leg(21, shape=SHAPE)).rgb
    rep = assess_capture(other, baseline)
    assert rep.matches_baseline is False
    assert not rep.ok
    assert any("same area" in a for a in rep.advice)


def test_bad_input_raises(baseline: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8"):
        assess_capture(baseline.astype(np.float32))
    with pytest.raises(ValueError, match="uint8"):
        assess_capture(baseline, baseline[..., 0])
