"""Chunks of (image, item) work so that memory stays bounded whatever the number of samples.

SmoothGrad's noisy copies, IG's path points, Score-CAM's masks, occlusion's patches and the
deletion/insertion steps are all "many inputs per image": they are enumerated image-major and
handed to the backend ``batch_size`` at a time, so one batch never holds more than
``batch_size`` images and results do not depend on the chunking.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from featurelens.errors import InputError


def check_positive(value: object, what: str) -> int:
    """``value`` as a positive int, or a clear :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise InputError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def image_chunks(count: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive images, ``batch_size`` at a time."""
    for start in range(0, count, batch_size):
        yield start, min(start + batch_size, count)


def work_chunks(images: int, items: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(image indices, item indices)`` of at most ``batch_size`` pairs, image-major order."""
    total = images * items
    for start in range(0, total, batch_size):
        flat = np.arange(start, min(start + batch_size, total))
        yield flat // items, flat % items
