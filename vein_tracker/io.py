"""Loading and saving photos: the one place where file formats become pixels.

Owns the image contract of the whole package: a photo is ``(H, W, 3) uint8``
RGB, upright (EXIF orientation applied). Nothing downstream re-guesses colour
order, orientation or bit depth. This module must not do any analysis.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeAlias

import numpy as np
from PIL import Image, ImageCms, ImageOps

from .config import MIN_SIDE_PX, get_settings
from .errors import PhotoError


@functools.cache
def _register_heif() -> None:
    try:
        import pillow_heif
    except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
        return
    pillow_heif.register_heif_opener()


def _ensure_heif(data: bytes) -> None:
    """Register the HEIC/HEIF opener (pillow-heif, whose wheel ships libheif) before
    opening an ISO media file (``ftyp`` box at byte 4), once; other photos do not pay
    for importing it."""
    if data[4:8] == b"ftyp":
        _register_heif()


PhotoSource: TypeAlias = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]

#: Formats a clinic camera or phone produces. GIF, BMP, PDF, SVG... are refused.
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "TIFF", "WEBP", "HEIF", "HEIC", "AVIF"})

_ORIENTATION_TAG = 0x0112
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME = 0x0132
_MAKE = 0x010F
_MODEL = 0x0110

# Pillow and its plugins raise these on corrupt or truncated data.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    MemoryError,
    RuntimeError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, eq=False)
class Photo:
    """A decoded, upright photo and what is known about how it was taken.

    Attributes
    ----------
    rgb : ndarray, shape (H, W, 3), dtype uint8
        Upright RGB pixels (EXIF orientation applied, ICC profile converted to sRGB).
    sha256 : str
        Hex digest of the original file bytes (or of the array for in-memory photos).
    original_size : tuple of int
        ``(width, height)`` of the stored pixels before orientation was applied.
    format : str
        Pillow's format name (``"JPEG"``, ``"HEIF"``...) or ``"ARRAY"``.
    capture_time : datetime or None
        EXIF ``DateTimeOriginal`` (or ``DateTime``), naive local camera time.
    camera_make, camera_model : str or None
        EXIF make and model; metadata only, never used in analysis.
    px_per_mm : float or None
        Scale in pixels per millimetre when known (ruler sticker, marker, or given).
    orientation : int
        EXIF orientation that was applied (1 = none).
    """

    rgb: np.ndarray
    sha256: str
    original_size: tuple[int, int]
    format: str = "ARRAY"
    capture_time: datetime | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    px_per_mm: float | None = None
    orientation: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the upright image."""
        return (self.height, self.width)

    def metadata(self) -> dict[str, Any]:
        """JSON-ready metadata (no pixels)."""
        return {
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "original_size": list(self.original_size),
            "format": self.format,
            "capture_time": self.capture_time.isoformat() if self.capture_time else None,
            "camera_make": self.camera_make,
            "camera_model": self.camera_model,
            "px_per_mm": self.px_per_mm,
            "orientation": self.orientation,
        }


def _read_source(source: PhotoSource) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), "upload"
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if "\x00" in str(source):
            raise PhotoError("The file name contains a NUL character; rename the file and retry.")
        try:
            if not path.is_file():
                raise PhotoError(f"No photo file at {path.name!r}: check the name and retry.")
            return path.read_bytes(), path.name
        except OSError as exc:
            raise PhotoError(f"Could not read {path.name!r}: {exc.strerror or exc}.") from exc
    if hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, bytes | bytearray):
            raise PhotoError("The uploaded file could not be read as bytes.")
        return bytes(data), str(getattr(source, "name", "upload"))
    raise TypeError(f"source must be a path, bytes or a binary file object, not {type(source)!r}")


def _exif_info(img: Image.Image) -> tuple[int, datetime | None, str | None, str | None]:
    """Orientation, capture time, make, model; tolerant of corrupt EXIF."""
    orientation, when, make, model = 1, None, None, None
    try:
        exif = img.getexif()
        raw_orientation = exif.get(_ORIENTATION_TAG, 1)
        orientation = int(raw_orientation) if isinstance(raw_orientation, int) else 1
        make = _clean_text(exif.get(_MAKE))
        model = _clean_text(exif.get(_MODEL))
        stamp = None
        try:
            stamp = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL)
        except _DECODE_ERRORS:
            stamp = None
        stamp = stamp or exif.get(_DATETIME)
        if isinstance(stamp, str):
            try:
                when = datetime.strptime(stamp.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
            except ValueError:
                when = None
    except _DECODE_ERRORS:
        # A photo with unreadable EXIF is still a photo: keep the pixels, drop the metadata.
        return 1, None, None, None
    if orientation not in range(1, 9):
        orientation = 1
    return orientation, when, make, model


def _clean_text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip()
    return text[:64] or None


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("F",):
        raise PhotoError(
            "This is a floating-point image (scientific TIFF); export it as an 8- or 16-bit photo."
        )
    if mode.startswith("I;16") or mode == "I":
        arr: np.ndarray = np.asarray(img).astype(np.int64)
        if mode == "I":
            peak = int(arr.max()) if arr.size else 0
            shift = 8 if peak > 255 else 0
            arr8 = (np.clip(arr, 0, 65535) >> shift).astype(np.uint8)
        else:
            arr8 = (np.clip(arr, 0, 65535) >> 8).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(arr8[:, :, None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    elif mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def _to_srgb(img: Image.Image) -> Image.Image:
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "CMYK"):
        return img
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        desc = ImageCms.getProfileDescription(src) or ""
        if "srgb" in desc.lower().replace(" ", ""):
            return img
        dst = ImageCms.createProfile("sRGB")
        out = ImageCms.profileToProfile(img, src, dst, outputMode="RGB")
        return out if out is not None else img
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        # A broken profile is treated as sRGB, which is what phones write anyway.
        return img


def _decode_tiff_with_opencv(data: bytes) -> np.ndarray | None:
    """Fallback for TIFF layouts Pillow cannot decode (48-bit RGB)."""
    import cv2

    buf = np.frombuffer(data, dtype=np.uint8)
    # libtiff logs every defect of a broken file to stderr; the caller reports it instead.
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error:
        arr = None
    finally:
        cv2.utils.logging.setLogLevel(level)
    if arr is None:
        return None
    if arr.dtype == np.uint16:
        arr = (np.asarray(arr, dtype=np.uint16) // 256).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise PhotoError(
            "This is a floating-point image (scientific TIFF); export it as an 8- or 16-bit photo."
        )
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    else:
        arr = cv2.cvtColor(arr[:, :, :3], cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(arr)


def load_photo(
    source: PhotoSource,
    *,
    max_pixels: int | None = None,
    px_per_mm: float | None = None,
    min_side: int = MIN_SIDE_PX,
) -> Photo:
    """Decode a photo file into an upright RGB :class:`Photo`.

    Parameters
    ----------
    source : path, bytes or binary file object
        The photo. JPEG, PNG, TIFF (8/16-bit), WebP and HEIC/HEIF are accepted;
        greyscale, palette, alpha and CMYK are converted to RGB.
    max_pixels : int, optional
        Pixel limit; larger images are refused *before* decoding, so a
        decompression bomb never allocates. Default ``VEIN_TRACKER_MAX_PIXELS``
        or 50 MP.
    px_per_mm : float, optional
        Known scale in pixels per millimetre, carried on the photo.
    min_side : int
        Smallest accepted side in pixels (default 256).

    Returns
    -------
    Photo

    Raises
    ------
    PhotoError
        Empty, not an image, corrupt or truncated, too large, too small, animated,
        or floating-point data. The message says what to do.
    """
    if max_pixels is None:
        max_pixels = get_settings().max_pixels
    if px_per_mm is not None and not (np.isfinite(px_per_mm) and px_per_mm > 0):
        raise ValueError(f"px_per_mm must be a positive number, got {px_per_mm!r}")
    data, name = _read_source(source)
    if len(data) == 0:
        raise PhotoError("The file is empty (0 bytes): take or export the photo again.")
    digest = hashlib.sha256(data).hexdigest()

    with warnings.catch_warnings():
        # Plugins warn about malformed metadata they skip; those files are handled here.
        warnings.simplefilter("ignore")
        # Our own limit is checked from the header below; Pillow's guard stays on as a backstop.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = _open_image(data, max_pixels=max_pixels)
        fmt, width, height = _check_header(img, max_pixels=max_pixels, min_side=min_side)
        orientation, when, make, model = _exif_info(img)
        rgb = _decode_upright(img, data, fmt=fmt, size=(width, height), orientation=orientation)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise PhotoError("The photo could not be converted to RGB.")
    rgb.setflags(write=False)
    return Photo(
        rgb=rgb,
        sha256=digest,
        original_size=(width, height),
        format=fmt,
        capture_time=when,
        camera_make=make,
        camera_model=model,
        px_per_mm=px_per_mm,
        orientation=orientation,
        extra={"name": Path(name).name[:255] if name else "upload"},
    )


def _open_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Pillow's lazy image of ``data`` (header read, pixels not decoded yet)."""
    try:
        _ensure_heif(data)
        return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PhotoError(
            "The image declares far more pixels than any photo (a decompression bomb) and "
            f"is over the {max_pixels / 1e6:.0f} MP limit. Export it at a lower resolution."
        ) from exc
    except Image.UnidentifiedImageError as exc:
        raise PhotoError(
            "This file is not a photo vein_tracker can read. Use JPEG, PNG, TIFF, WebP or HEIC."
        ) from exc
    except _DECODE_ERRORS as exc:
        raise PhotoError(f"The photo file is damaged and cannot be opened ({_why(exc)}).") from exc


def _check_header(img: Image.Image, *, max_pixels: int, min_side: int) -> tuple[str, int, int]:
    """Format, size and frame count, from the header only: ``(format, width, height)``."""
    fmt = (img.format or "").upper()
    if fmt not in ACCEPTED_FORMATS:
        raise PhotoError(
            f"{fmt or 'This'} files are not accepted: use JPEG, PNG, TIFF, WebP or HEIC."
        )
    width, height = img.size
    if width * height > max_pixels:
        raise PhotoError(
            f"The photo is {width}×{height} = {width * height / 1e6:.0f} MP, over the "
            f"{max_pixels / 1e6:.0f} MP limit. Export it at a lower resolution."
        )
    if min(width, height) < min_side:
        raise PhotoError(
            f"The photo is only {width}×{height} px; at least {min_side} px on each side "
            "is needed. Upload the original, not a thumbnail."
        )
    try:
        frames = int(getattr(img, "n_frames", 1))
    except _DECODE_ERRORS as exc:
        raise PhotoError(f"The photo file is damaged ({_why(exc)}): upload it again.") from exc
    if fmt not in ("MPO", "HEIF", "HEIC", "AVIF") and frames > 1:
        raise PhotoError("Animated or multi-page images are not accepted: upload one photo.")
    return fmt, width, height


def _decode_upright(
    img: Image.Image, data: bytes, *, fmt: str, size: tuple[int, int], orientation: int
) -> np.ndarray:
    """The pixels as sRGB, EXIF orientation applied; OpenCV reads a TIFF Pillow cannot."""
    width, height = size  # from the header
    rgb: np.ndarray | None
    pil: Image.Image = img
    try:
        img.load()
        pil = _to_srgb(img)
        if orientation in _TRANSPOSE:
            pil = pil.transpose(_TRANSPOSE[orientation])
        rgb = _to_rgb_array(pil)
    except PhotoError:
        raise
    except _DECODE_ERRORS as exc:
        rgb = _decode_tiff_with_opencv(data) if fmt == "TIFF" else None
        if rgb is not None and rgb.shape[:2] != (height, width):
            rgb = None  # the two decoders disagree on the header: trust neither
        if rgb is None:
            raise PhotoError(
                f"The photo file is truncated or corrupt ({_why(exc)}): upload it again."
            ) from exc
        if orientation in _TRANSPOSE:
            turned = Image.fromarray(rgb).transpose(_TRANSPOSE[orientation])
            rgb = np.ascontiguousarray(np.asarray(turned))
    return rgb


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]


def photo_from_array(rgb: np.ndarray, *, px_per_mm: float | None = None) -> Photo:
    """Wrap an in-memory ``(H, W, 3) uint8`` RGB array as a :class:`Photo`.

    The sha256 is taken over the shape and the raw pixel bytes, so identical
    arrays hash identically.
    """
    arr = as_rgb(rgb)
    h = hashlib.sha256(f"{arr.shape}".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return Photo(
        rgb=arr,
        sha256=h.hexdigest(),
        original_size=(arr.shape[1], arr.shape[0]),
        px_per_mm=px_per_mm,
    )


def as_rgb(image: Photo | np.ndarray) -> np.ndarray:
    """Return the ``(H, W, 3) uint8`` RGB pixels of a Photo or validated array.

    Raises
    ------
    ValueError
        If ``image`` is an array of another shape or dtype. No conversion is guessed.
    """
    if isinstance(image, Photo):
        return image.rgb
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a Photo or an ndarray, got {type(image)!r}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"image must be (H, W, 3) uint8 RGB, got shape {image.shape} dtype {image.dtype}; "
            "load files with vein_tracker.io.load_photo"
        )
    return image


def encode_image(rgb: np.ndarray, *, format: str = "JPEG", quality: int = 92) -> bytes:
    """Encode pixels only: no EXIF, GPS, XMP, ICC or maker notes are written.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), dtype uint8
    format : {"JPEG", "PNG", "WEBP"}
    quality : int
        JPEG/WebP quality 1–95.
    """
    arr = as_rgb(rgb)
    fmt = format.upper()
    if fmt not in ("JPEG", "PNG", "WEBP"):
        raise ValueError(f"format must be 'JPEG', 'PNG' or 'WEBP', got {format!r}")
    # A fresh image from raw pixels carries no info dict, so nothing but pixels is saved.
    img = Image.frombytes("RGB", (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr).tobytes())
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, format="JPEG", quality=int(quality), optimize=False, exif=b"")
    elif fmt == "WEBP":
        img.save(buf, format="WEBP", quality=int(quality))
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


def save_image(rgb: np.ndarray, path: str | os.PathLike[str], *, quality: int = 92) -> Path:
    """Write pixels only to ``path``; the format follows the suffix (.jpg, .png, .webp)."""
    p = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}.get(p.suffix.lower())
    if fmt is None:
        raise ValueError(f"path must end in .jpg, .jpeg, .png or .webp, got {p.name!r}")
    p.write_bytes(encode_image(rgb, format=fmt, quality=quality))
    return p


def save_mask_png(mask: np.ndarray, path: str | os.PathLike[str], *, scale: int = 255) -> Path:
    """Write a bool or small-integer label mask as 8-bit PNG (bool -> 0/255; labels as values).

    Parameters
    ----------
    mask : ndarray, shape (H, W), dtype bool or uint8
    scale : int
        Value written for ``True`` when ``mask`` is bool.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    arr = mask.astype(np.uint8) * np.uint8(scale) if mask.dtype == bool else mask.astype(np.uint8)
    p = Path(path)
    Image.fromarray(arr, mode="L").save(p, format="PNG")
    return p


def _read_file(source: str | os.PathLike[str] | bytes, what: str) -> bytes:
    """The bytes of ``source`` (a path, or the bytes themselves); ``what`` names the file
    in the message of the :class:`PhotoError` raised when it cannot be read."""
    if isinstance(source, bytes):
        return bytes(source)
    if "\x00" in str(source):
        raise PhotoError(f"The {what} name contains a NUL character; rename it and retry.")
    path = Path(source)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PhotoError(
            f"Could not read the {what} {path.name[:80]!r}: {exc.strerror or type(exc).__name__}."
        ) from exc


def load_mask_png(
    source: str | os.PathLike[str] | bytes, *, shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Read a mask PNG (non-zero = inside) as ``(H, W) bool``.

    Raises
    ------
    PhotoError
        Not a readable image, or its size differs from ``shape`` ``(H, W)``.
    """
    data = _read_file(source, "mask file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            arr = np.asarray(ImageOps.grayscale(img))
    except _DECODE_ERRORS as exc:
        raise PhotoError(f"The mask file could not be read ({_why(exc)}).") from exc
    if shape is not None and arr.shape != tuple(shape):
        raise PhotoError(
            f"The mask is {arr.shape[1]}×{arr.shape[0]} px but the photo is "
            f"{shape[1]}×{shape[0]} px: draw the mask on the upright baseline photo."
        )
    return arr > 0


def load_label_png(
    source: str | os.PathLike[str] | bytes, *, what: str = "label map"
) -> np.ndarray:
    """Read a PNG of labels (small integers per pixel, 0 = none) as ``(H, W) uint8``.

    A greyscale, palette or 1-bit PNG gives its stored values (a palette's indices, not
    its colours); a colour PNG its luminance. 16-bit values above 255 read as 255.
    Pillow's decompression-bomb warning is an error.

    Parameters
    ----------
    source : path or bytes
        The PNG file, or its bytes.
    what : str, keyword-only
        What the file is, for the error messages (e.g. ``"baseline map"``).

    Returns
    -------
    ndarray, shape (H, W), dtype uint8

    Raises
    ------
    PhotoError
        Unreadable, not an image (damaged, or another kind of file), or not a PNG.
    """
    data = _read_file(source, what)
    # The file as a clinic user knows it: its name, when it came from a file.
    it = what if isinstance(source, bytes) else f"{what} {Path(source).name[:80]!r}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format
                plain = img.mode in ("1", "L", "P", "I", "I;16")
                arr = np.asarray(img if plain else ImageOps.grayscale(img))
    except _DECODE_ERRORS as exc:
        raise PhotoError(
            f"The {it} cannot be read as an image (damaged, or not an image): "
            "save it as an 8-bit greyscale PNG."
        ) from exc
    if fmt != "PNG":
        raise PhotoError(f"The {it} must be a PNG, not {fmt}.")
    return np.clip(arr.astype(np.int64), 0, 255).astype(np.uint8)
