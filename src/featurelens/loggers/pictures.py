"""The pictures loggers record, as RGB pixel arrays and PNG bytes (no matplotlib figure: one per
epoch per layer would cost more than the epoch's logging should).

The layouts are those of the report's figures: :func:`~featurelens.visualize.filter_mosaic` for
kernels (colour images for RGB inputs, red-positive/blue-negative weights otherwise) and
:func:`~featurelens.visualize.feature_maps.feature_map_mosaic` for feature maps (every channel
scaled on its own, viridis), enlarged by whole pixels so small kernels stay visible.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

from featurelens.visualize.feature_maps import feature_map_mosaic
from featurelens.visualize.filters import filter_mosaic

#: Pictures are enlarged by a whole factor until their longer side reaches about this many pixels.
TARGET_SIDE = 256
GAP = 0.85  # the grey between tiles


def _enlarge(rgb: np.ndarray, target: int = TARGET_SIDE) -> np.ndarray:
    factor = max(1, target // max(rgb.shape[:2]))
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(np.nan_to_num(rgb, nan=GAP), 0, 1) * 255).round().astype(np.uint8)


def filters_pixels(kernels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 picture of a conv layer's (C_out, kh, kw, C_in) kernels."""
    picture, mode = filter_mosaic(np.asarray(kernels, np.float32))
    if mode != "rgb":  # weights in [-1, 1], zero in the middle of the diverging map
        gaps = np.isnan(picture)
        picture = colormaps["RdBu_r"]((np.nan_to_num(picture) + 1) / 2)[..., :3]
        picture[gaps] = np.nan
    return _enlarge(_to_uint8(picture))


def maps_pixels(maps: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 picture of one image's (H, W, C) feature maps, a tile per channel."""
    picture = feature_map_mosaic(np.asarray(maps, np.float32))
    gaps = np.isnan(picture)
    rgb = colormaps["viridis"](np.nan_to_num(picture))[..., :3]
    rgb[gaps] = np.nan
    return _enlarge(_to_uint8(rgb))


def image_pixels(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 of one display-ready (H, W, 3) image in [0, 1], enlarged."""
    return _enlarge(_to_uint8(np.asarray(image, np.float32)), TARGET_SIDE // 2)


def png(pixels: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()
