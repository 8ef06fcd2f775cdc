"""Hostile and broken files against ``load_photo`` (issue 10).

Every case must end in a clean :class:`PhotoError` (or a valid photo, for the
legitimate-but-odd ones), never another exception, a crash or a huge allocation.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vein_tracker.errors import PhotoError
from vein_tracker.io import Photo, load_photo

FUZZ_EXAMPLES = 2000


def _img_bytes(fmt: str, size: tuple[int, int] = (320, 280), **kw: object) -> bytes:
    rng = np.random.default_rng(7)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _heic_bytes() -> bytes:
    import pillow_heif

    arr = np.random.default_rng(3).integers(0, 255, (280, 320, 3), dtype=np.uint8)
    heif = pillow_heif.from_bytes(mode="RGB", size=(320, 280), data=arr.tobytes())
    buf = io.BytesIO()
    heif.save(buf, quality=80)
    return buf.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_declaring(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 4096))
        + _png_chunk(b"IEND", b"")
    )


def _tiff_declaring(width: int, height: int) -> bytes:
    """A little-endian TIFF header claiming a huge strip image with almost no data."""
    entries = [
        (256, 4, 1, width),  # ImageWidth
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression none
        (262, 3, 1, 1),  # Photometric
        (273, 4, 1, 8),  # StripOffsets
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, width * height),  # StripByteCounts
    ]
    ifd_offset = 8 + 16
    out = b"II*\x00" + struct.pack("<I", ifd_offset) + b"\x00" * 16
    out += struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if typ == 3:
            out += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, value)
    return out + struct.pack("<I", 0)


def _exif_with_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return _img_bytes("JPEG", exif=exif.tobytes())


def _recursive_exif_jpeg() -> bytes:
    """A JPEG whose EXIF IFD points back at itself (a loop) and claims a huge entry count."""
    tiff = b"II*\x00" + struct.pack("<I", 8)
    tiff += struct.pack("<H", 2)
    tiff += struct.pack("<HHII", 0x8769, 4, 1, 8)  # Exif IFD -> offset 8 (itself)
    tiff += struct.pack("<HHII", 0x0112, 3, 0xFFFFFFF, 8)  # orientation with absurd count
    tiff += struct.pack("<I", 8)  # next IFD -> itself
    return _img_bytes("JPEG", exif=b"Exif\x00\x00" + tiff)


SVG_XXE = b"""<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400"><text>&xxe;</text></svg>
"""


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (300, 300), c) for c in ("red", "green", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buf.getvalue()


def _float_tiff() -> bytes:
    arr = np.random.default_rng(0).random((300, 300), dtype=np.float32)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="TIFF")
    return buf.getvalue()


def _heic_bomb() -> bytes:
    """A real HEIC with its ispe (image spatial extent) box rewritten to claim 60000×60000."""
    data = bytearray(_heic_bytes())
    i = data.find(b"ispe")
    if i >= 0:
        data[i + 8 : i + 16] = struct.pack(">II", 60000, 60000)
    return bytes(data)


HOSTILE: dict[str, bytes] = {
    "pdf_renamed.jpg": b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n" * 20,
    "xxe.svg.jpg": SVG_XXE,
    "animated.gif": _animated_gif(),
    "one_pixel.png": _img_bytes("PNG", size=(1, 1)),
    "strip_30000x10.png": _img_bytes("PNG", size=(30000, 10)),
    "float.tiff": _float_tiff(),
    "bomb.png": _png_declaring(60000, 60000),
    "bomb.tiff": _tiff_declaring(60000, 60000),
    "bomb.heic": _heic_bomb(),
    "truncated.jpg": _img_bytes("JPEG")[:700],
    "truncated.png": _img_bytes("PNG")[:900],
    "truncated.tiff": _img_bytes("TIFF")[:900],
    "truncated.heic": _heic_bytes()[:600],
    "zero.jpg": b"",
    "junk.jpg": bytes(range(256)) * 8,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_gives_photo_error(name: str) -> None:
    with pytest.raises(PhotoError) as info:
        load_photo(HOSTILE[name])
    message = str(info.value)
    assert message
    assert "\n" not in message
    assert "Traceback" not in message


@pytest.mark.parametrize("orientation", [0, 9, 255, 65535])
def test_bad_orientation_values_keep_the_pixels(orientation: int) -> None:
    photo = load_photo(_exif_with_orientation(orientation))
    assert photo.orientation == 1
    assert photo.rgb.shape == (280, 320, 3)


def test_recursive_exif_is_survived() -> None:
    try:
        photo = load_photo(_recursive_exif_jpeg())
    except PhotoError:
        return
    assert isinstance(photo, Photo)
    assert photo.rgb.shape == (280, 320, 3)


def test_16_bit_tiff_is_accepted() -> None:
    arr = (np.random.default_rng(2).random((300, 300)) * 65535).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="TIFF")
    assert load_photo(buf.getvalue()).rgb.shape == (300, 300, 3)


@pytest.mark.parametrize(
    "name", ["../../etc/passwd.jpg", "a\x00b.jpg", "x" * 300 + ".jpg", "/dev/zero.jpg"]
)
def test_hostile_file_names(name: str, tmp_path: Path) -> None:
    # A name is resolved as given: traversal outside an existing file simply isn't found,
    # NUL is refused, and nothing is written anywhere.
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(PhotoError):
        load_photo(tmp_path / name if not name.startswith("/") else name)
    assert sorted(tmp_path.rglob("*")) == before


_SEEDS = [_img_bytes("JPEG"), _img_bytes("PNG"), _img_bytes("TIFF"), _heic_bytes()]


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.sampled_from(range(len(_SEEDS))),
    cut=st.integers(min_value=0, max_value=10**6),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    junk=st.binary(max_size=64),
)
def test_fuzz_mutated_photos(
    seed: int, cut: int, flips: list[tuple[int, int]], junk: bytes
) -> None:
    data = bytearray(_SEEDS[seed])
    for pos, value in flips:
        data[pos % len(data)] = value
    data = data[: max(1, cut % (len(data) + 1))] + junk
    try:
        photo = load_photo(bytes(data))
    except PhotoError as exc:
        message = str(exc)
    else:
        message = ""
        assert photo.rgb.dtype == np.uint8
        assert photo.rgb.ndim == 3
        assert photo.rgb.shape[2] == 3
        assert min(photo.rgb.shape[:2]) >= 256
        return
    assert message
    assert "\n" not in message


def test_hostile_corpus_stays_under_2_gb() -> None:
    """Run the whole corpus in a child process and read its peak memory.

    The peak is the kernel's ``VmHWM``, the child's own. ``ru_maxrss`` is not: Linux
    carries the parent's peak over the fork and exec into it, so under a large test
    process it read the test process's memory, not the corpus's."""
    script = textwrap.dedent(
        """
        from pathlib import Path
        from tests.security.test_fuzz_io import HOSTILE
        from vein_tracker.errors import PhotoError
        from vein_tracker.io import load_photo
        for name, data in HOSTILE.items():
            try:
                load_photo(data)
            except PhotoError:
                pass
        status = Path("/proc/self/status").read_text().splitlines()
        print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
        """
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True
    )
    peak_kb = int(out.stdout.strip().splitlines()[-1])
    assert peak_kb < 2 * 1024 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
