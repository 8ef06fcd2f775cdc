"""The calibration card: its layout, PDF, and reading it in synthetic photos of known truth.

Every photo here is made by placing :func:`card_image` into a scene (a leg phantom or
plain skin) with a known card-to-photo homography, then photographing it: a colour cast
and exposure applied in linear light, a phone's S-shaped tone curve, blur, noise and
JPEG. The true scale is the homography's local scale at the card's centre, measured here
by finite differences (not with the module's own Jacobian).
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

from vein_tracker import synthetic
from vein_tracker.card import (
    CARD_SIZE_MM,
    MARKER_IDS,
    MARKER_ORIGINS_MM,
    MARKER_SIZE_MM,
    PATCHES,
    CardReading,
    apply_correction,
    card_image,
    card_pdf,
    read_card,
)
from vein_tracker.errors import PhotoError
from vein_tracker.io import photo_from_array
from vein_tracker.optics import linear_to_srgb_u8, srgb_to_linear
from vein_tracker.synthetic.photo_camera import CAST_GAINS

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SCENE_SHAPE = (900, 1200)
SCALE_TOL = 0.02  # px/mm, relative (issue 21)
DE_TOL = 3.0  # CIEDE2000 on the card's patches after correction (issue 21)
CARD_W, CARD_H = CARD_SIZE_MM


# --------------------------------------------------------------------------- photo maker


def card_to_photo(
    px_per_mm: float,
    angle_deg: float,
    centre: tuple[float, float],
    perspective: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Homography card mm -> photo px: perspective about the card's centre, then a similarity."""
    to_centre = np.array([[1, 0, -CARD_W / 2], [0, 1, -CARD_H / 2], [0, 0, 1.0]])
    persp = np.array([[1, 0, 0], [0, 1, 0], [perspective[0], perspective[1], 1.0]])
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])
    scale = np.diag([px_per_mm, px_per_mm, 1.0])
    move = np.array([[1, 0, centre[0]], [0, 1, centre[1]], [0, 0, 1.0]])
    h: np.ndarray = move @ rot @ scale @ persp @ to_centre
    return h


def true_px_per_mm(h: np.ndarray) -> float:
    """sqrt(|det J|) at the card's centre, J by central differences."""

    def f(x: float, y: float) -> np.ndarray:
        q = h @ np.array([x, y, 1.0])
        out: np.ndarray = q[:2] / q[2]
        return out

    e, x, y = 1e-3, CARD_W / 2, CARD_H / 2
    jac = np.c_[(f(x + e, y) - f(x - e, y)) / (2 * e), (f(x, y + e) - f(x, y - e)) / (2 * e)]
    return math.sqrt(abs(float(np.linalg.det(jac))))


def place_card(scene: np.ndarray, h: np.ndarray, *, mirror: bool = False) -> np.ndarray:
    """The card drawn into ``scene`` (sRGB) through ``h``, edges blended by coverage."""
    r = float(np.clip(true_px_per_mm(h) * 1.25, 4.0, 40.0))
    img = card_image(px_per_mm=r)
    if mirror:
        img = np.ascontiguousarray(img[:, ::-1])
    # card_image's pixel (i, j) is centred on card mm ((i + 0.5) / r, (j + 0.5) / r).
    from_img = np.array([[1 / r, 0, 0.5 / r], [0, 1 / r, 0.5 / r], [0, 0, 1.0]])
    hh, ww = scene.shape[:2]
    warped = cv2.warpPerspective(img, h @ from_img, (ww, hh), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpPerspective(
        np.ones(img.shape[:2], np.float32), h @ from_img, (ww, hh), flags=cv2.INTER_LINEAR
    )[..., None]
    out = scene.astype(np.float32) * (1 - alpha) + warped.astype(np.float32) * alpha
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Camera:
    """How the photo is taken: cast and exposure in linear light, then the phone's pipeline."""

    cast: str = "none"
    exposure: float = 1.0
    tone: float = 0.0  # strength of the S-curve on the sRGB signal (0.1-0.45 in phones)
    blur_px: float = 0.0
    noise: float = 0.0  # sRGB levels
    jpeg: int | None = None
    seed: int = 0

    def gains(self) -> np.ndarray:
        return np.asarray(CAST_GAINS[self.cast], np.float32) * np.float32(self.exposure)


def photograph(rgb: np.ndarray, cam: Camera) -> np.ndarray:
    lin = srgb_to_linear(rgb) * cam.gains()
    if cam.blur_px > 0:
        lin = cv2.GaussianBlur(lin, (0, 0), cam.blur_px)
    y = linear_to_srgb_u8(lin).astype(np.float32) / 255.0
    if cam.tone > 0:
        y = np.clip(y + cam.tone * y * (1 - y) * (2 * y - 1), 0, 1)
    out = y * 255.0
    if cam.noise > 0:
        out += np.random.default_rng(cam.seed).normal(0, cam.noise, out.shape).astype(np.float32)
    u8 = np.clip(np.round(out), 0, 255).astype(np.uint8)
    if cam.jpeg is not None:
        buf = io.BytesIO()
        Image.fromarray(u8).save(buf, format="JPEG", quality=cam.jpeg)
        u8 = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return u8


def plain_skin(shape: tuple[int, int] = SCENE_SHAPE) -> np.ndarray:
    """Skin colour with the smooth shading of a limb (no texture)."""
    h, w = shape
    x = np.arange(w, dtype=np.float32)
    shade = 0.8 + 0.2 * np.cos((x - w / 2) / w * math.pi)
    rgb = np.array([205, 152, 128], np.float32)[None, None, :] * shade[None, :, None]
    return np.repeat(np.clip(rgb, 0, 255), h, axis=0).astype(np.uint8)


@pytest.fixture(scope="module")
def leg() -> np.ndarray:
    """A leg phantom photo (baseline of a phantom pair): real-looking skin, veins, backdrop."""
    pair = synthetic.make_pair(5, shape=SCENE_SHAPE, tone="medium")
    return pair.baseline.rgb


def scene_for(kind: str, leg: np.ndarray) -> np.ndarray:
    return leg if kind == "leg" else plain_skin()


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    name: str
    scene: str
    px_per_mm: float
    angle_deg: float
    perspective: tuple[float, float]
    camera: Camera
    centre: tuple[float, float] = (600.0, 450.0)


#: The measured table in the closing note comes from these cases.
CASES = (
    Case("daylight", "plain", 5.0, 0.0, (0.0, 0.0), Camera(noise=2.0, jpeg=92)),
    Case(
        "tungsten",
        "leg",
        4.0,
        25.0,
        (0.002, 0.001),
        Camera("tungsten", 0.8, tone=0.3, blur_px=0.5, noise=3.0, jpeg=85, seed=1),
    ),
    Case(
        "fluorescent green",
        "leg",
        3.0,
        160.0,
        (-0.001, 0.003),
        Camera("fluorescent", 0.7, tone=0.2, blur_px=0.5, noise=4.0, jpeg=80, seed=2),
    ),
    Case(
        "LED blue",
        "plain",
        6.5,
        -70.0,
        (0.002, -0.0015),
        Camera("led-blue", 0.9, tone=0.45, blur_px=1.5, noise=2.0, jpeg=90, seed=3),
    ),
    Case(
        "tungsten, overexposed",
        "leg",
        5.0,
        -15.0,
        (0.0, 0.001),
        Camera("tungsten", 1.3, tone=0.3, blur_px=0.8, noise=3.0, jpeg=85, seed=4),
    ),
    Case(
        "LED blue, dark",
        "leg",
        6.0,
        95.0,
        (0.001, 0.001),
        Camera("led-blue", 0.35, tone=0.3, blur_px=1.0, noise=3.0, jpeg=85, seed=5),
    ),
    Case(
        "fluorescent, 2 px/mm",
        "leg",
        2.0,
        45.0,
        (0.0, 0.0),
        Camera("fluorescent", 1.0, tone=0.3, blur_px=0.4, noise=3.0, jpeg=85, seed=6),
    ),
)
CAST_CASES = [c for c in CASES if c.camera.cast != "none"]


@dataclass(frozen=True)
class Shot:
    case: Case
    truth_h: np.ndarray
    scene: np.ndarray  # with the card, before the camera (the colours to recover)
    photo: np.ndarray
    reading: CardReading | None


def shoot(case: Case, leg: np.ndarray) -> Shot:
    h = card_to_photo(case.px_per_mm, case.angle_deg, case.centre, case.perspective)
    scene = place_card(scene_for(case.scene, leg), h)
    photo = photograph(scene, case.camera)
    return Shot(case, h, scene, photo, read_card(photo))


@pytest.fixture(scope="module")
def shots(leg: np.ndarray) -> dict[str, Shot]:
    return {c.name: shoot(c, leg) for c in CASES}


def _used(values: Sequence[float], reading: CardReading) -> np.ndarray:
    return np.array([v for v, u in zip(values, reading.patch_used, strict=True) if u])


# --------------------------------------------------------------------------- scale


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_scale_is_within_two_percent(shots: dict[str, Shot], name: str) -> None:
    shot = shots[name]
    assert shot.reading is not None, name
    truth = true_px_per_mm(shot.truth_h)
    assert shot.reading.px_per_mm == pytest.approx(truth, rel=SCALE_TOL)
    assert set(shot.reading.marker_ids) == set(MARKER_IDS)


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_card_outline_matches_the_placed_card(shots: dict[str, Shot], name: str) -> None:
    shot = shots[name]
    assert shot.reading is not None
    corners_mm = np.array([[0, 0], [CARD_W, 0], [CARD_W, CARD_H], [0, CARD_H]], np.float64)
    q = np.c_[corners_mm, np.ones(4)] @ shot.truth_h.T
    truth = q[:, :2] / q[:, 2:]
    # Within a millimetre at the card's scale, corner by corner, in order TL, TR, BR, BL.
    err = np.linalg.norm(shot.reading.corners_px - truth, axis=1)
    assert err.max() < true_px_per_mm(shot.truth_h)
    mask = shot.reading.mask(shot.photo.shape[:2], margin_mm=0.0)
    placed = np.zeros(shot.photo.shape[:2], np.uint8)
    cv2.fillConvexPoly(placed, np.round(truth).astype(np.int32), 1)
    inter = np.logical_and(mask, placed).sum()
    union = np.logical_or(mask, placed).sum()
    assert inter / union > 0.97
    grown = shot.reading.mask(shot.photo.shape[:2], margin_mm=3.0)
    assert grown[placed.astype(bool)].all()  # the margin covers the whole card
    assert grown.sum() > mask.sum()


# --------------------------------------------------------------------------- colour


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_patches_are_within_delta_e_3_after_correction(shots: dict[str, Shot], name: str) -> None:
    reading = shots[name].reading
    assert reading is not None
    assert reading.correction is not None, reading.colour_note
    after = _used(reading.delta_e_after, reading)
    assert len(after) >= 8
    assert after.max() <= DE_TOL, dict(zip(reading.patch_names, reading.delta_e_after, strict=True))


@pytest.mark.parametrize("name", [c.name for c in CAST_CASES])
def test_a_cast_is_a_large_error_before_correction(shots: dict[str, Shot], name: str) -> None:
    reading = shots[name].reading
    assert reading is not None
    before = _used(reading.delta_e_before, reading)
    # So the check above can fail: uncorrected, the cast is far beyond its tolerance.
    assert np.mean(before) > 2 * DE_TOL
    assert reading.delta_e_after_mean is not None
    assert reading.delta_e_after_mean < np.mean(before) / 4


def test_daylight_needs_little_correction(shots: dict[str, Shot]) -> None:
    reading = shots["daylight"].reading
    assert reading is not None
    assert reading.delta_e_before_mean is not None
    assert reading.delta_e_before_mean < 1.5
    assert reading.correction is not None
    # Close to "no change": the tone curves are near the identity and the matrix too.
    codes = srgb_to_linear(np.arange(256, dtype=np.uint8)).astype(np.float64)
    assert reading.tone_curves is not None
    assert np.abs(reading.tone_curves[:, 40:250] - codes[40:250]).max() < 0.02
    np.testing.assert_allclose(reading.correction, np.eye(3), atol=0.05)


def test_clipped_patches_are_left_out(shots: dict[str, Shot]) -> None:
    reading = shots["tungsten, overexposed"].reading
    assert reading is not None
    used = dict(zip(reading.patch_names, reading.patch_used, strict=True))
    # Red gain 1.3 x 1.3 saturates the white patch's red channel.
    assert not used["white"]
    assert reading.colour_note is not None
    assert "white" in reading.colour_note


def _block_lab(rgb: np.ndarray, mask: np.ndarray, block: int = 8) -> np.ndarray:
    """Lab of 8 x 8 block means (in linear light) of the blocks wholly inside ``mask``."""
    h, w = mask.shape
    hb, wb = h // block, w // block
    lin = srgb_to_linear(rgb[: hb * block, : wb * block]).reshape(hb, block, wb, block, 3)
    inside = mask[: hb * block, : wb * block].reshape(hb, block, wb, block).all(axis=(1, 3))
    means = lin.mean(axis=(1, 3))[inside]
    enc = linear_to_srgb_u8(means).astype(np.float64) / 255.0
    lab: np.ndarray = rgb2lab(enc.reshape(-1, 1, 3)).reshape(-1, 3)
    return lab


@pytest.mark.parametrize("name", [c.name for c in CAST_CASES])
def test_correction_brings_the_skin_back_too(shots: dict[str, Shot], name: str) -> None:
    """Out of sample: the scene around the card (skin) regains its colour."""
    shot = shots[name]
    reading = shot.reading
    assert reading is not None
    corrected = apply_correction(shot.photo, reading)
    away = ~reading.mask(shot.photo.shape[:2], margin_mm=5.0)
    # Skin-coloured, unclipped areas of the scene (no backdrop, no saturated highlights).
    lab_truth = rgb2lab(shot.scene)
    skin = away & (lab_truth[..., 1] > 8) & (lab_truth[..., 0] > 25) & (lab_truth[..., 0] < 85)
    skin &= (photograph(shot.scene, shot.case.camera) < 250).all(axis=2)
    truth = _block_lab(shot.scene, skin)
    before = deltaE_ciede2000(truth, _block_lab(shot.photo, skin))
    after = deltaE_ciede2000(truth, _block_lab(corrected, skin))
    assert len(truth) > 500
    assert np.median(before) > 2 * DE_TOL
    assert np.median(after) <= DE_TOL
    assert np.percentile(after, 90) <= 2 * DE_TOL


def test_apply_correction_reproduces_the_reading_and_keeps_the_input(
    shots: dict[str, Shot],
) -> None:
    shot = shots["tungsten"]
    reading = shot.reading
    assert reading is not None
    before = shot.photo.copy()
    out = apply_correction(photo_from_array(shot.photo), reading)
    assert np.array_equal(shot.photo, before)
    assert out.shape == shot.photo.shape
    assert out.dtype == np.uint8
    # The corrected photo, read again, has patches near their nominal colours.
    again = read_card(out)
    assert again is not None
    assert again.delta_e_before_mean is not None
    assert again.delta_e_before_mean < 1.5


def test_reading_is_deterministic(shots: dict[str, Shot]) -> None:
    shot = shots["fluorescent green"]
    assert shot.reading is not None
    again = read_card(shot.photo.copy())
    assert again is not None
    assert again.to_dict() == shot.reading.to_dict()


# --------------------------------------------------------------------------- hidden parts


def _cover(
    photo: np.ndarray, h: np.ndarray, box_mm: tuple[float, float, float, float]
) -> np.ndarray:
    """Paint a skin-coloured quadrilateral over a card region (x, y, w, h in card mm)."""
    x, y, w, hh = box_mm
    pts = np.array([[x, y], [x + w, y], [x + w, y + hh], [x, y + hh]], np.float64)
    q = np.c_[pts, np.ones(4)] @ h.T
    out = photo.copy()
    cv2.fillConvexPoly(out, np.round(q[:, :2] / q[:, 2:]).astype(np.int32), (196, 140, 118))
    return out


def _marker_box(index: int, pad: float = 1.0) -> tuple[float, float, float, float]:
    x0, y0 = MARKER_ORIGINS_MM[index]
    return (x0 - pad, y0 - pad, MARKER_SIZE_MM + 2 * pad, MARKER_SIZE_MM + 2 * pad)


@pytest.mark.parametrize("hidden", range(4))
def test_one_hidden_marker_still_reads_the_true_scale(leg: np.ndarray, hidden: int) -> None:
    case = CASES[1]
    h = card_to_photo(case.px_per_mm, case.angle_deg, case.centre, case.perspective)
    scene = _cover(place_card(leg, h), h, _marker_box(hidden))
    reading = read_card(photograph(scene, case.camera))
    assert reading is not None
    assert MARKER_IDS[hidden] not in reading.marker_ids
    assert len(reading.marker_ids) == 3
    assert reading.px_per_mm == pytest.approx(true_px_per_mm(h), rel=SCALE_TOL)


@pytest.mark.parametrize("hidden", [(0, 1), (0, 2), (1, 3), (2, 3)])
def test_two_hidden_markers_give_no_reading(leg: np.ndarray, hidden: tuple[int, int]) -> None:
    case = CASES[1]
    h = card_to_photo(case.px_per_mm, case.angle_deg, case.centre, case.perspective)
    scene = place_card(leg, h)
    for i in hidden:
        scene = _cover(scene, h, _marker_box(i))
    assert read_card(photograph(scene, case.camera)) is None


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
)
@given(
    boxes=st.lists(
        st.tuples(
            st.floats(-5, CARD_W - 2),
            st.floats(-5, CARD_H - 2),
            st.floats(2, 30),
            st.floats(2, 30),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_a_partly_hidden_card_never_reads_a_wrong_scale(
    leg: np.ndarray, boxes: list[tuple[float, float, float, float]]
) -> None:
    case = CASES[1]
    h = card_to_photo(case.px_per_mm, case.angle_deg, case.centre, case.perspective)
    scene = place_card(leg, h)
    for box in boxes:
        scene = _cover(scene, h, box)
    reading = read_card(photograph(scene, case.camera))
    if reading is not None:
        assert reading.px_per_mm == pytest.approx(true_px_per_mm(h), rel=SCALE_TOL)
        if reading.correction is not None:
            assert _used(reading.delta_e_after, reading).max() <= DE_TOL


def test_a_covered_patch_is_left_out_of_the_fit(leg: np.ndarray) -> None:
    case = CASES[2]
    h = card_to_photo(case.px_per_mm, case.angle_deg, case.centre, case.perspective)
    scene = place_card(leg, h)
    by_name = {p.name: p for p in PATCHES}
    scene = _cover(scene, h, by_name["neutral 6.5"].box_mm)  # wholly: uniform but wrong
    x, y, w, hh = by_name["green"].box_mm
    scene = _cover(scene, h, (x, y, w / 2, hh))  # half: not uniform
    reading = read_card(photograph(scene, case.camera))
    assert reading is not None
    used = dict(zip(reading.patch_names, reading.patch_used, strict=True))
    assert not used["neutral 6.5"]
    assert not used["green"]
    assert sum(reading.patch_used) == len(PATCHES) - 2
    assert _used(reading.delta_e_after, reading).max() <= DE_TOL
    assert reading.colour_note is not None
    assert "neutral 6.5" in reading.colour_note
    assert "green" in reading.colour_note


def test_a_card_partly_out_of_the_frame(leg: np.ndarray) -> None:
    # Turned and near the top edge: marker 11 and the inner parts of the black and blue
    # patches lie beyond the photo, the other three markers within it.
    h = card_to_photo(5.0, -60.0, (850.0, 175.0))
    photo = photograph(place_card(leg, h), Camera("tungsten", 0.8, noise=2.0, jpeg=90))
    reading = read_card(photo)
    assert reading is not None
    assert reading.px_per_mm == pytest.approx(5.0, rel=SCALE_TOL)
    assert 11 not in reading.marker_ids
    used = dict(zip(reading.patch_names, reading.patch_used, strict=True))
    assert not used["black"]
    assert not used["blue"]
    assert np.isnan(
        reading.delta_e_before[PATCHES.index(next(p for p in PATCHES if p.name == "blue"))]
    )
    assert reading.colour_note is not None
    assert "outside the photo: black, blue" in reading.colour_note
    assert reading.correction is not None
    assert _used(reading.delta_e_after, reading).max() <= DE_TOL
    assert reading.to_dict()["patches"][-1]["measured_srgb"] is None


# --------------------------------------------------------------------------- no card


def test_no_card_gives_none(leg: np.ndarray) -> None:
    assert read_card(leg) is None
    assert read_card(plain_skin()) is None
    rng = np.random.default_rng(0)
    assert read_card(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8)) is None
    assert read_card(np.zeros((64, 64, 3), np.uint8)) is None


def test_a_mirrored_card_gives_none(leg: np.ndarray) -> None:
    h = card_to_photo(5.0, 10.0, (600.0, 450.0))
    assert read_card(place_card(leg, h, mirror=True)) is None


def test_two_cards_give_none_rather_than_a_mix(leg: np.ndarray) -> None:
    photo = place_card(leg, card_to_photo(3.0, 0.0, (300.0, 250.0)))
    photo = place_card(photo, card_to_photo(4.0, 30.0, (850.0, 600.0)))
    assert read_card(photo) is None


def test_a_card_seen_too_obliquely_gives_none(leg: np.ndarray) -> None:
    # Squashed to a third across: seen at about 70 degrees.
    h = np.diag([1.0, 1 / 3, 1.0]) @ card_to_photo(6.0, 0.0, (600.0, 1350.0))
    photo = place_card(leg, h)
    assert read_card(photo) is None


# --------------------------------------------------------------------------- the card itself


def test_card_image_layout() -> None:
    img = card_image(px_per_mm=10.0)
    assert img.shape == (640, 1000, 3)
    assert img.dtype == np.uint8
    for p in PATCHES:
        x, y, w, hh = p.box_mm
        cx, cy = round((x + w / 2) * 10), round((y + hh / 2) * 10)
        assert tuple(img[cy, cx]) == p.srgb, p.name
    # Markers decode where the layout puts them (OpenCV's own detector, no module code).
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    corners, ids, _ = cv2.aruco.ArucoDetector(dictionary).detectMarkers(
        cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    )
    assert ids is not None
    found = {int(i): c.reshape(4, 2) for c, i in zip(corners, ids.ravel(), strict=True)}
    assert sorted(found) == sorted(MARKER_IDS)
    for marker_id, (x0, y0) in zip(MARKER_IDS, MARKER_ORIGINS_MM, strict=True):
        expected = np.array([x0, y0]) * 10 - 0.5
        np.testing.assert_allclose(found[marker_id][0], expected, atol=1.0)


def test_card_image_is_deterministic_and_names_change_only_text() -> None:
    a = card_image(px_per_mm=6.0, clinic_name="A")
    assert np.array_equal(a, card_image(px_per_mm=6.0, clinic_name="A"))
    b = card_image(
        px_per_mm=6.0, clinic_name="Bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
    )
    differs = np.any(a != b, axis=2)
    ys, xs = np.nonzero(differs)
    # Only the title line, between the top markers, changes.
    assert xs.min() >= 20 * 6 - 1
    assert xs.max() <= 80 * 6 + 1
    assert ys.max() <= 9 * 6


@settings(max_examples=20, deadline=None, derandomize=True)
@given(
    ppm=st.floats(2.0, 20.0),
    angle=st.floats(-180.0, 180.0),
)
def test_scale_property_over_resolution_and_rotation(ppm: float, angle: float) -> None:
    size = max(CARD_W, CARD_H) * ppm * 1.3
    scene = plain_skin((int(size), int(size)))
    h = card_to_photo(ppm, angle, (size / 2, size / 2))
    reading = read_card(place_card(scene, h))
    assert reading is not None
    assert reading.px_per_mm == pytest.approx(true_px_per_mm(h), rel=0.005)
    assert reading.scale_anisotropy < 1.02


@settings(max_examples=20, deadline=None, derandomize=True)
@given(
    gains=st.tuples(st.floats(0.45, 1.35), st.floats(0.45, 1.35), st.floats(0.45, 1.35)),
)
def test_colour_property_over_casts(gains: tuple[float, float, float]) -> None:
    h = card_to_photo(4.0, 12.0, (300.0, 200.0))
    scene = place_card(plain_skin((400, 600)), h)
    photo = linear_to_srgb_u8(srgb_to_linear(scene) * np.asarray(gains, np.float32))
    reading = read_card(photo)
    assert reading is not None
    assert reading.correction is not None
    after = _used(reading.delta_e_after, reading)
    assert len(after) >= 8
    assert after.max() <= DE_TOL


# --------------------------------------------------------------------------- bad input


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="uint8"):
        read_card(np.zeros((50, 50, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        read_card(np.zeros((50, 50), np.uint8))
    with pytest.raises(TypeError):
        read_card("photo.jpg")  # type: ignore[arg-type]
    for bad in (0.0, 0.5, 100.0, float("nan")):
        with pytest.raises(ValueError, match="px_per_mm"):
            card_image(px_per_mm=bad)
    with pytest.raises(ValueError, match="paper"):
        card_pdf(paper="A3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="clinic_name"):
        card_pdf(clinic_name="two\nlines")
    with pytest.raises(ValueError, match="clinic_name"):
        card_image(clinic_name=3)  # type: ignore[arg-type]


def test_apply_correction_bad_input(shots: dict[str, Shot]) -> None:
    reading = shots["daylight"].reading
    assert reading is not None
    with pytest.raises(ValueError, match="uint8"):
        apply_correction(np.zeros((4, 4, 3), np.float64), reading)
    with pytest.raises(ValueError, match="CardReading"):
        apply_correction(np.zeros((4, 4, 3), np.uint8), {"px_per_mm": 3})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        reading.mask((0, 10))
    with pytest.raises(ValueError, match="margin_mm"):
        reading.mask((10, 10), margin_mm=-1.0)


def test_photo_error_is_a_value_error() -> None:
    # Callers catch ValueError for every bad photo; the domain error is one of them.
    assert issubclass(PhotoError, ValueError)


def test_to_dict_is_json_ready(shots: dict[str, Shot]) -> None:
    import json

    reading = shots["tungsten, overexposed"].reading
    assert reading is not None
    d = json.loads(json.dumps(reading.to_dict()))
    assert d["px_per_mm"] == pytest.approx(reading.px_per_mm, abs=1e-3)
    assert len(d["corners_px"]) == 4
    assert len(d["patches"]) == len(PATCHES)
    assert sorted(d["marker_ids"]) == sorted(MARKER_IDS)
    white = next(p for p in d["patches"] if p["name"] == "white")
    assert white["used"] is False
    assert white["delta_e_before"] is not None


# --------------------------------------------------------------------------- PDF


def _poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if IN_CI:
            pytest.fail(f"{tool} (poppler-utils) is required in CI: .ci/run installs it")
        pytest.skip(f"{tool} not installed (apt-get install poppler-utils): PDF checks skipped")
    return path


@pytest.mark.parametrize(("paper", "size_pt"), [("A4", "595.28 x 841.89"), ("Letter", "612 x 792")])
def test_pdf_is_one_true_size_page(tmp_path: Path, paper: str, size_pt: str) -> None:
    data = card_pdf(clinic_name="Clinique Élise — Veines", paper=paper)  # type: ignore[arg-type]
    assert data.startswith(b"%PDF-")
    pdf = tmp_path / "card.pdf"
    pdf.write_bytes(data)
    info = subprocess.run(
        [_poppler("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True
    ).stdout
    assert "Pages:           1" in info
    assert f"Page size:       {size_pt} pts" in info
    text = subprocess.run(
        [_poppler("pdftotext"), str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Clinique Élise — Veines" in text
    assert "100 %" in text
    assert "fit-to-page" in text


def test_pdf_renders_markers_at_their_true_spacing(tmp_path: Path) -> None:
    dpi = 200
    pdf = tmp_path / "card.pdf"
    pdf.write_bytes(card_pdf(clinic_name="Test clinic"))
    subprocess.run(
        [_poppler("pdftoppm"), "-r", str(dpi), "-png", str(pdf), str(tmp_path / "page")],
        check=True,
    )
    page = np.asarray(Image.open(tmp_path / "page-1.png").convert("RGB"))
    px_per_mm = dpi / 25.4
    # OpenCV alone: the markers' centres are as far apart as the layout says, in mm.
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    corners, ids, _ = cv2.aruco.ArucoDetector(dictionary).detectMarkers(
        cv2.cvtColor(page, cv2.COLOR_RGB2GRAY)
    )
    assert ids is not None
    centre = {
        int(i): c.reshape(4, 2).mean(axis=0) for c, i in zip(corners, ids.ravel(), strict=True)
    }
    assert sorted(centre) == sorted(MARKER_IDS)
    layout = {
        i: np.array(o) + MARKER_SIZE_MM / 2
        for i, o in zip(MARKER_IDS, MARKER_ORIGINS_MM, strict=True)
    }
    for a in MARKER_IDS:
        for b in MARKER_IDS:
            if a < b:
                measured = np.linalg.norm(centre[a] - centre[b]) / px_per_mm
                assert measured == pytest.approx(np.linalg.norm(layout[a] - layout[b]), abs=0.2)
    reading = read_card(page)
    assert reading is not None
    assert reading.px_per_mm == pytest.approx(px_per_mm, rel=0.005)
    # The PDF paints the nominal colours: rendered, they need no correction.
    assert reading.delta_e_before_mean is not None
    assert reading.delta_e_before_mean < 1.0
    assert all(reading.patch_used)
