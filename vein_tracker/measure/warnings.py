"""The warnings of a comparison, in the words a clinic acts on.

About the capture (:func:`capture_warnings`): a poor alignment, little overlap, colour
still off after normalisation, a blurrier follow-up, a large exposure or white-balance
difference. About the change itself (:func:`change_warnings`): no baseline veins,
brown (haemosiderin) or purple/yellow (bruise) discolouration along treated veins
(:func:`lookalike_warnings`), telangiectatic matting, recanalisation, negative
improvement. Nothing here changes a figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..colour import ColourNormalisation
from ..morphology import dilate_disc, dilate_disc_at, near_on_grid
from ..optics import HAEMOGLOBIN_OD, MELANIN_OD, optical_density
from ..registration import Registration
from ..smoothing import gauss
from .results import CHANGE_CLEARED, CHANGE_FADED
from .veins import VeinTable

__all__ = [
    "CAPTURE_BLUR_PX",
    "CAPTURE_MAX_GAIN",
    "capture_warnings",
    "change_warnings",
    "lookalike_step",
    "lookalike_warnings",
]

#: Capture warnings: extra blur of the follow-up (σ, px) and largest colour gain.
CAPTURE_BLUR_PX = 1.5
CAPTURE_MAX_GAIN = 1.6


def capture_warnings(
    reg: Registration, region: np.ndarray, leg_b: np.ndarray, norm: ColourNormalisation
) -> list[str]:
    """The capture's warnings: registration, overlap (``region`` against the baseline's
    leg ``leg_b``), colour left after normalisation (``norm``), blur, colour gains."""
    out: list[str] = []
    if float(reg.quality) < 0.5 or float(reg.residual_px) > 3.0:
        out.append(
            f"poor registration: alignment quality {float(reg.quality):.2f}, residual "
            f"{float(reg.residual_px):.1f} px; check the overlay and retake the photo with the "
            "baseline framing if veins do not line up"
        )
    leg_px = int(np.count_nonzero(leg_b))
    if leg_px:
        frac = np.count_nonzero(region) / leg_px
        if frac < 0.5:
            out.append(
                f"little overlap: only {100 * frac:.0f} % of the baseline leg is seen in both "
                "photos; retake the follow-up with the same framing"
            )
    de = float(norm.delta_e)
    if math.isfinite(de) and de > 6.0:
        out.append(
            f"poor capture: skin colour still differs by ΔE {de:.1f} after normalisation; "
            "use the same lighting, or a colour card"
        )
    # Capture quality from figures already measured (assess_capture is the upload-time
    # check; re-running it here would cost seconds).
    blur = float(reg.checks.followup_excess_blur_px)
    if math.isfinite(blur) and blur > CAPTURE_BLUR_PX:
        out.append(
            f"poor capture: the follow-up is blurrier than the baseline (extra blur σ "
            f"{blur:.1f} px); fine spider veins may read as faded. Hold the camera steady and "
            "focus on the skin"
        )
    gains = np.asarray(norm.gains, dtype=np.float64)
    if gains.size == 3 and np.all(gains > 0):
        worst = float(np.max(np.abs(np.log(gains))))
        if worst > math.log(CAPTURE_MAX_GAIN):
            out.append(
                f"poor capture: exposure or white balance differs from the baseline by a factor "
                f"{math.exp(worst):.2f} in one colour channel; use the same light as at baseline"
            )
    return out


def _chroma_unit(v: np.ndarray) -> np.ndarray:
    n = np.ones(3) / math.sqrt(3.0)
    c = np.asarray(v, dtype=np.float64) - np.dot(v, n) * n
    return (c / np.linalg.norm(c)).astype(np.float32)


def lookalike_step(ppm: float) -> int:
    """Grid step of :func:`lookalike_warnings` (~0.5 mm)."""
    return max(1, int(ppm // 2))


def lookalike_warnings(
    b_rgb: np.ndarray,
    f_rgb: np.ndarray,
    treated: np.ndarray,
    region: np.ndarray,
    ppm: float,
) -> list[str]:
    """Diffuse brown (haemosiderin) or purple/yellow (bruise) change near treated veins.

    ``f_rgb`` may be the follow-up itself or only its grid ``[::s, ::s]`` with s
    :func:`lookalike_step` (the only pixels read)."""
    # Work at ~0.5 mm per pixel: the look-alikes are diffuse. "Near a treated vein" is
    # only needed on that grid (no grid pixel near: no warning can arise).
    step = lookalike_step(ppm)
    sl = (slice(None, None, step), slice(None, None, step))
    near_grid = near_on_grid(treated, 3.0 * ppm, step)
    nr = near_grid & np.asarray(region, dtype=bool)[sl]
    if not nr.any():
        return []
    f_grid = f_rgb if f_rgb.shape[:2] == nr.shape and step > 1 else f_rgb[sl]
    d = optical_density(f_grid) - optical_density(b_rgb[sl])
    d -= d.mean(axis=2, keepdims=True)  # drop the neutral part (shading, exposure)
    sig = max(1.0, 1.0 * ppm / step)
    brown = gauss(d @ _chroma_unit(MELANIN_OD), sig)
    purple = gauss(d @ _chroma_unit(HAEMOGLOBIN_OD), sig)
    # Veins themselves are thin; a look-alike covers ≥ 2 mm of diffuse colour change.
    wide = ~dilate_disc(treated[sl], 0.5 * ppm / step)
    px_mm2 = (step / ppm) ** 2
    out: list[str] = []
    # OD chroma thresholds ~ the contrast of a faint vein; well above JPEG noise after smoothing.
    stain_px = int(np.count_nonzero(nr & wide & (brown > 0.04) & (brown > purple)))
    bruise_px = int(np.count_nonzero(nr & wide & (purple > 0.04) & (purple >= brown)))
    if stain_px * px_mm2 >= 4.0:
        out.append(
            f"suspected staining: {stain_px * px_mm2:.0f} mm² of brown discolouration along "
            "treated veins (haemosiderin); it is not counted as vein"
        )
    if bruise_px * px_mm2 >= 4.0:
        out.append(
            f"suspected bruising: {bruise_px * px_mm2:.0f} mm² of diffuse purple discolouration "
            "near treated veins; it is not counted as vein, re-check after it resolves"
        )
    return out


def change_warnings(
    capture: Sequence[str],
    *,
    pct: float,
    base: np.ndarray,
    table: VeinTable,
    region: np.ndarray,
    ppm: float,
    baseline_rgb: np.ndarray | None,
    followup_rgb: np.ndarray | None,
) -> list[str]:
    """The capture's warnings, then those the change itself raises: no baseline veins,
    look-alikes along treated veins, telangiectatic matting, recanalisation, negative
    improvement.

    ``followup_rgb`` (the colour-normalised follow-up, or only its grid
    ``[::s, ::s]`` with s :func:`lookalike_step`) and ``baseline_rgb`` (the baseline as
    measured): without them no look-alike is looked for."""
    warnings: list[str] = list(capture)
    change, veins, counts = table.change_map, table.veins, table.counts
    if not base.any():
        warnings.append(
            "no veins found at baseline in the compared region: improvement cannot be computed"
        )
    treated = np.isin(change, (CHANGE_CLEARED, CHANGE_FADED))
    if baseline_rgb is not None and followup_rgb is not None and treated.any():
        warnings.extend(lookalike_warnings(baseline_rgb, followup_rgb, treated, region, ppm))
    new_spider = [v for v in veins if v.status == "new" and v.cls == "spider"]
    if new_spider and treated.any():
        # "near a treated vein" is only needed at each new spider's centre
        cy = np.array([v.bbox[1] + v.bbox[3] // 2 for v in new_spider])
        cx = np.array([v.bbox[0] + v.bbox[2] // 2 for v in new_spider])
        near_c = np.diagonal(dilate_disc_at(treated, 5.0 * ppm, cy, cx))
        close = [v for v, hit in zip(new_spider, near_c, strict=True) if hit]
        fine = [v for v in close if v.length_mm > 0 and v.area_mm2 / v.length_mm < 0.6]
        if len(fine) >= 3:
            area = sum(v.area_mm2 for v in fine)
            warnings.append(
                f"suspected telangiectatic matting: {len(fine)} new fine red vessels "
                f"({area:.1f} mm²) near treated veins; counted as new veins, review with the "
                "practitioner"
            )
    if counts["recanalised"]:
        warnings.append(
            f"recanalisation: {counts['recanalised']} vein(s) faded earlier and came back"
        )
    if math.isfinite(pct) and pct < 0:
        warnings.append("more vein than at baseline: improvement is negative")
    return warnings
