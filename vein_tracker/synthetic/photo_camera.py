"""Lights and cameras of the photo-like phantoms.

Lighting (:class:`Lighting`): a key light with soft skin shading (a wrapped Lambert term,
wider in red: light scattered under the skin makes shadow edges warm), an ambient term
of its own colour (bluish ambient under a warm key turns shadows blue), a back light that
rims one outline, a specular lobe broken up by the skin's gloss texture, and cast shadows.

Camera (:func:`develop`): vignetting, lateral chromatic aberration (colour fringes at the
leg outlines), optical blur, exposure, white balance and a colour cast (tungsten,
fluorescent green, LED blue, shade), shot and read noise with demosaic-like chroma
blotches, the phone's S-shaped tone curve, chroma denoising, unsharp-mask sharpening (the
light and dark halo along every edge), a watermark, and JPEG with 4:2:0 chroma.

This module lights and develops images; it does not build scenes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import cv2
import numpy as np

from vein_tracker.synthetic._checks import _check_nonneg, _check_range, _check_shape, _rng
from vein_tracker.synthetic._model import Capture, _frozen_array
from vein_tracker.synthetic._photo_model import CASTS, Lighting, PhotoCapture, Watermark
from vein_tracker.synthetic.camera import identity_capture, random_capture

#: Linear gains of each colour cast (what the phone's white balance left uncorrected).
CAST_GAINS: dict[str, tuple[float, float, float]] = {
    "none": (1.0, 1.0, 1.0),
    "tungsten": (1.30, 1.0, 0.60),
    "fluorescent": (0.90, 1.15, 0.72),
    "led-blue": (0.80, 0.96, 1.32),
    "daylight-shade": (0.90, 1.0, 1.16),
}

_WATERMARK_TEXTS = (
    "CONFIDENTIAL - CLINIC USE ONLY",
    "Vein Clinic (c) 2024",
    "PATIENT PHOTO - DO NOT COPY",
    "BEFORE",
    "AFTER",
)


def _unit(v: Sequence[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return (a / np.linalg.norm(a)).astype(np.float32)


def random_lighting(seed: int, *, rim: bool | None = None, mixed: bool | None = None) -> Lighting:
    """Lights of a clinic or home photo: key from the front-top and a side, maybe a rim.

    Parameters
    ----------
    seed : int
        Non-negative seed.
    rim : bool, optional
        Force a back light on one outline (default: drawn, half the time).
    mixed : bool, optional
        Force an ambient colour unlike the key's (default: drawn, a third of the time).
    """
    rng = _rng(seed, 0x11647)
    az = float(rng.uniform(-1.1, 1.1))
    el = float(rng.uniform(0.15, 0.6))
    key = _unit([math.sin(az) * 1.3, -el, 1.0])
    has_rim = bool(rng.random() < 0.5) if rim is None else rim
    is_mixed = bool(rng.random() < 0.33) if mixed is None else mixed
    amb = (1.0, 1.0, 1.0)
    if is_mixed:
        amb = (0.85, 0.97, 1.2) if rng.random() < 0.6 else (1.15, 1.0, 0.82)
    return Lighting(
        key=key,
        key_gain=float(rng.uniform(0.75, 1.0)),
        key_colour=_frozen_array([1.0, 1.0, 1.0], np.float32),
        ambient=float(rng.uniform(0.08, 0.25)),
        ambient_colour=_frozen_array(amb, np.float32),
        rim_side=float(rng.choice([-1.0, 1.0])) if has_rim else 0.0,
        rim_gain=float(rng.uniform(0.25, 0.6)) if has_rim else 0.0,
        rim_colour=_frozen_array([1.0, 0.98, 0.95], np.float32),
        specular=float(rng.uniform(0.02, 0.09)),
        shininess=float(rng.uniform(12.0, 40.0)),
        shadow_mm=(float(-key[0] / key[2] * 0.9), float(-key[1] / key[2] * 0.9)),
        shadow_soft=float(rng.uniform(0.04, 0.12)),
    )


def vary_lighting(lighting: Lighting, seed: int, *, strength: float = 1.0) -> Lighting:
    """The same room's lights at another visit: key turned up to ~15°, gains ±20 %."""
    s = _check_nonneg(strength, "strength", 3.0)
    rng = _rng(seed, 0x11648)
    rot = rng.normal(0.0, 0.12 * s, 2)
    key = np.asarray(lighting.key, dtype=np.float64)
    key = key + np.array([rot[0], rot[1], 0.0])
    key = _unit(key.tolist())
    return Lighting(
        key=key,
        key_gain=float(lighting.key_gain * (1.0 + rng.uniform(-0.2, 0.2) * s)),
        key_colour=lighting.key_colour,
        ambient=float(lighting.ambient * (1.0 + rng.uniform(-0.25, 0.25) * s)),
        ambient_colour=lighting.ambient_colour,
        rim_side=lighting.rim_side,
        rim_gain=float(lighting.rim_gain * (1.0 + rng.uniform(-0.4, 0.4) * s)),
        rim_colour=lighting.rim_colour,
        specular=float(lighting.specular * (1.0 + rng.uniform(-0.3, 0.3) * s)),
        shininess=lighting.shininess,
        shadow_mm=(float(-key[0] / key[2] * 0.9), float(-key[1] / key[2] * 0.9)),
        shadow_soft=lighting.shadow_soft,
    )


def photo_capture(
    seed: int,
    *,
    shape: tuple[int, int],
    lighting: Lighting,
    cast: str = "none",
    identity: bool = False,
    rotation_deg: float = 7.0,
    scale: float = 0.08,
    translate: float = 0.04,
    perspective: float = 0.0004,
    bend_px: float = 0.0,
    jpeg_quality: int | tuple[int, int] = (72, 94),
    watermark: bool = False,
) -> PhotoCapture:
    """A phone photo's capture: pose (identity for a baseline), light, cast and camera.

    Parameters
    ----------
    seed : int
        Non-negative seed of everything drawn here.
    shape : (int, int)
        Photo (H, W) px.
    lighting : Lighting
        The lights (see :func:`random_lighting`, :func:`vary_lighting`).
    cast : str
        One of :data:`CASTS`; its gains are jittered by ±4 %.
    identity : bool
        Pixel-aligned with the baseline frame (a baseline photo).
    rotation_deg, scale, translate, perspective, bend_px
        Pose change ranges, as in :func:`random_capture`.
    jpeg_quality : int or (int, int)
        JPEG quality or range.
    watermark : bool
        Stamp the clinic's watermark text.

    Returns
    -------
    PhotoCapture
    """
    h, w = _check_shape(shape)
    if cast not in CASTS:
        raise ValueError(f"cast must be one of {CASTS}, got {cast!r}")
    q_lo, q_hi = _check_range(jpeg_quality, "jpeg_quality", 1, 100)
    rng = _rng(seed, 0xCA3E)
    geo_seed = int(rng.integers(0, 2**31 - 1))
    if identity:
        geometry = identity_capture(
            shape=(h, w),
            exposure=float(1.0 + rng.uniform(-0.15, 0.15)),
            wb_gains=tuple(1.0 + rng.uniform(-0.05, 0.05, 3)),
            blur_sigma=float(rng.uniform(0.3, 0.8)),
            noise=float(rng.uniform(0.003, 0.010)),
            jpeg_quality=int(rng.integers(int(q_lo), int(q_hi) + 1)),
            seed=geo_seed,
        )
    else:
        geometry = random_capture(
            geo_seed,
            shape=(h, w),
            rotation_deg=rotation_deg,
            scale=scale,
            translate=translate,
            perspective=perspective,
            exposure=0.22,
            white_balance=0.06,
            blur_sigma=(0.3, 0.9),
            jpeg_quality=(int(q_lo), int(q_hi)),
            bend_px=bend_px,
            noise=(0.003, 0.012),
        )
    gains = np.asarray(CAST_GAINS[cast], dtype=np.float64) * (1.0 + rng.uniform(-0.04, 0.04, 3))
    mark = None
    if watermark:
        mark = Watermark(
            text=str(rng.choice(_WATERMARK_TEXTS)),
            alpha=float(rng.uniform(0.18, 0.4)),
            height=float(rng.uniform(0.025, 0.06)),
            tiled=bool(rng.random() < 0.6),
            grey=float(rng.choice([1.0, 0.85, 0.2])),
        )
    return PhotoCapture(
        geometry=geometry,
        lighting=lighting,
        cast=cast,
        cast_gains=_frozen_array(gains),
        vignette=float(rng.uniform(0.08, 0.35)),
        chromatic=float(rng.uniform(0.0002, 0.0012)),
        tone=float(rng.uniform(0.1, 0.45)),
        sharpen=float(rng.uniform(0.2, 0.9)),
        chroma_blur=float(rng.uniform(0.5, 1.5)),
        watermark=mark,
    )


# --------------------------------------------------------------------------------------
# Developing: scene radiance -> JPEG
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _srgb_table() -> np.ndarray:
    xs = np.arange(65536, dtype=np.float64) / 65535.0
    enc = np.where(xs <= 0.0031308, xs * 12.92, 1.055 * np.power(xs, 1 / 2.4) - 0.055)
    return enc.astype(np.float32)


def _srgb_encode(lin: np.ndarray) -> np.ndarray:
    """Linear float32 → sRGB [0, 1] float32 (16-bit table; ``lin`` is overwritten)."""
    np.clip(lin, 0.0, 1.0, out=lin)
    lin *= np.float32(65535.0)
    lin += np.float32(0.5)
    return np.take(_srgb_table(), lin.astype(np.uint16))


def watermark_mask(shape: tuple[int, int], mark: Watermark) -> np.ndarray:
    """Opacity (H, W) float32 in [0, alpha] of the watermark's text."""
    h, w = shape
    scale = mark.height * h / 22.0
    thick = max(1, int(round(scale * 1.6)))
    font = cv2.FONT_HERSHEY_DUPLEX
    if not mark.tiled:
        canvas = np.zeros((h, w), dtype=np.uint8)
        (tw, th), _ = cv2.getTextSize(mark.text, font, scale, thick)
        org = (max(4, w - tw - int(0.03 * w)), h - int(0.04 * h))
        cv2.putText(canvas, mark.text, org, font, scale, 255, thick, cv2.LINE_AA)
        cv2.putText(
            canvas,
            "2024-03-11 10:42",
            (int(0.03 * w), int(0.04 * h) + th),
            font,
            scale * 0.7,
            255,
            thick,
            cv2.LINE_AA,
        )
    else:
        d = int(math.hypot(h, w)) + 10
        big = np.zeros((d, d), dtype=np.uint8)
        (tw, th), _ = cv2.getTextSize(mark.text, font, scale, thick)
        step_y = int(th * 5)
        for row, y in enumerate(range(th, d, step_y)):
            x0 = -(row % 2) * (tw // 2)
            for x in range(x0, d, tw + int(th * 3)):
                cv2.putText(big, mark.text, (x, y), font, scale, 255, thick, cv2.LINE_AA)
        m = cv2.getRotationMatrix2D((d / 2, d / 2), 30.0, 1.0)
        m[:, 2] += np.array([w / 2 - d / 2, h / 2 - d / 2])
        canvas = np.asarray(cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_LINEAR), dtype=np.uint8)
    return canvas.astype(np.float32) * np.float32(mark.alpha / 255.0)


def develop(lin: np.ndarray, capture: PhotoCapture, blur: float) -> tuple[np.ndarray, bytes | None]:
    """Develop linear scene radiance (H, W, 3) float32 into the photo (consumes ``lin``).

    Returns the sRGB (H, W, 3) uint8 photo (decoded JPEG when a quality is set) and the
    JPEG bytes or None.
    """
    h, w, _ = lin.shape
    geo = capture.geometry
    rng = np.random.default_rng([int(geo.seed), 0x401, 7])
    if capture.vignette > 0:
        yy = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / np.float32(0.5 * math.hypot(h, w))
        xx = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / np.float32(0.5 * math.hypot(h, w))
        rr = yy[:, None] ** 2 + xx[None, :] ** 2
        lin *= (1.0 - np.float32(capture.vignette) * rr * (1.3 - 0.3 * rr))[:, :, None]
    if capture.chromatic > 0:
        for ch, k in ((0, 1.0 + capture.chromatic), (2, 1.0 - capture.chromatic)):
            c = ((w - 1) / 2.0, (h - 1) / 2.0)
            # Source of output pixel p is c + (p − c)/k: red is magnified by k.
            m = np.array([[1 / k, 0, c[0] - c[0] / k], [0, 1 / k, c[1] - c[1] / k]])
            lin[:, :, ch] = cv2.warpAffine(
                np.ascontiguousarray(lin[:, :, ch]),
                m,
                (w, h),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT,
            )
    if blur > 0.05:
        cv2.GaussianBlur(lin, (0, 0), blur, dst=lin, borderType=cv2.BORDER_REFLECT)
    gains = (
        np.asarray(geo.wb_gains, np.float64) * geo.exposure * np.asarray(capture.cast_gains)
    ).astype(np.float32)
    lin *= gains[None, None, :]
    if geo.noise > 0:
        sd = np.sqrt((np.maximum(lin, 0.0) + np.float32(0.01)) * np.float32(1.0 / 0.19))
        sd *= np.float32(geo.noise)
        luma = rng.standard_normal((h, w), dtype=np.float32)
        chroma = rng.standard_normal((h, w, 3), dtype=np.float32)
        # Demosaicing correlates colour noise over ~2 px: blotches, not single pixels.
        chroma = cv2.GaussianBlur(chroma, (0, 0), 0.9) * np.float32(1.6)
        lin += sd * (0.7 * luma[:, :, None] + 0.7 * chroma)
    y = _srgb_encode(lin)
    del lin
    if capture.tone > 0:
        y += np.float32(capture.tone) * y * (1.0 - y) * (2.0 * y - 1.0)
    np.clip(y, 0.0, 1.0, out=y)
    u8 = (y * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)
    ycc = cv2.cvtColor(u8, cv2.COLOR_RGB2YCrCb)
    if capture.chroma_blur > 0:
        for ch in (1, 2):
            ycc[:, :, ch] = cv2.GaussianBlur(ycc[:, :, ch], (0, 0), capture.chroma_blur)
    if capture.sharpen > 0:
        luma = ycc[:, :, 0].astype(np.float32)
        soft = cv2.GaussianBlur(luma, (0, 0), 1.2)
        ycc[:, :, 0] = np.clip(
            luma + np.float32(capture.sharpen) * (luma - soft) + 0.5, 0, 255
        ).astype(np.uint8)
    out = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
    if capture.watermark is not None:
        a = watermark_mask((h, w), capture.watermark)[:, :, None]
        grey = np.float32(255.0 * capture.watermark.grey)
        out = np.clip(out.astype(np.float32) * (1.0 - a) + grey * a + 0.5, 0, 255).astype(np.uint8)
    if geo.jpeg_quality is None:
        return np.ascontiguousarray(out), None
    ok, buf = cv2.imencode(
        ".jpg",
        cv2.cvtColor(out, cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, int(geo.jpeg_quality)],
    )
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise RuntimeError("JPEG encoding failed")
    data = buf.tobytes()
    dec = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if dec is None:  # pragma: no cover - decoding our own JPEG
        raise RuntimeError("JPEG decoding failed")
    return np.ascontiguousarray(cv2.cvtColor(dec, cv2.COLOR_BGR2RGB)), data


def identity_geometry(capture: PhotoCapture) -> PhotoCapture:
    """The same capture with the identity pose (for truth in the baseline frame)."""
    g = capture.geometry
    geo = Capture(
        homography=_frozen_array(np.eye(3)),
        exposure=g.exposure,
        wb_gains=g.wb_gains,
        blur_sigma=g.blur_sigma,
        noise=g.noise,
        jpeg_quality=g.jpeg_quality,
        bend_px=0.0,
        seed=g.seed,
        shape=g.shape,
    )
    return PhotoCapture(
        geometry=geo,
        lighting=capture.lighting,
        cast=capture.cast,
        cast_gains=capture.cast_gains,
        vignette=capture.vignette,
        chromatic=capture.chromatic,
        tone=capture.tone,
        sharpen=capture.sharpen,
        chroma_blur=capture.chroma_blur,
        watermark=capture.watermark,
    )
