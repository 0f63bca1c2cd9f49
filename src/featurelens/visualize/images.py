"""Turn images in any featurelens layout into something matplotlib shows correctly."""

from __future__ import annotations

import numpy as np

from featurelens.normalization import Normalization


def to_display(images: np.ndarray, normalization: Normalization | None = None) -> np.ndarray:
    """Float32 images in [0, 1] for display, (N, H, W, C) or (H, W, C).

    ``normalization`` given: the images are normalized ones and are un-normalized first (so they
    never show as the washed-out or clipped colours of normalized data). Otherwise uint8 images
    are divided by 255, and float images are taken as 0-255 when their maximum exceeds 1.5, else
    as already in [0, 1]. Single-channel (grayscale) images come back with three equal channels,
    so that matplotlib shows them in gray rather than in a colour map.
    """
    images = np.asarray(images)
    if normalization is not None:
        pixels = normalization.invert(images.astype(np.float32))
        return _gray_as_rgb(np.clip(pixels / 255.0, 0, 1).astype(np.float32))
    if np.issubdtype(images.dtype, np.integer):
        return _gray_as_rgb((images.astype(np.float32) / 255.0).clip(0, 1))
    images = images.astype(np.float32)
    if images.size and float(np.nanmax(images)) > 1.5:
        images = images / 255.0
    return _gray_as_rgb(images.clip(0, 1))


def _gray_as_rgb(images: np.ndarray) -> np.ndarray:
    if images.ndim >= 3 and images.shape[-1] == 1:
        return np.repeat(images, 3, axis=-1)
    return images
