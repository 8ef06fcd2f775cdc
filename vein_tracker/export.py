"""Marketing export of consented, de-identified before/after pairs.

Owns the composite image (aligned follow-up, one crop and zoom for both halves,
identical colour processing, labels, watermark, blur boxes), the no-face check,
the manifest and the ZIP. It reads records only through the storage
``Repository`` with the acting user, so the repository's role and consent checks
always apply; it never touches SQL or photo files itself. Exported images are
written with :func:`vein_tracker.io.encode_image`, which writes pixels only.

Consent is checked when pairs are listed, again when the export starts, again
by the repository when each pair's photos are read, and a last time inside the
transaction that writes the audit events; a revocation or expiry at any point
before the ZIP is returned removes the pair.

Public entry points for pages and the CLI: :func:`list_exportable_pairs`,
:func:`preview_pair`, :func:`run_export` (-> :class:`ExportResult`) and
:func:`export_pairs` (-> ZIP bytes). The pure parts (:func:`compose_pair`,
:func:`add_watermark`, :func:`apply_blur_boxes`, :func:`detect_faces`,
:func:`write_manifest`, :func:`build_zip`) work on arrays and bytes only.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import ALGORITHM_VERSION
from .errors import PhotoError
from .hashing import anonymous_id as new_anonymous_id  # noqa: F401 - public name
from .hashing import sha256_hex  # noqa: F401 - public name
from .io import Photo, as_rgb, encode_image
from .storage.info import CHANNELS, REGIONS, Actor, MarketingPair

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .storage.repository import Repository

#: Composite layouts.
LAYOUTS = ("side_by_side", "stacked")
#: Colour processing of the composite, applied identically to both halves.
COLOUR_MODES = ("shared_levels", "none")

#: Columns of ``manifest.csv``, in order. Nothing here equals or hashes to anything in the
#: clinic's records: no consent id, no photo digest, no record number, no date of a visit
#: or a consent; ``pair_id`` is an HMAC made with a key kept only in the clinic's database.
MANIFEST_COLUMNS = (
    "pair_id",
    "file",
    "channel",
    "area",
    "sessions",
    "weeks",
    "improvement_pct",
    "grade",
    "algorithm_version",
)

# ZIP entries get a fixed timestamp: the archive says nothing about when or where it was made.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_FILL_GREY = 128


# --------------------------------------------------------------------------- fonts


@functools.lru_cache(maxsize=32)
def _font(size_px: int, *, bold: bool = True) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    ref = resources.files("vein_tracker") / "fonts" / name
    with resources.as_file(ref) as path:
        return ImageFont.truetype(str(path), size=max(6, int(size_px)))


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class BlurBox:
    """A user-drawn rectangle to blur (tattoo, birthmark), in baseline-frame pixels.

    Attributes
    ----------
    x, y : int
        Top-left corner, px (x right, y down), in the baseline photo.
    width, height : int
        Size in px, both > 0.
    """

    x: int
    y: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(
                f"BlurBox width and height must be > 0 px, got {self.width}×{self.height}; "
                "draw the box over the area to hide"
            )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class ManifestRow:
    """One exported pair, as written to ``manifest.csv`` (nothing that identifies anyone).

    Attributes
    ----------
    pair_id : str
        The pair's published id: HMAC-SHA256 of its photo ids under the clinic's private
        key (``Repository.export_public_ids``); distinct per pair, meaningless without
        the key. The composite's file is ``images/<pair_id>.jpg``.
    file : str
        Path of the composite inside the ZIP.
    area : str
        Body site, e.g. ``"left calf, posterior"`` (no free-text note).
    sessions : int
        Treatment sessions before the after photo (the photo is taken before that
        visit's treatment).
    weeks : float
        Weeks from the baseline to the after photo.
    improvement_pct : float or None
        Headline improvement of the stored analysis; ``grade`` its quartile.
    """

    pair_id: str
    file: str
    channel: str
    area: str
    sessions: int
    weeks: float
    improvement_pct: float | None
    grade: str
    algorithm_version: str = ALGORITHM_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- geometry


def largest_valid_rectangle(
    valid: np.ndarray, *, max_side_px: int = 256
) -> tuple[int, int, int, int]:
    """Largest axis-aligned rectangle that lies entirely inside ``valid``.

    Parameters
    ----------
    valid : ndarray, shape (H, W), dtype bool
        Pixels seen in both photos (baseline frame).
    max_side_px : int
        The search runs on a copy downscaled to at most this many px per side; the
        result is scaled back and shrunk so it stays inside ``valid``.

    Returns
    -------
    tuple of int
        ``(x, y, width, height)`` in px of ``valid``.

    Raises
    ------
    ValueError
        If ``valid`` is not a 2-D bool array or has no True pixel.
    """
    if not isinstance(valid, np.ndarray) or valid.ndim != 2 or valid.dtype != bool:
        raise ValueError("valid must be an (H, W) bool array, e.g. Registration.valid")
    if not valid.any():
        raise ValueError("valid has no True pixel: the two photos do not overlap")
    h, w = valid.shape
    step = max(1, math.ceil(max(h, w) / max_side_px))
    # A coarse cell counts as valid only if every pixel in it is valid.
    hh, ww = math.ceil(h / step), math.ceil(w / step)
    padded = np.zeros((hh * step, ww * step), dtype=bool)
    padded[:h, :w] = valid
    small: np.ndarray = np.asarray(padded.reshape(hh, step, ww, step).all(axis=(1, 3)))
    if not small.any():
        small = np.asarray(padded.reshape(hh, step, ww, step).any(axis=(1, 3)))
        step_shrink = True
    else:
        step_shrink = False
    best = (0, 0, 0, 0, 0)  # area, x, y, w, h in cells
    heights = np.zeros(ww, dtype=np.int64)
    for row in range(hh):
        heights = np.where(small[row], heights + 1, 0)
        stack: list[int] = []
        for col in range(ww + 1):
            cur = int(heights[col]) if col < ww else 0
            while stack and int(heights[stack[-1]]) >= cur:
                top = stack.pop()
                height = int(heights[top])
                left = stack[-1] + 1 if stack else 0
                area = height * (col - left)
                if area > best[0]:
                    best = (area, left, row - height + 1, col - left, height)
            stack.append(col)
    _, cx, cy, cw, ch = best
    x0, y0 = cx * step, cy * step
    x1, y1 = min(w, (cx + cw) * step), min(h, (cy + ch) * step)
    if step_shrink:
        # Thin overlap: fall back to the bounding box of valid pixels in that cell range.
        sub = valid[y0:y1, x0:x1]
        ys, xs = np.nonzero(sub)
        x0, x1, y0, y1 = x0 + xs.min(), x0 + xs.max() + 1, y0 + ys.min(), y0 + ys.max() + 1
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def _check_box(box: tuple[int, int, int, int], shape: tuple[int, int], name: str) -> None:
    x, y, bw, bh = (int(v) for v in box)
    h, w = shape
    if bw <= 0 or bh <= 0 or x < 0 or y < 0 or x + bw > w or y + bh > h:
        raise ValueError(
            f"{name} {tuple(box)} must be (x, y, width, height) inside the {w}×{h} px "
            "baseline photo with width and height > 0"
        )


# --------------------------------------------------------------------------- processing


def apply_blur_boxes(image: Photo | np.ndarray, boxes: Sequence[BlurBox]) -> np.ndarray:
    """Hide each box under a coarse mosaic plus blur, so nothing inside can be recovered.

    Parameters
    ----------
    image : Photo or ndarray, shape (H, W, 3), dtype uint8
    boxes : sequence of BlurBox
        Clipped to the image.

    Returns
    -------
    ndarray, shape (H, W, 3), dtype uint8
        A new array; pixels outside every box are unchanged.
    """
    rgb = as_rgb(image)
    out = rgb.copy()
    h, w = rgb.shape[:2]
    for box in boxes:
        if not isinstance(box, BlurBox):
            raise ValueError(f"blur_boxes must hold BlurBox items, got {type(box).__name__}")
        x0, y0 = max(0, box.x), max(0, box.y)
        x1, y1 = min(w, box.x + box.width), min(h, box.y + box.height)
        if x1 <= x0 or y1 <= y0:
            continue
        patch = Image.fromarray(out[y0:y1, x0:x1])
        pw, ph = patch.size
        # Mosaic cells of ~1/6 of the box (>= 8 px): a tattoo's lines do not survive.
        cell = max(8, min(pw, ph) // 6)
        small = patch.resize((max(1, pw // cell), max(1, ph // cell)), Image.Resampling.BOX)
        mosaic = small.resize((pw, ph), Image.Resampling.BILINEAR)
        out[y0:y1, x0:x1] = np.asarray(mosaic)
    return out


def shared_levels(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """One brightness/contrast stretch for both halves, from their pooled luminance.

    The same gain and offset apply to every channel of both halves, so hue is not
    shifted and the after photo is never treated differently from the before photo.

    Returns
    -------
    (gain, offset) : tuple of float
        ``out = clip(gain * in + offset)`` in 0–255 units.
    """
    pooled = np.concatenate(
        [as_rgb(before).reshape(-1, 3)[::7], as_rgb(after).reshape(-1, 3)[::7]]
    ).astype(np.float32)
    lum = pooled @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    lo, hi = np.percentile(lum, [0.5, 99.5])
    if hi - lo < 8.0:  # flat image: leave it alone
        return 1.0, 0.0
    # Modest stretch only (at most ×1.25): a presentation tidy-up, not an enhancement.
    gain = float(min(1.25, max(1.0, 245.0 / (hi - lo))))
    offset = float(5.0 - gain * lo)
    offset = float(min(0.0, max(-0.25 * 255.0, offset)))
    return gain, offset


def _apply_levels(rgb: np.ndarray, gain: float, offset: float) -> np.ndarray:
    lut = np.clip(np.arange(256, dtype=np.float32) * gain + offset, 0, 255)
    return np.rint(lut).astype(np.uint8)[rgb]


@functools.lru_cache(maxsize=1)
def _face_cascade() -> Any:
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    return Cascade(lbp_frontal_face_cascade_filename())


def _faces_at(
    grey0: np.ndarray, *, min_face_frac: float, rotations: Sequence[int]
) -> list[tuple[float, float, float, float]]:
    """Cascade hits (x, y, w, h) as fractions of the (unturned) image size."""
    sh, sw = grey0.shape
    short = min(sh, sw)
    min_px = max(24, int(short * min_face_frac))
    if min_px > short:
        return []
    out = []
    for angle in dict.fromkeys(rotations):
        grey = np.ascontiguousarray(np.rot90(grey0, k=angle // 90))
        found = _face_cascade().detect_multi_scale(
            img=grey,
            scale_factor=1.2,
            step_ratio=1.0,
            min_size=(min_px, min_px),
            max_size=(short, short),
            # 6 overlapping hits: the shipped cascade's default of 4 fires now and then
            # on skin texture; 6 still finds the astronaut's face at 1/5 of the frame.
            min_neighbor_number=6,
        )
        for f in found:
            r0, c0, fh, fw = f["r"], f["c"], f["height"], f["width"]
            # Map the box back from the turned image (np.rot90 turns counter-clockwise).
            if angle == 0:
                x, y, bw, bh = c0, r0, fw, fh
            elif angle == 90:
                x, y, bw, bh = sw - r0 - fh, c0, fh, fw
            elif angle == 180:
                x, y, bw, bh = sw - c0 - fw, sh - r0 - fh, fw, fh
            else:
                x, y, bw, bh = r0, sh - c0 - fw, fh, fw
            out.append((x / sw, y / sh, bw / sw, bh / sh))
    return out


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over the smaller box's area."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / max(1e-12, min(a[2] * a[3], b[2] * b[3]))


#: A face's box spans a wide range of brightness (eyes, brows, nostrils, mouth, hair
#: against skin): its 5th-95th percentile luminance range, over its mean, is at least
#: this. Measured (benchmarks/face_check.py): real faces 0.52-1.59 (the astronaut and
#: faces pasted into leg photos at 1/8-2/5 of the frame, turned, in colour and grey);
#: the cascade's false alarm on the bundled leg photo c02 (plain skin with hairs) 0.075.
FACE_MIN_RANGE = 0.25
#: ... and its fine detail (luminance minus a blur of 1/8 of the box, std over mean) is at
#: least this: real faces 0.15-0.39, the false alarm 0.014.
FACE_MIN_DETAIL = 0.05


def face_structure(grey: np.ndarray) -> tuple[float, float]:
    """Brightness range and fine detail of a candidate face box (see :data:`FACE_MIN_RANGE`).

    Parameters
    ----------
    grey : ndarray, shape (h, w), float
        The box's luminance, any scale (both measures are relative to its mean).

    Returns
    -------
    (range, detail) : tuple of float
    """
    import cv2

    g = np.asarray(grey, np.float32)
    if g.ndim != 2 or min(g.shape) < 4:
        raise ValueError(f"grey must be a 2-D box of at least 4x4 px, got shape {g.shape}")
    g = np.asarray(cv2.resize(g, (48, 48), interpolation=cv2.INTER_AREA), np.float32)
    mean = max(float(g.mean()), 1e-6)
    lo, hi = np.percentile(g, [5, 95])
    detail = float(np.std(g - cv2.GaussianBlur(g, (0, 0), 6.0))) / mean
    return float(hi - lo) / mean, detail


def detect_faces(
    image: Photo | np.ndarray,
    *,
    sizes_px: Sequence[int] = (360, 480, 640),
    min_face_frac: float = 0.08,
    rotations: Sequence[int] = (0, 90, 270),
    verify: bool = True,
) -> tuple[tuple[int, int, int, int], ...]:
    """Frontal faces in ``image`` with scikit-image's LBP cascade.

    The search runs on copies downscaled to each of ``sizes_px`` (longer side, px;
    never enlarged). With three or more distinct sizes a face counts only when at
    least two sizes find it at the same place: skin texture, moles and hair fool
    the cascade at one scale now and then, a real face is found at several.

    Parameters
    ----------
    image : Photo or ndarray, shape (H, W, 3), dtype uint8
    sizes_px : sequence of int
        Longer sides of the copies searched, px.
    min_face_frac : float
        Smallest face searched, as a fraction of the image's shorter side (0–1).
    rotations : sequence of {0, 90, 180, 270}
        Also search the image turned by these angles (degrees counter-clockwise), for
        a face lying sideways in the frame (a client lying on the couch).
    verify : bool
        Keep only boxes with a face's contrast (:func:`face_structure`): the cascade
        also fires on plain skin with a few hairs, which has next to none. Skin tone
        is deliberately not required: under a colour cast a real face can fall outside
        any skin-tone range, and a missed face is worse than a pair left out.

    Returns
    -------
    tuple of (x, y, width, height)
        Face boxes in px of ``image`` (axis-aligned bounds); empty when no face is found.
    """
    rgb = as_rgb(image)
    if not 0.0 < min_face_frac <= 1.0:
        raise ValueError(f"min_face_frac must be in (0, 1], got {min_face_frac}")
    if any(r not in (0, 90, 180, 270) for r in rotations):
        raise ValueError(f"rotations must be taken from 0, 90, 180, 270, got {tuple(rotations)}")
    if not sizes_px or any(int(v) < 48 for v in sizes_px):
        raise ValueError(f"sizes_px must be one or more sizes >= 48 px, got {tuple(sizes_px)}")
    h, w = rgb.shape[:2]
    grey_full = Image.fromarray(rgb).convert("L")
    scales = sorted({min(1.0, int(v) / max(h, w)) for v in sizes_px})
    per_scale = []
    for scale in scales:
        pil = grey_full
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            pil = grey_full.resize(size, Image.Resampling.BOX)
        grey = np.asarray(pil, dtype=np.float64) / 255.0
        per_scale.append(_faces_at(grey, min_face_frac=min_face_frac, rotations=rotations))
    need = 2 if len(per_scale) >= 3 else 1
    kept: list[tuple[float, float, float, float]] = []
    for i, boxes in enumerate(per_scale):
        for box in boxes:
            votes = 1 + sum(
                any(_overlap(box, other) > 0.5 for other in per_scale[j])
                for j in range(len(per_scale))
                if j != i
            )
            if votes >= need and not any(_overlap(box, k) > 0.5 for k in kept):
                kept.append(box)
    if verify and kept:
        lum = np.asarray(grey_full, np.float32)
        kept = [b for b in kept if _face_like(lum, b)]
    return tuple(
        (round(x * w), round(y * h), round(bw * w), round(bh * h)) for x, y, bw, bh in kept
    )


def _face_like(lum: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    h, w = lum.shape
    x0, y0 = max(0, round(box[0] * w)), max(0, round(box[1] * h))
    x1, y1 = min(w, round((box[0] + box[2]) * w)), min(h, round((box[1] + box[3]) * h))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return True  # too small to judge: keep it (a missed face is the worse mistake)
    rng, detail = face_structure(lum[y0:y1, x0:x1])
    return rng >= FACE_MIN_RANGE and detail >= FACE_MIN_DETAIL


def add_watermark(image: Photo | np.ndarray, text: str, *, opacity: float = 0.35) -> np.ndarray:
    """Blend a diagonal text watermark across the middle of ``image``.

    Parameters
    ----------
    image : Photo or ndarray, shape (H, W, 3), dtype uint8
    text : str
        Watermark text (any Unicode), e.g. the clinic's name.
    opacity : float
        0 < opacity <= 1: weight of the white text (with a dark outline) over the photo.

    Returns
    -------
    ndarray, shape (H, W, 3), dtype uint8
        A new array.
    """
    rgb = as_rgb(image)
    _check_watermark(text, opacity)
    h, w = rgb.shape[:2]
    diag = math.hypot(w, h)
    size = 64
    font = _font(size)
    x0, y0, x1, y1 = font.getbbox(text, stroke_width=2)
    # Text spans ~60 % of the diagonal, never taller than 1/5 of the image.
    size = max(8, int(size * min(0.6 * diag / max(1, x1 - x0), 0.2 * min(h, w) / max(1, y1 - y0))))
    font = _font(size)
    stroke = max(1, size // 24)
    x0, y0, x1, y1 = font.getbbox(text, stroke_width=stroke)
    tw, th = int(x1 - x0) + 2 * stroke, int(y1 - y0) + 2 * stroke
    layer = Image.new("RGBA", (tw, th), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text(
        (stroke - x0, stroke - y0),
        text,
        font=font,
        fill=(255, 255, 255, 255),
        stroke_width=stroke,
        stroke_fill=(40, 40, 40, 255),
    )
    angle = math.degrees(math.atan2(h, w))
    layer = layer.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    canvas = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    canvas.paste(layer, ((w - layer.width) // 2, (h - layer.height) // 2), layer)
    over = np.asarray(canvas, dtype=np.float32)
    alpha = over[..., 3:4] / 255.0 * float(opacity)
    out = rgb.astype(np.float32) * (1.0 - alpha) + over[..., :3] * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _check_watermark(text: str, opacity: float) -> None:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("watermark text must be a non-empty string, e.g. the clinic's name")
    if not (isinstance(opacity, int | float) and 0.0 < float(opacity) <= 1.0):
        raise ValueError(f"watermark opacity must be in (0, 1], got {opacity!r}; try 0.35")


def after_label(weeks: int, sessions: int) -> str:
    """``"After — N weeks, M sessions"`` with singular forms for 1."""
    if weeks < 0 or sessions < 0:
        raise ValueError(f"weeks and sessions must be >= 0, got {weeks} and {sessions}")
    wk = "week" if weeks == 1 else "weeks"
    ss = "session" if sessions == 1 else "sessions"
    return f"After — {weeks} {wk}, {sessions} {ss}"


def _label_strip(text: str, width: int, height: int) -> np.ndarray:
    strip = Image.new("RGB", (width, height), (255, 255, 255))
    font = _font(max(8, int(height * 0.55)))
    draw = ImageDraw.Draw(strip)
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    if x1 - x0 > width - 8:
        font = _font(max(6, int(font.size * (width - 8) / (x1 - x0))))
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    draw.text(
        ((width - (x1 - x0)) // 2 - x0, (height - (y1 - y0)) // 2 - y0),
        text,
        font=font,
        fill=(20, 20, 20),
    )
    return np.asarray(strip)


def compose_pair(
    before: Photo | np.ndarray,
    after_aligned: Photo | np.ndarray,
    *,
    weeks: int,
    sessions: int,
    valid: np.ndarray | None = None,
    crop: tuple[int, int, int, int] | None = None,
    layout: str = "side_by_side",
    watermark: str = "Demo Vein Clinic",
    watermark_opacity: float = 0.35,
    blur_boxes: Sequence[BlurBox] = (),
    colour: str = "shared_levels",
    half_max_side_px: int = 900,
    check_faces: bool = True,
) -> np.ndarray:
    """Build the labelled, watermarked before/after composite of one pair.

    Both halves get exactly the same crop, zoom, blur boxes, colour processing and
    watermark; only the pixels of the two photos differ.

    Parameters
    ----------
    before : Photo or ndarray, shape (H, W, 3), dtype uint8
        Baseline photo.
    after_aligned : Photo or ndarray, shape (H, W, 3), dtype uint8
        Follow-up already warped into the baseline frame (``Registration.warped``).
    weeks, sessions : int
        Shown in the after label.
    valid : ndarray, shape (H, W), dtype bool, optional
        Pixels seen in both photos (``Registration.valid``). The default crop is the
        largest rectangle inside it.
    crop : (x, y, width, height), optional
        Crop in baseline px; overrides the automatic crop. Pixels outside ``valid``
        are painted grey in both halves.
    layout : {"side_by_side", "stacked"}
    watermark : str
        Watermark text (non-empty).
    watermark_opacity : float
        In (0, 1].
    blur_boxes : sequence of BlurBox
        Areas (baseline px) to hide in both halves.
    colour : {"shared_levels", "none"}
        ``"shared_levels"``: one brightness/contrast stretch computed from both halves
        together and applied to both; ``"none"``: pixels as taken.
    half_max_side_px : int
        Longer side of each half after zoom, px (photos are never enlarged).
    check_faces : bool
        Refuse the composite if a face is detected in either half.

    Returns
    -------
    ndarray, shape (H', W', 3), dtype uint8

    Raises
    ------
    ValueError
        Bad shapes or options.
    PhotoError
        A face is visible in the pair.
    """
    b = as_rgb(before)
    a = as_rgb(after_aligned)
    if a.shape != b.shape:
        raise ValueError(
            f"after_aligned must be warped into the baseline frame ({b.shape}), got {a.shape}; "
            "use Registration.warped"
        )
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if colour not in COLOUR_MODES:
        raise ValueError(f"colour must be one of {COLOUR_MODES}, got {colour!r}")
    if half_max_side_px < 64:
        raise ValueError(f"half_max_side_px must be >= 64, got {half_max_side_px}")
    _check_watermark(watermark, watermark_opacity)
    label_after = after_label(weeks, sessions)
    h, w = b.shape[:2]
    if valid is not None and (valid.shape != (h, w) or valid.dtype != bool):
        raise ValueError(f"valid must be a ({h}, {w}) bool array, got {valid.shape} {valid.dtype}")
    if crop is None:
        crop = largest_valid_rectangle(valid) if valid is not None else (0, 0, w, h)
    _check_box(crop, (h, w), "crop")
    for box in blur_boxes:
        if not isinstance(box, BlurBox):
            raise ValueError(f"blur_boxes must hold BlurBox items, got {type(box).__name__}")

    halves = []
    for img in (b, a):
        img = apply_blur_boxes(img, blur_boxes)
        if valid is not None:
            img = np.where(valid[..., None], img, np.uint8(_FILL_GREY))
        x, y, cw, ch = crop
        halves.append(np.ascontiguousarray(img[y : y + ch, x : x + cw]))

    if check_faces:
        for name, half in zip(("before", "after"), halves, strict=True):
            faces = detect_faces(half)
            if faces:
                fx, fy, fw, fh = faces[0]
                raise PhotoError(
                    f"A face is visible in the {name} photo of this pair (near x={fx + crop[0]}, "
                    f"y={fy + crop[1]}, {fw}×{fh} px in the baseline frame); it cannot be "
                    "exported. Draw a blur box over it or choose another pair."
                )

    if colour == "shared_levels":
        gain, offset = shared_levels(halves[0], halves[1])
        halves = [_apply_levels(hv, gain, offset) for hv in halves]

    cw, ch = halves[0].shape[1], halves[0].shape[0]
    zoom = min(1.0, half_max_side_px / max(cw, ch))  # never upscale: no invented detail
    size = (max(1, round(cw * zoom)), max(1, round(ch * zoom)))
    resample = Image.Resampling.LANCZOS if zoom < 1 else Image.Resampling.BICUBIC
    halves = [np.asarray(Image.fromarray(hv).resize(size, resample)) for hv in halves]
    halves = [add_watermark(hv, watermark, opacity=watermark_opacity) for hv in halves]

    label_h = max(24, size[1] // 12)
    panels = [
        np.concatenate([_label_strip(text, size[0], label_h), hv], axis=0)
        for text, hv in zip(("Before", label_after), halves, strict=True)
    ]
    gap = max(4, size[0] // 100)
    if layout == "side_by_side":
        sep = np.full((panels[0].shape[0], gap, 3), 255, np.uint8)
        return np.concatenate([panels[0], sep, panels[1]], axis=1)
    sep = np.full((gap, panels[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([panels[0], sep, panels[1]], axis=0)


# --------------------------------------------------------------------------- packaging


def write_manifest(rows: Iterable[ManifestRow]) -> bytes:
    """``manifest.csv`` as UTF-8 bytes, header :data:`MANIFEST_COLUMNS`, one row per pair."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        d = row.to_dict()
        d["improvement_pct"] = "" if d["improvement_pct"] is None else f"{d['improvement_pct']:.1f}"
        d["weeks"] = f"{float(d['weeks']):.1f}"
        writer.writerow(d)
    return buf.getvalue().encode("utf-8")


def read_manifest(data: bytes) -> list[dict[str, str]]:
    """Parse ``manifest.csv`` bytes back into one dict per row (for checks and tests)."""
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def build_zip(images: dict[str, bytes], manifest_csv: bytes) -> bytes:
    """ZIP with ``images/<name>`` entries and ``manifest.csv``; fixed timestamps, no comment."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in images.items():
            if "/" in name or "\\" in name or name.startswith("."):
                raise ValueError(f"image name must be a bare file name, got {name!r}")
            info = zipfile.ZipInfo(f"images/{name}", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED  # JPEG is already compressed
            zf.writestr(info, data)
        info = zipfile.ZipInfo("manifest.csv", date_time=_ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, manifest_csv)
    return buf.getvalue()


def encode_composite(composite: np.ndarray, *, quality: int = 92) -> bytes:
    """JPEG bytes of a composite with no metadata at all (pixels only)."""
    return encode_image(composite, format="JPEG", quality=quality)


# --------------------------------------------------------------------------- repository


@dataclass(frozen=True)
class SkippedPair:
    """A chosen pair left out of the export, and why (no client data).

    ``label`` names the pair for the page (body site and weeks); ``key`` is
    :func:`pair_key` (record numbers: for the clinic's own screens, never exported).
    """

    label: str
    key: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class ExportResult:
    """What :func:`run_export` produced.

    Attributes
    ----------
    zip_bytes : bytes
        The ZIP: ``images/<random id>.jpg`` and ``manifest.csv``.
    rows : tuple of ManifestRow
        One per exported pair, as in the manifest.
    skipped : tuple of SkippedPair
        Chosen pairs left out (consent no longer valid, face in frame, not aligned).
    channel : str
    """

    zip_bytes: bytes
    rows: tuple[ManifestRow, ...]
    skipped: tuple[SkippedPair, ...]
    channel: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "exported": [r.to_dict() for r in self.rows],
            "skipped": [s.to_dict() for s in self.skipped],
            "zip_size_bytes": len(self.zip_bytes),
        }


def pair_key(pair: MarketingPair) -> str:
    """Stable key of a pair in one listing: ``"<baseline photo id>-<follow-up photo id>"``
    (record numbers: for the clinic's screens and options, never written to an export)."""
    return f"{pair.baseline_photo_id}-{pair.followup_photo_id}"


def pair_label(pair: MarketingPair) -> str:
    """A pair in words for the marketing page: body site, weeks and sessions (no ids)."""
    sessions = max(0, pair.session_count - 1)
    return (
        f"{pair.area_label} · {pair.weeks:g} weeks · {sessions} "
        f"session{'' if sessions == 1 else 's'}"
    )


def _check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")


def list_exportable_pairs(
    repo: Repository,
    actor: Actor,
    *,
    channel: str,
    min_improvement: float | None = None,
    area: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    latest_only: bool = False,
) -> list[MarketingPair]:
    """Pairs the actor may export to ``channel`` today (marketing or admin accounts).

    Only pairs whose client holds a marketing consent valid today for ``channel``
    are listed (the repository decides).

    Parameters
    ----------
    channel : {"website", "social", "print"}
    min_improvement : float, optional
        Keep analysed pairs at or above this improvement, percent.
    area : str, optional
        A body region (``"thigh"``, ``"knee"``, ``"calf"``) or any part of the area
        label, e.g. ``"left calf"`` (case-insensitive).
    date_from, date_to : date, optional
        Bounds (inclusive) on the date of the after photo.
    latest_only : bool
        Keep only the newest after photo per area.
    """
    _check_channel(channel)
    if min_improvement is not None and not math.isfinite(min_improvement):
        raise ValueError(f"min_improvement must be a finite percent, got {min_improvement}")
    if date_from is not None and date_to is not None and date_from > date_to:
        raise ValueError(f"date_from ({date_from}) must not be after date_to ({date_to})")
    region = area.strip().lower() if area and area.strip().lower() in REGIONS else None
    pairs = repo.list_marketing_pairs(
        actor,
        channel,
        region=region,
        min_improvement=min_improvement,
        since=date_from,
        until=date_to,
        latest_only=latest_only,
    )
    if area and region is None:
        needle = " ".join(area.lower().split())
        pairs = [p for p in pairs if needle in p.area_label.lower()]
    return pairs


def _grade(improvement: float | None) -> str:
    if improvement is None or not math.isfinite(improvement):
        return ""
    from .outcome import grade_for

    return str(grade_for(improvement))


def _pair_composite(
    repo: Repository,
    actor: Actor,
    pair: MarketingPair,
    *,
    channel: str,
    layout: str,
    watermark: str,
    watermark_opacity: float,
    blur_boxes: Sequence[BlurBox],
    crop: tuple[int, int, int, int] | None,
    colour: str,
    half_max_side_px: int,
) -> np.ndarray:
    from .errors import RegistrationError
    from .registration import register

    # Reading with the channel makes the repository check the consent once more.
    before = repo.load_photo(actor, pair.baseline_photo_id, channel=channel)
    after = repo.load_photo(actor, pair.followup_photo_id, channel=channel)
    if (before.sha256, after.sha256) != (pair.baseline_sha256, pair.followup_sha256):
        raise PhotoError("A photo of this pair changed since it was listed: list the pairs again.")
    reg = register(before, after)
    if not reg.ok:
        raise RegistrationError(f"The pair could not be aligned: {reg.reason}")
    return compose_pair(
        before,
        reg.warped,
        valid=reg.valid,
        weeks=round(pair.weeks),
        sessions=max(0, pair.session_count - 1),
        layout=layout,
        watermark=watermark,
        watermark_opacity=watermark_opacity,
        blur_boxes=blur_boxes,
        crop=crop,
        colour=colour,
        half_max_side_px=half_max_side_px,
    )


@dataclass(frozen=True, eq=False)
class PairHalves:
    """A listed pair's two halves as the export crops them, for the blur-box tool.

    Attributes
    ----------
    before, after : ndarray, shape (h, w, 3), dtype uint8
        The crop of the baseline and of the aligned follow-up (outside the overlap grey).
    crop : (x, y, width, height)
        Where the crop sits in the baseline photo, px: a box drawn at (bx, by) on a half
        is :class:`BlurBox` ``(crop[0] + bx, crop[1] + by, ...)``.
    faces : tuple of (x, y, width, height)
        Faces the check finds in either half, in the halves' px (boxes to start from).
    """

    before: np.ndarray
    after: np.ndarray
    crop: tuple[int, int, int, int]
    faces: tuple[tuple[int, int, int, int], ...]


def pair_halves(repo: Repository, actor: Actor, pair: MarketingPair) -> PairHalves:
    """The pair's halves as :func:`run_export` would crop them, and any face found.

    Re-checks the consent (through the repository's read of each photo).

    Raises
    ------
    RegistrationError
        The pair does not align.
    """
    from .errors import RegistrationError
    from .registration import register

    before = repo.load_photo(actor, pair.baseline_photo_id, channel=pair.channel)
    after = repo.load_photo(actor, pair.followup_photo_id, channel=pair.channel)
    reg = register(before, after)
    if not reg.ok:
        raise RegistrationError(f"The pair could not be aligned: {reg.reason}")
    crop = largest_valid_rectangle(reg.valid)
    x, y, cw, ch = crop
    halves = []
    for img in (as_rgb(before), reg.warped):
        masked = np.where(reg.valid[..., None], img, np.uint8(_FILL_GREY))
        halves.append(np.ascontiguousarray(masked[y : y + ch, x : x + cw]))
    faces = detect_faces(halves[0]) + detect_faces(halves[1])
    return PairHalves(before=halves[0], after=halves[1], crop=crop, faces=faces)


def preview_pair(
    repo: Repository,
    actor: Actor,
    pair: MarketingPair,
    *,
    watermark: str | None = None,
    watermark_opacity: float = 0.35,
    layout: str = "side_by_side",
    colour: str = "shared_levels",
    blur_boxes: Sequence[BlurBox] = (),
    crop: tuple[int, int, int, int] | None = None,
    half_max_side_px: int = 800,
) -> np.ndarray:
    """The composite of one listed pair, exactly as the export would make it (for a page).

    Re-checks the pair's consent first. Nothing is written or audited as an export
    (the repository audits the photo reads).

    Returns
    -------
    ndarray, shape (H, W, 3), dtype uint8

    Raises
    ------
    ConsentError
        The consent is no longer valid for the pair's channel.
    PhotoError
        A face is visible (draw a blur box), or a photo changed.
    RegistrationError
        The pair does not align.
    """
    from .errors import ConsentError

    if not repo.recheck_marketing_pairs(actor, [pair]):
        raise ConsentError(
            f"The marketing consent for this pair is no longer valid for {pair.channel}."
        )
    text = repo.settings.clinic_name if watermark is None else watermark
    _check_watermark(text, watermark_opacity)
    return _pair_composite(
        repo,
        actor,
        pair,
        channel=pair.channel,
        layout=layout,
        watermark=text,
        watermark_opacity=watermark_opacity,
        blur_boxes=blur_boxes,
        crop=crop,
        colour=colour,
        half_max_side_px=half_max_side_px,
    )


def run_export(
    repo: Repository,
    actor: Actor,
    pairs: Sequence[MarketingPair | str] | None = None,
    *,
    channel: str,
    min_improvement: float | None = None,
    area: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    watermark: str | None = None,
    watermark_opacity: float = 0.35,
    layout: str = "side_by_side",
    colour: str = "shared_levels",
    blur_boxes: Mapping[str, Sequence[BlurBox]] | None = None,
    crops: Mapping[str, tuple[int, int, int, int]] | None = None,
    half_max_side_px: int = 1200,
    filename: str = "pairs.zip",
) -> ExportResult:
    """Export consented before/after pairs as a de-identified ZIP, and audit it.

    Consent is checked when the pairs are chosen, again right before each pair's
    photos are read, and a last time in the transaction that writes the audit
    events; a pair whose consent was revoked or expired in between is left out.

    Parameters
    ----------
    repo : Repository
    actor : Actor
        A marketing or admin account.
    channel : {"website", "social", "print"}
    pairs : sequence of MarketingPair or str, optional
        The pairs chosen (from :func:`list_exportable_pairs`, or their
        :func:`pair_key`). Default: every pair the filters list.
    min_improvement, area, date_from, date_to
        Filters, as in :func:`list_exportable_pairs` (used when ``pairs`` is None or
        given as keys).
    watermark : str, optional
        Watermark text; default the clinic's name (``VEIN_TRACKER_CLINIC_NAME``).
    watermark_opacity : float
        In (0, 1].
    layout : {"side_by_side", "stacked"}
    colour : {"shared_levels", "none"}
        See :func:`compose_pair`.
    blur_boxes : mapping of pair key to sequence of BlurBox, optional
        Boxes drawn by the user per pair, in baseline pixels.
    crops : mapping of pair key to (x, y, width, height), optional
        A crop per pair in baseline pixels (default: the largest rectangle seen in
        both photos).
    half_max_side_px : int
        Longer side of each half of a composite, px.
    filename : str
        Name given to the ZIP (recorded in the audit log).

    Returns
    -------
    ExportResult

    Raises
    ------
    AccessDenied
        The policy does not let the actor export marketing pairs.
    ValueError
        Bad options.
    """
    from . import policy
    from .errors import AccessDenied, ConsentError, RegistrationError, StorageError

    _check_channel(channel)
    try:
        policy.require(actor, policy.Action.EXPORT_MARKETING)
    except AccessDenied as exc:
        repo.log_refusal(actor, "export", reason=str(exc), detail={"channel": channel})
        raise
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if colour not in COLOUR_MODES:
        raise ValueError(f"colour must be one of {COLOUR_MODES}, got {colour!r}")
    text = repo.settings.clinic_name if watermark is None else watermark
    _check_watermark(text, watermark_opacity)
    boxes = dict(blur_boxes or {})
    crop_map = dict(crops or {})

    listed: list[MarketingPair] | None = None
    if pairs is None or any(isinstance(p, str) for p in pairs):
        listed = list_exportable_pairs(
            repo,
            actor,
            channel=channel,
            min_improvement=min_improvement,
            area=area,
            date_from=date_from,
            date_to=date_to,
        )
    chosen: list[MarketingPair] = []
    skipped: list[SkippedPair] = []
    if pairs is None:
        chosen = list(listed or [])
    else:
        by_key = {pair_key(p): p for p in listed or []}
        for item in pairs:
            if isinstance(item, str):
                found = by_key.get(item)
                if found is None:
                    skipped.append(
                        SkippedPair("pair not listed", item, "not available for this channel today")
                    )
                    continue
                chosen.append(found)
            else:
                if item.channel != channel:
                    raise ValueError(
                        f"pair {pair_key(item)} was listed for {item.channel!r}, not {channel!r}: "
                        "list the pairs again for this channel"
                    )
                chosen.append(item)

    # Re-check now: a revocation since the pairs were chosen removes them.
    still = {pair_key(p) for p in repo.recheck_marketing_pairs(actor, chosen)}
    public_ids = repo.export_public_ids(actor, chosen)
    images: dict[str, bytes] = {}
    rows: list[ManifestRow] = []
    exported: list[MarketingPair] = []

    def leave_out(pair: MarketingPair, reason: str) -> None:
        # Every pair left out is a refusal: audited with who, which pair and why.
        skipped.append(SkippedPair(pair_label(pair), pair_key(pair), reason))
        repo.log_refusal(
            actor,
            "export",
            reason=reason,
            client_id=pair.client_id,
            target=("area", pair.area_id),
            detail={
                "channel": channel,
                "photos": [pair.baseline_photo_id, pair.followup_photo_id],
            },
        )

    for pair in chosen:
        key = pair_key(pair)
        if key not in still:
            leave_out(pair, "marketing consent no longer valid")
            continue
        try:
            comp = _pair_composite(
                repo,
                actor,
                pair,
                channel=channel,
                layout=layout,
                watermark=text,
                watermark_opacity=watermark_opacity,
                blur_boxes=boxes.get(key, ()),
                crop=crop_map.get(key),
                colour=colour,
                half_max_side_px=half_max_side_px,
            )
        except (ConsentError, AccessDenied):
            leave_out(pair, "marketing consent no longer valid")
            continue
        except (PhotoError, RegistrationError, StorageError) as exc:
            leave_out(pair, str(exc))
            continue
        jpeg = encode_composite(comp)
        name = f"{public_ids[key]}.jpg"
        images[name] = jpeg
        exported.append(pair)
        rows.append(
            ManifestRow(
                pair_id=public_ids[key],
                file=f"images/{name}",
                channel=channel,
                area=pair.area_label,
                sessions=max(0, pair.session_count - 1),
                weeks=float(pair.weeks),
                improvement_pct=pair.improvement_pct,
                grade=_grade(pair.improvement_pct),
                algorithm_version=pair.algorithm_version or ALGORITHM_VERSION,
            )
        )

    # The audit transaction re-checks every consent; a revocation that landed while the
    # composites were made drops the pair here, before any byte leaves.
    for _ in range(len(exported) + 1):
        try:
            # No digest of the composite is kept: the ZIP's files must not hash to a record.
            repo.record_export(actor, exported, channel=channel, filename=filename)
            break
        except ConsentError:
            keep = {pair_key(p) for p in repo.recheck_marketing_pairs(actor, exported)}
            kept_rows, kept_pairs = [], []
            for p, r in zip(exported, rows, strict=True):
                if pair_key(p) in keep:
                    kept_pairs.append(p)
                    kept_rows.append(r)
                else:
                    leave_out(p, "marketing consent no longer valid")
                    images.pop(r.file.removeprefix("images/"), None)
            exported, rows = kept_pairs, kept_rows
    else:  # pragma: no cover - each retry removes at least one pair
        raise ConsentError("Consents kept changing during the export: please export again.")

    # The private mapping (published id -> records) stays in the database.
    repo.record_exported_pairs(actor, exported, channel=channel, public_ids=public_ids)
    blob = build_zip(images, write_manifest(rows))
    return ExportResult(zip_bytes=blob, rows=tuple(rows), skipped=tuple(skipped), channel=channel)


def export_pairs(
    repo: Repository,
    actor: Actor,
    *,
    channel: str,
    min_improvement: float | None = None,
    area: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    pairs: Sequence[MarketingPair | str] | None = None,
    watermark: str | None = None,
    watermark_opacity: float = 0.35,
    layout: str = "side_by_side",
    colour: str = "shared_levels",
    blur_boxes: Mapping[str, Sequence[BlurBox]] | None = None,
    crops: Mapping[str, tuple[int, int, int, int]] | None = None,
) -> bytes:
    """The ZIP bytes of :func:`run_export` (same arguments): the page hook of the UI."""
    return run_export(
        repo,
        actor,
        channel=channel,
        pairs=pairs,
        min_improvement=min_improvement,
        area=area,
        date_from=date_from,
        date_to=date_to,
        watermark=watermark,
        watermark_opacity=watermark_opacity,
        layout=layout,
        colour=colour,
        blur_boxes=blur_boxes,
        crops=crops,
    ).zip_bytes
