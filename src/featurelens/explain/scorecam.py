"""Score-CAM (Wang et al. 2020): channel weights from forward passes only, no gradients.

Each channel of the layer, upsampled and scaled to [0, 1], masks the (normalized) image; the
channel's weight is how much the masked image raises the target's probability over the baseline
(zeros in normalized space: the dataset's mean colour). It needs only ``feature_maps`` and
``predict``, so it works on backends without the gradients capability; the masked images go
through the model ``batch_size`` at a time.
"""

from __future__ import annotations

import numpy as np

from featurelens.explain.batching import image_chunks, work_chunks
from featurelens.explain.cams import finish
from featurelens.explain.inputs import prepare, spatial_layer
from featurelens.explain.result import Explanation
from featurelens.explain.upsample import resize_bilinear
from featurelens.model import Model


def _unit_range(maps: np.ndarray) -> np.ndarray:
    """(n, H, W) maps scaled to [0, 1] each; constant maps become zero masks."""
    flat = maps.reshape(len(maps), -1)
    low, high = flat.min(axis=1), flat.max(axis=1)
    span = high - low
    scaled = (maps - low[:, None, None]) / np.where(span > 0, span, 1.0)[:, None, None]
    return np.where((span > 0)[:, None, None], scaled, 0.0).astype(np.float32)


def scorecam(model: Model, images: np.ndarray, targets: object = None, *, layer: str | None = None,
             batch_size: int = 64) -> Explanation:
    """Score-CAM on ``layer`` (default: :func:`~featurelens.explain.inputs.default_cam_layer`)."""
    name, shape = spatial_layer(model, layer)
    prep = prepare(model, images, targets, batch_size)
    size = model.input_shape[:2]
    base = model.backend.predict(model.native, np.zeros((1, *model.input_shape), np.float32), batch_size=1)[0]
    raw = np.empty((len(prep.images), *shape[:2]), np.float32)
    for start, stop in image_chunks(len(prep.images), batch_size):
        chunk = prep.images[start:stop]
        acts = np.asarray(model.feature_maps(chunk, name, batch_size=batch_size)[name], np.float32)
        x = model.normalization.apply(chunk)
        targets_here = prep.targets[start:stop]
        weights = np.empty((len(x), shape[2]), np.float32)
        for img, channel in work_chunks(len(x), shape[2], batch_size):
            masks = _unit_range(resize_bilinear(acts[img, :, :, channel], size))
            probs = model.backend.predict(model.native, x[img] * masks[..., None], batch_size=batch_size)
            weights[img, channel] = probs[np.arange(len(img)), targets_here[img]] - base[targets_here[img]]
        raw[start:stop] = (weights[:, None, None, :] * acts).sum(axis=-1)
    maps, cams = finish(raw, size, "scorecam", name)
    return Explanation(maps, "scorecam", prep.targets, prep.probabilities, layer=name, extras={"cams": cams})
