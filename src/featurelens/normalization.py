"""Per-channel normalization: computed from training images, applied and undone exactly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from featurelens.errors import InputError


@dataclass(frozen=True)
class Normalization:
    """``(x - mean) / std`` per channel, in the pixel scale of the images (0-255 for CIFAR-10)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

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
        std = np.where(std < 1e-8, 1.0, std)
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
    def from_dict(cls, data: dict[str, Any]) -> Normalization:
        return cls(tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"]))
