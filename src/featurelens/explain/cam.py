"""Gradient-weighted class activation maps: Grad-CAM, Grad-CAM++ and LayerCAM.

All three read one conv layer's activations A and the gradient G of the target's score with
respect to them (one :meth:`value_and_grad <featurelens.backends.Backend.value_and_grad>` call with
a ClassScore objective); they differ only in how they weigh A:

- Grad-CAM (Selvaraju et al. 2017): one weight per channel, the spatial mean of G;
- Grad-CAM++ (Chattopadhay et al. 2018): per-channel weights from positive gradients weighted by
  the closed-form alpha of the paper (the exponential-score form), better with several objects;
- LayerCAM (Jiang et al. 2021): a weight per position, ReLU(G), which keeps finer detail and works
  on earlier layers too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from featurelens.explain.batching import image_chunks
from featurelens.explain.cams import finish
from featurelens.explain.inputs import class_score, prepare, require_gradients, spatial_layer
from featurelens.explain.result import Explanation
from featurelens.model import Model

Weigh = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (activations, gradients) -> (n, h, w) CAM


def _gradcam(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    weights = grads.mean(axis=(1, 2), keepdims=True)
    return (weights * acts).sum(axis=-1)


def _gradcam_plus_plus(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    g2 = grads.astype(np.float64) ** 2
    g3 = g2 * grads
    total = acts.sum(axis=(1, 2), keepdims=True, dtype=np.float64)
    denominator = 2 * g2 + total * g3
    alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=np.abs(denominator) > 1e-12)
    weights = (alpha * np.maximum(grads, 0)).sum(axis=(1, 2), keepdims=True)
    return (weights * acts).sum(axis=-1).astype(np.float32)


def _layercam(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    return (np.maximum(grads, 0) * acts).sum(axis=-1)


def _cam(model: Model, images: np.ndarray, targets: object, layer: str | None, batch_size: int, score: str,
         method: str, weigh: Weigh) -> Explanation:
    require_gradients(model, method)
    class_score(np.zeros(0, np.int64), score)
    name, shape = spatial_layer(model, layer)
    prep = prepare(model, images, targets, batch_size)
    raw = np.empty((len(prep.images), *shape[:2]), np.float32)
    for start, stop in image_chunks(len(prep.images), batch_size):
        x = model.normalization.apply(prep.images[start:stop])
        result = model.backend.value_and_grad(model.native, x, class_score(prep.targets[start:stop], score),
                                              layer=name, wrt_input=False, batch_size=batch_size)
        assert result.activations is not None and result.layer_grad is not None, "no layer gradients returned"
        raw[start:stop] = weigh(np.asarray(result.activations, np.float32), np.asarray(result.layer_grad, np.float32))
    maps, cams = finish(raw, model.input_shape[:2], method, name)
    return Explanation(maps, method, prep.targets, prep.probabilities, layer=name, extras={"cams": cams})


def gradcam(model: Model, images: np.ndarray, targets: object = None, *, layer: str | None = None,
            batch_size: int = 64, score: str = "logit") -> Explanation:
    """Grad-CAM on ``layer`` (default: :func:`~featurelens.explain.inputs.default_cam_layer`)."""
    return _cam(model, images, targets, layer, batch_size, score, "gradcam", _gradcam)


def gradcam_plus_plus(model: Model, images: np.ndarray, targets: object = None, *, layer: str | None = None,
                      batch_size: int = 64, score: str = "logit") -> Explanation:
    """Grad-CAM++ on ``layer`` (default: :func:`~featurelens.explain.inputs.default_cam_layer`)."""
    return _cam(model, images, targets, layer, batch_size, score, "gradcam++", _gradcam_plus_plus)


def layercam(model: Model, images: np.ndarray, targets: object = None, *, layer: str | None = None,
             batch_size: int = 64, score: str = "logit") -> Explanation:
    """LayerCAM on ``layer`` (default: :func:`~featurelens.explain.inputs.default_cam_layer`)."""
    return _cam(model, images, targets, layer, batch_size, score, "layercam", _layercam)
