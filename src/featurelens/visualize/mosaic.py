"""Pack many small images into one array, so hundreds of panels are one ``imshow``, not hundreds of axes."""

from __future__ import annotations

import math

import numpy as np

from featurelens.errors import InputError


def grid_shape(count: int, cols: int | None = None) -> tuple[int, int]:
    """(rows, cols) for ``count`` tiles: ``cols`` if given, else as square as possible."""
    if count < 1:
        raise InputError("a mosaic needs at least one tile")
    cols = cols or math.ceil(math.sqrt(count))
    return math.ceil(count / cols), cols


def tile_origin(index: int, tile_hw: tuple[int, int], cols: int, pad: int) -> tuple[int, int]:
    """Top-left pixel (row, col) of tile ``index`` in the mosaic."""
    h, w = tile_hw
    r, c = divmod(index, cols)
    return pad + r * (h + pad), pad + c * (w + pad)


def mosaic(tiles: np.ndarray, cols: int | None = None, pad: int = 1, fill: float = np.nan) -> np.ndarray:
    """Arrange (N, h, w) or (N, h, w, C) tiles row by row on a grid separated by ``pad`` pixels.

    Gaps and unused cells hold ``fill`` (NaN by default, which ``imshow`` leaves blank).
    """
    tiles = np.asarray(tiles)
    if tiles.ndim not in (3, 4):
        raise InputError(f"expected (N, h, w) or (N, h, w, C) tiles, got shape {tiles.shape}")
    n, h, w = tiles.shape[:3]
    rows, cols = grid_shape(n, cols)
    shape = (pad + rows * (h + pad), pad + cols * (w + pad), *tiles.shape[3:])
    out = np.full(shape, fill, dtype=np.float32)
    for i in range(n):
        y, x = tile_origin(i, (h, w), cols, pad)
        out[y:y + h, x:x + w] = tiles[i]
    return out


def scale_each(tiles: np.ndarray) -> np.ndarray:
    """Min-max scale every tile to [0, 1] on its own (a flat tile becomes 0.5)."""
    tiles = np.asarray(tiles, np.float32)
    axes = tuple(range(1, tiles.ndim))
    low = tiles.min(axis=axes, keepdims=True)
    span = tiles.max(axis=axes, keepdims=True) - low
    return np.where(span > 0, (tiles - low) / np.where(span > 0, span, 1), 0.5).astype(np.float32)


def scale_all(tiles: np.ndarray) -> np.ndarray:
    """Min-max scale all tiles together to [0, 1], keeping their relative strength."""
    tiles = np.asarray(tiles, np.float32)
    low, high = float(tiles.min()), float(tiles.max())
    if high == low:
        return np.full_like(tiles, 0.5)
    return (tiles - low) / (high - low)
