"""Colour normalisation and the skin mask against phantoms with known capture settings."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from vein_tracker import synthetic as syn
from vein_tracker.colour import (
    ColourFit,
    ColourNormalisation,
    apply_colour_fit,
    delta_e2000,
    fit_colour,
    normalise_colour,
    skin_mask,
    vein_like_mask,
)
from vein_tracker.optics import od_to_srgb_u8, optical_density

SHAPE = (600, 800)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def leg() -> syn.Leg:
    return syn.make_leg(3, shape=SHAPE, tone="fair")


@pytest.fixture(scope="module")
def baseline(leg: syn.Leg) -> syn.Rendered:
    return syn.render(leg, syn.identity_capture(shape=SHAPE, noise=0.003, jpeg_quality=92))


@pytest.mark.parametrize(
    ("exposure", "gains"),
    [(1.2, (1.08, 0.95, 0.92)), (0.8, (0.93, 1.0, 1.08)), (1.0, (1.0, 1.0, 1.0))],
)
def test_identity_pair_delta_e_below_2(
    leg: syn.Leg, baseline: syn.Rendered, exposure: float, gains: tuple[float, float, float]
) -> None:
    cap = syn.identity_capture(
        shape=SHAPE, exposure=exposure, wb_gains=gains, noise=0.004, jpeg_quality=88, seed=5
    )
    follow = syn.render(leg, cap)
    mask = baseline.leg_mask
    res = normalise_colour(baseline.rgb, follow.rgb, mask=mask)
    assert isinstance(res, ColourNormalisation)
    assert res.delta_e <= 2.0
    if exposure != 1.0:
        assert res.delta_e_before > 4.0
        assert res.delta_e < 0.5 * res.delta_e_before
    # The fitted gains undo the capture's linear gains (exposure x white balance).
    truth = 1.0 / (exposure * np.asarray(gains))
    assert np.allclose(res.gains, truth, rtol=0.03)
    assert res.image.shape == follow.rgb.shape
    assert res.image.dtype == np.uint8
    assert res.field.shape == SHAPE
    assert res.field.dtype == np.float32
    json.dumps(res.to_dict(), allow_nan=False)


def test_treatment_does_not_bias_the_fit(leg: syn.Leg, baseline: syn.Rendered) -> None:
    # 90 % of veins cleared: the fit ignores vein pixels and recovers the capture gains.
    treated = syn.treat(leg, 4, cleared_frac=0.9, faded_frac=0.1)
    cap = syn.identity_capture(shape=SHAPE, exposure=1.15, wb_gains=(1.05, 0.96, 1.02), seed=2)
    follow = syn.render(treated, cap)
    res = normalise_colour(baseline.rgb, follow.rgb, mask=baseline.leg_mask)
    truth = 1.0 / (1.15 * np.array([1.05, 0.96, 1.02]))
    assert np.allclose(res.gains, truth, rtol=0.03)
    assert res.delta_e <= 2.0


def test_smooth_illumination_field_is_removed(baseline: syn.Rendered) -> None:
    # Add a neutral shading ramp (OD, like a lamp to one side) plus a white-balance offset.
    h, w = SHAPE
    xn = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
    ramp = np.broadcast_to(0.25 * xn[None, :], SHAPE)
    od = optical_density(baseline.rgb) + ramp[..., None] + np.array([0.05, -0.03, 0.02])
    follow = od_to_srgb_u8(od)
    res = normalise_colour(baseline.rgb, follow, mask=baseline.leg_mask)
    leg_px = baseline.leg_mask
    # The field holds the ramp up to its value at the centre (offsets absorb constants).
    assert np.abs((res.field - ramp)[leg_px] - np.median((res.field - ramp)[leg_px])).max() < 0.03
    assert res.delta_e < 1.0
    assert res.delta_e_before > 3.0


def test_default_mask_and_inputs_untouched(baseline: syn.Rendered, leg: syn.Leg) -> None:
    follow = syn.render(leg, syn.identity_capture(shape=SHAPE, exposure=1.1)).rgb
    ref_copy, fol_copy = baseline.rgb.copy(), follow.copy()
    res = normalise_colour(baseline.rgb, follow)
    assert res.delta_e <= 2.0
    assert np.array_equal(ref_copy, baseline.rgb)
    assert np.array_equal(fol_copy, follow)


def test_normalise_bad_inputs(baseline: syn.Rendered) -> None:
    ref = baseline.rgb
    with pytest.raises(ValueError, match="warp the follow-up"):
        normalise_colour(ref, ref[:100])
    with pytest.raises(ValueError, match="mask must be a bool"):
        normalise_colour(ref, ref, mask=np.ones(SHAPE, np.uint8))
    with pytest.raises(ValueError, match="mask must be a bool"):
        normalise_colour(ref, ref, mask=np.ones((5, 5), bool))
    with pytest.raises(ValueError, match="trim"):
        normalise_colour(ref, ref, trim=0.7)
    with pytest.raises(ValueError, match="uint8"):
        normalise_colour(ref.astype(np.float32), ref)
    with pytest.raises(ValueError, match="equal reference shape"):
        delta_e2000(ref, ref[:10])


def test_delta_e_identity_and_empty_mask(baseline: syn.Rendered) -> None:
    assert delta_e2000(baseline.rgb, baseline.rgb) == 0.0
    assert np.isnan(delta_e2000(baseline.rgb, baseline.rgb, mask=np.zeros(SHAPE, bool)))


@pytest.mark.parametrize("tone", ["light", "medium", "brown"])
def test_skin_mask_matches_leg(tone: str) -> None:
    leg = syn.make_leg(5, shape=SHAPE, tone=tone)
    r = syn.render(leg, syn.random_capture(5, shape=SHAPE, blur_sigma=0.3))
    m = skin_mask(r.rgb)
    assert m.shape == SHAPE
    assert m.dtype == bool
    assert iou(m, r.leg_mask) > 0.95


@pytest.mark.parametrize("colour", [(60, 80, 140), (128, 128, 128), (90, 110, 100), (20, 20, 25)])
def test_skin_mask_empty_on_backdrop(colour: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(0)
    img = np.clip(np.array(colour, np.float32) + rng.normal(0, 4, (*SHAPE, 3)), 0, 255).astype(
        np.uint8
    )
    assert not skin_mask(img).any()


def test_skin_mask_ignores_backdrop_beside_leg() -> None:
    leg = syn.make_leg(9, shape=SHAPE, tone="olive")
    r = syn.render(leg)
    m = skin_mask(r.rgb)
    assert (m & ~r.leg_mask).sum() < 0.02 * r.leg_mask.sum()


def test_vein_like_mask_finds_spider_veins() -> None:
    leg = syn.make_leg(6, shape=SHAPE, tone="light")
    r = syn.render(leg)
    m = vein_like_mask(optical_density(r.rgb), sigma_px=4.0, k=4.0, mask=r.leg_mask)
    spider = r.labels == 1
    # Flagged pixels lie on veins or their soft edges (the labels are the vein core),
    # not on hair, freckles or moles; a fair share of spider pixels is flagged.
    near = cv2.dilate((r.labels > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert (m & near).sum() / max(m.sum(), 1) > 0.8
    assert (m & (r.hair | r.moles | r.freckles) & ~near).sum() < 0.02 * m.sum()
    assert (m & spider).sum() / max(spider.sum(), 1) > 0.3
    with pytest.raises(ValueError, match="od must be"):
        vein_like_mask(np.zeros((10, 10), np.float32))


def test_fit_then_apply_equals_normalise_colour(baseline: syn.Rendered, leg: syn.Leg) -> None:
    """The fit and its application, done apart (compare equalises the baseline with the
    fit before the normalised image is made), give normalise_colour's result."""
    cap = syn.identity_capture(shape=SHAPE, exposure=0.9, wb_gains=(1.04, 0.97, 1.0), seed=3)
    follow = syn.render(leg, cap).rgb
    whole = normalise_colour(baseline.rgb, follow, mask=baseline.leg_mask)
    fit = fit_colour(baseline.rgb, follow, mask=baseline.leg_mask)
    assert isinstance(fit, ColourFit)
    assert np.array_equal(fit.gains, whole.gains)
    assert np.array_equal(fit.field, whole.field)
    # the mask-free part of the fit made beforehand (compare does, while it segments)
    from vein_tracker.colour import _fit_frame

    early = fit_colour(
        baseline.rgb, follow, mask=baseline.leg_mask, frame=_fit_frame(baseline.rgb, follow)
    )
    assert np.array_equal(early.gains, fit.gains)
    assert np.array_equal(early.field, fit.field)
    assert early.n_pixels == fit.n_pixels
    with pytest.raises(ValueError, match="frame"):
        fit_colour(baseline.rgb, follow, frame=_fit_frame(baseline.rgb[:-2], follow[:-2]))
    parts = apply_colour_fit(baseline.rgb, follow, fit)
    assert np.array_equal(parts.image, whole.image)
    assert parts.delta_e == whole.delta_e
    assert parts.delta_e_before == whole.delta_e_before
    assert parts.n_pixels == whole.n_pixels
    assert not np.allclose(whole.gains, 1.0)  # the capture's gains were found
    # compare reads only the look-alike grid of the normalised image: the grid's pixels
    # and the colour differences are those of the whole image
    for step in (2, 5):
        grid = apply_colour_fit(baseline.rgb, follow, fit, grid_step=step)
        assert np.array_equal(grid.image, whole.image[::step, ::step])
        assert grid.delta_e == whole.delta_e
        assert grid.delta_e_before == whole.delta_e_before
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="grid_step"):
            apply_colour_fit(baseline.rgb, follow, fit, grid_step=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        apply_colour_fit(baseline.rgb, follow[:-1], fit)
