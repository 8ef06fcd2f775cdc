"""Drawing a segmentation: the vein classes over a dimmed photo (:func:`overlay`)."""

from __future__ import annotations

import numpy as np

from ..io import Photo, as_rgb
from .params import RETICULAR, SPIDER


def overlay(
    image: Photo | np.ndarray,
    labels: np.ndarray,
    *,
    dim: float = 0.55,
    spider_rgb: tuple[int, int, int] = (255, 40, 90),
    reticular_rgb: tuple[int, int, int] = (40, 200, 255),
) -> np.ndarray:
    """Vein classes drawn over a dimmed photo.

    Parameters
    ----------
    image : Photo or ndarray, shape (H, W, 3), uint8
    labels : ndarray, shape (H, W), uint8 0/1/2
    dim : float in [0, 1]
        Brightness kept from the photo under and around the veins.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    rgb = as_rgb(image)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"labels must have shape {rgb.shape[:2]}, got {labels.shape}")
    if not 0.0 <= dim <= 1.0:
        raise ValueError(f"dim must be in [0, 1], got {dim}")
    out = (rgb.astype(np.float32) * dim).astype(np.uint8)
    out[labels == SPIDER] = spider_rgb
    out[labels == RETICULAR] = reticular_rgb
    return out
