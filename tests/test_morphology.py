"""vein_tracker.morphology: connected components and the dilations and erosions, against
OpenCV's statistics pass and SciPy's morphology and exact distance transform on random
masks, sparse masks and masks touching the border; the skeleton against scikit-image's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vein_tracker.morphology import (
    components,
    dilate_disc,
    dilate_disc_at,
    dilate_square,
    distance_to,
    erode_disc,
    erode_square,
    near_on_grid,
    skeleton_of,
    within_distance,
)

ndi = pytest.importorskip("scipy.ndimage")


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


def test_component_sums_are_scipys_label_sums() -> None:
    """Components.sums() adds an image over each label's pixels, as
    scipy.ndimage.sum_labels does; the background's sum is 0, a bool image counts."""
    rng = np.random.default_rng(12)
    mask = rng.random((53, 61)) > 0.55
    cc = components(mask)
    values = rng.normal(size=mask.shape)
    want = ndi.sum_labels(values, cc.labels, index=np.arange(1, cc.n))
    got = cc.sums(values)
    assert got.shape == (cc.n,)
    assert got[0] == 0.0
    assert np.allclose(got[1:], want)
    assert np.array_equal(cc.sums(mask), cc.areas * (np.arange(cc.n) > 0))


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


@pytest.mark.parametrize("layout", ["sparse", "dense", "border", "empty", "full"])
def test_skeleton_of_is_scikit_images_skeletonize(layout: str) -> None:
    """skeleton_of() thins only the mask's bounding box: the same skeleton as
    skimage.morphology.skeletonize on the whole frame, whether the mask is a few lines in
    a large frame, blobs everywhere, touching the frame's edge, empty or full."""
    from skimage.morphology import skeletonize

    rng = np.random.default_rng(5)
    mask = np.zeros((240, 320), bool)
    if layout == "sparse":
        for _ in range(6):
            y, x = rng.integers(40, 200), rng.integers(40, 280)
            cv2.line(mask.view(np.uint8), (int(x), int(y)), (int(x) + 30, int(y) + 12), 1, 3)
    elif layout == "dense":
        mask = cv2.GaussianBlur(rng.random((240, 320)).astype(np.float32), (0, 0), 3) > 0.5
    elif layout == "border":
        mask[:, :9] = True
        mask[100:130, 250:] = True
        mask[-5:, 40:200] = True
    elif layout == "full":
        mask[:] = True
    out = skeleton_of(mask)
    assert out.dtype == bool
    assert out.shape == mask.shape
    np.testing.assert_array_equal(out, skeletonize(mask))
    assert out.any() == mask.any()
