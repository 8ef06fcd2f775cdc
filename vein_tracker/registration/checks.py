"""Registration's checks: is this alignment good enough to score the pair, and if not,
what should the clinic do?

Inlier count and ratio, plausibility of the homography (scale, anisotropy, perspective),
overlap, normalised correlation of the matching channel on skin after warping, and the
relative blur of the two photos. Every refusal reason is written for a clinic user.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..io import as_rgb
from ..morphology import erode_square
from .result import source_maps

__all__ = [
    "BLUR_HINT_RATIO",
    "EVIDENCE_MARGIN",
    "MAX_ANISOTROPY",
    "MAX_PERSPECTIVE",
    "MAX_RELATIVE_BLUR",
    "MAX_SCALE_CHANGE",
    "MIN_EVIDENCED_SHARE",
    "MIN_INLIERS",
    "MIN_INLIER_RATIO",
    "MIN_NCC",
    "MIN_OVERLAP",
    "blur_hint",
    "homography_shape",
    "jacobian_at",
    "ncc",
    "plausible",
    "quality",
    "relative_blur",
    "sharpness",
]

# Failure thresholds (documented in Registration.reason messages).
MIN_INLIERS = 20
MIN_INLIER_RATIO = 0.08
MIN_NCC = 0.35
MIN_OVERLAP = 0.25
#: When all the skin both photos show correlates under :data:`MIN_NCC`, the alignment is
#: checked on the skin its matched features span (their convex hull, widened by this
#: share of the refine grid's long side), if that holds at least
#: :data:`MIN_EVIDENCED_SHARE` of it: a hand placed again or clothing moved between
#: visits lies outside it and says nothing of the leg's alignment.
EVIDENCE_MARGIN = 1.0 / 16.0
MIN_EVIDENCED_SHARE = 0.2
#: Largest extra blur of one photo over the other, as a fraction of the baseline's long side
#: (3 px at 2000 px, about 0.3 mm at the usual framing): finer veins are lost beyond.
MAX_RELATIVE_BLUR = 0.0015
#: When matching fails, a photo with less than this share of the other's fine detail
#: (see :func:`sharpness`) is named as blurred in the reason.
BLUR_HINT_RATIO = 0.5
MAX_SCALE_CHANGE = 2.0
MAX_ANISOTROPY = 1.35
MAX_PERSPECTIVE = 0.35


def sharpness(rgb: np.ndarray, *, mask: np.ndarray | None = None) -> float:
    """Scale-free focus measure: fine-band over mid-band detail energy of the grey image.

    Ratio of the energy of the difference of Gaussians (1.5 px, 3 px) to that of
    (3 px, 6 px). Blur removes the fine band first; pixel noise barely reaches
    either band, so the measure keeps falling with blur on noisy photos. Compute it
    at a fixed working size (about 1000 px long side). On skin phantoms: about
    0.8–1.2 sharp, 0.5–0.8 at a blur σ of 1 px, 0.3–0.5 at 2 px, below 0.3 beyond.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), dtype uint8
    mask : ndarray, shape (H, W), dtype bool, optional
        Pixels to measure on (e.g. skin); ignored when it has fewer than 100 pixels.

    Returns
    -------
    float
    """
    g = cv2.cvtColor(as_rgb(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    g1 = cv2.GaussianBlur(g, (0, 0), 1.5)
    g2 = cv2.GaussianBlur(g, (0, 0), 3.0)
    g4 = cv2.GaussianBlur(g, (0, 0), 6.0)
    fine = (g1 - g2) ** 2
    mid = (g2 - g4) ** 2
    if mask is not None:
        m = erode_square(mask, 13)
        if m.sum() > 100:
            return float(fine[m].mean() / (mid[m].mean() + 1e-6))
    return float(fine.mean() / (mid.mean() + 1e-6))


def jacobian_at(h: np.ndarray, x: float, y: float) -> tuple[np.ndarray, float]:
    """The local Jacobian (2, 2) of the homography ``h`` at pixel (x, y), and the
    homogeneous denominator ``d`` of ``h`` there."""
    d = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / d
    v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / d
    jac = np.array(
        [
            [(h[0, 0] - u * h[2, 0]) / d, (h[0, 1] - u * h[2, 1]) / d],
            [(h[1, 0] - v * h[2, 0]) / d, (h[1, 1] - v * h[2, 1]) / d],
        ]
    )
    return jac, float(d)


def homography_shape(h: np.ndarray, shape_f: tuple[int, int]) -> tuple[float, float, float]:
    """Scale, anisotropy and perspective strength of ``h`` over the follow-up frame."""
    hf, wf = shape_f
    jac, d = jacobian_at(h, wf / 2.0, hf / 2.0)
    sv = np.linalg.svd(jac, compute_uv=False)
    if not np.all(np.isfinite(sv)) or sv[1] <= 0:
        return float("nan"), float("inf"), float("inf")
    scale = float(np.sqrt(sv[0] * sv[1]))
    aniso = float(sv[0] / sv[1])
    corners = np.array([[0, 0], [wf, 0], [0, hf], [wf, hf]], dtype=np.float64)
    den = corners @ h[2, :2] + h[2, 2]
    if np.any(den <= 0):
        return scale, aniso, float("inf")
    persp = float(np.max(np.abs(den / d - 1.0)))
    return scale, aniso, persp


def ncc(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> float:
    if m.sum() < 50:
        return float("nan")
    x = a[m].astype(np.float64)
    y = b[m].astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def blur_hint(
    b_ref: np.ndarray, f_ref: np.ndarray, b_skin: np.ndarray, f_skin: np.ndarray
) -> str | None:
    """A reason naming a blurred photo when matching failed because one photo is blurred."""
    sb = sharpness(b_ref, mask=b_skin)
    sf = sharpness(f_ref, mask=f_skin)
    if sf < BLUR_HINT_RATIO * sb:
        return (
            "The follow-up photo is blurred, so its skin details cannot be matched to the "
            "baseline: retake it with the camera steady and focused on the skin."
        )
    if sb < BLUR_HINT_RATIO * sf:
        return (
            "The baseline photo is blurred, so its skin details cannot be matched to the "
            "follow-up: its fine veins cannot be compared; retake the baseline if possible."
        )
    return None


def relative_blur(
    odn_b: np.ndarray,
    odn_f: np.ndarray,
    h_r: np.ndarray,
    flow: np.ndarray | None,
    qmask: np.ndarray,
) -> tuple[float, float]:
    """Extra Gaussian blur (refine px) of the follow-up and of the baseline, each vs the other.

    The sharper photo, blurred by the right sigma, correlates best with the blurrier
    one; noise and JPEG artefacts are uncorrelated between visits and do not bias it.
    """
    bh, bw = odn_b.shape
    # A window of at most 400 x 400 refine px around the centre of the usable skin.
    ys, xs = np.nonzero(qmask[::4, ::4])
    if ys.size < 20:
        return 0.0, 0.0
    cy, cx = int(np.median(ys)) * 4, int(np.median(xs)) * 4
    half = 200
    y0, x0 = max(0, min(cy - half, bh - 2 * half)), max(0, min(cx - half, bw - 2 * half))
    y1, x1 = min(bh, y0 + 2 * half), min(bw, x0 + 2 * half)
    hh_, ww_ = y1 - y0, x1 - x0
    shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    if flow is None:
        fw = cv2.warpPerspective(odn_f, shift @ h_r, (ww_, hh_), flags=cv2.INTER_LINEAR)
    else:
        mx, my = source_maps(h_r, flow, (bh, bw))
        fw = cv2.remap(odn_f, mx[y0:y1, x0:x1], my[y0:y1, x0:x1], cv2.INTER_LINEAR)
    # The bilinear warp itself blurs slightly (about 0.3 px); blur the baseline alike.
    b = cv2.GaussianBlur(odn_b[y0:y1, x0:x1], (0, 0), 0.3)
    m = qmask[y0:y1, x0:x1]
    low_b = cv2.GaussianBlur(b, (0, 0), 6.0)
    low_f = cv2.GaussianBlur(fw, (0, 0), 6.0)

    def band(x: np.ndarray, low: np.ndarray, s: float) -> np.ndarray:
        y = cv2.GaussianBlur(x, (0, 0), s) if s > 0 else x
        return np.asarray(y - low, np.float32)

    sig = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0])
    fw_hp = band(fw, low_f, 0.0)
    b_hp = band(b, low_b, 0.0)
    c_f = np.array([ncc(band(b, low_b, s), fw_hp, m) for s in sig])
    c_b = np.array([ncc(b_hp, band(fw, low_f, s), m) for s in sig])

    def peak(c: np.ndarray) -> float:
        if not np.all(np.isfinite(c)):
            return 0.0
        i = int(np.argmax(c))
        if 0 < i < len(sig) - 1:
            # Parabola through the three samples around the peak (uneven spacing).
            x0, x1, x2 = sig[i - 1], sig[i], sig[i + 1]
            y0, y1, y2 = c[i - 1], c[i], c[i + 1]
            den = (x0 - x1) * (x0 - x2) * (x1 - x2)
            a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
            bq = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / den
            if a < 0:
                return float(np.clip(-bq / (2 * a), x0, x2))
        return float(sig[i])

    return peak(c_f), peak(c_b)


def plausible(scale: float, anisotropy: float, perspective: float) -> bool:
    """Whether a homography's shape (:func:`homography_shape`) can be a retake of the
    same area: not too strong a change of size, shear or viewing angle."""
    return bool(
        np.isfinite(scale)
        and 1.0 / MAX_SCALE_CHANGE <= scale <= MAX_SCALE_CHANGE
        and anisotropy <= MAX_ANISOTROPY
        and perspective <= MAX_PERSPECTIVE
    )


def quality(
    *, ncc_value: float, inliers: int, overlap: float, blur_px: float, blur_limit_px: float
) -> float:
    """Overall alignment quality in [0, 1]: correlation (half the weight), inliers,
    overlap and the relative blur (``blur_px``, the larger of the two photos' excess blur,
    :func:`~.result.excess_blur`) against its limit."""
    q_ncc = float(np.clip((ncc_value - MIN_NCC) / (0.8 - MIN_NCC), 0.0, 1.0))
    q_inl = float(np.clip(inliers / 150.0, 0.0, 1.0))
    q_ov = float(np.clip((overlap - MIN_OVERLAP) / (0.8 - MIN_OVERLAP), 0.0, 1.0))
    q_bl = float(np.clip(1.0 - blur_px / blur_limit_px, 0.0, 1.0))
    return float(np.clip(0.5 * q_ncc + 0.2 * q_inl + 0.15 * q_ov + 0.15 * q_bl, 0.0, 1.0))
