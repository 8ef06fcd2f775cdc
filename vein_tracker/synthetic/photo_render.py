"""Rendering of photo-like scenes: skin in OD, lighting, occlusion and exact truth.

Every photo pixel looks at a world point (the capture's exact map, bend included). Each
layer (backdrop, floor, legs, feet, hands, clothing) is evaluated there, lit and
composited back to front by its coverage; the layer in front with coverage ≥ 0.5 owns
the pixel's truth. A leg's skin is composed on a raster of its unrolled surface (base
tone, mottling, the astronaut's real skin detail, pores, furrows, vellus hair, flakes,
hair, spots, creases) and sampled through the leg's cylinder projection, so the skin
foreshortens towards the outline. Veins are painted in optical density onto the lit
skin (radiance × exp(−vein OD)), as veins are painted into real photographs; their
labels come from the same surface raster (nearest sample), so truth and pixels agree.

This module renders; the scene's content and the capture are drawn elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from vein_tracker.optics import DEEP_VEIN_OD, HAEMOGLOBIN_OD, MELANIN_OD
from vein_tracker.synthetic._model import (
    _BIT_BRUISE,
    _BIT_FRECKLE,
    _BIT_HAIR,
    _BIT_MATTING,
    _BIT_MOLE,
    _BIT_STAIN,
    _SKIN_BASE_OD,
    _TONE_YELLOW,
    _YELLOW_OD,
)
from vein_tracker.synthetic._photo_model import (
    SURF_BACKGROUND,
    SURF_CLOTHING,
    SURF_FLOOR,
    SURF_FOOT,
    SURF_HAND,
    SURF_LEG0,
    VEIN_ID_STRIDE,
    Lighting,
    Limb,
    PhotoCapture,
    PhotoLeg,
    PhotoRendered,
    PhotoScene,
)
from vein_tracker.synthetic.anatomy import LegSample, LimbRaster, leg_local, raster_limb, sample_leg
from vein_tracker.synthetic.backgrounds import material_rgb, region_alpha
from vein_tracker.synthetic.camera import _map_to_baseline, _scaled_capture
from vein_tracker.synthetic.photo_camera import develop, watermark_mask
from vein_tracker.synthetic.rendering import _local_px_per_mm
from vein_tracker.synthetic.scene import _Canvas, _stamp_absorbers, _stamp_strokes, _stamp_veins
from vein_tracker.synthetic.texture import (
    SurfaceWindow,
    micro_texture,
    real_detail_od,
    value_noise,
)

_BIT_FOLD = 128
# Creases: shadowed skin (neutral) with a little more blood at the bottom of the fold.
_FOLD_OD = np.array([0.80, 0.95, 0.95], dtype=np.float32)
# Red light scatters furthest under the skin: its shading wraps round further.
_WRAP = np.array([0.50, 0.32, 0.24], dtype=np.float32)
_Z = np.array([0.0, 0.0, 1.0], dtype=np.float32)


@dataclass
class SkinRaster:
    """A leg's skin on a raster window of its surface (origin ``x0``, ``y0`` raster px,
    ``s`` raster px per surface px). OD fields are float32; ``hx``/``hy`` the relief's
    slopes; ``flakes`` dry-skin whiteness; ``gloss`` specular modulation."""

    x0: int
    y0: int
    s: float
    skin_od: np.ndarray
    vein_od: np.ndarray
    hx: np.ndarray
    hy: np.ndarray
    flakes: np.ndarray
    gloss: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    bits: np.ndarray


def skin_raster(
    leg: PhotoLeg, s: float, x0: int, y0: int, h: int, w: int, *, with_od: bool = True
) -> SkinRaster:
    """Compose a leg's skin on a window of its surface at scale ``s`` (see :class:`SkinRaster`)."""
    surf = leg.surface
    ppm = surf.px_per_mm * s
    cv = _Canvas.empty(s, x0, y0, h, w, ppm, np.ones((h, w), dtype=bool))
    empty = np.zeros((0, 0), dtype=np.float32)
    if not with_od:  # vein truth only: the look-alikes' masks are left empty
        _stamp_veins(cv, surf.veins)
        e3 = np.zeros((0, 0, 3), dtype=np.float32)
        return SkinRaster(x0, y0, s, e3, e3, empty, empty, empty, empty, cv.labels, cv.ids, cv.bits)
    _stamp_absorbers(cv, surf)
    _stamp_strokes(cv, leg.folds, _BIT_FOLD, True, _FOLD_OD)
    win = SurfaceWindow(x0, y0, h, w, ppm)
    tex = leg.texture
    seed = surf.texture_seed
    m = np.float32(tex.mottle)
    mel = m * (
        np.float32(0.015) * value_noise(win, 1.5, seed, 1)
        + np.float32(0.03) * value_noise(win, 6.0, seed, 2)
        + np.float32(0.04) * value_noise(win, 30.0, seed, 3)
    )
    hb = m * (
        np.float32(0.015) * value_noise(win, 4.0, seed, 4)
        + np.float32(0.025) * value_noise(win, 22.0, seed, 5)
    )
    xs, ys = win.mm_grid()
    length_mm = leg.length / surf.px_per_mm
    centre_mm = leg.arc_centre / surf.px_per_mm
    front = np.exp(-(((xs - centre_mm) / 45.0) ** 2)).astype(np.float32)
    knee = np.exp(-(((ys - leg.knee_b * length_mm) / 45.0) ** 2)).astype(np.float32)
    low = np.clip((ys / length_mm - 0.6) / 0.35, 0.0, 1.0).astype(np.float32)
    hb += np.float32(0.06) * knee * front + np.float32(0.04) * low
    mel += np.float32(0.04) * low  # lower legs tan and pigment more
    neu = np.float32(0.012) * value_noise(win, 0.35, seed, 6)
    n_micro, m_micro, flakes = micro_texture(win, tex, seed)
    neu += n_micro
    mel += m_micro
    if tex.marmorata > 0:
        net = np.exp(-(value_noise(win, 7.0, seed, 7) ** 2) * np.float32(6.0))
        hb += np.float32(0.05 * tex.marmorata) * net
    skin_base = (
        _SKIN_BASE_OD
        + np.float32(surf.melanin) * MELANIN_OD
        + np.float32(_TONE_YELLOW.get(surf.tone, 0.0)) * _YELLOW_OD
    )
    skin = cv2.merge([mel, hb, neu])
    mix = np.stack([MELANIN_OD, HAEMOGLOBIN_OD, np.ones(3, np.float32)], axis=1).astype(np.float32)
    skin_od = np.asarray(cv2.transform(skin, mix), dtype=np.float32) + skin_base[None, None, :]
    if tex.real_detail > 0:
        skin_od += np.float32(tex.real_detail) * real_detail_od(win, seed)
    for sl, prof, direction in cv.stamps:
        skin_od[sl] += prof[:, :, None] * direction[None, None, :]
    vein_od = cv.haem[:, :, None] * HAEMOGLOBIN_OD + cv.deep[:, :, None] * DEEP_VEIN_OD
    hx, hy = _relief(leg, win)
    gloss = np.clip(1.0 + 0.5 * value_noise(win, 0.6, seed, 8) - 8.0 * n_micro, 0.0, 2.0)
    return SkinRaster(
        x0,
        y0,
        s,
        skin_od,
        vein_od.astype(np.float32),
        hx,
        hy,
        flakes,
        gloss.astype(np.float32) * np.float32(tex.gloss),
        cv.labels,
        cv.ids,
        cv.bits,
    )


def _relief(leg: PhotoLeg, win: SurfaceWindow) -> tuple[np.ndarray, np.ndarray]:
    """Slopes (d height / d x, d height / d y) of the leg's bumps on a surface window."""
    hx = np.zeros((win.h, win.w), dtype=np.float32)
    hy = np.zeros((win.h, win.w), dtype=np.float32)
    xs, ys = win.mm_grid()
    centre_mm = leg.arc_centre / leg.surface.px_per_mm
    for bump in leg.relief:
        dx = (xs - (centre_mm + bump.x_mm)).astype(np.float32)
        dy = (ys - bump.y_mm).astype(np.float32)
        jx = np.abs(dx[0]) < 3.5 * bump.sx_mm
        iy = np.abs(dy[:, 0]) < 3.5 * bump.sy_mm
        if not jx.any() or not iy.any():
            continue
        sub_x, sub_y = dx[:, jx], dy[iy, :]
        g = np.float32(bump.height_mm) * np.exp(
            -0.5 * (sub_x / np.float32(bump.sx_mm)) ** 2
            - 0.5 * (sub_y / np.float32(bump.sy_mm)) ** 2
        )
        ix = np.ix_(iy, jx)
        hx[ix] -= g * sub_x / np.float32(bump.sx_mm**2)
        hy[ix] -= g * sub_y / np.float32(bump.sy_mm**2)
    return hx, hy


# --------------------------------------------------------------------------------------
# Lighting
# --------------------------------------------------------------------------------------


def _irradiance(
    normal: np.ndarray, lighting: Lighting, shadow: np.ndarray, ao: np.ndarray
) -> np.ndarray:
    """Diffuse irradiance (H, W, 3) of skin with normal (H, W, 3) under ``lighting``."""
    key = np.asarray(lighting.key, dtype=np.float32)
    ndl = normal @ key
    diff = np.clip((ndl[..., None] + _WRAP) / (1.0 + _WRAP), 0.0, 1.0)
    lit = (
        (np.float32(lighting.key_gain) * (1.0 - shadow))[..., None]
        * diff
        * np.asarray(lighting.key_colour, np.float32)
    )
    lit += (np.float32(lighting.ambient) * ao)[..., None] * np.asarray(
        lighting.ambient_colour, np.float32
    )
    # Skin darkens towards grazing view (light leaves it sideways): outlines are darker.
    lit *= (np.float32(0.55) + np.float32(0.45) * np.clip(normal[..., 2], 0.0, 1.0))[..., None]
    if lighting.rim_gain > 0:
        rim_dir = np.array([lighting.rim_side * 0.94, -0.15, -0.3], dtype=np.float32)
        rim_dir /= np.linalg.norm(rim_dir)
        graze = np.clip(normal @ rim_dir + 0.25, 0.0, None) * (1.0 - normal[..., 2]) ** 2
        lit += (np.float32(lighting.rim_gain) * 2.0 * graze)[..., None] * np.asarray(
            lighting.rim_colour, np.float32
        )
    return lit


def _specular(
    normal: np.ndarray, lighting: Lighting, shadow: np.ndarray, gloss: np.ndarray
) -> np.ndarray:
    key = np.asarray(lighting.key, dtype=np.float32)
    half = key + _Z
    half /= np.linalg.norm(half)
    ndh = np.clip(normal @ half, 0.0, 1.0)
    # Fresnel: skin reflects more at grazing angles.
    fres = 1.0 + 3.0 * (1.0 - np.clip(normal[..., 2], 0.0, 1.0)) ** 5
    return (
        np.float32(lighting.specular * lighting.key_gain)
        * gloss
        * fres
        * (1.0 - shadow)
        * ndh ** np.float32(lighting.shininess)
    )


# --------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------


@dataclass
class _Layer:
    depth: float
    code: int
    kind: str  # "leg", "limb", "clothing"
    index: int
    alpha: np.ndarray


def _limb_sample(r: LimbRaster, xy: np.ndarray, fields: list[np.ndarray]) -> list[np.ndarray]:
    mx = (xy[..., 0] * np.float32(r.s) - np.float32(r.x0)).astype(np.float32)
    my = (xy[..., 1] * np.float32(r.s) - np.float32(r.y0)).astype(np.float32)
    return [
        np.asarray(
            cv2.remap(f, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        )
        for f in fields
    ]


def _shadow_of(
    scene: PhotoScene,
    occluders: list[tuple[str, int, float]],
    xy: np.ndarray,
    lighting: Lighting,
    receiver_depth: float,
    px_scale: float,
    limb_rasters: dict[int, LimbRaster],
) -> np.ndarray:
    """Soft shadow (H, W) in [0, 1] cast on a receiver at ``receiver_depth`` (mm)."""
    h, w = xy.shape[:2]
    ppm = scene.px_per_mm
    light_left = np.ones((h, w), dtype=np.float32)
    for kind, idx, depth in occluders:
        height = depth - receiver_depth
        if height <= 0:
            continue
        shift = np.array(lighting.shadow_mm, dtype=np.float32) * np.float32(height * ppm)
        moved = xy - shift[None, None, :]
        if kind == "leg":
            cover = leg_local(scene.legs[idx], moved, 1.0)[4]
        else:
            cover = _limb_sample(limb_rasters[idx], moved, [limb_rasters[idx].alpha])[0]
        sigma = max(0.7, lighting.shadow_soft * height * ppm * px_scale)
        light_left *= 1.0 - _soft(cover, sigma) * np.float32(0.85)
    return 1.0 - light_left


def _soft(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a coverage map; large σ on a reduced copy (cheap, smooth anyway)."""
    if sigma < 6.0:
        return np.asarray(cv2.GaussianBlur(a, (0, 0), sigma), dtype=np.float32)
    k = int(sigma // 3)
    h, w = a.shape
    small = cv2.resize(a, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / k)
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)


def _world_map(scene: PhotoScene, capture: PhotoCapture) -> tuple[np.ndarray, float]:
    """World (x, y) px seen at each photo pixel, and photo px per world px at the centre."""
    h, w = scene.shape
    geo = capture.geometry
    if geo.is_identity_geometry:
        xy = np.empty((h, w, 2), dtype=np.float32)
        xy[:, :, 0] = np.arange(w, dtype=np.float32)[None, :]
        xy[:, :, 1] = np.arange(h, dtype=np.float32)[:, None]
        return xy, 1.0
    xy, _ = _map_to_baseline(geo, (h, w))
    hom, _, _ = _scaled_capture(geo, (h, w))
    return xy, _local_px_per_mm(hom, (h, w), 1.0)


def render_photo(
    scene: PhotoScene, capture: PhotoCapture, *, with_pixels: bool = True
) -> PhotoRendered:
    """Photograph a photo-like scene; the photo and its exact truth in the photo's frame.

    Parameters
    ----------
    scene : PhotoScene
    capture : PhotoCapture
        Its geometry's shape must be the scene's shape.
    with_pixels : bool
        False computes the vein and surface truth only: ``rgb`` is then an empty
        (0, 0, 3) array and the look-alike masks (hair, folds, spots...) are empty.

    Returns
    -------
    PhotoRendered
    """
    if not isinstance(scene, PhotoScene):
        raise ValueError("scene must be a PhotoScene from make_photo_scene() or treat_photo()")
    if not isinstance(capture, PhotoCapture):
        raise ValueError("capture must be a PhotoCapture from photo_capture()")
    if tuple(capture.geometry.shape) != tuple(scene.shape):
        raise ValueError(
            f"capture shape {capture.geometry.shape} must be the scene's shape {scene.shape}"
        )
    h, w = scene.shape
    xy, px_scale = _world_map(scene, capture)
    limb_rasters = {i: raster_limb(limb, 1.0) for i, limb in enumerate(scene.limbs)}
    layers: list[_Layer] = []
    covers = [leg_local(leg, xy, px_scale)[4] for leg in scene.legs]
    for k, leg in enumerate(scene.legs):
        layers.append(_Layer(leg.depth, SURF_LEG0 + k, "leg", k, covers[k]))
    for i, limb in enumerate(scene.limbs):
        alpha = _limb_sample(limb_rasters[i], xy, [limb_rasters[i].alpha])[0]
        layers.append(
            _Layer(limb.depth, SURF_HAND if limb.kind == "hand" else SURF_FOOT, "limb", i, alpha)
        )
    if scene.clothing is not None:
        top = max((lay.depth for lay in layers), default=0.0) + 1.0
        layers.append(
            _Layer(top, SURF_CLOTHING, "clothing", 0, region_alpha(scene.clothing, xy, px_scale))
        )
    layers.sort(key=lambda lay: lay.depth)
    floor_alpha = (
        region_alpha(scene.floor, xy, px_scale)
        if scene.floor is not None
        else np.zeros((h, w), np.float32)
    )
    code = np.full((h, w), SURF_BACKGROUND, dtype=np.uint8)
    code[floor_alpha >= 0.5] = SURF_FLOOR
    for lay in layers:
        code[lay.alpha >= 0.5] = lay.code
    truth = _leg_truth(scene, xy, px_scale, code, covers, with_od=with_pixels)
    if not with_pixels:
        return _assemble(
            scene, capture, xy, px_scale, code, truth, np.zeros((0, 0, 3), np.uint8), None
        )
    lin = _compose(scene, capture, xy, px_scale, layers, floor_alpha, limb_rasters, truth)
    geo = capture.geometry
    _, _, blur = _scaled_capture(geo, (h, w))
    rgb, jpeg = develop(lin, capture, blur)
    return _assemble(scene, capture, xy, px_scale, code, truth, rgb, jpeg)


@dataclass
class _LegTruth:
    labels: np.ndarray
    ids: np.ndarray
    bits: np.ndarray
    rasters: dict[int, SkinRaster]
    samples: dict[int, tuple[tuple[slice, slice], LegSample]]


def _bbox(mask: np.ndarray, pad: int = 2) -> tuple[slice, slice] | None:
    """Slices of the bounding box of ``mask`` (padded), or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (
        slice(max(rows[0] - pad, 0), min(rows[-1] + pad + 1, h)),
        slice(max(cols[0] - pad, 0), min(cols[-1] + pad + 1, w)),
    )


def _leg_truth(
    scene: PhotoScene,
    xy: np.ndarray,
    px_scale: float,
    code: np.ndarray,
    covers: list[np.ndarray],
    *,
    with_od: bool,
) -> _LegTruth:
    """Vein labels, photo vein ids and look-alike bits of the legs in front."""
    h, w = code.shape
    labels = np.zeros((h, w), dtype=np.uint8)
    ids = np.zeros((h, w), dtype=np.int32)
    bits = np.zeros((h, w), dtype=np.uint8)
    rasters: dict[int, SkinRaster] = {}
    samples: dict[int, tuple[tuple[slice, slice], LegSample]] = {}
    s = max(1.0, px_scale)
    for k, leg in enumerate(scene.legs):
        sl = _bbox(covers[k] > 0)
        if sl is None:
            continue
        smp = sample_leg(leg, xy[sl], px_scale)
        near = smp.alpha > 0
        sx, sy = smp.sx[near], smp.sy[near]
        x0 = int(math.floor(float(sx.min()) * s)) - 3
        y0 = int(math.floor(float(sy.min()) * s)) - 3
        rw = int(math.ceil(float(sx.max()) * s)) + 4 - x0
        rh = int(math.ceil(float(sy.max()) * s)) + 4 - y0
        rast = skin_raster(leg, s, x0, y0, rh, rw, with_od=with_od)
        rasters[k] = rast
        samples[k] = (sl, smp)
        mx = (smp.sx * np.float32(s) - np.float32(x0)).astype(np.float32)
        my = (smp.sy * np.float32(s) - np.float32(y0)).astype(np.float32)

        def near_(src: np.ndarray, mx: np.ndarray = mx, my: np.ndarray = my) -> np.ndarray:
            return np.asarray(
                cv2.remap(
                    src, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
                )
            )

        lab, vid, bit = near_(rast.labels), near_(rast.ids), near_(rast.bits)
        mine = code[sl] == SURF_LEG0 + k
        labels[sl][mine] = lab[mine]
        got = mine & (vid > 0)
        ids[sl][got] = vid[got].astype(np.int32) + VEIN_ID_STRIDE * (k + 1)
        bits[sl][mine] = bit[mine]
    return _LegTruth(labels, ids, bits, rasters, samples)


def _compose(
    scene: PhotoScene,
    capture: PhotoCapture,
    xy: np.ndarray,
    px_scale: float,
    layers: list[_Layer],
    floor_alpha: np.ndarray,
    limb_rasters: dict[int, LimbRaster],
    truth: _LegTruth,
) -> np.ndarray:
    """Scene radiance (H, W, 3) float32, auto-exposed: the layers lit and composited."""
    lt = capture.lighting
    h, w = xy.shape[:2]
    occ_all = [(lay.kind, lay.index, lay.depth) for lay in layers if lay.kind != "clothing"]
    key_col = np.asarray(lt.key_colour, np.float32)
    amb_col = np.asarray(lt.ambient_colour, np.float32)
    bd = material_rgb(scene.backdrop, xy, scene.px_per_mm, scene.shape)
    sh = _shadow_of(scene, occ_all, xy, lt, 0.0, px_scale, limb_rasters)
    lin = bd * (
        np.float32(lt.ambient) * amb_col
        + (np.float32(lt.key_gain * 0.8) * (1.0 - sh))[..., None] * key_col
    )
    del bd, sh
    fsl = _bbox(floor_alpha > 0) if scene.floor is not None else None
    if scene.floor is not None and fsl is not None:
        fxy = xy[fsl]
        fl = material_rgb(scene.floor.material, fxy, scene.px_per_mm, scene.shape)
        occ_floor = [(k, i, min(d, 25.0) if k == "limb" else 120.0) for k, i, d in occ_all]
        shf = _shadow_of(scene, occ_floor, xy, lt, 0.0, px_scale, limb_rasters)[fsl]
        up = max(0.25, float(-lt.key[1]) + 0.3)
        fl *= (
            np.float32(lt.ambient) * amb_col
            + (np.float32(lt.key_gain * up) * (1.0 - shf))[..., None] * key_col
        )
        a = floor_alpha[fsl][..., None]
        lin[fsl] = lin[fsl] * (1.0 - a) + fl * a
    for lay in layers:
        sl = _bbox(lay.alpha > 0)
        if sl is None:
            continue
        occ = [o for o in occ_all if o[2] > lay.depth]
        if occ:
            shadow = _shadow_of(scene, occ, xy, lt, lay.depth, px_scale, limb_rasters)[sl]
        else:
            shadow = np.zeros(lay.alpha[sl].shape, np.float32)
        if lay.kind == "leg":
            if lay.index not in truth.samples:
                continue
            lsl, smp = truth.samples[lay.index]
            col = np.zeros((h, w, 3), dtype=np.float32)
            col[lsl] = _leg_radiance(
                smp, lt, shadow_full(shadow, sl, lsl, (h, w)), truth.rasters[lay.index]
            )
            col = col[sl]
        elif lay.kind == "limb":
            col = _limb_radiance(
                scene.limbs[lay.index], limb_rasters[lay.index], xy[sl], lt, shadow
            )
        else:
            assert scene.clothing is not None
            cl = material_rgb(scene.clothing.material, xy[sl], scene.px_per_mm, scene.shape)
            col = cl * (np.float32(lt.ambient) * amb_col + np.float32(lt.key_gain * 0.7) * key_col)
        a = lay.alpha[sl][..., None]
        lin[sl] = lin[sl] * (1.0 - a) + col * a
    # Auto exposure: the phone meters a centre-weighted mean to mid-grey.
    yy = np.exp(-(((np.arange(h, dtype=np.float32) - h / 2) / (0.35 * h)) ** 2))
    xx = np.exp(-(((np.arange(w, dtype=np.float32) - w / 2) / (0.35 * w)) ** 2))
    lum = lin @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    mean = float(yy @ lum @ xx) / float(yy.sum() * xx.sum())
    lin *= np.float32(0.20 / max(mean, 1e-4))
    return lin


def shadow_full(
    shadow: np.ndarray, sl: tuple[slice, slice], target: tuple[slice, slice], shape: tuple[int, int]
) -> np.ndarray:
    """A shadow computed on window ``sl`` of a frame, re-cut to window ``target``."""
    full = np.zeros(shape, dtype=np.float32)
    full[sl] = shadow
    return full[target]


def _leg_radiance(smp: LegSample, lt: Lighting, shadow: np.ndarray, rast: SkinRaster) -> np.ndarray:
    """Lit skin (h, w, 3) of a leg sampled on a window, veins painted in OD."""
    mx = (smp.sx * np.float32(rast.s) - np.float32(rast.x0)).astype(np.float32)
    my = (smp.sy * np.float32(rast.s) - np.float32(rast.y0)).astype(np.float32)

    def get(f: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.remap(f, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))

    hx, hy = get(rast.hx), get(rast.hy)
    normal = smp.normal - hx[..., None] * smp.tangent_arc - hy[..., None] * smp.axis[None, None, :]
    normal *= (1.0 / np.sqrt(np.einsum("...i,...i->...", normal, normal)))[..., None]
    del hx, hy
    ao = np.float32(0.55) + np.float32(0.45) * np.clip(normal[..., 2], 0.0, 1.0)
    col = _irradiance(normal, lt, shadow, ao)
    albedo = np.exp(-get(rast.skin_od))
    f = get(rast.flakes)[..., None]
    albedo *= 1.0 - f
    albedo += np.float32(0.7) * f
    col *= albedo
    del albedo, f
    spec = _specular(normal, lt, shadow, get(rast.gloss))
    col += spec[..., None] * np.asarray(lt.key_colour, np.float32)
    # Veins are painted in optical density onto the lit skin.
    col *= np.exp(-get(rast.vein_od))
    return col


def _limb_radiance(
    limb: Limb, r: LimbRaster, xy: np.ndarray, lt: Lighting, shadow: np.ndarray
) -> np.ndarray:
    nx, ny, nail = _limb_sample(r, xy, [r.nx, r.ny, r.nail])
    od = _limb_sample(r, xy, [r.od])[0]
    nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
    normal = np.stack([nx, ny, nz], axis=-1)
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-6)
    ao = np.float32(0.6) + np.float32(0.4) * nz
    irr = _irradiance(normal, lt, shadow, ao)
    albedo: np.ndarray
    if limb.glove is not None:
        albedo = np.broadcast_to(np.asarray(limb.glove, np.float32), irr.shape)
        gloss = np.full(nx.shape, 1.5, dtype=np.float32)
    else:
        # The same skin as the legs (a little tan and blood, as the lower legs have).
        base = (
            _SKIN_BASE_OD
            + np.float32(limb.melanin + 0.06) * MELANIN_OD
            + np.float32(0.05) * HAEMOGLOBIN_OD
            + np.float32(0.05)
        )
        skin_od = np.asarray(base[None, None, :] + od, dtype=np.float32)
        # Nails: the nail bed's pink through a translucent plate, lighter than the skin.
        nail_od = np.float32(0.7) * skin_od + np.array([0.03, 0.10, 0.10], dtype=np.float32)
        skin_od = skin_od * (1.0 - nail[..., None]) + nail_od * nail[..., None]
        albedo = np.exp(-skin_od)
        gloss = np.asarray(0.8 + nail * np.float32(2.0), dtype=np.float32)
    col = irr * albedo + _specular(normal, lt, shadow, gloss)[..., None] * np.asarray(
        lt.key_colour, np.float32
    )
    return np.asarray(col, dtype=np.float32)


def _assemble(
    scene: PhotoScene,
    capture: PhotoCapture,
    xy: np.ndarray,
    px_scale: float,
    code: np.ndarray,
    truth: _LegTruth,
    rgb: np.ndarray,
    jpeg: bytes | None,
) -> PhotoRendered:
    h, w = code.shape
    table = scene.vein_table()
    vis = np.zeros((h, w), dtype=np.float32)
    if table:
        keys = np.array(sorted(table), dtype=np.int64)
        vals = np.array([table[int(k)][3] for k in keys], dtype=np.float32)
        got = truth.ids > 0
        pos = np.searchsorted(keys, truth.ids[got])
        vis[got] = vals[np.clip(pos, 0, len(keys) - 1)]
    skins = tuple(code == SURF_LEG0 + k for k in range(len(scene.legs)))
    is_skin = (code >= SURF_LEG0) | (code == SURF_HAND) | (code == SURF_FOOT)
    ppm_photo = scene.px_per_mm * px_scale
    band = _boundary_band(code, is_skin, 1.5 * ppm_photo)
    mark = (
        watermark_mask((h, w), capture.watermark) > 0.02
        if capture.watermark is not None
        else np.zeros((h, w), dtype=bool)
    )

    def bit(b: int) -> np.ndarray:
        return (truth.bits & np.uint8(b)) != 0

    return PhotoRendered(
        rgb=rgb,
        jpeg=jpeg,
        labels=truth.labels,
        vein_ids=truth.ids,
        visibility=vis,
        surface=code,
        skin_masks=skins,
        hand=code == SURF_HAND,
        foot=code == SURF_FOOT,
        floor=code == SURF_FLOOR,
        background=code == SURF_BACKGROUND,
        clothing=code == SURF_CLOTHING,
        watermark=mark,
        outline_band=band,
        hair=bit(_BIT_HAIR),
        folds=bit(_BIT_FOLD),
        freckles=bit(_BIT_FRECKLE),
        moles=bit(_BIT_MOLE),
        stain=bit(_BIT_STAIN),
        bruise=bit(_BIT_BRUISE),
        matting=bit(_BIT_MATTING),
        to_baseline_map=xy,
        capture=capture,
        px_per_mm=ppm_photo,
        baseline_px_per_mm=scene.px_per_mm,
    )


def _boundary_band(code: np.ndarray, is_skin: np.ndarray, radius_px: float) -> np.ndarray:
    """Pixels within ``radius_px`` of a boundary between a skin surface and anything else."""
    edge = np.zeros(code.shape, dtype=bool)
    dv = code[1:, :] != code[:-1, :]
    sv = is_skin[1:, :] | is_skin[:-1, :]
    edge[1:, :] |= dv & sv
    edge[:-1, :] |= dv & sv
    dh = code[:, 1:] != code[:, :-1]
    sh = is_skin[:, 1:] | is_skin[:, :-1]
    edge[:, 1:] |= dh & sh
    edge[:, :-1] |= dh & sh
    if not edge.any():
        return edge
    dist = cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 5)
    return np.asarray(dist <= radius_px)
