"""Equalising the two visits' captures before their veins' contrast is compared.

Owns the image operations that put both photos on an equal footing where no colour
model can: the same 4:2:0-like chroma low-pass on both visits (:func:`chroma_lowpass`),
and a copy of the baseline brought to the follow-up's capture in the camera's order:
its extra blur, its exposure and white balance (a :class:`~.normalise.ColourFit` in
reverse), then JPEG at the follow-up's quality (:func:`estimate_jpeg_quality`, read
from its pixels) (:func:`equalise_to_followup`). JPEG's dead zone deletes a faint
vein's chroma on dark skin, and only the same loss on both sides cancels in a ratio.
It measures no contrast itself (:func:`vein_tracker.segmentation.vein_contrast` does).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..io import as_rgb
from .normalise import ColourFit, apply_linear_gain

__all__ = [
    "blur_rgb",
    "chroma_lowpass",
    "equalise_to_followup",
    "estimate_jpeg_quality",
    "gain_and_compress",
    "jpeg_round_trip",
]

#: Qualities :func:`estimate_jpeg_quality` tries, and the side of the central crop it uses, px.
_JPEG_QUALITIES = tuple(range(50, 100))
_JPEG_PROBE_PX = 256
#: A photo of at least this many pixels is compressed as two bands (:func:`gain_and_compress`).
_BANDED_FROM_PX = 4_000_000


def chroma_lowpass(rgb: np.ndarray) -> np.ndarray:
    """Low-pass the chroma of a photo as JPEG's 4:2:0 subsampling does, without quantisation.

    The photo goes to YCbCr (BT.601, as JPEG); Cb and Cr are averaged over 2x2 blocks
    (area averaging) and brought back to full size bilinearly; luma is left untouched.
    No DCT, no quantisation, hence no block edges.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        Photo, RGB.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
        A new array; the input is not modified.
    """
    rgb = as_rgb(rgb)
    h, w = rgb.shape[:2]
    # One float image, worked on in place (a 12 MP photo is 144 MB in float32).
    ycc = rgb.astype(np.float32)
    np.divide(ycc, 255.0, out=ycc)
    cv2.cvtColor(ycc, cv2.COLOR_RGB2YCrCb, dst=ycc)
    if h >= 2 and w >= 2:
        # Area reduction works per channel: reducing all three and keeping the chroma is
        # the chroma reduced, without copying it out of the interleaved image first.
        small = cv2.resize(ycc, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
        up = cv2.resize(
            np.ascontiguousarray(small[..., 1:]), (w, h), interpolation=cv2.INTER_LINEAR
        )
        # the chroma back into place (OpenCV's channel copy: NumPy's strided one is slow)
        cv2.mixChannels([up], [ycc], [0, 1, 1, 2])
    out = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB, dst=ycc)
    np.multiply(out, 255.0, out=out)
    np.rint(out, out=out)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def blur_rgb(rgb: np.ndarray, sigma_px: float) -> np.ndarray:
    """A photo blurred by a Gaussian of ``sigma_px`` (px), its kernel 3 σ each side.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    sigma_px : float
        Gaussian σ in pixels, > 0.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    k = int(2 * math.ceil(3 * sigma_px) + 1)
    return np.asarray(cv2.GaussianBlur(rgb, (k, k), sigma_px))


def jpeg_round_trip(rgb: np.ndarray, *, quality: int) -> np.ndarray:
    """Pass a photo through a standard JPEG encoder (4:2:0 chroma) and back.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    quality : int
        JPEG quality, 1-100.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
        A new array; the input is not modified.
    """
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality!r}")
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB
        return np.array(rgb, copy=True)
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB)  # RGB straight from the decoder
    if dec is None:  # pragma: no cover - decoding our own JPEG
        return np.array(rgb, copy=True)
    return np.asarray(dec)


def estimate_jpeg_quality(rgb: np.ndarray) -> int | None:
    """The JPEG quality a decoded photo was saved with, or None when it is not a JPEG.

    "JPEG ghost": a central crop aligned on JPEG's 16-pixel grid is re-encoded at each
    quality of ``_JPEG_QUALITIES``; at the photo's own quality re-encoding is nearly
    idempotent (same quantisation steps), so the mean absolute change has a sharp dip
    there. A losslessly stored photo shows no dip (the change only shrinks as the
    quality rises). Exact for encoders with the standard (IJG) tables, approximate for
    others.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        Photo, RGB, as decoded (grid at the top-left corner).

    Returns
    -------
    int or None
    """
    rgb = as_rgb(rgb)
    h, w = rgb.shape[:2]
    s = min(_JPEG_PROBE_PX, (h // 16) * 16, (w // 16) * 16)
    if s < 64:
        return None
    y0 = max(0, (h // 2 - s // 2) // 16 * 16)
    x0 = max(0, (w // 2 - s // 2) // 16 * 16)
    crop = np.ascontiguousarray(rgb[y0 : y0 + s, x0 : x0 + s, ::-1])
    err = np.empty(len(_JPEG_QUALITIES), np.float64)
    for k, q in enumerate(_JPEG_QUALITIES):
        ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(q)])
        dec = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if dec is None:  # pragma: no cover - OpenCV encodes any uint8 image
            return None
        err[k] = float(np.mean(np.abs(dec.astype(np.int16) - crop.astype(np.int16))))
    k = int(np.argmin(err))
    if k == 0 or k == len(err) - 1:
        return None
    # A dip: well below both neighbours (a lossless photo's curve falls smoothly).
    if err[k] > 0.5 * min(err[k - 1], err[k + 1]):
        return None
    return int(_JPEG_QUALITIES[k])


def gain_and_compress(
    rgb: np.ndarray, field_gain: np.ndarray | None, gains: np.ndarray, quality: int
) -> np.ndarray:
    """``rgb`` times the linear gain ``field_gain / gains`` (when given), then through JPEG
    at ``quality`` (:func:`jpeg_round_trip`).

    A photo of at least ``_BANDED_FROM_PX`` pixels is compressed as two bands of whole
    16-px JPEG block rows: the same blocks and the same quantisation as in one piece; only
    the decoder's chroma interpolation across the seam differs, so the bands are part of
    the result.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    field_gain : ndarray, shape (H, W), float32, or None
        Linear gain per pixel (None: no gain at all).
    gains : ndarray, shape (3,), float64
        The channels' gains are ``1 / gains``.
    quality : int
        JPEG quality, 1-100.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """

    def one(lo: int, hi: int) -> np.ndarray:
        part = rgb[lo:hi]
        if field_gain is not None:
            part = apply_linear_gain(part, np.ascontiguousarray(field_gain[lo:hi]), 1.0 / gains)
        return jpeg_round_trip(part, quality=quality)

    h = rgb.shape[0]
    if h * rgb.shape[1] < _BANDED_FROM_PX or h < 64:
        return one(0, h)
    mid = (h // 2) // 16 * 16
    return np.concatenate([one(0, mid), one(mid, h)])


def equalise_to_followup(
    photo: np.ndarray,
    *,
    analysis_shape: tuple[int, int],
    followup_quality: int | None,
    baseline_quality: int | None,
    blur_px: float,
    fit: ColourFit | None,
    blurred: np.ndarray | None = None,
    chroma: bool = True,
) -> np.ndarray | None:
    """The baseline as the follow-up's camera would have taken it, or None.

    In the camera's order: the blur the follow-up has in excess, the follow-up's exposure
    and white balance (``fit``, which maps the follow-up onto the baseline, in reverse),
    then JPEG at the follow-up's quality; then reduced to the analysis frame and chroma-
    low-passed as the baseline is for measuring. JPEG's loss depends on the code values
    it works on (a colour's chroma, not only its OD contrast), hence the colour first.
    With a reduced analysis frame the compression happens where the camera's did, at the
    photo's resolution.

    Parameters
    ----------
    photo : ndarray, shape (H, W, 3), uint8
        The baseline photo as loaded.
    analysis_shape : tuple of int
        ``(H, W)`` the baseline is analysed at (the photo's own when not reduced).
    followup_quality, baseline_quality : int or None
        :func:`estimate_jpeg_quality` of the two photos.
    blur_px : float
        Extra blur of the follow-up over the baseline, σ in analysis px (none at NaN or
        at most 0.3).
    fit : ColourFit or None
        The follow-up's colour fit onto the baseline (None: no colour change).
    blurred : ndarray, shape (H, W, 3), uint8, optional
        ``blur_rgb(photo, blur_px)`` when at hand (used unless the frame is reduced).
    chroma : bool
        Low-pass the chroma at the end (:func:`chroma_lowpass`), as the baseline is.

    Returns
    -------
    ndarray, shape ``analysis_shape`` + (3,), uint8, or None
        None when the follow-up is not a JPEG, or the baseline is one of the same or a
        lower quality: then nothing is to be equalised this way.
    """
    q_b, q_f = baseline_quality, followup_quality
    if q_f is None or (q_b is not None and q_b <= q_f):
        return None
    b = as_rgb(photo)
    reduced = b.shape[:2] != tuple(analysis_shape)
    # the analysis frame's scale, as AnalysisFrame.scale computes it
    scale = 0.5 * (analysis_shape[0] / b.shape[0] + analysis_shape[1] / b.shape[1])
    if math.isfinite(blur_px) and blur_px > 0.3:
        b = blurred if blurred is not None and not reduced else blur_rgb(b, blur_px / scale)
    gains = np.ones(3) if fit is None else np.asarray(fit.gains, dtype=np.float64).reshape(-1)
    field_gain: np.ndarray | None = None
    if fit is not None and np.all(gains > 0) and not np.allclose(gains, 1.0):
        field_gain = np.exp(-fit.field.astype(np.float32))
        if field_gain.shape != b.shape[:2]:
            field_gain = cv2.resize(
                field_gain, (b.shape[1], b.shape[0]), interpolation=cv2.INTER_LINEAR
            )
    b = gain_and_compress(b, field_gain, gains, q_f)
    if reduced:
        b = np.asarray(
            cv2.resize(b, (analysis_shape[1], analysis_shape[0]), interpolation=cv2.INTER_AREA)
        )
    return chroma_lowpass(b) if chroma else b
