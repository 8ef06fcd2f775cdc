"""vein_tracker.morphology and the colour maths give the libraries' results exactly.

The analysis no longer imports SciPy or scikit-image (their import is a large part of
the command line's start-up); these tests keep the replacements honest by comparing
them with the library functions on exhaustive small images, random masks, thin lines,
blobs, masks touching the border, degenerate shapes and real vein masks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vein_tracker import synthetic as syn
from vein_tracker.colour import ciede2000, delta_e2000, srgb_u8_to_lab
from vein_tracker.morphology import (
    SKELETON_LUT,
    components,
    dilate_disc,
    dilate_disc_at,
    dilate_square,
    distance_to,
    erode_disc,
    erode_square,
    fill_holes,
    near_on_grid,
    sample_linear,
    skeletonize,
    within_distance,
)
from vein_tracker.segmentation import segment

ndi = pytest.importorskip("scipy.ndimage")
sk_morph = pytest.importorskip("skimage.morphology")
sk_color = pytest.importorskip("skimage.color")

ROOT = Path(__file__).resolve().parents[1]


def _all_images(h: int, w: int) -> np.ndarray:
    """Every binary h x w image, shape (2**(h*w), h, w)."""
    n = h * w
    codes = np.arange(1 << n, dtype=np.int64)[:, None]
    return ((codes >> np.arange(n)) & 1).astype(bool).reshape(-1, h, w)


def _tile(images: np.ndarray, gap: int = 1) -> np.ndarray:
    """Images side by side with background gutters between them.

    Thinning is local (a pixel sees its 8 neighbours) and outside the image is
    background, so a one-pixel gutter makes every tile behave as a separate image.
    """
    n, h, w = images.shape
    per_row = int(np.ceil(np.sqrt(n)))
    rows = -(-n // per_row)
    out = np.zeros((rows * (h + gap), per_row * (w + gap)), dtype=bool)
    for k in range(n):
        r, c = divmod(k, per_row)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = images[k]
    return out


def _random_masks() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    masks = []
    for shape in [(1, 1), (1, 9), (9, 1), (2, 2), (3, 3), (8, 13), (40, 31), (97, 128)]:
        for density in (0.0, 0.05, 0.2, 0.5, 0.8, 0.95, 1.0):
            for _ in range(3):
                masks.append(rng.random(shape) < density)
    # Smooth blobs (a thresholded blurred noise field) at several scales.
    for sigma in (1.5, 4.0, 10.0):
        field = cv2.GaussianBlur(rng.random((120, 160)).astype(np.float32), (0, 0), sigma)
        for q in (0.3, 0.6, 0.85):
            masks.append(field > np.quantile(field, q))
    return masks


def _drawn_masks() -> list[np.ndarray]:
    """Thin and thick lines, rings, filled shapes, some touching or crossing the border."""
    masks = []
    for thickness in (1, 2, 3, 5, 9):
        m = np.zeros((80, 100), np.uint8)
        cv2.line(m, (-10, 5), (120, 70), 1, thickness)
        cv2.line(m, (50, -5), (20, 90), 1, thickness)
        cv2.circle(m, (70, 40), 18, 1, thickness)
        cv2.ellipse(m, (15, 60), (20, 8), 30, 0, 360, 1, thickness)
        masks.append(m > 0)
    m = np.zeros((60, 60), np.uint8)
    cv2.rectangle(m, (0, 0), (59, 59), 1, -1)
    cv2.rectangle(m, (20, 20), (40, 40), 0, -1)  # a square hole
    masks.append(m > 0)
    m = np.zeros((64, 64), np.uint8)
    cv2.circle(m, (32, 32), 40, 1, -1)  # a disc cut by all four borders
    masks.append(m > 0)
    return masks


# --------------------------------------------------------------------------- skeletonize


def test_table_is_the_library_table_on_every_4x4_image():
    """All 65536 4x4 images (and so every neighbourhood code in every position)."""
    tiles = _tile(_all_images(4, 4))
    assert np.array_equal(skeletonize(tiles), sk_morph.skeletonize(tiles))


def test_every_3x5_and_5x3_image():
    for h, w in ((3, 5), (5, 3)):
        tiles = _tile(_all_images(h, w))
        assert np.array_equal(skeletonize(tiles), sk_morph.skeletonize(tiles))


def test_table_has_256_entries_of_0_to_3():
    assert SKELETON_LUT.shape == (256,)
    assert set(np.unique(SKELETON_LUT).tolist()) <= {0, 1, 2, 3}
    assert not SKELETON_LUT.flags.writeable


@pytest.mark.parametrize("idx", range(len(_random_masks())))
def test_skeletonize_random_masks(idx):
    m = _random_masks()[idx]
    got = skeletonize(m)
    assert got.dtype == bool
    assert got.shape == m.shape
    assert np.array_equal(got, sk_morph.skeletonize(m))


@pytest.mark.parametrize("idx", range(len(_drawn_masks())))
def test_skeletonize_drawn_masks(idx):
    m = _drawn_masks()[idx]
    assert np.array_equal(skeletonize(m), sk_morph.skeletonize(m))


def test_skeletonize_accepts_uint8_and_does_not_modify_input():
    m = (np.random.default_rng(3).random((50, 60)) < 0.6).astype(np.uint8) * 255
    before = m.copy()
    assert np.array_equal(skeletonize(m), sk_morph.skeletonize(m))
    assert np.array_equal(m, before)


def test_skeletonize_rejects_3d():
    with pytest.raises(ValueError, match="2-D"):
        skeletonize(np.zeros((3, 3, 3), bool))


@pytest.fixture(scope="module")
def phantom_segmentations():
    pair = syn.make_pair(11, shape=(300, 400))
    return [
        segment(pair.baseline.rgb, px_per_mm=pair.baseline.px_per_mm),
        segment(pair.followup.rgb, px_per_mm=pair.followup.px_per_mm),
    ]


def test_skeletonize_real_vein_masks(phantom_segmentations):
    for seg in phantom_segmentations:
        assert seg.mask.any()
        assert np.array_equal(skeletonize(seg.mask), sk_morph.skeletonize(seg.mask))
        spider = seg.labels == 1
        assert np.array_equal(skeletonize(spider), sk_morph.skeletonize(spider))


# --------------------------------------------------------------------------- fill_holes


def test_fill_holes_every_3x3_and_4x4_image():
    for h, w in ((3, 3), (4, 4)):
        for m in _all_images(h, w):
            assert np.array_equal(fill_holes(m), ndi.binary_fill_holes(m)), m.astype(int)


@pytest.mark.parametrize("idx", range(len(_random_masks())))
def test_fill_holes_random_masks(idx):
    m = _random_masks()[idx]
    got = fill_holes(m)
    assert got.dtype == bool
    assert got.shape == m.shape
    assert np.array_equal(got, ndi.binary_fill_holes(m))


@pytest.mark.parametrize("idx", range(len(_drawn_masks())))
def test_fill_holes_drawn_masks(idx):
    m = _drawn_masks()[idx]
    assert np.array_equal(fill_holes(m), ndi.binary_fill_holes(m))


def test_fill_holes_fills_a_hole_but_not_a_diagonal_leak():
    ring = np.zeros((7, 7), bool)
    ring[1:6, 1:6] = True
    ring[3, 3] = False
    assert fill_holes(ring)[3, 3]
    # Background reaching the outside only diagonally is a hole (4-connectivity).
    m = np.ones((5, 5), bool)
    m[2, 2] = m[1, 1] = False
    m[0, 0] = False
    assert np.array_equal(fill_holes(m), ndi.binary_fill_holes(m))
    filled = fill_holes(m)
    assert filled[1, 1]
    assert filled[2, 2]
    assert not filled[0, 0]


def test_fill_holes_real_masks(phantom_segmentations):
    for seg in phantom_segmentations:
        for m in (seg.leg_mask & ~seg.mask, ~seg.mask, seg.mask):
            assert np.array_equal(fill_holes(m), ndi.binary_fill_holes(m))


def test_fill_holes_empty_shape():
    assert fill_holes(np.zeros((0, 4), bool)).shape == (0, 4)


# --------------------------------------------------------------------------- sample_linear


def _map_coordinates(img, r, c):
    out = ndi.map_coordinates(img, np.stack([r, c]), order=1, mode="nearest")
    return np.asarray(out, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5), (61, 83)])
def test_sample_linear_matches_map_coordinates(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    img = (rng.normal(size=shape) * 10).astype(dtype)
    n = 4000
    r = rng.uniform(-3, shape[0] + 2, n)
    c = rng.uniform(-3, shape[1] + 2, n)
    r[:40] = np.arange(40) % shape[0]  # on the grid, last column
    c[:40] = shape[1] - 1
    r[40:50] = -0.0
    c[50:60] = np.nextafter(shape[1] - 1, 0)
    r[60:70] = rng.integers(-5, shape[0] + 5, 10)
    assert np.array_equal(sample_linear(img, r, c), _map_coordinates(img, r, c))


def test_sample_linear_non_finite_and_huge_coordinates():
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    r = np.array([np.nan, 1, np.inf, -np.inf, 1, 1e300, -1e300, 2.0**62, 2.0**63, -(2.0**63)])
    c = np.array([1, np.nan, 1, 1, np.inf, 1, 2, 1, 1, 1.5])
    got = sample_linear(img, r, c)
    assert np.array_equal(got, _map_coordinates(img, r, c), equal_nan=True)
    assert np.isnan(got[:5]).all()


def test_sample_linear_on_a_registration_flow():
    rng = np.random.default_rng(5)
    flow = cv2.GaussianBlur(rng.normal(size=(150, 200)).astype(np.float32), (0, 0), 8) * 30
    pts = rng.uniform(-10, 210, (3000, 2))
    assert np.array_equal(
        sample_linear(flow, pts[:, 1], pts[:, 0]), _map_coordinates(flow, pts[:, 1], pts[:, 0])
    )


# --------------------------------------------------------------------------- colour


def _colour_pairs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(21)
    a = rng.integers(0, 256, (60000, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (60000, 3), dtype=np.uint8)
    near = slice(0, 20000)  # small differences, where the hue terms matter most
    b[near] = np.clip(a[near].astype(int) + rng.integers(-3, 4, (20000, 3)), 0, 255)
    grey = rng.integers(0, 256, (5000, 1), dtype=np.uint8)
    a[-5000:] = grey  # neutral colours: zero chroma
    b[-5000:-2500] = grey[:2500]  # identical colours: zero difference
    a[:8] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 10, 10]] + [
        [128, 128, 128]
    ] * 2
    return a, b


def test_lab_matches_rgb2lab():
    a, _ = _colour_pairs()
    ref = sk_color.rgb2lab(a[None].astype(np.float64) / 255.0)[0]
    np.testing.assert_allclose(srgb_u8_to_lab(a), ref, rtol=1e-6, atol=0)
    # Every sRGB code on each channel axis.
    ramp = np.zeros((256 * 3, 3), np.uint8)
    for k in range(3):
        ramp[256 * k : 256 * (k + 1), k] = np.arange(256)
    ref = sk_color.rgb2lab(ramp[None].astype(np.float64) / 255.0)[0]
    np.testing.assert_allclose(srgb_u8_to_lab(ramp), ref, rtol=1e-6, atol=0)


def test_ciede2000_matches_skimage():
    a, b = _colour_pairs()
    la = sk_color.rgb2lab(a[None].astype(np.float64) / 255.0)[0]
    lb = sk_color.rgb2lab(b[None].astype(np.float64) / 255.0)[0]
    ref = sk_color.deltaE_ciede2000(la, lb)
    got = ciede2000(srgb_u8_to_lab(a), srgb_u8_to_lab(b))
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=0)
    assert (got[-5000:-2500] == 0).all()
    # And on arbitrary Lab values (not only sRGB ones).
    rng = np.random.default_rng(4)
    p = rng.uniform([0, -120, -120], [100, 120, 120], (20000, 3))
    q = p + rng.normal(scale=5.0, size=p.shape)
    np.testing.assert_allclose(ciede2000(p, q), sk_color.deltaE_ciede2000(p, q), rtol=1e-6)


def test_delta_e2000_matches_skimage_formula():
    rng = np.random.default_rng(9)
    ref = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    img = np.clip(ref.astype(int) + rng.integers(-20, 21, ref.shape), 0, 255).astype(np.uint8)
    mask = rng.random(ref.shape[:2]) < 0.4
    for m in (None, mask):
        sel = np.ones(ref.shape[:2], bool) if m is None else m
        a = ref[sel].astype(np.float64)[None] / 255.0
        b = img[sel].astype(np.float64)[None] / 255.0
        want = float(np.mean(sk_color.deltaE_ciede2000(sk_color.rgb2lab(a), sk_color.rgb2lab(b))))
        assert delta_e2000(ref, img, mask=m) == pytest.approx(want, rel=1e-6, abs=0)


# --------------------------------------------------------------------------- imports


def test_compare_imports_neither_scipy_nor_skimage(tmp_path):
    pair = syn.make_pair(2, shape=(300, 400))
    paths = []
    for name, rendered in (("b.png", pair.baseline), ("f.png", pair.followup)):
        p = tmp_path / name
        cv2.imwrite(str(p), cv2.cvtColor(rendered.rgb, cv2.COLOR_RGB2BGR))
        paths.append(str(p))
    code = (
        "import json, sys\n"
        "from vein_tracker.measure import compare\n"
        f"c = compare({paths[0]!r}, {paths[1]!r}, px_per_mm={pair.baseline.px_per_mm!r})\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'skimage'})\n"
        "print(json.dumps({'loaded': loaded, 'pct': c.improvement_pct}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert np.isfinite(out["pct"])


@pytest.mark.parametrize("connectivity", [4, 8])
def test_components_are_opencvs_labels_areas_and_boxes(connectivity: int) -> None:
    """components() gives cv2.connectedComponentsWithStats' labels, areas and bounding
    boxes (without its statistics pass) on masks of every density and odd shapes."""
    rng = np.random.default_rng(11)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 70, size=2))
        mask = rng.random((h, w)) > rng.uniform(0.05, 0.98)
        n, lab, stats, _ = cv2.connectedComponentsWithStats(
            mask.astype(np.uint8), connectivity=connectivity
        )
        for given in (mask, mask.astype(np.uint8) * 7):
            cc = components(given, connectivity)
            assert cc.n == n
            assert np.array_equal(cc.labels, lab)
            assert np.array_equal(cc.areas, stats[:, cv2.CC_STAT_AREA])
            assert np.array_equal(cc.boxes()[1:], stats[1:, :4])
            assert np.array_equal(cc.idx, np.flatnonzero(mask))
            assert np.array_equal(cc.at, lab.reshape(-1)[cc.idx])
    empty = components(np.zeros((5, 6), bool))
    assert empty.n == 1
    assert empty.areas.tolist() == [30]
    assert empty.boxes().tolist() == [[0, 0, 6, 5]]


# --------------------------------------------------------------------------- dilations


def _disc(radius_px: float) -> np.ndarray:
    r = int(round(radius_px))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)).astype(bool)


def _masks_for_dilation() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    masks = [rng.random((97, 131)) < d for d in (0.0, 0.001, 0.02, 0.3)]
    edge = np.zeros((40, 50), bool)
    edge[0, :] = edge[:, -1] = True  # touching the border
    return [*masks, edge]


@pytest.mark.parametrize("radius", [0.2, 1.0, 3.4, 12.0])
def test_disc_dilation_and_erosion_are_scipys(radius: float) -> None:
    """dilate_disc/erode_disc are the binary dilation/erosion by OpenCV's elliptic kernel
    (outside the image is background), as SciPy computes them."""
    for m in _masks_for_dilation():
        before = m.copy()
        fp = _disc(radius)
        want_d = ndi.binary_dilation(m, structure=fp) if fp.size > 1 else m
        want_e = ndi.binary_erosion(m, structure=fp, border_value=0) if fp.size > 1 else m
        assert np.array_equal(dilate_disc(m, radius), want_d)
        assert np.array_equal(erode_disc(m, radius), want_e)
        assert np.array_equal(m, before)


@pytest.mark.parametrize("size", [3, 5, 11])
def test_square_dilation_and_erosion(size: int) -> None:
    """dilate_square/erode_square: a size x size square; the erosion treats outside the
    image as part of the mask (a mask touching the border is not eaten from there)."""
    fp = np.ones((size, size), bool)
    for m in _masks_for_dilation():
        assert np.array_equal(dilate_square(m, size), ndi.binary_dilation(m, structure=fp))
        assert np.array_equal(erode_square(m, size), ndi.binary_erosion(m, fp, border_value=1))


def test_distance_to_and_within_distance_are_euclidean() -> None:
    for m in _masks_for_dilation()[1:]:
        edt = ndi.distance_transform_edt(~m)
        np.testing.assert_allclose(distance_to(m), edt, atol=0.02)
        for r in (0.0, 1.5, 2.9, 4.0):
            assert np.array_equal(within_distance(m, r), edt <= r)
    assert np.isinf(distance_to(np.zeros((4, 5), bool))).all()


def test_dilate_disc_at_is_the_dilation_at_those_pixels() -> None:
    """On a grid and at scattered, unsorted, repeated points (the new spiders' centres):
    SciPy's dilation read there."""
    rng = np.random.default_rng(4)
    for m in _masks_for_dilation():
        for radius in (0.2, 3.4, 15.0):
            full = ndi.binary_dilation(m, structure=_disc(radius)) if radius >= 0.5 else m
            rows, cols = np.arange(0, m.shape[0], 5), np.arange(0, m.shape[1], 3)
            assert np.array_equal(dilate_disc_at(m, radius, rows, cols), full[np.ix_(rows, cols)])
            ys = rng.integers(0, m.shape[0], 9)
            xs = rng.integers(0, m.shape[1], 9)
            ys[3], xs[3] = ys[2], xs[2]
            got = np.diagonal(dilate_disc_at(m, radius, ys, xs))
            assert np.array_equal(got, full[ys, xs])


def test_near_on_grid_is_within_the_radius_to_half_a_step() -> None:
    """near_on_grid (the look-alike warnings' "near a treated vein") against the Euclidean
    distance read on the grid: everything well inside the radius is near, nothing well
    outside is."""
    rng = np.random.default_rng(3)
    for shape in ((150, 200), (151, 203)):
        m = np.zeros(shape, bool)
        for y, x in rng.integers(0, min(shape), size=(6, 2)):
            m[y, x : x + 15] = True
        step, radius = 5, 30.0
        got = near_on_grid(m, radius, step)
        grid = (slice(None, None, step), slice(None, None, step))
        assert got.shape == m[grid].shape
        edt = ndi.distance_transform_edt(~m)[grid]
        assert got[edt <= radius - step - 1].all()
        assert not got[edt > radius + step + 1].any()
    assert np.array_equal(near_on_grid(m, 4.0, 1), dilate_disc(m, 4.0))
