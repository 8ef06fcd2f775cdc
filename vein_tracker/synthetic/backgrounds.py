"""Backdrops, floors and clothing of the photo-like phantoms, evaluated at world points.

Materials (:class:`Material`) are real photographs where it helps (see
:mod:`vein_tracker.synthetic.texture`: wood from ``skimage.data.coffee()``, tiles from
``brick()``, ``gravel()``, ``grass()``) or smooth procedural surfaces (white studio sweep,
black cloth, painted wall, crinkled examination-table paper, fabric). A material is fixed
in the world (mm), so it moves with the scene when the camera moves.

This module colours flat surfaces only; it does not light skin or place legs.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from vein_tracker.synthetic._photo_model import Material, Region
from vein_tracker.synthetic.texture import (
    SurfaceWindow,
    hash_uniform,
    real_material,
    stretched_noise,
    value_noise,
    wood_grain,
)

#: Typical linear colours of each backdrop kind (a drawn tint is jittered around these).
BACKDROP_TINTS: dict[str, tuple[float, float, float]] = {
    "studio-white": (0.80, 0.80, 0.78),
    "dark": (0.030, 0.030, 0.036),
    "wood": (1.0, 1.0, 1.0),
    "tiles": (1.15, 1.0, 0.82),
    "wall": (0.30, 0.33, 0.36),
    "paper": (0.78, 0.78, 0.74),
    "grass": (0.75, 1.0, 0.55),
    "gravel": (1.0, 0.95, 0.88),
    "mat": (0.06, 0.06, 0.065),
    "fabric": (0.05, 0.07, 0.14),
}
_REAL = {"tiles": "brick", "grass": "grass", "gravel": "gravel"}


@functools.lru_cache(maxsize=16)
def _blurred_tile(name: str, sigma_px: float) -> np.ndarray:
    tile, _ = real_material(name)
    if sigma_px < 0.3:
        return tile
    out = cv2.GaussianBlur(
        np.ascontiguousarray(tile), (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT_101
    )
    out.flags.writeable = False
    return out


def material_rgb(mat: Material, xy: np.ndarray, ppm: float, frame: tuple[int, int]) -> np.ndarray:
    """Linear RGB (H, W, 3) float32 of ``mat`` at world points ``xy`` (H, W, 2) px."""
    h, w = xy.shape[:2]
    tint = np.asarray(mat.tint, dtype=np.float32)
    fh, fw = frame
    gx, gy = mat.gradient
    shade = (
        1.0
        + np.float32(gx) * (xy[..., 0] / np.float32(fw) - 0.5)
        + np.float32(gy) * (xy[..., 1] / np.float32(fh) - 0.5)
    )
    if mat.kind == "wood":
        return _wood_planks(mat, xy, ppm) * tint[None, None, :] * shade[..., None]
    if mat.kind in _REAL:
        name = _REAL[mat.kind]
        _, mm_per_px = real_material(name)
        k = 1.0 / (ppm * mm_per_px * mat.scale)  # tile px per world px
        sig = mat.blur_mm / (mm_per_px * mat.scale)
        tile = _blurred_tile(name, round(sig, 1))
        n = tile.shape[0]
        ca, sa = math.cos(mat.angle), math.sin(mat.angle)
        # The frame's centre sits near the tile's centre, so a frame smaller than the
        # tile shows no mirror seam (a seeded jitter keeps scenes apart).
        cx, cy = fw / 2.0, fh / 2.0
        jit = ((mat.seed % 997) / 997.0 - 0.5) * 0.3 * n
        ox = n / 2.0 + jit - (cx * ca + cy * sa) * k
        oy = n / 2.0 - jit - (-cx * sa + cy * ca) * k
        mx = (xy[..., 0] * np.float32(ca) + xy[..., 1] * np.float32(sa)) * np.float32(
            k
        ) + np.float32(ox)
        my = (-xy[..., 0] * np.float32(sa) + xy[..., 1] * np.float32(ca)) * np.float32(
            k
        ) + np.float32(oy)
        # Mirror tiling: REFLECT_101 repeats with period 2(n − 1).
        period = np.float32(2 * (n - 1))
        mx = np.mod(mx, period).astype(np.float32)
        my = np.mod(my, period).astype(np.float32)
        out = cv2.remap(tile, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        out = np.asarray(out, dtype=np.float32)
        # Grey photographs: keep their luminance, take the tint's colour.
        lum = out.mean(axis=2, keepdims=True)
        return lum * tint[None, None, :] * shade[..., None]
    return _procedural(mat, xy, ppm) * tint[None, None, :] * shade[..., None]


def _wood_planks(mat: Material, xy: np.ndarray, ppm: float) -> np.ndarray:
    """Plank floor or panel: each plank a stretched, shifted copy of the real grain, with
    its own shade and dark joints between planks."""
    src, mm_per_px = wood_grain()
    sh, sw = src.shape[:2]
    ca, sa = math.cos(mat.angle), math.sin(mat.angle)
    x_mm = (xy[..., 0] * np.float32(ca) + xy[..., 1] * np.float32(sa)) / np.float32(ppm)
    y_mm = (-xy[..., 0] * np.float32(sa) + xy[..., 1] * np.float32(ca)) / np.float32(ppm)
    pw = 110.0 * mat.scale  # plank width, mm
    plank_len = 900.0 * mat.scale
    j = np.floor(y_mm / np.float32(pw)).astype(np.int64)
    v = y_mm / np.float32(pw) - j  # 0..1 across the plank
    # Per-plank random values from small tables (a plank index is a small integer).
    j0 = int(j.min())
    nj = int(j.max()) - j0 + 1
    jj = np.arange(j0, j0 + nj)
    shift = (hash_uniform(jj, jj * 0 + 1, mat.seed, 1) * np.float32(plank_len))[j - j0]
    xs = x_mm + shift
    i = np.floor(xs / np.float32(plank_len)).astype(np.int64)
    u = xs - i * np.float32(plank_len)
    i0 = int(i.min())
    ni = int(i.max()) - i0 + 1
    gj, gi = np.meshgrid(jj, np.arange(i0, i0 + ni), indexing="ij")
    key = (j - j0) * ni + (i - i0)
    row_off = (hash_uniform(gj, gi, mat.seed, 2).ravel() * np.float32(sh * 0.3))[key]
    col_off = (hash_uniform(gj, gi, mat.seed, 3).ravel() * np.float32(sw * 2.0))[key]
    tone = (0.8 + 0.4 * hash_uniform(gj, gi, mat.seed, 4).ravel())[key]
    # Grain stretched 4x along the plank; each plank reads its own rows and offset.
    my = (row_off + v * np.float32(sh * 0.7 - 1)).astype(np.float32)
    mx = np.mod(u / np.float32(mm_per_px * 4.0) + col_off, np.float32(2 * (sw - 1))).astype(
        np.float32
    )
    out = np.asarray(cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101))
    joint_v = np.minimum(v, 1.0 - v) * np.float32(pw)
    joint_u = np.minimum(u, np.float32(plank_len) - u)
    gap = np.minimum(joint_v, joint_u)
    dark = 1.0 - 0.7 * np.exp(-((gap / np.float32(0.6)) ** 2))
    return (out * (tone * dark)[..., None]).astype(np.float32)


def _procedural(mat: Material, xy: np.ndarray, ppm: float) -> np.ndarray:
    """Relative brightness (H, W, 1) of a procedural material at world points."""
    h, w = xy.shape[:2]
    # Evaluate the noise on a coarse world grid then sample it: these surfaces are smooth.
    step = max(1.0, 0.5 * ppm)  # world px per coarse sample (0.5 mm)
    x_lo, y_lo = float(xy[..., 0].min()), float(xy[..., 1].min())
    x_hi, y_hi = float(xy[..., 0].max()), float(xy[..., 1].max())
    cw = int((x_hi - x_lo) / step) + 3
    ch = int((y_hi - y_lo) / step) + 3
    win = SurfaceWindow(
        int(math.floor(x_lo / step)), int(math.floor(y_lo / step)), ch, cw, ppm / step
    )
    seed = mat.seed
    kind = mat.kind
    if kind == "studio-white":
        f = 1.0 + 0.01 * value_noise(win, 40.0, seed, 1)
    elif kind == "dark":
        ang = (seed % 628) / 100.0
        folds = stretched_noise(win, 200.0, 35.0, ang, seed, 2)
        f = 1.0 + 0.35 * folds + 0.04 * value_noise(win, 1.0, seed, 3)
    elif kind == "paper":
        crinkle = np.abs(value_noise(win, 25.0, seed, 4)) + 0.5 * np.abs(
            value_noise(win, 9.0, seed, 5)
        )
        f = 1.05 - 0.09 * np.exp(-crinkle * 4.0) + 0.015 * value_noise(win, 2.0, seed, 6)
    elif kind == "mat":
        f = 1.0 + 0.06 * value_noise(win, 1.5, seed, 7) + 0.1 * value_noise(win, 40.0, seed, 8)
    elif kind == "fabric":
        ang = (seed % 628) / 100.0
        folds = stretched_noise(win, 120.0, 18.0, ang, seed, 9)
        f = 1.0 + 0.3 * folds + 0.03 * value_noise(win, 0.6, seed, 10)
    else:  # "wall": painted plaster
        f = 1.0 + 0.025 * value_noise(win, 4.0, seed, 11) + 0.05 * value_noise(win, 120.0, seed, 12)
    f = np.maximum(f, 0.05).astype(np.float32)
    mx = ((xy[..., 0] / np.float32(step)) - np.float32(win.x0)).astype(np.float32)
    my = ((xy[..., 1] / np.float32(step)) - np.float32(win.y0)).astype(np.float32)
    out = cv2.remap(f, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    del h, w
    return np.asarray(out, dtype=np.float32)[..., None]


def region_alpha(region: Region, xy: np.ndarray, px_scale: float) -> np.ndarray:
    """Coverage (H, W) float32 of a region (see :class:`Region`) at world points ``xy``."""
    nx, ny = region.normal
    px, py = region.p0
    d = (xy[..., 0] - np.float32(px)) * np.float32(nx) + (xy[..., 1] - np.float32(py)) * np.float32(
        ny
    )
    if region.wave:
        along = (xy[..., 0] - np.float32(px)) * np.float32(-ny) + (
            xy[..., 1] - np.float32(py)
        ) * np.float32(nx)
        d -= np.float32(region.wave) * np.sin(along * np.float32(2 * math.pi / region.period))
    soft = max(region.soft, 1.0 / px_scale)
    return np.clip(0.5 + d / np.float32(soft), 0.0, 1.0).astype(np.float32)
