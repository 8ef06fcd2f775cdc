"""The outlines of a surface in front that run on, hidden, across the skin behind it
(``segmentation.occlusion._hidden_outlines``), on drawn silhouettes whose truth is exact."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from vein_tracker.segmentation import occlusion, segment
from vein_tracker.segmentation.occlusion import _hidden_outlines
from vein_tracker.segmentation.signals import _compute_maps
from vein_tracker.synthetic.photo import make_photo_pair

P = 2.5  # px per mm, the coarse level's
H, W = 260, 320


def _band(y0: float, slope: float, width: float) -> np.ndarray:
    """A straight band across the frame: rows within ``width`` px below ``y0 + slope * x``."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    top = y0 + slope * xx
    return np.asarray((yy >= top) & (yy < top + width))


def _crossing() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A leg crossing another: the skin, the front leg and the back leg."""
    front = _band(70.0, 0.25, 100.0)
    back = np.zeros((H, W), bool)
    back[:, 110:200] = True
    return front | back, front, back


def _edge_line(front: np.ndarray, back: np.ndarray, depth: float) -> np.ndarray:
    """The mean OD of both legs lit alike (no step between them), with the thin dark line
    that the front leg's rounded edge and its shadow draw where it lies over the back leg:
    ``depth`` OD at the edge, over mottled skin."""
    rng = np.random.default_rng(1)
    skin = 1.0 + cv2.GaussianBlur(rng.standard_normal((H, W)).astype(np.float32), (0, 0), 2.0)
    skin = 1.0 + (skin - 1.0) / skin.std() * 0.02
    edge = front & ~cv2.erode(front.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    dist = cv2.distanceTransform((~(edge & back)).astype(np.uint8), cv2.DIST_L2, 5)
    return np.asarray(skin + depth * np.exp(-((dist / (0.6 * P)) ** 2)), np.float32)


def _true_hidden(front: np.ndarray, back: np.ndarray) -> np.ndarray:
    """The front leg's outline where it lies over the back leg."""
    edge = front & ~cv2.erode(front.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return np.asarray(edge & back)


def test_a_crossing_leg_outline_runs_on_across_the_leg_behind() -> None:
    """Both hidden stretches of the front leg's outline are found, from the silhouette's
    notches, and lie on the edge (within 1.5 mm all along)."""
    skin, front, back = _crossing()
    courses = _hidden_outlines(skin, _edge_line(front, back, 0.3), P)
    assert len(courses) == 2
    _courses_cover(courses, _true_hidden(front, back))


def _courses_cover(courses: list[np.ndarray], truth: np.ndarray) -> None:
    """Each course lies on the ``truth`` outline (within 1.5 mm all along), and together
    they cover it (90 % of it within 1 mm of a course)."""
    to_truth = cv2.distanceTransform((~truth).astype(np.uint8), cv2.DIST_L2, 5)
    drawn = np.zeros((H, W), np.uint8)
    for course in courses:
        rows = np.clip(np.round(course[:, 1]).astype(int), 0, H - 1)
        cols = np.clip(np.round(course[:, 0]).astype(int), 0, W - 1)
        assert to_truth[rows, cols].max() <= 1.5 * P
        cv2.polylines(drawn, [np.round(course).astype(np.int32).reshape(-1, 1, 2)], False, 1)
    near = cv2.distanceTransform((drawn == 0).astype(np.uint8), cv2.DIST_L2, 5) <= P
    assert (near & truth).sum() >= 0.9 * truth.sum()


def test_a_bent_outline_is_followed_to_the_frame() -> None:
    """A front leg whose outline bends (by 23 degrees) as it runs across the leg behind and
    out of the frame: the course is traced along the edge the photo shows, where a straight
    line along the notch's arm would end 80 px (32 mm) off it. The notch's other
    arm, the outline of the leg behind running on hidden under the front leg to the frame,
    shows no edge and gives no course."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    u = xx - 20.0
    front = np.asarray(yy >= 200.0 - 0.5 * u - 0.004 * u**2)
    back = np.zeros((H, W), bool)
    back[:, 60:260] = True
    courses = _hidden_outlines(front | back, _edge_line(front, back, 0.3), P)
    assert len(courses) == 1
    _courses_cover(courses, _true_hidden(front, back))


def test_no_edge_in_the_photo_no_hidden_outline() -> None:
    """The same silhouette over skin with no edge where the cubic would run (two legs
    touching, say, seen as one): the silhouette alone is not enough."""
    skin, front, back = _crossing()
    assert _hidden_outlines(skin, _edge_line(front, back, 0.0), P) == []


@pytest.mark.parametrize("shape", ["straight", "tapered"])
def test_a_single_leg_has_no_notch(shape: str) -> None:
    """A leg alone (straight, or tapering to the ankle) has no notch, whatever its skin."""
    skin = np.zeros((H, W), bool)
    if shape == "straight":
        skin[:, 100:220] = True
    else:
        yy, xx = np.mgrid[0:H, 0:W]
        half = 70 - 0.15 * yy
        skin = np.abs(xx - 160) <= half
    s = np.ones((H, W), np.float32) + np.float32(0.3) * skin
    assert _hidden_outlines(skin, s, P) == []


PHOTO_PPM = 6.0  # px per mm of the photo-like crossings below


def _crossed_baseline(seed: int) -> Any:
    """The baseline photo of an untreated photo-like pair of crossed legs (fair skin)."""
    return make_photo_pair(
        seed,
        shape=(1200, 1600),
        px_per_mm=PHOTO_PPM,
        layout="crossed",
        tone="fair",
        identity=True,
        treatment=None,
    ).baseline


def _occluding(photo: Any) -> np.ndarray:
    """The segmentation's occluding edges of ``photo``, at the photo's size."""
    occ = _compute_maps(photo.rgb, PHOTO_PPM, None).occluding.astype(np.uint8)
    h, w = photo.labels.shape
    return np.asarray(cv2.resize(occ, (w, h), interpolation=cv2.INTER_NEAREST) > 0)


def test_a_crossing_with_no_step_is_found_from_the_silhouette(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two crossed legs lit alike: the edge between them shows no step, so the step test
    finds nothing, but the silhouette's notches give the front leg's outline across the
    leg behind (measured: 97 % of it in the true outline band), and no vein is sought on
    it."""
    photo = _crossed_baseline(10011)
    found = _occluding(photo)
    assert found.sum() >= 5000
    assert (found & photo.outline_band).sum() >= 0.9 * found.sum()
    assert not (segment(photo.rgb, px_per_mm=PHOTO_PPM).mask & found).any()
    monkeypatch.setattr(occlusion, "_hidden_outlines", lambda *args, **kwargs: [])
    assert not _occluding(photo).any()


def test_a_crossing_that_leaves_the_frame_is_found_along_its_whole_length() -> None:
    """Crossed legs whose front outline runs across the leg behind and out of the frame:
    the course is traced from the notch along the edge the photo shows, so the edge is
    found along its whole length (measured: 21 533 px, 96 % of them in the true outline
    band; a straight line along the notch's arm found only the 7 669 px of the step test).
    """
    photo = _crossed_baseline(26)
    found = _occluding(photo)
    assert found.sum() >= 18_000
    assert (found & photo.outline_band).sum() >= 0.9 * found.sum()
