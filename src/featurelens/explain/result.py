"""What every attribution method returns, so figures, trust checks and users read one shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class ExplanationWarning(UserWarning):
    """An explanation is degenerate (a zero CAM) or inaccurate (IG's completeness off)."""


@dataclass
class Explanation:
    """Attribution maps for a batch of images, with what they explain.

    - ``maps``: (N, H, W) float32 at the input's resolution; larger means more evidence for the
      target (signed for Integrated Gradients, non-negative for the others);
    - ``method``: the method's name, as :func:`featurelens.explain.explain` takes it;
    - ``layer``: the layer a CAM was computed on, None for input-space methods;
    - ``targets``: (N,) int64, the class each map explains;
    - ``probabilities``: (N,) float32, the model's probability of each target on the image;
    - ``completeness_error``: Integrated Gradients only, per image ``|sum(attributions) -
      (f(x) - f(baseline))| / |f(x) - f(baseline)|``;
    - ``extras``: method-specific arrays (IG's signed per-channel ``attributions``, a CAM's
      low-resolution ``cams`` ...).
    """

    maps: np.ndarray
    method: str
    targets: np.ndarray
    probabilities: np.ndarray
    layer: str | None = None
    completeness_error: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.maps)

    def normalized(self) -> np.ndarray:
        """``maps`` scaled to [0, 1] per image by their largest absolute value (zero maps stay zero),
        for display."""
        peak = np.abs(self.maps).reshape(len(self.maps), -1).max(axis=1, initial=0.0)
        scale = np.where(peak > 0, peak, 1.0).astype(np.float32)
        return (self.maps / scale[:, None, None]).astype(np.float32)
