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
    chroma_lowpass,
    delta_e2000,
    equalise_to_followup,
    estimate_jpeg_quality,
    fit_colour,
    gain_and_compress,
    jpeg_round_trip,
    normalise_colour,
    prepare_colour_fit,
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
    with pytest.raises(ValueError, match="mask must have the image's shape"):
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


def _grey_lightness(code: int) -> float:
    """CIE L* of an sRGB grey (its Y is the linear value: the matrix's Y row sums to 1)."""
    c = code / 255.0
    y = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    return 116.0 * y ** (1 / 3) - 16.0 if y > 0.008856 else 903.3 * y


@pytest.mark.parametrize(("g1", "g2"), [(0, 255), (60, 70), (128, 200), (250, 30)])
def test_delta_e_of_greys_is_the_ciede2000_lightness_term(g1: int, g2: int) -> None:
    """Two greys differ in lightness alone: CIEDE2000 is |ΔL*| / S_L (Sharma et al. 2005),
    with S_L = 1 + 0.015 (L̄ - 50)² / sqrt(20 + (L̄ - 50)²); sRGB greys carry a trace of
    chroma under D65 (1e-7 here), hence a tolerance."""
    l1, l2 = _grey_lightness(g1), _grey_lightness(g2)
    t = (0.5 * (l1 + l2) - 50.0) ** 2
    want = abs(l2 - l1) / (1 + 0.015 * t / np.sqrt(20 + t))
    a = np.full((20, 30, 3), g1, np.uint8)
    b = np.full((20, 30, 3), g2, np.uint8)
    assert delta_e2000(a, b) == pytest.approx(want, abs=1e-4)


def test_delta_e_is_the_mean_over_the_mask() -> None:
    """Half the pixels equal, half black against white: the mean over all pixels is half
    the difference read on the differing half; a mask selects the pixels read."""
    ref = np.zeros((40, 60, 3), np.uint8)
    img = ref.copy()
    img[:, 30:] = 255
    right = np.zeros((40, 60), bool)
    right[:, 30:] = True
    full = delta_e2000(ref, img, mask=right)
    assert full == pytest.approx(100.0, abs=1e-4)
    assert delta_e2000(ref, img) == pytest.approx(full / 2, rel=1e-12)
    assert delta_e2000(ref, img, mask=~right) == 0.0


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
    early = fit_colour(
        baseline.rgb,
        follow,
        mask=baseline.leg_mask,
        prepared=prepare_colour_fit(baseline.rgb, follow),
    )
    assert np.array_equal(early.gains, fit.gains)
    assert np.array_equal(early.field, fit.field)
    assert early.n_pixels == fit.n_pixels
    with pytest.raises(ValueError, match="prepared"):
        fit_colour(
            baseline.rgb, follow, prepared=prepare_colour_fit(baseline.rgb[:-2], follow[:-2])
        )
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


# --------------------------------------------------------------------------- equalisation


def test_chroma_lowpass_is_a_420_like_chroma_filter() -> None:
    """Flat colour unchanged, luma kept, chroma as JPEG 4:2:0 smooths it, input untouched."""
    flat = np.full((40, 40, 3), (200, 150, 120), np.uint8)
    assert np.array_equal(chroma_lowpass(flat), flat)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (61, 80, 3), dtype=np.uint8)
    before = img.copy()
    out = chroma_lowpass(img)
    assert np.array_equal(img, before)
    assert out.shape == img.shape
    assert out.dtype == np.uint8

    def luma(a: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(a, cv2.COLOR_RGB2YCrCb)[..., 0].astype(int)

    assert np.abs(luma(out) - luma(img)).mean() < 1.0
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 100]
    )
    assert ok
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert dec is not None
    jpeg = cv2.cvtColor(dec, cv2.COLOR_BGR2RGB).astype(int)
    # a 4:2:0 JPEG at quality 100 is nearly only the chroma subsampling
    assert np.abs(jpeg - out).mean() < 0.25 * np.abs(jpeg - img.astype(int)).mean()


def test_chroma_lowpass_in_place_equals_the_plain_formula() -> None:
    """Working in one float buffer gives the very bytes of the out-of-place formula."""

    def plain(rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        ycc = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2YCrCb)
        small = cv2.resize(
            np.ascontiguousarray(ycc[..., 1:]), (w // 2, h // 2), interpolation=cv2.INTER_AREA
        )
        ycc[..., 1:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        out = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
        return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)

    rng = np.random.default_rng(7)
    for shape in ((2, 2, 3), (33, 47, 3), (240, 321, 3)):
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        assert np.array_equal(chroma_lowpass(img), plain(img))
    leg = cv2.GaussianBlur(rng.integers(60, 220, (300, 400, 3), dtype=np.uint8), (0, 0), 3.0)
    assert np.array_equal(chroma_lowpass(leg), plain(leg))


@pytest.mark.parametrize("quality", [62, 81, 94])
def test_estimate_jpeg_quality_finds_the_quality_a_photo_was_saved_with(quality: int) -> None:
    rgb = syn.render(syn.make_leg(3, shape=SHAPE, tone="medium")).rgb
    jpeg = jpeg_round_trip(rgb, quality=quality)
    assert estimate_jpeg_quality(jpeg) == quality
    # a losslessly stored photo shows no quality
    assert estimate_jpeg_quality(rgb) is None


def test_equalise_to_followup_only_for_a_jpeg_follow_up() -> None:
    """The baseline is brought to a JPEG follow-up's quality; the vein contrast of that
    copy is what the JPEG reads, not what the lossless photo reads."""
    from vein_tracker.segmentation import vein_contrast

    rgb = syn.render(syn.make_leg(3, shape=SHAPE, tone="brown")).rgb
    ppm = float(SHAPE[1]) / 200.0
    leg = np.ones(SHAPE, bool)
    kw = {"analysis_shape": SHAPE, "blur_px": 0.0, "fit": None}
    # lossless follow-up, or a baseline already at the follow-up's quality: nothing to do
    assert equalise_to_followup(rgb, followup_quality=None, baseline_quality=None, **kw) is None
    assert equalise_to_followup(rgb, followup_quality=81, baseline_quality=81, **kw) is None
    eq = equalise_to_followup(rgb, followup_quality=81, baseline_quality=None, **kw)
    assert eq is not None
    j = jpeg_round_trip(rgb, quality=81)
    np.testing.assert_array_equal(eq, chroma_lowpass(j))
    c_eq = vein_contrast(eq, px_per_mm=ppm, leg_mask=leg)
    c_lossless = vein_contrast(chroma_lowpass(rgb), px_per_mm=ppm, leg_mask=leg)
    c_jpeg = vein_contrast(chroma_lowpass(j), px_per_mm=ppm, leg_mask=leg)
    np.testing.assert_allclose(c_eq.spider, c_jpeg.spider, atol=1e-6)
    assert not np.allclose(c_lossless.spider, c_jpeg.spider, atol=1e-3)


def test_equalise_to_followup_applies_the_fit_in_reverse_and_reduces() -> None:
    """With a colour fit, the copy takes the follow-up's gains (the fit in reverse) before
    JPEG; with a reduced analysis frame it is compressed at the photo's size, then reduced."""
    rgb = syn.render(syn.make_leg(4, shape=SHAPE, tone="fair")).rgb
    fit = ColourFit(
        gains=np.array([1.1, 1.0, 0.9]),
        field=np.zeros(SHAPE, np.float32),
        offsets_od=np.log([1.1, 1.0, 0.9]),
        n_pixels=1000,
        mask=np.ones(SHAPE, bool),
    )
    kw = {"followup_quality": 85, "baseline_quality": None, "blur_px": float("nan")}
    plain = equalise_to_followup(rgb, analysis_shape=SHAPE, fit=None, **kw)
    gained = equalise_to_followup(rgb, analysis_shape=SHAPE, fit=fit, **kw)
    assert plain is not None
    assert gained is not None
    # the follow-up's red is 1/1.1 of the baseline's: the copy is darker in red, lighter in blue
    assert gained[..., 0].mean() < plain[..., 0].mean()
    assert gained[..., 2].mean() > plain[..., 2].mean()
    half = (SHAPE[0] // 2, SHAPE[1] // 2)
    small = equalise_to_followup(rgb, analysis_shape=half, fit=None, **kw)
    assert small is not None
    assert small.shape == (*half, 3)


def test_banded_compression_matches_one_piece() -> None:
    """A large photo is gained and compressed as two bands of whole JPEG block rows: the
    same blocks as one piece, so only the rows by the seam may differ."""
    pair = syn.make_pair(3, shape=(2048, 2400), tone="olive")
    rgb = pair.baseline.rgb
    field = np.linspace(0.9, 1.1, rgb.shape[0], dtype=np.float32)[:, None] * np.ones(
        (1, rgb.shape[1]), np.float32
    )
    gains = np.array([1.1, 1.0, 0.9])
    banded = gain_and_compress(rgb, field, gains, 85)
    # 1664 whole block rows of 2400 px: under 4 MP, so compressed in one piece
    whole = gain_and_compress(rgb[:1664], field[:1664], gains, 85)
    assert banded.shape == rgb.shape
    mid = (rgb.shape[0] // 2) // 16 * 16
    diff = np.abs(banded[:1664].astype(int) - whole.astype(int)).max(axis=(1, 2))
    # away from the seam and from the one-piece image's last block row
    away = np.r_[0 : mid - 16, mid + 16 : 1664 - 16]
    assert diff[away].max() == 0
    assert np.abs(banded.astype(int) - rgb.astype(int)).mean() > 0.5  # gain applied
