"""Turning a layer's weighted activations into a map at the input's resolution, safely.

Every CAM ends the same way: ReLU, a check that something is left (an all-negative or constant
CAM carries no location and would divide by zero when normalised, so it becomes a zero map with
a warning, never NaN), then bilinear upsampling to the input's size.
"""

from __future__ import annotations

import warnings

import numpy as np

from featurelens.explain.result import ExplanationWarning
from featurelens.explain.upsample import resize_bilinear


def degenerate(cams: np.ndarray) -> np.ndarray:
    """Which (N, h, w) rectified CAMs are unusable: non-finite, all zero or constant."""
    flat = cams.reshape(len(cams), -1)
    top, bottom = flat.max(axis=1, initial=0.0), flat.min(axis=1, initial=0.0)
    finite = np.isfinite(flat).all(axis=1)
    return ~finite | (top <= 0) | (top - bottom <= 1e-6 * np.abs(top))


def finish(cams: np.ndarray, size: tuple[int, int], method: str, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """(maps at ``size``, rectified low-resolution CAMs) from raw (N, h, w) CAMs, warning about zero maps."""
    cams = np.maximum(np.nan_to_num(np.asarray(cams, np.float32), nan=0.0, posinf=0.0, neginf=0.0), 0.0)
    bad = degenerate(cams)
    if bad.any():
        cams[bad] = 0.0
        shown = ", ".join(map(str, np.flatnonzero(bad)[:10])) + (" ..." if bad.sum() > 10 else "")
        warnings.warn(f"{method}: the CAM on {layer!r} is all negative or constant for {int(bad.sum())} image(s) "
                      f"({shown}); their maps are zero. A layer closer to the input, or another method, may "
                      "show more", ExplanationWarning, stacklevel=3)
    return resize_bilinear(cams, size), cams
