"""Tests of vein_tracker.export: composite, de-identification, manifest and ZIP.

The repository-backed tests (consent property test, end-to-end ZIP) are further down.
"""

from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from vein_tracker import ALGORITHM_VERSION
from vein_tracker import export as ex
from vein_tracker.errors import PhotoError

# Pillow keys that only describe the encoding (JFIF density, progressive flags...).
BASIC_INFO_KEYS = {
    "jfif",
    "jfif_version",
    "jfif_unit",
    "jfif_density",
    "dpi",
    "progressive",
    "progression",
    "adobe",
    "adobe_transform",
}


def _skin(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    """A skin-coloured image with smooth shading, some red 'veins' and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = 0.85 + 0.15 * np.sin(xx / w * np.pi)
    base = np.array([215, 165, 145], np.float32) * shade[..., None]
    for _ in range(6):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        ang = rng.uniform(0, np.pi)
        d = np.abs((xx - x0) * np.sin(ang) - (yy - y0) * np.cos(ang))
        line = (d < 1.5) & (np.hypot(xx - x0, yy - y0) < 120)
        base[line] *= np.array([0.95, 0.70, 0.75], np.float32)
    base += rng.normal(0, 2.0, base.shape).astype(np.float32)
    return np.clip(base, 0, 255).astype(np.uint8)


def assert_no_metadata(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        assert not img.getexif(), "EXIF present"
        assert "exif" not in img.info
        assert "icc_profile" not in img.info
        assert "xmp" not in img.info
        assert "XML:com.adobe.xmp" not in img.info
        assert not hasattr(img, "applist") or all(
            marker in ("APP0",) for marker, _ in img.applist
        ), f"unexpected APP segments {[m for m, _ in img.applist]}"
        extra = set(img.info) - BASIC_INFO_KEYS
        assert not extra, f"unexpected metadata keys {extra}"


# --------------------------------------------------------------------------- geometry


def test_largest_valid_rectangle_exact() -> None:
    valid = np.zeros((300, 400), bool)
    valid[50:250, 100:350] = True
    valid[0:20, :] = True  # a wide but thin strip must lose to the big block
    assert ex.largest_valid_rectangle(valid) == (100, 50, 250, 200)


def test_largest_valid_rectangle_downscaled_stays_inside() -> None:
    yy, xx = np.mgrid[0:900, 0:1200]
    valid = (xx - 600) ** 2 / 500**2 + (yy - 450) ** 2 / 400**2 < 1  # an ellipse
    x, y, w, h = ex.largest_valid_rectangle(valid, max_side_px=128)
    assert valid[y : y + h, x : x + w].all()
    # The largest rectangle in an ellipse has area 2ab = 400 000 px; coarse cells lose a little.
    assert w * h > 0.85 * 2 * 500 * 400


@pytest.mark.parametrize(
    "bad", [np.zeros((10, 10), bool), np.ones((10, 10), np.uint8), np.ones((4, 4, 3), bool)]
)
def test_largest_valid_rectangle_rejects(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="valid"):
        ex.largest_valid_rectangle(bad)


# --------------------------------------------------------------------------- composite


def test_composite_layouts_and_identical_processing() -> None:
    before = _skin()
    comp_sbs = ex.compose_pair(before, before, weeks=6, sessions=2, half_max_side_px=320)
    comp_stk = ex.compose_pair(
        before, before, weeks=6, sessions=2, half_max_side_px=320, layout="stacked"
    )
    # 640x480 zoomed to 320x240 per half, label strip 24 px, gap 4 px.
    assert comp_sbs.shape == (240 + 24, 2 * 320 + 4, 3)
    assert comp_stk.shape == (2 * (240 + 24) + 4, 320, 3)
    # Same photo on both sides -> the two photo areas are identical, pixel for pixel.
    left, right = comp_sbs[24:, :320], comp_sbs[24:, 324:]
    np.testing.assert_array_equal(left, right)
    top, bottom = comp_stk[24:264], comp_stk[24 + 268 :]
    np.testing.assert_array_equal(top, bottom)


def test_composite_does_not_flatter_the_after_photo() -> None:
    """One mapping for both halves: equal input pixels give equal output pixels."""
    before = _skin(seed=1)
    after = before.copy()
    after[100:200, 100:300] = (before[100:200, 100:300] * 0.8).astype(np.uint8)
    comp = ex.compose_pair(before, after, weeks=4, sessions=1, half_max_side_px=640)
    lh = max(24, 480 // 12)
    left = comp[lh:, :640].astype(int)
    right = comp[lh:, 640 + 6 :].astype(int)
    same = np.ones(before.shape[:2], bool)
    same[100:200, 100:300] = False
    np.testing.assert_array_equal(left[same], right[same])
    # The darker patch stays darker by the shared gain (never lifted on the after side).
    gain, offset = ex.shared_levels(before, after)
    dark = left[~same].mean() - right[~same].mean()
    expected = gain * (before[100:200, 100:300].mean() - after[100:200, 100:300].mean())
    assert dark == pytest.approx(expected, rel=0.05)
    # colour="none" leaves the pixels exactly as given (apart from the faint watermark).
    comp_none = ex.compose_pair(
        before,
        after,
        weeks=4,
        sessions=1,
        colour="none",
        half_max_side_px=640,
        watermark_opacity=0.01,
        check_faces=False,
    )
    assert np.abs(comp_none[lh:, :640].astype(int) - before.astype(int)).max() <= 3


def test_shared_levels_are_one_mapping_for_both_halves() -> None:
    before = _skin(seed=2)
    after = _skin(seed=3)
    gain, offset = ex.shared_levels(before, after)
    assert 1.0 <= gain <= 1.25
    # Swapping the halves gives the same mapping: nothing depends on which side is "after".
    assert ex.shared_levels(after, before) == pytest.approx((gain, offset))


def test_crop_and_valid_apply_to_both_halves() -> None:
    before = _skin(seed=4)
    after = _skin(seed=5)
    valid = np.zeros(before.shape[:2], bool)
    valid[48:432, 96:576] = True  # on the 3-px grid the coarse search uses for 640 px
    comp = ex.compose_pair(
        before,
        after,
        weeks=3,
        sessions=1,
        valid=valid,
        colour="none",
        half_max_side_px=480,
        watermark_opacity=0.01,
    )
    # The automatic crop is the valid block (480x384): no grey fill is shown.
    label_h = max(24, 384 // 12)
    assert comp.shape == (384 + label_h, 2 * 480 + 4, 3)
    left = comp[label_h:, :480].astype(int)
    assert np.abs(left - before[48:432, 96:576].astype(int)).max() <= 3
    right = comp[label_h:, 484:].astype(int)
    assert np.abs(right - after[48:432, 96:576].astype(int)).max() <= 3


def test_labels_are_drawn() -> None:
    assert ex.after_label(6, 2) == "After — 6 weeks, 2 sessions"
    assert ex.after_label(1, 1) == "After — 1 week, 1 session"
    before = _skin(seed=6)
    comp = ex.compose_pair(before, before, weeks=6, sessions=2, half_max_side_px=320)
    strip_left, strip_right = comp[:24, :320], comp[:24, 324:]
    # Dark text on white, and the after label is longer than "Before".
    dark_l, dark_r = (strip_left.mean(axis=2) < 100).sum(), (strip_right.mean(axis=2) < 100).sum()
    assert dark_l > 20
    assert dark_r > 2 * dark_l
    with pytest.raises(ValueError, match="weeks and sessions"):
        ex.after_label(-1, 2)


def test_watermark_text_and_opacity() -> None:
    flat = np.full((300, 400, 3), 100, np.uint8)
    w1 = ex.add_watermark(flat, "Clinic", opacity=0.3).astype(int)
    w2 = ex.add_watermark(flat, "Clinic", opacity=0.6).astype(int)
    other = ex.add_watermark(flat, "Другая клиника ✓", opacity=0.3).astype(int)
    assert flat.max() == 100  # input untouched
    d1, d2 = np.abs(w1 - 100), np.abs(w2 - 100)
    assert d1.max() > 20
    # White text over grey 100 at full coverage: change = opacity * 155.
    assert d1.max() == pytest.approx(0.3 * 155, abs=2)
    assert d2.max() == pytest.approx(0.6 * 155, abs=2)
    assert not np.array_equal(w1, other)
    with pytest.raises(ValueError, match="opacity"):
        ex.add_watermark(flat, "x", opacity=0.0)
    with pytest.raises(ValueError, match="opacity"):
        ex.add_watermark(flat, "x", opacity=1.5)
    with pytest.raises(ValueError, match="watermark text"):
        ex.add_watermark(flat, "  ", opacity=0.3)


def test_blur_box_hides_a_tattoo_and_nothing_else() -> None:
    img = _skin(seed=7)
    tattoo = img.copy()
    yy, xx = np.mgrid[0:120, 0:160]
    pattern = ((xx // 4 + yy // 4) % 2 == 0)[..., None]
    tattoo[200:320, 300:460] = np.where(pattern, 30, 220).astype(np.uint8)
    box = ex.BlurBox(x=300, y=200, width=160, height=120)
    out = ex.apply_blur_boxes(tattoo, [box])
    assert tattoo[200, 300, 0] in (30, 220)  # input untouched
    np.testing.assert_array_equal(out[:200], tattoo[:200])
    np.testing.assert_array_equal(out[:, :300], tattoo[:, :300])
    inside = out[200:320, 300:460].astype(np.float64)
    # The 4-px checkerboard is gone: horizontal neighbour differences collapse.
    grad_before = np.abs(np.diff(tattoo[200:320, 300:460].astype(float), axis=1)).mean()
    grad_after = np.abs(np.diff(inside, axis=1)).mean()
    assert grad_before > 40
    assert grad_after < 0.05 * grad_before
    with pytest.raises(ValueError, match="width and height"):
        ex.BlurBox(x=0, y=0, width=0, height=5)


def test_blur_box_applies_to_both_halves() -> None:
    before = _skin(seed=8)
    after = _skin(seed=9)
    box = ex.BlurBox(x=0, y=0, width=320, height=240)
    comp = ex.compose_pair(
        before,
        after,
        weeks=2,
        sessions=1,
        blur_boxes=[box],
        colour="none",
        half_max_side_px=640,
        watermark_opacity=0.01,
    )
    lh = max(24, 480 // 12)
    for x0 in (0, 640 + 6):
        quad = comp[lh : lh + 240, x0 : x0 + 320].astype(float)
        rest = comp[lh + 240 :, x0 + 320 : x0 + 640].astype(float)
        assert np.abs(np.diff(quad, axis=1)).mean() < 0.5 * np.abs(np.diff(rest, axis=1)).mean()


def test_face_is_refused_and_legs_pass() -> None:
    face = skdata.astronaut()  # 512x512, one frontal face
    boxes = ex.detect_faces(face)
    assert len(boxes) >= 1
    x, y, w, h = boxes[0]
    assert 150 < x + w / 2 < 260
    assert 60 < y + h / 2 < 170
    skin = _skin(512, 512, seed=10)
    with pytest.raises(PhotoError, match="face"):
        ex.compose_pair(skin, face, weeks=6, sessions=2)
    # Blurring the face away makes the pair exportable.
    blurred = ex.compose_pair(
        skin, face, weeks=6, sessions=2, blur_boxes=[ex.BlurBox(x=140, y=30, width=160, height=180)]
    )
    assert blurred.ndim == 3
    assert ex.detect_faces(skin) == ()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layout": "diagonal"}, "layout"),
        ({"colour": "vivid"}, "colour"),
        ({"watermark": ""}, "watermark text"),
        ({"watermark_opacity": -0.1}, "opacity"),
        ({"crop": (600, 0, 100, 100)}, "crop"),
        ({"crop": (0, 0, 0, 10)}, "crop"),
        ({"half_max_side_px": 10}, "half_max_side_px"),
        ({"valid": np.ones((5, 5), bool)}, "valid"),
        ({"blur_boxes": [(0, 0, 5, 5)]}, "blur_boxes"),
        ({"weeks": -2}, "weeks"),
    ],
)
def test_compose_pair_rejects_bad_options(kwargs: dict[str, object], match: str) -> None:
    img = _skin(240, 320)
    args: dict[str, object] = {"weeks": 2, "sessions": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        ex.compose_pair(img, img, **args)  # type: ignore[arg-type]


def test_compose_pair_rejects_unaligned_after() -> None:
    with pytest.raises(ValueError, match="baseline frame"):
        ex.compose_pair(_skin(240, 320), _skin(200, 320), weeks=1, sessions=1)
    with pytest.raises(ValueError, match="uint8"):
        ex.compose_pair(np.zeros((10, 10, 3)), np.zeros((10, 10, 3)), weeks=1, sessions=1)


# --------------------------------------------------------------------------- packaging


def test_encoded_composite_has_no_metadata() -> None:
    comp = ex.compose_pair(_skin(), _skin(seed=11), weeks=3, sessions=2, half_max_side_px=320)
    jpeg = ex.encode_composite(comp)
    assert jpeg[:2] == b"\xff\xd8"
    assert_no_metadata(jpeg)


def test_manifest_and_zip_roundtrip() -> None:
    images = {}
    rows = []
    for i in range(3):
        comp = ex.compose_pair(
            _skin(seed=i), _skin(seed=i + 20), weeks=4 + i, sessions=i + 1, half_max_side_px=200
        )
        jpeg = ex.encode_composite(comp)
        anon = ex.new_anonymous_id()
        name = f"{anon}.jpg"
        images[name] = jpeg
        rows.append(
            ex.ManifestRow(
                anonymous_id=anon,
                file=f"images/{name}",
                channel="website",
                area="left calf",
                sessions=i + 1,
                weeks=4 + i,
                improvement_pct=80.0 + i,
                improvement_lo_pct=75.5,
                improvement_hi_pct=None,
                grade="76–100 %",
                consent_id=str(10 + i),
                consent_scope="website",
                consent_expires="2027-01-01",
                sha256_baseline_original="a" * 64,
                sha256_followup_original="b" * 64,
                sha256_composite=ex.sha256_hex(jpeg),
            )
        )
    blob = ex.build_zip(images, ex.write_manifest(rows))
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        names = zf.namelist()
        assert sorted(names) == sorted(["manifest.csv", *(f"images/{n}" for n in images)])
        assert all(zi.date_time == (1980, 1, 1, 0, 0, 0) for zi in zf.infolist())
        manifest = ex.read_manifest(zf.read("manifest.csv"))
        assert list(manifest[0]) == list(ex.MANIFEST_COLUMNS)
        for row in manifest:
            assert hashlib.sha256(zf.read(row["file"])).hexdigest() == row["sha256_composite"]
            assert row["algorithm_version"] == ALGORITHM_VERSION
            assert len(row["anonymous_id"]) == 16
        assert manifest[1]["improvement_pct"] == "81.0"
        assert manifest[0]["improvement_hi_pct"] == ""
        assert manifest[0]["grade"] == "76–100 %"
    assert len({r.anonymous_id for r in rows}) == 3
    with pytest.raises(ValueError, match="bare file name"):
        ex.build_zip({"../evil.jpg": b"x"}, b"")
