"""Photo loading: every accepted format and every rejection of issue 2."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from vein_tracker.errors import PhotoError
from vein_tracker.io import (
    as_rgb,
    encode_image,
    load_label_png,
    load_mask_png,
    load_photo,
    photo_from_array,
    save_image,
    save_mask_png,
)

H, W = 300, 400


@pytest.fixture
def asym() -> np.ndarray:
    """An asymmetric RGB test card: a red block top-left, a blue block bottom-right."""
    rng = np.random.default_rng(0)
    img = np.full((H, W, 3), 200, np.uint8)
    img[:60, :80] = (220, 30, 30)
    img[-50:, -70:] = (30, 30, 220)
    img[100:200, 150:250] = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)
    return img


def _encode(arr: np.ndarray, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _oriented_jpeg(arr: np.ndarray, orientation: int) -> bytes:
    """Store ``arr`` the way a camera would for ``orientation``: pixels rotated, tag set."""
    # Inverse of the transform the loader applies, so the upright result equals ``arr``.
    inverse = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.transpose(a, (1, 0, 2)),
        6: lambda a: np.rot90(a, 1),
        7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
        8: lambda a: np.rot90(a, -1),
    }[orientation]
    stored = np.ascontiguousarray(inverse(arr))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    exif[0x0110] = "Model X"
    exif[0x0132] = "2026:03:04 10:11:12"
    return _encode(stored, "PNG", exif=exif.tobytes())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(asym: np.ndarray, orientation: int) -> None:
    photo = load_photo(_oriented_jpeg(asym, orientation))
    assert photo.rgb.shape == (H, W, 3)
    np.testing.assert_array_equal(photo.rgb, asym)
    assert photo.orientation == orientation
    assert photo.camera_make == "TestCam"
    assert photo.capture_time == datetime(2026, 3, 4, 10, 11, 12)


@pytest.mark.parametrize(
    ("fmt", "kw"),
    [("PNG", {}), ("TIFF", {}), ("WEBP", {"lossless": True}), ("JPEG", {"quality": 95})],
)
def test_accepted_formats(asym: np.ndarray, fmt: str, kw: dict[str, object]) -> None:
    photo = load_photo(_encode(asym, fmt, **kw))
    assert photo.rgb.dtype == np.uint8
    assert photo.rgb.shape == (H, W, 3)
    assert photo.format == fmt
    if fmt == "JPEG":  # lossy: close, not equal
        assert np.median(np.abs(photo.rgb.astype(int) - asym.astype(int))) <= 3
    else:
        np.testing.assert_array_equal(photo.rgb, asym)


def test_heic_is_decoded(asym: np.ndarray) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    heif = pillow_heif.from_bytes(mode="RGB", size=(W, H), data=asym.tobytes())
    buf = io.BytesIO()
    heif.save(buf, quality=95)
    photo = load_photo(buf.getvalue())
    assert photo.format in ("HEIF", "HEIC")
    assert photo.rgb.shape == (H, W, 3)
    assert np.median(np.abs(photo.rgb.astype(int) - asym.astype(int))) < 8


_HEIF_ON_DEMAND = """
import io, sys
import numpy as np
import pillow_heif
from vein_tracker.io import load_photo
rgb = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
heif = pillow_heif.from_bytes(mode="RGB", size=(400, 300), data=rgb.tobytes())
buf = io.BytesIO()
heif.save(buf, quality=90)
from PIL import Image
before = "HEIF" in Image.OPEN
ok, jpg = __import__("cv2").imencode(".jpg", rgb)
load_photo(jpg.tobytes())
after_jpeg = "HEIF" in Image.OPEN
photo = load_photo(buf.getvalue())
print(before, after_jpeg, "HEIF" in Image.OPEN, photo.format, photo.rgb.shape)
"""


def test_heic_opener_is_registered_only_when_a_heic_arrives() -> None:
    """Other photos do not pay for importing pillow-heif; a HEIC still opens."""
    from tests.fresh_util import run_fresh

    pytest.importorskip("pillow_heif")
    proc = run_fresh(_HEIF_ON_DEMAND, timeout=120)
    assert proc.returncode == 0, proc.stderr
    before, after_jpeg, after_heic, fmt, shape = proc.stdout.split(maxsplit=4)
    assert (before, after_jpeg, after_heic) == ("False", "False", "True")
    assert fmt in ("HEIF", "HEIC")
    assert shape.strip() == "(300, 400, 3)"


def test_16_bit_rgb_tiff(asym: np.ndarray) -> None:
    deep = asym.astype(np.uint16) * 257
    ok, buf = cv2.imencode(".tiff", cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    assert ok
    photo = load_photo(buf.tobytes())
    np.testing.assert_array_equal(photo.rgb, asym)


def test_16_bit_grey_tiff() -> None:
    grey = (np.linspace(0, 65535, H * W).reshape(H, W)).astype(np.uint16)
    photo = load_photo(_encode(grey, "TIFF"))
    assert photo.rgb.shape == (H, W, 3)
    np.testing.assert_array_equal(photo.rgb[..., 0], (grey >> 8).astype(np.uint8))


def test_float_tiff_is_refused() -> None:
    arr = np.random.default_rng(1).random((H, W), dtype=np.float32)
    with pytest.raises(PhotoError, match="floating-point"):
        load_photo(_encode(arr, "TIFF"))


def test_cmyk_jpeg_is_converted(asym: np.ndarray) -> None:
    cmyk = Image.fromarray(asym).convert("CMYK")
    buf = io.BytesIO()
    cmyk.save(buf, format="JPEG", quality=95)
    photo = load_photo(buf.getvalue())
    assert photo.rgb.shape == (H, W, 3)
    assert np.median(np.abs(photo.rgb.astype(int) - asym.astype(int))) < 10


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA"])
def test_other_modes_become_rgb(asym: np.ndarray, mode: str) -> None:
    img = Image.fromarray(asym).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    photo = load_photo(buf.getvalue())
    assert photo.rgb.shape == (H, W, 3)
    assert photo.rgb.dtype == np.uint8


def test_alpha_is_composited_on_white() -> None:
    rgba = np.zeros((H, W, 4), np.uint8)
    photo = load_photo(_encode(rgba, "PNG"))
    assert (photo.rgb == 255).all()


def test_sources_path_bytes_fileobj_agree(asym: np.ndarray, tmp_path: Path) -> None:
    data = _encode(asym, "PNG")
    path = tmp_path / "leg.png"
    path.write_bytes(data)
    a = load_photo(path)
    b = load_photo(data)
    c = load_photo(io.BytesIO(data))
    d = load_photo(str(path))
    assert a.sha256 == b.sha256 == c.sha256 == d.sha256
    for p in (b, c, d):
        np.testing.assert_array_equal(a.rgb, p.rgb)


def test_rgb_is_read_only(asym: np.ndarray) -> None:
    photo = load_photo(_encode(asym, "PNG"))
    with pytest.raises(ValueError, match="read-only"):
        photo.rgb[0, 0, 0] = 1


def test_empty_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(PhotoError, match="empty"):
        load_photo(empty)


def test_junk_renamed_jpg_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "holiday.jpg"
    junk.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 20)
    with pytest.raises(PhotoError, match="not a photo"):
        load_photo(junk)


def test_truncated_jpeg_is_refused(asym: np.ndarray) -> None:
    data = _encode(asym, "JPEG", quality=90)
    with pytest.raises(PhotoError, match="truncated|damaged"):
        load_photo(data[: len(data) // 2])


def test_gif_and_bmp_are_refused(asym: np.ndarray) -> None:
    for fmt in ("GIF", "BMP"):
        with pytest.raises(PhotoError, match="not accepted"):
            load_photo(_encode(asym, fmt))


def test_small_image_is_refused() -> None:
    with pytest.raises(PhotoError, match="at least 256"):
        load_photo(_encode(np.zeros((100, 300, 3), np.uint8), "PNG"))


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width``×``height``: a decompression bomb's header."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("width", "height"), [(10000, 8000), (60000, 60000)])
def test_pixel_limit_refuses_before_decoding(
    monkeypatch: pytest.MonkeyPatch, width: int, height: int
) -> None:
    decoded: list[bool] = []
    original_load = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> object:
        decoded.append(True)
        return original_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    with pytest.raises(PhotoError, match="over the 50 MP limit"):
        load_photo(_png_declaring(width, height))
    assert not decoded


def test_pixel_limit_env_override(asym: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VEIN_TRACKER_MAX_PIXELS", str(H * W - 1))
    with pytest.raises(PhotoError, match="limit"):
        load_photo(_encode(asym, "PNG"))
    monkeypatch.setenv("VEIN_TRACKER_MAX_PIXELS", str(H * W))
    assert load_photo(_encode(asym, "PNG")).rgb.shape == (H, W, 3)


def test_corrupt_orientation_value_is_ignored(asym: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 77
    photo = load_photo(_encode(asym, "PNG", exif=exif.tobytes()))
    np.testing.assert_array_equal(photo.rgb, asym)
    assert photo.orientation == 1


def test_missing_file_and_nul_name(tmp_path: Path) -> None:
    with pytest.raises(PhotoError, match="No photo file"):
        load_photo(tmp_path / "missing.jpg")
    with pytest.raises(PhotoError, match="NUL"):
        load_photo(str(tmp_path / "a\x00b.jpg"))


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        load_photo(12345)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="px_per_mm"):
        load_photo(b"x", px_per_mm=-1.0)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        as_rgb(np.zeros((10, 10), np.uint8))


def test_encode_image_writes_pixels_only(asym: np.ndarray, tmp_path: Path) -> None:
    for fmt in ("JPEG", "PNG", "WEBP"):
        data = encode_image(asym, format=fmt)
        with Image.open(io.BytesIO(data)) as img:
            assert not img.getexif()
            assert "icc_profile" not in img.info
            assert "xmp" not in img.info
            assert "exif" not in img.info
    out = save_image(asym, tmp_path / "x.png")
    np.testing.assert_array_equal(load_photo(out).rgb, asym)
    with pytest.raises(ValueError, match="suffix|must end"):
        save_image(asym, tmp_path / "x.gif")


def test_mask_roundtrip(tmp_path: Path) -> None:
    mask = np.zeros((H, W), bool)
    mask[10:50, 20:90] = True
    p = save_mask_png(mask, tmp_path / "m.png")
    np.testing.assert_array_equal(load_mask_png(p, shape=(H, W)), mask)
    with Image.open(p) as img:
        assert set(np.unique(np.asarray(img))) == {0, 255}
    with pytest.raises(PhotoError, match="draw the mask"):
        load_mask_png(p, shape=(H + 1, W))


def test_photo_from_array_hash_is_stable(asym: np.ndarray) -> None:
    a = photo_from_array(asym, px_per_mm=10.0)
    b = photo_from_array(asym.copy())
    assert a.sha256 == b.sha256
    assert a.px_per_mm == 10.0
    assert a.shape == (H, W)


@pytest.mark.parametrize("name", ["missing.png", "a\x00b.png", "x" * 300 + ".png", ""])
def test_mask_read_errors_are_photo_errors(tmp_path: Path, name: str) -> None:
    target = tmp_path if name == "" else tmp_path / name
    with pytest.raises(PhotoError, match="mask file"):
        load_mask_png(target)


def _labels() -> np.ndarray:
    lab = np.zeros((H, W), np.uint8)
    lab[10:50, 20:90] = 1
    lab[100:120, 30:300] = 2
    lab[200, 5] = 7
    return lab


def test_label_png_roundtrip_keeps_the_values(tmp_path: Path) -> None:
    lab = _labels()
    p = save_mask_png(lab, tmp_path / "labels.png")
    got = load_label_png(p)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, lab)
    np.testing.assert_array_equal(load_label_png(p.read_bytes()), lab)


def test_label_png_modes(tmp_path: Path) -> None:
    """A palette PNG gives its indices (not its colours), a 1-bit PNG 0/1, a colour PNG its
    luminance, a 16-bit PNG its values with those above 255 at 255."""
    lab = _labels()
    pal = Image.fromarray(lab, mode="L").convert("P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [9] * (253 * 3))
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(load_label_png(tmp_path / "p.png"), lab)
    Image.fromarray(lab > 0).save(tmp_path / "one.png")
    np.testing.assert_array_equal(load_label_png(tmp_path / "one.png"), (lab > 0).astype(np.uint8))
    grey = np.repeat((lab * 30)[..., None], 3, axis=2)
    Image.fromarray(grey, mode="RGB").save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(load_label_png(tmp_path / "rgb.png"), lab * 30)
    wide = lab.astype(np.uint16)
    wide[0, 0] = 1000
    cv2.imwrite(str(tmp_path / "16.png"), wide)
    with Image.open(tmp_path / "16.png") as img:
        assert img.mode.startswith("I")
    got = load_label_png(tmp_path / "16.png")
    assert got[0, 0] == 255
    np.testing.assert_array_equal(got[1:], lab[1:])


def test_label_png_refuses_other_formats_and_junk(asym: np.ndarray, tmp_path: Path) -> None:
    jpeg = tmp_path / "map.jpg"
    jpeg.write_bytes(_encode(asym, "JPEG"))
    with pytest.raises(PhotoError, match=r"baseline map 'map.jpg' must be a PNG, not JPEG"):
        load_label_png(jpeg, what="baseline map")
    junk = tmp_path / "map.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    with pytest.raises(PhotoError, match="cannot be read as an image"):
        load_label_png(junk)
    with pytest.raises(PhotoError, match="Could not read the label map 'none.png'"):
        load_label_png(tmp_path / "none.png")
