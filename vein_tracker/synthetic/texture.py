"""Textures for the photo-like phantoms: real photographic material and skin micro-texture.

Real material comes from photographs bundled in the scikit-image wheel (loaded offline,
never downloaded):

- ``skimage.data.astronaut()`` (NASA, public domain): the high-frequency optical density
  of the face's skin (cheeks and forehead) gives real mottling at 1-5 mm;
- ``skimage.data.coffee()`` (Rachel Michetti, CC0): the wooden table around the cup gives
  real wood grain for plank floors and backdrops;
- ``skimage.data.brick()``, ``gravel()`` and ``grass()`` (public domain): real tiles,
  gravel and grass for floors and backdrops.

The skin detail is cut into a seamless tile by patch quilting (random patches from the
valid region, blended with raised-cosine windows on a torus); the textures are mirror-
tiled; the wood is laid as planks, each a stretched, shifted copy of the grain.

Skin micro-texture is procedural and lives in the leg's surface frame (mm), so every
visit shows the same skin: value noise on a hashed lattice (the same value for a point
whatever window is evaluated), pores and follicles, the furrow network of the skin's
microrelief, vellus hair and dry-skin flakes, each at its real size.

This module makes textures only; it places nothing in a scene.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

#: The scikit-image photographs this package may use; each ships inside the wheel.
SKIMAGE_PHOTOS = ("astronaut", "coffee", "brick", "gravel", "grass")

# mm per source pixel of each photograph (from the size of a known object in it): the
# astronaut's face (~130 mm) spans ~95 px; the coffee cup (~80 mm) ~230 px; a brick course
# (~75 mm) ~26 px; a gravel stone (~8 mm) ~9 px; a grass blade (~4 mm wide) ~4 px.
_MM_PER_PX = {"astronaut": 1.4, "coffee": 0.35, "brick": 2.9, "gravel": 0.9, "grass": 1.0}


@functools.lru_cache(maxsize=8)
def _skimage_photo(name: str) -> np.ndarray:
    """A bundled scikit-image photograph as float32 linear RGB (H, W, 3) in [0, 1]."""
    if name not in SKIMAGE_PHOTOS:
        raise ValueError(f"name must be one of {SKIMAGE_PHOTOS}, got {name!r}")
    from skimage import data  # lazy: scikit-image is slow to import

    img = np.asarray(getattr(data, name)())
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    v = img[:, :, :3].astype(np.float32) / np.float32(255.0)
    lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    out = np.ascontiguousarray(lin, dtype=np.float32)
    out.flags.writeable = False
    return out


def _quilt(
    src: np.ndarray,
    valid: np.ndarray,
    out_hw: tuple[int, int],
    patch: int,
    rng: np.random.Generator,
    *,
    min_valid: float = 0.95,
) -> np.ndarray:
    """Seamless periodic texture of ``out_hw`` from random ``patch``-px patches of ``src``.

    Patches are taken where ``valid`` covers at least ``min_valid`` of the patch and
    blended with raised-cosine windows at half-patch steps on a torus (the result tiles
    without seams); invalid source pixels carry no weight.
    """
    h, w = out_hw
    c = src.shape[2]
    frac = cv2.boxFilter(valid.astype(np.float32), -1, (patch, patch), normalize=True)
    half = patch // 2
    ys, xs = np.nonzero(frac[half : src.shape[0] - half, half : src.shape[1] - half] >= min_valid)
    if len(ys) == 0:
        raise ValueError("no valid patch in the source region")
    win1 = np.sin(np.pi * (np.arange(patch) + 0.5) / patch) ** 2
    win = (win1[:, None] * win1[None, :]).astype(np.float32)
    vsrc = valid.astype(np.float32)
    step = max(1, patch // 2)
    acc = np.zeros((h, w, c), dtype=np.float32)
    wsum = np.zeros((h, w), dtype=np.float32)
    for y in range(0, h, step):
        rows = (y + np.arange(patch)) % h
        for x in range(0, w, step):
            cols = (x + np.arange(patch)) % w
            k = int(rng.integers(len(ys)))
            sy, sx = int(ys[k]), int(xs[k])
            wv = win * vsrc[sy : sy + patch, sx : sx + patch]
            idx = np.ix_(rows, cols)
            acc[idx] += src[sy : sy + patch, sx : sx + patch] * wv[:, :, None]
            wsum[idx] += wv
    out = acc / np.maximum(wsum[:, :, None], 1e-6)
    return np.ascontiguousarray(out, dtype=np.float32)


@functools.lru_cache(maxsize=1)
def real_skin_detail() -> tuple[np.ndarray, float]:
    """High-frequency skin OD from ``skimage.data.astronaut()``, as a seamless tile.

    Returns
    -------
    tile : ndarray, (384, 384, 3) float32
        OD (R, G, B) around zero: the face's skin minus its smooth (σ ≈ 7 mm) shading.
    mm_per_px : float
        Size of a tile pixel on the skin (the photo's scale at the face).
    """
    lin = _skimage_photo("astronaut")
    od = -np.log(np.maximum(lin[60:190, 165:280], 1e-3))
    level = od.mean(axis=2)
    chroma = od - level[:, :, None]
    # Skin: the cheek's chromaticity (shading changes the level, not the hue) at a skin
    # level of darkness; hair, eyes, lips and teeth fall outside.
    ref = chroma[60:70, 25:35].reshape(-1, 3).mean(axis=0)
    valid = (np.linalg.norm(chroma - ref, axis=2) < 0.16) & (level > 0.2) & (level < 1.0)
    valid = cv2.morphologyEx(valid.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    valid = valid.astype(bool)
    wts = valid.astype(np.float32)
    num = cv2.GaussianBlur(od * wts[:, :, None], (0, 0), 5.0)
    den = cv2.GaussianBlur(wts, (0, 0), 5.0)
    high = od - num / np.maximum(den[:, :, None], 1e-3)
    high[~valid] = 0.0
    rng = np.random.default_rng(0x5C1)
    tile = _quilt(high.astype(np.float32), valid, (384, 384), 10, rng, min_valid=0.6)
    tile -= tile.reshape(-1, 3).mean(axis=0)
    tile.flags.writeable = False
    return tile, _MM_PER_PX["astronaut"]


@functools.lru_cache(maxsize=1)
def wood_grain() -> tuple[np.ndarray, float]:
    """Real wood from ``skimage.data.coffee()`` (the table), grain turned horizontal.

    Returns
    -------
    src : ndarray, (h, w, 3) float32 linear RGB
        A clean square of the table with the grain along x.
    mm_per_px : float
    """
    lin = _skimage_photo("coffee")
    crop = np.ascontiguousarray(lin[250:400, 470:600])
    grey = crop.mean(axis=2)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    # The grain runs across the dominant gradient (structure tensor).
    theta = 0.5 * math.atan2(
        2 * float((gx * gy).mean()), float((gx * gx).mean() - (gy * gy).mean())
    )
    grain = math.degrees(theta) + 90.0
    grain = grain - 180.0 if grain > 90.0 else grain
    m = cv2.getRotationMatrix2D((65.0, 75.0), grain, 1.0)
    rot = cv2.warpAffine(crop, m, (130, 150), flags=cv2.INTER_LINEAR)
    return _readonly(np.ascontiguousarray(rot[35:115, 25:105])), _MM_PER_PX["coffee"]


@functools.lru_cache(maxsize=8)
def real_material(name: str) -> tuple[np.ndarray, float]:
    """A tile of real material (linear RGB) and its size in mm per tile pixel.

    Parameters
    ----------
    name : {"brick", "gravel", "grass"}
        The scikit-image photographs of the same names (mirror-tiled when used).

    Returns
    -------
    tile : ndarray, (512, 512, 3) float32 linear RGB
    mm_per_px : float
    """
    if name in ("brick", "gravel", "grass"):
        src = _skimage_photo(name)
        return _readonly(np.ascontiguousarray(src[:512, :512])), _MM_PER_PX[name]
    raise ValueError(f"name must be 'brick', 'gravel' or 'grass', got {name!r}")


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------------------
# Hashed lattice noise: the same value at a point whatever window is evaluated
# --------------------------------------------------------------------------------------

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def hash_uniform(ix: np.ndarray, iy: np.ndarray, seed: int, tag: int) -> np.ndarray:
    """Uniform [0, 1) float32 for integer lattice nodes (splitmix64 of node, seed and tag)."""
    with np.errstate(over="ignore"):
        key = np.uint64((int(seed) * 1_000_003 + int(tag) * 7919) & 0xFFFFFFFFFFFFFFFF)
        z = (
            ix.astype(np.int64).astype(np.uint64) * _M1
            ^ (iy.astype(np.int64).astype(np.uint64) + np.uint64(0x632BE59BD9B4E019)) * _M3
            ^ key * _M2
        )
        z ^= z >> np.uint64(30)
        z *= _M2
        z ^= z >> np.uint64(27)
        z *= _M3
        z ^= z >> np.uint64(31)
    return ((z >> np.uint64(40)).astype(np.float32)) * np.float32(1.0 / (1 << 24))


@dataclass(frozen=True)
class SurfaceWindow:
    """A raster window on a surface: pixel (i, j) is surface mm ((x0 + j)/ppm, (y0 + i)/ppm).

    ``x0``, ``y0`` are in raster px (integers), ``ppm`` raster px per mm.
    """

    x0: int
    y0: int
    h: int
    w: int
    ppm: float

    def mm_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(1, w) x mm and (h, 1) y mm of the pixel centres."""
        xs = (np.arange(self.w, dtype=np.float64) + self.x0) / self.ppm
        ys = (np.arange(self.h, dtype=np.float64) + self.y0) / self.ppm
        return xs[None, :], ys[:, None]


def value_noise(win: SurfaceWindow, spacing_mm: float, seed: int, tag: int) -> np.ndarray:
    """Smooth noise (about unit SD) with lattice nodes every ``spacing_mm``, on ``win``.

    Returns
    -------
    ndarray, (h, w) float32
    """
    return stretched_noise(win, spacing_mm, spacing_mm, 0.0, seed, tag)


def stretched_noise(
    win: SurfaceWindow, along_mm: float, across_mm: float, angle: float, seed: int, tag: int
) -> np.ndarray:
    """Smooth noise with lattice spacing ``along_mm`` in direction ``angle`` (rad, from
    +x towards +y) and ``across_mm`` across it (folds of cloth, wood grain), on ``win``.

    Returns
    -------
    ndarray, (h, w) float32, about unit SD
    """
    ca, sa = math.cos(angle), math.sin(angle)
    # Lattice coordinates of a raster pixel (j, i): L = A @ (x0 + j, y0 + i) / ppm.
    a = np.array([[ca / along_mm, sa / along_mm], [-sa / across_mm, ca / across_mm]]) / win.ppm
    corners = np.array(
        [
            [win.x0, win.y0],
            [win.x0 + win.w, win.y0],
            [win.x0, win.y0 + win.h],
            [win.x0 + win.w, win.y0 + win.h],
        ],
        dtype=np.float64,
    )
    lat = corners @ a.T
    i0 = math.floor(lat[:, 0].min()) - 2
    j0 = math.floor(lat[:, 1].min()) - 2
    nx = math.ceil(lat[:, 0].max()) + 3 - i0
    ny = math.ceil(lat[:, 1].max()) + 3 - j0
    ix = np.arange(i0, i0 + nx)[None, :]
    iy = np.arange(j0, j0 + ny)[:, None]
    u = hash_uniform(ix + 0 * iy, iy + 0 * ix, seed, tag)
    grid = (u - np.float32(0.5)) * np.float32(math.sqrt(12.0) * 1.2)
    off = np.array([win.x0, win.y0], dtype=np.float64) @ a.T - np.array([i0, j0])
    m = np.concatenate([a, off[:, None]], axis=1)
    out = cv2.warpAffine(
        grid,
        m,
        (win.w, win.h),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    return np.asarray(out, dtype=np.float32)


def _cell_points(
    win: SurfaceWindow, cell_mm: float, per_cell: float, seed: int, tag: int, margin_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hashed random points (mean ``per_cell`` per cell of ``cell_mm``) around ``win``.

    Returns x mm, y mm, and two uniform [0, 1) attributes per point (1-d float32 arrays).
    """
    x_lo = win.x0 / win.ppm - margin_mm
    y_lo = win.y0 / win.ppm - margin_mm
    x_hi = (win.x0 + win.w) / win.ppm + margin_mm
    y_hi = (win.y0 + win.h) / win.ppm + margin_mm
    ix = np.arange(math.floor(x_lo / cell_mm), math.floor(x_hi / cell_mm) + 1)
    iy = np.arange(math.floor(y_lo / cell_mm), math.floor(y_hi / cell_mm) + 1)
    mx, my = np.meshgrid(ix, iy)
    gx, gy = mx.ravel(), my.ravel()
    k_max = max(1, int(math.ceil(per_cell * 2.0)))
    xs, ys, a1, a2 = [], [], [], []
    for k in range(k_max):
        keep = hash_uniform(gx, gy, seed, tag * 16 + k) < per_cell / k_max
        if not keep.any():
            continue
        cx, cy = gx[keep], gy[keep]
        xs.append((cx + hash_uniform(cx, cy, seed, tag * 16 + k + 4)) * cell_mm)
        ys.append((cy + hash_uniform(cx, cy, seed, tag * 16 + k + 8)) * cell_mm)
        a1.append(hash_uniform(cx, cy, seed, tag * 16 + k + 12))
        a2.append(hash_uniform(cy, cx, seed, tag * 16 + k + 13))
    if not xs:
        e = np.zeros(0, dtype=np.float32)
        return e, e, e, e
    return (
        np.concatenate(xs).astype(np.float32),
        np.concatenate(ys).astype(np.float32),
        np.concatenate(a1),
        np.concatenate(a2),
    )


def _splat(win: SurfaceWindow, x_mm: np.ndarray, y_mm: np.ndarray, amp: np.ndarray) -> np.ndarray:
    """Bilinear splat of point amplitudes onto the window raster (h, w) float32."""
    out = np.zeros((win.h + 2, win.w + 2), dtype=np.float32)
    px = x_mm * np.float32(win.ppm) - np.float32(win.x0 - 0.5)
    py = y_mm * np.float32(win.ppm) - np.float32(win.y0 - 0.5)
    ok = (px >= 0) & (px < win.w + 1) & (py >= 0) & (py < win.h + 1)
    px, py, amp = px[ok], py[ok], amp[ok]
    i0 = np.floor(py).astype(np.int64)
    j0 = np.floor(px).astype(np.int64)
    fy = (py - i0).astype(np.float32)
    fx = (px - j0).astype(np.float32)
    flat = out.ravel()
    stride = win.w + 2
    for di, dj, wgt in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        np.add.at(flat, (i0 + di) * stride + (j0 + dj), amp * wgt)
    return out[:-2, :-2] if win.h and win.w else out[: win.h, : win.w]


@dataclass(frozen=True)
class SkinTexture:
    """Micro-texture of one person's skin (all sizes in mm, amounts in OD).

    ``pores`` per mm² (pores and follicles, dark dots of ``pore_mm`` diameter and
    ``pore_od``); ``furrow_od`` strength and ``furrow_mm`` cell size of the microrelief's
    furrow network; ``vellus`` fine hairs per mm²; ``flakes`` whitish dry-skin cover (0-1);
    ``mottle`` scale of the coarse melanin/haemoglobin mottling; ``real_detail`` weight of
    the astronaut's skin detail; ``gloss`` specular strength; ``stubble`` shaved hair
    follicles per mm² (dark dots); ``marmorata`` strength of a faint net of mottled
    redness (cutis marmorata, common on legs; not veins).
    """

    pores: float = 0.6
    pore_mm: float = 0.12
    pore_od: float = 0.10
    furrow_od: float = 0.05
    furrow_mm: float = 0.8
    vellus: float = 0.08
    flakes: float = 0.0
    mottle: float = 1.0
    real_detail: float = 0.5
    gloss: float = 1.0
    stubble: float = 0.0
    marmorata: float = 0.0

    def to_dict(self) -> dict[str, float]:
        """JSON-ready description."""
        return dict(self.__dict__)


#: Smooth, young, low-texture skin (few features for registration).
SMOOTH_SKIN = SkinTexture(
    pores=0.15,
    pore_od=0.04,
    furrow_od=0.012,
    vellus=0.01,
    flakes=0.0,
    mottle=0.35,
    real_detail=0.3,
    gloss=0.6,
)
#: Rough, dry, hairy skin.
ROUGH_SKIN = SkinTexture(
    pores=1.2,
    pore_od=0.16,
    furrow_od=0.09,
    furrow_mm=0.7,
    vellus=0.25,
    flakes=0.6,
    mottle=1.4,
    real_detail=1.5,
    gloss=1.2,
    stubble=0.5,
)


def micro_texture(
    win: SurfaceWindow, tex: SkinTexture, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neutral micro-texture OD, melanin dots OD and dry-skin whiteness on ``win``.

    Returns
    -------
    neutral : (h, w) float32
        Neutral OD of furrows, pores and vellus hair.
    melanin : (h, w) float32
        Melanin OD of follicles (stubble) and pore pigment.
    flakes : (h, w) float32
        Fraction of diffuse white scatter from dry-skin flakes, in [0, 1).
    """
    ppm = win.ppm
    neutral = np.zeros((win.h, win.w), dtype=np.float32)
    melanin = np.zeros((win.h, win.w), dtype=np.float32)
    flakes = np.zeros((win.h, win.w), dtype=np.float32)
    fine = ppm >= 3.0  # below 3 px/mm the sub-0.3 mm texture averages into the colour
    if tex.furrow_od > 0 and fine:
        neutral += _furrows(win, tex, seed)
    if tex.pores > 0 and fine:
        dots = _dots(win, tex.pores, tex.pore_mm, tex.pore_od, seed, 31)
        neutral += dots
        melanin += np.float32(0.4) * dots
    if tex.stubble > 0 and fine:
        melanin += _dots(win, tex.stubble, 0.09, 0.9, seed, 37)
    if tex.vellus > 0 and fine:
        neutral += _vellus(win, tex.vellus, seed)
    if tex.flakes > 0 and fine:
        patchy = value_noise(win, 6.0, seed, 41)
        cells = value_noise(win, max(0.25, tex.furrow_mm * 0.6), seed, 43)
        f = np.clip((cells - 0.6 + 0.25 * patchy) * np.float32(0.5), 0.0, 1.0)
        flakes += f * np.float32(0.35 * tex.flakes)
    return neutral, melanin, flakes


def _dots(
    win: SurfaceWindow, per_mm2: float, size_mm: float, peak_od: float, seed: int, tag: int
) -> np.ndarray:
    """Gaussian dots (FWHM ``size_mm``, peak ``peak_od`` ± 60 %) at ``per_mm2`` per mm².

    Each dot keeps its integrated OD at any scale: below a pixel it gets wider and fainter.
    """
    x, y, a1, _ = _cell_points(win, 1.0, per_mm2, seed, tag, 0.5)
    sig_px = size_mm / 2.3548 * win.ppm
    mass = np.float32(peak_od * 2 * math.pi * sig_px * sig_px) * (0.4 + 1.2 * a1)
    dots = _splat(win, x, y, mass)
    sig = max(sig_px, 0.5)
    # The normalised blur spreads each dot's mass over 2πσ² px: peak = mass / (2πσ²).
    return cv2.GaussianBlur(dots, (0, 0), sig) * np.float32(1.0)


def _furrows(win: SurfaceWindow, tex: SkinTexture, seed: int) -> np.ndarray:
    """The microrelief's furrow network: two warped line families crossing at ~60°."""
    xs, ys = win.mm_grid()
    warp_x = value_noise(win, 3.0, seed, 51) * np.float32(0.35 * tex.furrow_mm)
    warp_y = value_noise(win, 3.0, seed, 53) * np.float32(0.35 * tex.furrow_mm)
    xw = xs.astype(np.float32) + warp_x
    yw = ys.astype(np.float32) + warp_y
    out = np.zeros((win.h, win.w), dtype=np.float32)
    width = np.float32(max(0.05 * tex.furrow_mm, 0.6 / win.ppm))  # furrow half-width, mm
    period = np.float32(tex.furrow_mm)
    base = np.float32((seed % 997) / 997.0 * math.pi)
    for k, ang in enumerate((0.5, 1.55, 2.6)):
        a = base + np.float32(ang)
        proj = xw * np.float32(math.cos(a)) + yw * np.float32(math.sin(a))
        frac = proj / period
        d = np.abs(frac - np.round(frac)) * period  # mm to the nearest furrow of this family
        line = np.exp(-((d / width) ** 2))
        # Families fade in and out in patches, so the network is broken, not a grid.
        gate = np.clip(0.6 + 0.5 * value_noise(win, 2.0, seed, 55 + k), 0.0, 1.0)
        out += line * gate
    # Sub-pixel furrows keep their mean darkening, not their peak: scale by width in px.
    px_w = float(width) * win.ppm
    gain = tex.furrow_od * min(1.0, px_w / 0.8)
    return out * np.float32(gain)


def _vellus(win: SurfaceWindow, density: float, seed: int) -> np.ndarray:
    """Fine short hairs (0.02-0.04 mm, 1-4 mm long), splatted along their length."""
    x, y, a1, a2 = _cell_points(win, 2.0, density * 4.0, seed, 61, 4.0)
    if len(x) == 0:
        return np.zeros((win.h, win.w), dtype=np.float32)
    length = 1.0 + 3.0 * a1
    # Leg hair grows down the leg, with spread.
    ang = np.float32(math.pi / 2) + (a2 - np.float32(0.5)) * np.float32(1.2)
    step = 0.5 / win.ppm
    n = int(math.ceil(4.0 / step)) + 1
    t = np.arange(n, dtype=np.float32) * np.float32(step)
    keep = t[None, :] <= length[:, None]
    px = (x[:, None] + t[None, :] * np.cos(ang)[:, None])[keep]
    py = (y[:, None] + t[None, :] * np.sin(ang)[:, None])[keep]
    width_mm = 0.03
    amp = np.full(px.shape, np.float32(0.35 * width_mm * win.ppm * step * win.ppm), np.float32)
    out = _splat(win, px, py, amp)
    return cv2.GaussianBlur(out, (0, 0), 0.6)


def real_detail_od(win: SurfaceWindow, seed: int) -> np.ndarray:
    """The astronaut's skin detail on ``win`` (h, w, 3) float32, offset per ``seed``."""
    tile, mm_per_px = real_skin_detail()
    off = hash_uniform(np.array([seed]), np.array([7]), 0, 71)[0] * 300.0
    a = 1.0 / (win.ppm * mm_per_px)
    m = np.array(
        [[a, 0.0, win.x0 * a + off], [0.0, a, win.y0 * a + 0.7 * off]],
        dtype=np.float64,
    )
    out = cv2.warpAffine(
        np.ascontiguousarray(tile),
        m,
        (win.w, win.h),
        flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    return np.asarray(out, dtype=np.float32)


__all__ = [
    "ROUGH_SKIN",
    "SKIMAGE_PHOTOS",
    "SMOOTH_SKIN",
    "SkinTexture",
    "SurfaceWindow",
    "hash_uniform",
    "micro_texture",
    "real_detail_od",
    "real_material",
    "stretched_noise",
    "wood_grain",
    "real_skin_detail",
    "value_noise",
]
