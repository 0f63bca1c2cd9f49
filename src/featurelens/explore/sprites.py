"""Compact pixels for the page: maps quantized per channel and packed into image sheets.

Every channel of every layer of one image goes into one gray sheet, each channel scaled to its own
range (``lo``, ``hi``, kept beside it in the image's record) with :data:`LEVELS` gray levels, as
lossless WebP (ReLU maps are half zeros and compress well: a fifth smaller than PNG). The page
colours the gray with an SVG colour-map filter, so it never needs to read pixels (which Chromium
forbids for pages opened from ``file://``). Colour images (thumbnails, patches, feature
visualizations) go into RGB sheets the same way.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from featurelens.errors import InputError
from featurelens.visualize.mosaic import mosaic, tile_origin

SHEET_WIDTH = 512
"""Width of an image's feature-map sheet: 16 maps of 32x32, 32 of 16x16 ... per row."""


@dataclass(frozen=True)
class Block:
    """Where one group of equal tiles sits in a sheet: rows from ``y``, ``cols`` tiles per row."""

    y: int
    h: int
    w: int
    count: int
    cols: int

    @property
    def rows(self) -> int:
        return math.ceil(self.count / self.cols)

    def to_dict(self) -> dict[str, int]:
        return {"y": self.y, "h": self.h, "w": self.w, "count": self.count, "cols": self.cols}


def layout(blocks: dict[str, tuple[int, int, int]], width: int = SHEET_WIDTH) -> tuple[dict[str, Block], int, int]:
    """Stack blocks of ``(h, w, count)`` tiles top to bottom: ``({name: Block}, width, height)``."""
    width = max([width, *(w for _, w, _ in blocks.values())])
    placed: dict[str, Block] = {}
    y = 0
    for name, (h, w, count) in blocks.items():
        block = Block(y, h, w, count, max(1, min(count, width // w)))
        placed[name] = block
        y += block.rows * h
    return placed, width, y


def quantize(maps: np.ndarray, signed: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h, w, C) float maps to (C, h, w) uint8 with each channel's ``(lo, hi)`` range (C,) each.

    The range includes 0, so ReLU maps keep 0 at gray 0; ``signed`` makes it symmetric (0 at 127.5),
    for maps whose sign matters.
    """
    maps = np.nan_to_num(np.asarray(maps, np.float32))
    if maps.ndim != 3:
        raise InputError(f"expected (h, w, C) maps, got shape {maps.shape}")
    lo = np.minimum(maps.min(axis=(0, 1)), 0.0)
    hi = np.maximum(maps.max(axis=(0, 1)), 0.0)
    if signed:
        peak = np.maximum(-lo, hi)
        lo, hi = -peak, peak
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = np.rint((maps - lo) / span * 255.0)
    return np.moveaxis(np.clip(scaled, 0, 255).astype(np.uint8), 2, 0), lo.astype(np.float32), hi.astype(np.float32)


def paste(sheet: np.ndarray, block: Block, tiles: np.ndarray) -> None:
    """Write ``tiles`` ((count, h, w) or (count, h, w, 3)) into ``sheet`` where ``block`` says."""
    for i, tile in enumerate(tiles):
        y, x = tile_origin(i, (block.h, block.w), block.cols, 0)
        sheet[block.y + y:block.y + y + block.h, x:x + block.w] = tile


def colour_sheet(tiles: np.ndarray, cols: int, fill: float = 0.82) -> np.ndarray:
    """(N, h, w, 3) images in [0, 1] (NaN: ``fill`` gray) as one uint8 RGB sheet, ``cols`` per row."""
    tiles = np.asarray(tiles, np.float32)
    if tiles.ndim == 4 and tiles.shape[-1] == 1:
        tiles = np.repeat(tiles, 3, axis=-1)
    sheet = mosaic(np.nan_to_num(tiles, nan=fill), cols=min(cols, len(tiles)), pad=0, fill=fill)
    return np.rint(np.clip(sheet, 0, 1) * 255).astype(np.uint8)


LEVELS = 64
"""Gray levels kept per map: indistinguishable on a colour map, and a quarter smaller than 256."""


def encode(array: np.ndarray, kind: str) -> bytes:
    """A uint8 sheet as image-file bytes: ``"maps"`` (gray feature maps: :data:`LEVELS` levels,
    lossless WebP; its slowest setting is 2% smaller and 200 times slower), ``"photo"`` (RGB crops
    of images and optimized images: WebP at quality 90) or ``"exact"`` (PNG, every pixel as given:
    the images the model saw, kernels)."""
    array = np.ascontiguousarray(array, np.uint8)
    mode = "L" if array.ndim == 2 else "RGB"
    buffer = io.BytesIO()
    if kind == "maps":
        step = 255 / (LEVELS - 1)
        levels = (np.rint(np.rint(array / step) * step)).astype(np.uint8)
        Image.fromarray(levels, mode).save(buffer, format="WEBP", lossless=True, quality=50, method=4)
    elif kind == "photo":
        Image.fromarray(array, mode).save(buffer, format="WEBP", quality=90, method=4)
    elif kind == "exact":
        Image.fromarray(array, mode).save(buffer, format="PNG", compress_level=9)
    else:
        raise InputError(f"unknown sheet kind {kind!r}; choose maps, photo or exact")
    return buffer.getvalue()


EXTENSIONS = {"maps": "webp", "photo": "webp", "exact": "png"}
