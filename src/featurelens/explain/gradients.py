"""Input-gradient attributions: vanilla saliency and SmoothGrad.

Saliency (Simonyan et al. 2014) is how much each pixel's small change moves the target's score;
SmoothGrad (Smilkov et al. 2017) averages that gradient over noisy copies of the image, which
removes much of its pixel-to-pixel noise. Both take the largest absolute value over channels.
"""

from __future__ import annotations

import numpy as np

from featurelens.errors import InputError
from featurelens.explain.batching import check_positive, image_chunks, work_chunks
from featurelens.explain.inputs import class_score, no_layer, prepare, require_gradients
from featurelens.explain.result import Explanation
from featurelens.model import Model


def _input_grad(model: Model, normalized: np.ndarray, targets: np.ndarray, score: str, batch_size: int) -> np.ndarray:
    result = model.backend.value_and_grad(model.native, normalized, class_score(targets, score),
                                          wrt_input=True, batch_size=batch_size)
    assert result.input_grad is not None, "the backend returned no input gradient"
    return np.asarray(result.input_grad, np.float32)


def saliency(model: Model, images: np.ndarray, targets: object = None, *, layer: str | None = None,
             batch_size: int = 64, score: str = "logit") -> Explanation:
    """Max over channels of ``|d score / d pixel|`` for each image (``score``: logit or log_probability)."""
    require_gradients(model, "saliency")
    no_layer(layer, "saliency")
    class_score(np.zeros(0, np.int64), score)
    prep = prepare(model, images, targets, batch_size)
    maps = np.empty((len(prep.images), *model.input_shape[:2]), np.float32)
    for start, stop in image_chunks(len(prep.images), batch_size):
        x = model.normalization.apply(prep.images[start:stop])
        maps[start:stop] = np.abs(_input_grad(model, x, prep.targets[start:stop], score, batch_size)).max(axis=-1)
    return Explanation(maps, "saliency", prep.targets, prep.probabilities)


def smoothgrad(model: Model, images: np.ndarray, targets: object = None, *, layer: str | None = None,
               batch_size: int = 64, score: str = "logit", noise: float = 0.15, samples: int = 25,
               seed: int = 0) -> Explanation:
    """Saliency of the gradient averaged over ``samples`` noisy copies of each image.

    The noise is Gaussian with standard deviation ``noise`` times the image's range (max - min in
    normalized space), the paper's parametrisation (10-20% works well). Copies are made
    ``batch_size`` at a time whatever ``samples`` is; each copy's noise depends only on
    ``seed``, the image's position and the sample's number, so the result does not depend on
    ``batch_size``.
    """
    require_gradients(model, "SmoothGrad")
    no_layer(layer, "smoothgrad")
    class_score(np.zeros(0, np.int64), score)
    samples = check_positive(samples, "samples")
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.number)) or not 0 <= float(noise) < np.inf:
        raise InputError(f"noise must be a non-negative fraction of the input range, got {noise!r}")
    noise = float(noise)
    prep = prepare(model, images, targets, batch_size)
    shape = model.input_shape
    maps = np.empty((len(prep.images), *shape[:2]), np.float32)
    for start, stop in image_chunks(len(prep.images), batch_size):
        x = model.normalization.apply(prep.images[start:stop])
        sigma = noise * (x.reshape(len(x), -1).max(axis=1) - x.reshape(len(x), -1).min(axis=1))
        total = np.zeros_like(x, dtype=np.float64)
        for img, sample in work_chunks(len(x), samples, batch_size):
            noisy = np.empty((len(img), *shape), np.float32)
            for row, (i, s) in enumerate(zip(img, sample)):
                rng = np.random.default_rng([seed, start + int(i), int(s)])
                noisy[row] = x[i] + sigma[i] * rng.standard_normal(shape, dtype=np.float32)
            grads = _input_grad(model, noisy, prep.targets[start + img], score, batch_size)
            np.add.at(total, img, grads)
        maps[start:stop] = np.abs(total / samples).max(axis=-1)
    return Explanation(maps, "smoothgrad", prep.targets, prep.probabilities,
                       extras={"noise": float(noise), "samples": samples})
