"""Per-channel normalization: computed from training images, applied and undone exactly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from featurelens.checks import ErrorType, ListOf, Number, fail, require_object
from featurelens.errors import InputError
from featurelens.spec import MAX_CHANNELS

#: Bounds on the statistics: images are in a 0-255 (or 0-1) scale, and a tinier std would turn
#: normalized pixels into infinities in float32.
MAX_MEAN = 1e6
MIN_STD, MAX_STD = 1e-6, 1e6
_MEANS = ListOf(Number(-MAX_MEAN, MAX_MEAN, "a channel's mean pixel value"), MAX_CHANNELS, 1,
                "one mean per input channel")
_STDS = ListOf(Number(MIN_STD, MAX_STD, "a channel's standard deviation, > 0"), MAX_CHANNELS, 1,
               "one standard deviation per input channel")


def check_statistics(error: ErrorType, path: str, mean: Any, std: Any, channels: int | None = None
                     ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std as float tuples: finite, std > 0, one of each per channel (``channels`` when known)."""
    means = tuple(float(v) for v in _MEANS(error, f"{path}.mean", mean))
    stds = tuple(float(v) for v in _STDS(error, f"{path}.std", std))
    if len(stds) != len(means):
        fail(error, f"{path}.std", list(stds), f"{len(stds)} values for {len(means)} means; give one mean and "
                                               "one std per input channel")
    if channels is not None and len(means) != channels:
        fail(error, f"{path}.mean", list(means), f"{len(means)} values for {channels} input channels; give one "
                                                 "mean and one std per channel")
    return means, stds


@dataclass(frozen=True)
class Normalization:
    """``(x - mean) / std`` per channel, in the pixel scale of the images (0-255 for CIFAR-10).

    Both are checked: finite, one of each per channel, every std > 0 (an :class:`InputError` says
    which value is wrong)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        mean, std = check_statistics(InputError, "normalization", self.mean, self.std)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def from_images(cls, images: np.ndarray, chunk: int = 4096) -> Normalization:
        """Mean and standard deviation of each channel over (N, H, W, C) images."""
        if images.ndim != 4 or len(images) == 0:
            raise InputError(f"expected a non-empty (N, H, W, C) array, got shape {images.shape}")
        channels = images.shape[-1]
        total = np.zeros(channels)
        total_sq = np.zeros(channels)
        for start in range(0, len(images), chunk):
            block = images[start:start + chunk].astype(np.float64).reshape(-1, channels)
            total += block.sum(axis=0)
            total_sq += np.square(block).sum(axis=0)
        count = images.size // channels
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
        std = np.where(std < MIN_STD, 1.0, std)  # a constant channel: left unscaled
        return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def apply(self, images: np.ndarray) -> np.ndarray:
        """Normalized float32 copy of (N, H, W, C) images."""
        mean = np.asarray(self.mean, np.float32)
        scale = 1.0 / np.asarray(self.std, np.float32)
        out = images.astype(np.float32, copy=True)
        out -= mean
        out *= scale
        return out

    def invert(self, normalized: np.ndarray) -> np.ndarray:
        """Pixel values (float32, same scale as the original images) from normalized ones."""
        return (normalized * np.asarray(self.std, np.float32) + np.asarray(self.mean, np.float32)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: Any, channels: int | None = None, *, error: ErrorType = InputError,
                  path: str = "normalization") -> Normalization:
        """From :meth:`to_dict`'s form, checked; ``channels`` (the model's input channels) when known.
        Problems raise ``error`` naming the field (``normalization.std[2]``)."""
        data = require_object(error, path, data, "with 'mean' and 'std' lists, one value per channel")
        for key in ("mean", "std"):
            if key not in data:
                raise error(f"{path}.{key} is missing; it holds one value per input channel")
        return cls(*check_statistics(error, path, data["mean"], data["std"], channels))
