"""Bilinear resizing in numpy, so CAMs reach the input's resolution without a framework.

Same convention as ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` and
OpenCV: pixel centres are aligned, edges are clamped.
"""

from __future__ import annotations

import numpy as np


def _axis_weights(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = (np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out) - 0.5
    src = np.clip(src, 0.0, size_in - 1)
    low = np.floor(src).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, (src - low).astype(np.float32)


def resize_bilinear(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w, ...) float32 maps resized to (N, H, W, ...) by bilinear interpolation."""
    maps = np.asarray(maps, dtype=np.float32)
    height, width = size
    if maps.shape[1:3] == (height, width):
        return maps.copy()
    extra = (1,) * (maps.ndim - 3)
    low, high, frac = _axis_weights(maps.shape[1], height)
    frac = frac.reshape(1, -1, 1, *extra)
    rows = maps[:, low] * (1 - frac) + maps[:, high] * frac
    low, high, frac = _axis_weights(maps.shape[2], width)
    frac = frac.reshape(1, 1, -1, *extra)
    return (rows[:, :, low] * (1 - frac) + rows[:, :, high] * frac).astype(np.float32)
