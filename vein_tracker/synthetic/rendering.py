"""Photography of a scene: exposure, white balance, blur, noise, sRGB and JPEG; :func:`render`.

:func:`render` evaluates the scene in OD where the photo looks (:mod:`.scene`), maps it into
the photo with the capture's exact pixel map (:mod:`.camera`) and exposes it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vein_tracker.synthetic._checks import _check_shape
from vein_tracker.synthetic._model import (
    _BIT_BRUISE,
    _BIT_FRECKLE,
    _BIT_HAIR,
    _BIT_LEG,
    _BIT_MATTING,
    _BIT_MOLE,
    _BIT_STAIN,
    _SCENE_MARGIN,
    Capture,
    Leg,
    Rendered,
)
from vein_tracker.synthetic.camera import _map_to_baseline, _scaled_capture, identity_capture
from vein_tracker.synthetic.scene import _render_scene, _row_blocks

_SRGB_LUT_N = 65536
_SRGB_LUT: np.ndarray | None = None


def _srgb_lut() -> np.ndarray:
    global _SRGB_LUT
    if _SRGB_LUT is None:
        v = np.arange(_SRGB_LUT_N, dtype=np.float64) / (_SRGB_LUT_N - 1)
        enc = np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)
        _SRGB_LUT = np.round(enc * 255.0).astype(np.uint8)
    return _SRGB_LUT


def _photograph(od: np.ndarray, capture: Capture, blur: float) -> tuple[np.ndarray, bytes | None]:
    """OD (H, W, 3) float32 → sRGB uint8 through the capture's photometric chain.

    ``od`` is consumed (overwritten in place with linear values) to save memory.
    """
    h, w, _ = od.shape
    gains = (np.asarray(capture.wb_gains, dtype=np.float64) * capture.exposure).astype(np.float32)
    blocks = _row_blocks(h, w)
    for a, b in blocks:
        blk = od[a:b]
        np.negative(blk, out=blk)
        np.exp(blk, out=blk)
        blk *= gains[None, None, :]
    if blur > 0.05:
        cv2.GaussianBlur(od, (0, 0), blur, dst=od, borderType=cv2.BORDER_REFLECT)
    lut = _srgb_lut()
    out = np.empty((h, w, 3), dtype=np.uint8)
    rng = np.random.default_rng([int(capture.seed), 0x401])
    scale = np.float32(_SRGB_LUT_N - 1)
    for a, b in blocks:
        blk = od[a:b]
        if capture.noise > 0:
            sd = np.maximum(blk, np.float32(0.0))
            sd += np.float32(0.01)
            np.sqrt(sd * np.float32(1.0 / 0.19), out=sd)
            sd *= np.float32(capture.noise)
            sd *= rng.standard_normal(blk.shape, dtype=np.float32)
            blk += sd
        blk *= scale
        blk += np.float32(0.5)
        np.clip(blk, 0, scale, out=blk)
        out[a:b] = np.take(lut, blk.astype(np.uint16))
    if capture.jpeg_quality is None:
        return out, None
    ok, buf = cv2.imencode(
        ".jpg",
        cv2.cvtColor(out, cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, int(capture.jpeg_quality)],
    )
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise RuntimeError("JPEG encoding failed")
    data = buf.tobytes()
    dec = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if dec is None:  # pragma: no cover - decoding our own JPEG
        raise RuntimeError("JPEG decoding failed")
    return np.asarray(cv2.cvtColor(dec, cv2.COLOR_BGR2RGB)), data


def _remap(src: np.ndarray, xy: np.ndarray, interpolation: int, border: int) -> np.ndarray:
    """cv2.remap with a (H, W, 2) float32 map of source (x, y)."""
    out = cv2.remap(src, xy, None, interpolation, borderMode=border)
    return np.asarray(out)


def _unpack(bits: np.ndarray, bit: int) -> np.ndarray:
    return (bits & np.uint8(bit)) != 0


def _local_px_per_mm(hom: np.ndarray, shape: tuple[int, int], ppm_base: float) -> float:
    """Photo px per mm at the frame centre: baseline scale over the map's local scale."""
    h, w = shape
    c = np.array([[[(w - 1) / 2.0, (h - 1) / 2.0]]], dtype=np.float64)
    pts = np.concatenate([c, c + [[[1.0, 0.0]]], c + [[[0.0, 1.0]]]], axis=1)
    q = cv2.perspectiveTransform(pts, hom)[0]
    jac = abs(float(np.linalg.det(np.stack([q[1] - q[0], q[2] - q[0]]))))
    return ppm_base / math.sqrt(jac) if jac > 0 else ppm_base


def render(
    leg: Leg, capture: Capture | None = None, *, shape: tuple[int, int] | None = None
) -> Rendered:
    """Photograph the leg with a capture and return the photo with its truth.

    The scene is evaluated in OD on the part of the baseline frame the photo sees (up to
    half a frame beyond its edges; further out the border is replicated), mapped into the
    photo by inverse mapping (``cv2.remap`` with :attr:`Rendered.to_baseline_map`: bilinear
    for OD, nearest for the truth), then exposed: linear = exp(−OD) × exposure × WB gains,
    Gaussian blur, signal-dependent noise, sRGB, JPEG.

    Parameters
    ----------
    leg : Leg
    capture : Capture, optional
        Default :func:`identity_capture` (pixel-aligned, no noise, no JPEG).
    shape : (int, int), optional
        Output (H, W) px; default the leg's baseline shape. Another shape with the same
        aspect ratio renders the same scene at another resolution (px_per_mm scales).

    Returns
    -------
    Rendered
        The photo and its truth, in the photo's own frame. Vein truth covers the veins
        visible in this state of the leg (visibility > 0).
    """
    if not isinstance(leg, Leg):
        raise ValueError("leg must be a Leg from make_leg() or treat()")
    out_shape = leg.shape if shape is None else _check_shape(shape)
    lh, lw = leg.shape
    if abs(out_shape[0] / out_shape[1] - lh / lw) > 0.01 * lh / lw:
        raise ValueError(
            f"shape {out_shape} must keep the leg's aspect ratio {lh}:{lw}; "
            "pass a shape proportional to the baseline shape"
        )
    cap = identity_capture(shape=leg.shape) if capture is None else capture
    if not isinstance(cap, Capture):
        raise ValueError("capture must be a Capture from random_capture() or identity_capture()")
    h, w = out_shape
    s = w / lw
    hom, _, blur = _scaled_capture(cap, out_shape)

    if cap.is_identity_geometry:
        scene = _render_scene(leg, s, 0, 0, h, w)
        od, labels, ids, bits = scene.od, scene.labels, scene.ids, scene.bits
        del scene
        bmap = np.empty((h, w, 2), dtype=np.float32)
        bmap[:, :, 0] = np.arange(w, dtype=np.float32)[None, :]
        bmap[:, :, 1] = np.arange(h, dtype=np.float32)[:, None]
    else:
        bmap, (ex0, ey0, ex1, ey1) = _map_to_baseline(cap, out_shape)
        mx0 = max(math.floor(ex0) - 3, -int(_SCENE_MARGIN * w))
        mx1 = min(math.ceil(ex1) + 4, w + int(_SCENE_MARGIN * w))
        my0 = max(math.floor(ey0) - 3, -int(_SCENE_MARGIN * h))
        my1 = min(math.ceil(ey1) + 4, h + int(_SCENE_MARGIN * h))
        if mx0 >= mx1 or my0 >= my1:
            raise ValueError("capture looks entirely outside the scene; use a milder pose")
        scene = _render_scene(leg, s, mx0, my0, my1 - my0, mx1 - mx0)
        od = np.empty((h, w, 3), dtype=np.float32)
        labels = np.empty((h, w), dtype=np.uint8)
        ids = np.empty((h, w), dtype=np.uint16)
        bits = np.empty((h, w), dtype=np.uint8)
        off = np.array([mx0, my0], dtype=np.float32)
        for a, b in _row_blocks(h, w):
            local = bmap[a:b] - off
            od[a:b] = _remap(scene.od, local, cv2.INTER_LINEAR, cv2.BORDER_REPLICATE)
            labels[a:b] = _remap(scene.labels, local, cv2.INTER_NEAREST, cv2.BORDER_CONSTANT)
            ids[a:b] = _remap(scene.ids, local, cv2.INTER_NEAREST, cv2.BORDER_CONSTANT)
            bits[a:b] = _remap(scene.bits, local, cv2.INTER_NEAREST, cv2.BORDER_REPLICATE)
        del scene

    rgb, jpeg = _photograph(od, cap, blur)
    del od
    vis_lut = np.zeros(int(ids.max()) + 1, dtype=np.float32)
    for v in leg.veins:
        if v.id < len(vis_lut):
            vis_lut[v.id] = v.visibility
    ppm_base = leg.px_per_mm * s
    return Rendered(
        rgb=rgb,
        jpeg=jpeg,
        labels=labels,
        vein_ids=ids.astype(np.int32),
        visibility=vis_lut[ids],
        leg_mask=_unpack(bits, _BIT_LEG),
        hair=_unpack(bits, _BIT_HAIR),
        freckles=_unpack(bits, _BIT_FRECKLE),
        moles=_unpack(bits, _BIT_MOLE),
        stain=_unpack(bits, _BIT_STAIN),
        bruise=_unpack(bits, _BIT_BRUISE),
        matting=_unpack(bits, _BIT_MATTING),
        to_baseline_map=bmap,
        capture=cap,
        px_per_mm=_local_px_per_mm(hom, out_shape, ppm_base),
        baseline_px_per_mm=ppm_base,
    )
