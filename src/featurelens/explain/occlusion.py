"""Occlusion (Zeiler & Fergus 2014): how much the target's probability drops when a patch is hidden.

Model-agnostic and forward-only (``predict``): a patch of the baseline value slides over the
image; each pixel's value is the mean probability drop of the patches covering it. The occluded
copies go through the model ``batch_size`` at a time.
"""

from __future__ import annotations

import numpy as np

from featurelens.errors import InputError
from featurelens.explain.batching import check_positive, image_chunks, work_chunks
from featurelens.explain.inputs import no_layer, normalized_baseline, prepare
from featurelens.explain.result import Explanation
from featurelens.model import Model


def _starts(size: int, patch: int, stride: int) -> list[int]:
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:  # the last patch touches the far edge, so every pixel is covered
        starts.append(size - patch)
    return starts


def _pair(value: object, what: str) -> tuple[int, int]:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return check_positive(value[0], what), check_positive(value[1], what)
    size = check_positive(value, what)
    return size, size


def occlusion(model: Model, images: np.ndarray, targets: object = None, *, layer: str | None = None,
              batch_size: int = 64, patch: int | tuple[int, int] = 8, stride: int | tuple[int, int] = 4,
              baseline: float | None = None) -> Explanation:
    """Mean drop of the target's probability over the ``patch`` x ``patch`` patches (moved by
    ``stride``) covering each pixel. ``baseline`` is the hiding pixel value as loaded (None: the
    dataset's mean colour). Positive: hiding the region hurts the prediction."""
    no_layer(layer, "occlusion")
    ph, pw = _pair(patch, "patch")
    sy, sx = _pair(stride, "stride")
    height, width = model.input_shape[:2]
    if ph > height or pw > width:
        raise InputError(f"the patch {ph}x{pw} is larger than the {height}x{width} images")
    if baseline is not None and not np.isscalar(baseline):
        raise InputError(f"baseline must be one pixel value (as loaded) or None, got {type(baseline).__name__}")
    prep = prepare(model, images, targets, batch_size)
    fill = normalized_baseline(model, baseline, 1)[0]
    positions = [(y, x) for y in _starts(height, ph, sy) for x in _starts(width, pw, sx)]
    count = np.zeros((height, width), np.float32)
    for y, x in positions:
        count[y:y + ph, x:x + pw] += 1
    maps = np.zeros((len(prep.images), height, width), np.float32)
    for start, stop in image_chunks(len(prep.images), batch_size):
        x_norm = model.normalization.apply(prep.images[start:stop])
        for img, pos in work_chunks(len(x_norm), len(positions), batch_size):
            hidden = x_norm[img]
            for row, p in enumerate(pos):
                y, x = positions[p]
                hidden[row, y:y + ph, x:x + pw] = fill[y:y + ph, x:x + pw]
            probs = model.backend.predict(model.native, hidden, batch_size=batch_size)
            drops = prep.probabilities[start + img] - probs[np.arange(len(img)), prep.targets[start + img]]
            for row, p in enumerate(pos):
                y, x = positions[p]
                maps[start + img[row], y:y + ph, x:x + pw] += drops[row]
    maps /= count
    return Explanation(maps, "occlusion", prep.targets, prep.probabilities,
                       extras={"patch": (ph, pw), "stride": (sy, sx)})
