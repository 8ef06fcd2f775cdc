"""The export's image treatment: one composite of a before/after pair.

Owns what happens to the pixels of a pair before they leave the clinic: the crop of
the area seen in both photos, blur boxes, the no-face refusal (:mod:`.faces`), one
brightness/contrast stretch shared by both halves, the zoom, the labels and the
watermark, then the two halves side by side or stacked (:func:`compose_pair`). Works on
arrays only: it never reads records, never writes a file and never decides which pairs
are exported (:mod:`vein_tracker.export` does).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import PhotoError
from ..io import Photo, as_rgb
from .faces import detect_faces

__all__ = [
    "COLOUR_MODES",
    "LAYOUTS",
    "BlurBox",
    "add_watermark",
    "after_label",
    "apply_blur_boxes",
    "compose_pair",
    "cropped_halves",
    "largest_valid_rectangle",
    "shared_levels",
]

#: Composite layouts.
LAYOUTS = ("side_by_side", "stacked")
#: Colour processing of the composite, applied identically to both halves.
COLOUR_MODES = ("shared_levels", "none")

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


# --------------------------------------------------------------------------- labels and watermark


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


# --------------------------------------------------------------------------- the composite


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
    _check_options(b, a, layout=layout, colour=colour, half_max_side_px=half_max_side_px)
    _check_watermark(watermark, watermark_opacity)
    label_after = after_label(weeks, sessions)
    crop = _checked_crop(crop, valid=valid, shape=(b.shape[0], b.shape[1]))
    _check_blur_boxes(blur_boxes)

    halves = cropped_halves(b, a, valid=valid, crop=crop, blur_boxes=blur_boxes)
    if check_faces:
        _refuse_faces(halves, crop)
    if colour == "shared_levels":
        gain, offset = shared_levels(halves[0], halves[1])
        halves = [_apply_levels(hv, gain, offset) for hv in halves]
    halves = _zoomed(halves, half_max_side_px=half_max_side_px)
    halves = [add_watermark(hv, watermark, opacity=watermark_opacity) for hv in halves]
    return _labelled_and_joined(halves, ("Before", label_after), layout=layout)


def _check_options(
    b: np.ndarray, a: np.ndarray, *, layout: str, colour: str, half_max_side_px: int
) -> None:
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


def _checked_crop(
    crop: tuple[int, int, int, int] | None, *, valid: np.ndarray | None, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The crop asked for, or the largest rectangle seen in both photos (or the whole)."""
    h, w = shape
    if valid is not None and (valid.shape != (h, w) or valid.dtype != bool):
        raise ValueError(f"valid must be a ({h}, {w}) bool array, got {valid.shape} {valid.dtype}")
    if crop is None:
        crop = largest_valid_rectangle(valid) if valid is not None else (0, 0, w, h)
    _check_box(crop, (h, w), "crop")
    return crop


def _check_blur_boxes(blur_boxes: Sequence[BlurBox]) -> None:
    for box in blur_boxes:
        if not isinstance(box, BlurBox):
            raise ValueError(f"blur_boxes must hold BlurBox items, got {type(box).__name__}")


def cropped_halves(
    before: np.ndarray,
    after_aligned: np.ndarray,
    *,
    valid: np.ndarray | None,
    crop: tuple[int, int, int, int],
    blur_boxes: Sequence[BlurBox] = (),
) -> list[np.ndarray]:
    """Both photos blurred in the same boxes, grey outside ``valid``, cut to one ``crop``.

    Parameters
    ----------
    before, after_aligned : ndarray, shape (H, W, 3), dtype uint8
        The baseline and the follow-up warped into its frame.
    valid : ndarray, shape (H, W), dtype bool, or None
        Pixels seen in both photos; None keeps every pixel.
    crop : (x, y, width, height)
        In baseline px, inside the photo.
    blur_boxes : sequence of BlurBox

    Returns
    -------
    list of two ndarrays, shape (height, width, 3), dtype uint8
        The before half and the after half.
    """
    halves = []
    for img in (before, after_aligned):
        img = apply_blur_boxes(img, blur_boxes)
        if valid is not None:
            img = np.where(valid[..., None], img, np.uint8(_FILL_GREY))
        x, y, cw, ch = crop
        halves.append(np.ascontiguousarray(img[y : y + ch, x : x + cw]))
    return halves


def _refuse_faces(halves: Sequence[np.ndarray], crop: tuple[int, int, int, int]) -> None:
    """Raise :class:`PhotoError` when a face is found in either half (its place in the
    baseline frame in the message, so the user can draw a blur box over it)."""
    for name, half in zip(("before", "after"), halves, strict=True):
        faces = detect_faces(half)
        if faces:
            fx, fy, fw, fh = faces[0]
            raise PhotoError(
                f"A face is visible in the {name} photo of this pair (near x={fx + crop[0]}, "
                f"y={fy + crop[1]}, {fw}×{fh} px in the baseline frame); it cannot be "
                "exported. Draw a blur box over it or choose another pair."
            )


def _zoomed(halves: Sequence[np.ndarray], *, half_max_side_px: int) -> list[np.ndarray]:
    """Both halves at one size, the longer side at most ``half_max_side_px``."""
    cw, ch = halves[0].shape[1], halves[0].shape[0]
    zoom = min(1.0, half_max_side_px / max(cw, ch))  # never upscale: no invented detail
    size = (max(1, round(cw * zoom)), max(1, round(ch * zoom)))
    resample = Image.Resampling.LANCZOS if zoom < 1 else Image.Resampling.BICUBIC
    return [np.asarray(Image.fromarray(hv).resize(size, resample)) for hv in halves]


def _labelled_and_joined(
    halves: Sequence[np.ndarray], labels: Sequence[str], *, layout: str
) -> np.ndarray:
    """Each half under its label strip, the two panels apart by a white gap."""
    h, w = halves[0].shape[:2]
    label_h = max(24, h // 12)
    panels = [
        np.concatenate([_label_strip(text, w, label_h), hv], axis=0)
        for text, hv in zip(labels, halves, strict=True)
    ]
    gap = max(4, w // 100)
    if layout == "side_by_side":
        sep = np.full((panels[0].shape[0], gap, 3), 255, np.uint8)
        return np.concatenate([panels[0], sep, panels[1]], axis=1)
    sep = np.full((gap, panels[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([panels[0], sep, panels[1]], axis=0)
