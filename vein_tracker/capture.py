"""Capture feedback: is this photo good enough, and how should the photographer fix it?

Owns the upload-time checks (sharpness, exposure, framing, and pose against the
area's baseline) and the wording of the advice. It measures; it must not store,
segment or score anything.

Distances in the advice are estimates. The camera distance is derived from the
frame width (from ``px_per_mm`` when the photo carries it, else the usual
treatment-area framing of about 20 cm) and a phone's main camera (horizontal
field of view about 69°, i.e. distance ≈ 0.72 × frame width).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .colour import skin_mask
from .io import Photo, as_rgb
from .optics import srgb_to_linear

__all__ = ["CaptureReport", "assess_capture"]

#: Long side (px) at which captures are assessed.
ASSESS_SIDE = 1000
#: Focus measure (fine/mid detail ratio, see registration.sharpness) below which a photo
#: is blurred; calibrated on skin phantoms at ASSESS_SIDE (sharp ≈ 0.8–1.2, blur σ 2 px
#: ≈ 0.3–0.5).
MIN_SHARPNESS = 0.45
#: A follow-up keeps at least this fraction of the baseline's fine detail.
MIN_SHARPNESS_VS_BASELINE = 0.45
#: Skin luma (sRGB, 0–1) below which the photo is too dark (brown skin under clinic
#: light is about 0.4).
MIN_SKIN_LUMA = 0.3
#: Fraction of skin pixels with a clipped channel that earns a warning...
MAX_CLIPPED = 0.05
#: ...and above which the photo must be retaken (vein contrast is lost where clipped).
MAX_CLIPPED_RETAKE = 0.25
#: Exposure difference from the baseline (EV) that earns advice.
MAX_EV_DIFF = 0.7
#: Fraction of the frame the leg should fill at least.
MIN_LEG_FRACTION = 0.25
#: Typical frame width of a treatment-area photo when the scale is unknown (cm).
DEFAULT_FRAME_WIDTH_CM = 20.0
#: Camera distance over frame width for a phone's main camera.
DISTANCE_PER_WIDTH = 0.72


@dataclass(frozen=True)
class CaptureReport:
    """Upload-time assessment of a photo.

    Attributes
    ----------
    sharpness : float
        Focus measure: fine-detail over mid-scale detail energy on skin (≈ 0.8–1.2
        sharp; below 0.45 blurred).
    exposure : float
        Median skin brightness as sRGB luma in [0, 1].
    leg_fraction : float
        Fraction of the frame that is leg, [0, 1].
    scale : float or None
        Size of the leg in this photo relative to the baseline, in frame widths
        (1 = same framing; 0.8 = leg looks 20 % smaller, camera too far). None
        without a baseline or when the photos could not be aligned.
    rotation_deg : float or None
        Rotation of the photo's content relative to the baseline, degrees,
        counter-clockwise positive on screen.
    offset_px : tuple of float or None
        ``(x, y)`` of the baseline's frame centre in this photo, relative to this
        photo's centre, px (x right, y down).
    ok : bool
        False when the photo should be retaken.
    advice : tuple of str
        Concrete instructions, most important first; empty when all is well.
    clipped_fraction : float
        Fraction of skin pixels with a saturated channel.
    exposure_ev_vs_baseline : float or None
        Exposure difference from the baseline in stops (EV), on skin.
    sharpness_vs_baseline : float or None
        ``sharpness`` over the baseline's.
    matches_baseline : bool or None
        Whether the photo could be aligned onto the baseline.
    """

    sharpness: float
    exposure: float
    leg_fraction: float
    scale: float | None
    rotation_deg: float | None
    offset_px: tuple[float, float] | None
    ok: bool
    advice: tuple[str, ...]
    clipped_fraction: float = 0.0
    exposure_ev_vs_baseline: float | None = None
    sharpness_vs_baseline: float | None = None
    matches_baseline: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""

        def f(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else round(float(v), 4)

        return {
            "sharpness": f(self.sharpness),
            "exposure": f(self.exposure),
            "leg_fraction": f(self.leg_fraction),
            "scale": f(self.scale),
            "rotation_deg": f(self.rotation_deg),
            "offset_px": None
            if self.offset_px is None
            else [round(float(self.offset_px[0]), 1), round(float(self.offset_px[1]), 1)],
            "ok": bool(self.ok),
            "advice": list(self.advice),
            "clipped_fraction": f(self.clipped_fraction),
            "exposure_ev_vs_baseline": f(self.exposure_ev_vs_baseline),
            "sharpness_vs_baseline": f(self.sharpness_vs_baseline),
            "matches_baseline": self.matches_baseline,
        }


def _small(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = min(1.0, ASSESS_SIDE / max(h, w))
    if s >= 1.0:
        return rgb
    return cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def _photometry(rgb: np.ndarray, skin: np.ndarray) -> tuple[float, float, float]:
    """Median skin luma (sRGB 0–1), clipped fraction, median linear luminance."""
    m = skin if skin.sum() > 100 else np.ones(skin.shape, bool)
    px = rgb[m]
    luma = (px @ np.array([0.299, 0.587, 0.114])) / 255.0
    clipped = float(np.mean(px.max(axis=1) >= 250))
    lin = srgb_to_linear(px) @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    return float(np.median(luma)), clipped, float(np.median(lin))


def _frame_width_cm(photo: Photo | np.ndarray, width_px: int) -> float:
    ppm = photo.px_per_mm if isinstance(photo, Photo) else None
    if ppm:
        return width_px / ppm / 10.0
    return DEFAULT_FRAME_WIDTH_CM


def _cm(x: float) -> str:
    return f"{x:.0f} cm" if x >= 1.5 else f"{x:.1f} cm"


@dataclass(frozen=True)
class _Findings:
    """What one part of the assessment found: whether the photo may be kept, and advice."""

    ok: bool = True
    advice: tuple[str, ...] = ()


def _own_checks(
    leg_fraction: float, sharp: float, luma: float, clipped: float, distance_cm: float
) -> _Findings:
    """The photo on its own: leg in view, focus, exposure, framing."""
    advice: list[str] = []
    ok = True
    luma_ok = luma >= MIN_SKIN_LUMA and clipped <= MAX_CLIPPED_RETAKE
    if leg_fraction < 0.02 and luma_ok:
        ok = False
        advice.append("No leg was found in the photo: photograph the treated area of the leg.")
    if sharp < MIN_SHARPNESS:
        ok = False
        advice.append(
            "The photo is blurred: hold the camera steady, tap the skin to focus, and retake."
        )
    if luma < MIN_SKIN_LUMA:
        ok = False
        advice.append("The photo is too dark: add light or move to the lit side of the room.")
    if clipped > MAX_CLIPPED:
        ok = ok and clipped <= MAX_CLIPPED_RETAKE
        advice.append(
            f"The photo is overexposed ({100 * clipped:.0f} % of the skin is pure white): "
            "turn the flash off or move away from the lamp."
        )
    if luma_ok and 0.02 <= leg_fraction < MIN_LEG_FRACTION:
        k = math.sqrt(0.5 / max(leg_fraction, 1e-3))
        closer = distance_cm * (1.0 - 1.0 / k)
        advice.append(
            f"The leg fills only {100 * leg_fraction:.0f} % of the frame: move the camera "
            f"about {_cm(closer)} closer."
        )
        if leg_fraction < 0.1:
            ok = False
    return _Findings(ok, tuple(advice))


@dataclass(frozen=True)
class _Pose:
    """The photo's pose against the baseline's, and how to move the camera."""

    scale: float
    rotation_deg: float
    offset_px: tuple[float, float]
    advice: tuple[str, ...]


def _pose(
    hmat: np.ndarray,
    small: np.ndarray,
    b_small: np.ndarray,
    width_px: int,
    width_cm: float,
    distance_cm: float,
) -> _Pose:
    """Leg size, rotation and offset of the photo (``small``, a reduced copy of a photo
    ``width_px`` wide) against the baseline's (``b_small``), from the homography taking
    the one onto the other, in frame widths so photos of different resolutions compare."""
    from .registration.checks import jacobian_at

    sx = small.shape[1] / width_px
    fh, fw = small.shape[:2]
    cx, cy = fw / 2.0, fh / 2.0
    jac, _ = jacobian_at(hmat, cx, cy)
    s_px = math.sqrt(abs(float(np.linalg.det(jac))))  # baseline px per follow-up px
    # Leg size in this photo relative to the baseline, in frame widths.
    scale = (fw / b_small.shape[1]) / s_px
    # The homography turns this photo clockwise (on screen, y down) by theta to
    # match the baseline, so its content is turned theta counter-clockwise.
    rotation = math.degrees(math.atan2(jac[1, 0] - jac[0, 1], jac[0, 0] + jac[1, 1]))
    bc = np.array([b_small.shape[1] / 2.0, b_small.shape[0] / 2.0, 1.0])
    fc = np.linalg.inv(hmat) @ bc
    ox, oy = fc[0] / fc[2] - cx, fc[1] / fc[2] - cy
    advice: list[str] = []
    if abs(scale - 1.0) > 0.05:
        dist = distance_cm * (1.0 / scale - 1.0)
        word = "closer" if dist > 0 else "further away"
        advice.append(
            f"The leg looks {abs(100 * (scale - 1.0)):.0f} % "
            f"{'smaller' if scale < 1 else 'larger'} than in the baseline: move the camera "
            f"about {_cm(abs(dist))} {word}."
        )
    if abs(rotation) > 3.0:
        # Content turned counter-clockwise means the camera was turned clockwise.
        turn = "counter-clockwise" if rotation > 0 else "clockwise"
        advice.append(f"Rotate the camera {abs(rotation):.0f}° {turn}.")
    dx_cm = ox / fw * width_cm
    dy_cm = oy / fw * width_cm
    moves = []
    if abs(ox) > 0.05 * fw:
        moves.append(f"{_cm(abs(dx_cm))} to the {'right' if ox > 0 else 'left'}")
    if abs(oy) > 0.05 * fh:
        moves.append(f"{_cm(abs(dy_cm))} {'down' if oy > 0 else 'up'}")
    if moves:
        advice.append("Move the camera " + " and ".join(moves) + " to match the baseline.")
    return _Pose(scale, rotation, (float(ox / sx), float(oy / sx)), tuple(advice))


@dataclass(frozen=True)
class _VsBaseline:
    """The photo against the baseline: sharpness, exposure, and whether (and how) it
    matches the baseline's framing."""

    findings: _Findings
    sharpness_ratio: float
    ev: float
    matches: bool
    pose: _Pose | None


def _against_baseline(
    baseline: Photo | np.ndarray,
    small: np.ndarray,
    sharp: float,
    luma: float,
    clipped: float,
    lin: float,
    *,
    width_px: int,
    width_cm: float,
    distance_cm: float,
) -> _VsBaseline:
    from .registration import register, sharpness

    b_small = _small(as_rgb(baseline))
    b_skin = skin_mask(b_small)
    b_sharp = sharpness(b_small, mask=b_skin if b_skin.sum() > 1000 else None)
    sharp_ratio = sharp / max(b_sharp, 1e-6)
    _, _, b_lin = _photometry(b_small, b_skin)
    ev = math.log2(max(lin, 1e-6) / max(b_lin, 1e-6))
    ok = True
    advice: list[str] = []
    if sharp >= MIN_SHARPNESS and sharp_ratio < MIN_SHARPNESS_VS_BASELINE:
        ok = False
        advice.append(
            f"The photo is less sharp than the baseline ({100 * sharp_ratio:.0f} % of its "
            "fine detail): hold the camera steady, tap the skin to focus, and retake."
        )
    if ev < -MAX_EV_DIFF and luma >= MIN_SKIN_LUMA:
        advice.append(
            f"The photo is {abs(ev):.1f} stops darker than the baseline: use the same light."
        )
    elif ev > MAX_EV_DIFF and clipped <= MAX_CLIPPED:
        advice.append(
            f"The photo is {ev:.1f} stops brighter than the baseline: use the same light."
        )
    reg = register(b_small, small, nonrigid=False)
    pose = None
    if not reg.ok:
        ok = False
        advice.append(
            "The photo could not be matched to the baseline: photograph the same area, "
            "framed like the baseline (use the ghost overlay)."
        )
    else:
        pose = _pose(reg.homography, small, b_small, width_px, width_cm, distance_cm)
        advice.extend(pose.advice)
    return _VsBaseline(_Findings(ok, tuple(advice)), sharp_ratio, ev, bool(reg.ok), pose)


def assess_capture(
    photo: Photo | np.ndarray, baseline: Photo | np.ndarray | None = None
) -> CaptureReport:
    """Check a photo at upload and say how to retake it.

    Parameters
    ----------
    photo : Photo or ndarray, shape (H, W, 3), dtype uint8
        The new photo (RGB, upright).
    baseline : Photo or ndarray, shape (h, w, 3), dtype uint8, optional
        The baseline photo of the same area; enables pose, framing and exposure
        comparisons.

    Returns
    -------
    CaptureReport
        Measurements, ``ok`` and advice such as "move the camera about 2 cm
        closer", "rotate the camera 8° clockwise" or "the photo is too dark".
    """
    from .registration import sharpness

    rgb = as_rgb(photo)
    small = _small(rgb)
    skin = skin_mask(small)
    leg_fraction = float(skin.mean())
    sharp = sharpness(small, mask=skin if skin.sum() > 1000 else None)
    luma, clipped, lin = _photometry(small, skin)
    width_cm = _frame_width_cm(photo, rgb.shape[1])
    distance_cm = DISTANCE_PER_WIDTH * width_cm
    own = _own_checks(leg_fraction, sharp, luma, clipped, distance_cm)
    vs: _VsBaseline | None = None
    if baseline is not None and luma >= MIN_SKIN_LUMA and clipped <= MAX_CLIPPED_RETAKE:
        vs = _against_baseline(
            baseline,
            small,
            sharp,
            luma,
            clipped,
            lin,
            width_px=rgb.shape[1],
            width_cm=width_cm,
            distance_cm=distance_cm,
        )
    pose = None if vs is None else vs.pose
    return CaptureReport(
        sharpness=float(sharp),
        exposure=float(luma),
        leg_fraction=leg_fraction,
        scale=None if pose is None else float(pose.scale),
        rotation_deg=None if pose is None else float(pose.rotation_deg),
        offset_px=None if pose is None else pose.offset_px,
        ok=bool(own.ok and (vs is None or vs.findings.ok)),
        advice=own.advice + (() if vs is None else vs.findings.advice),
        clipped_fraction=float(clipped),
        exposure_ev_vs_baseline=None if vs is None else float(vs.ev),
        sharpness_vs_baseline=None if vs is None else float(vs.sharpness_ratio),
        matches_baseline=None if vs is None else vs.matches,
    )
