"""Integrated Gradients (Sundararajan et al. 2017), with its completeness checked per image.

IG integrates the input gradient along the straight path from a baseline to the image; its
attributions add up to ``f(x) - f(baseline)`` (completeness), which is how one knows the integral
was approximated well enough. The path points are evaluated ``batch_size`` at a time, in chunks
of steps x images, so memory is bounded for any number of steps.
"""

from __future__ import annotations

import warnings

import numpy as np

from featurelens.errors import InputError
from featurelens.explain.batching import check_positive, image_chunks, work_chunks
from featurelens.explain.inputs import class_score, no_layer, normalized_baseline, prepare, require_gradients
from featurelens.explain.result import Explanation, ExplanationWarning
from featurelens.model import Model

RULES = ("trapezoid", "midpoint")
EPSILON = 1e-6  # |f(x) - f(baseline)| below this counts as this, so the relative error stays finite


def path(steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, weights) of the Riemann rule; the end points 0 and 1 are always included (weight 0
    for the midpoint rule) so that ``f(baseline)`` and ``f(x)`` come with the same gradients pass."""
    if rule == "trapezoid":
        alphas = np.linspace(0.0, 1.0, steps + 1)
        weights = np.full(steps + 1, 1.0 / steps)
        weights[[0, -1]] /= 2
    elif rule == "midpoint":
        alphas = np.concatenate([[0.0], (np.arange(steps) + 0.5) / steps, [1.0]])
        weights = np.concatenate([[0.0], np.full(steps, 1.0 / steps), [0.0]])
    else:
        raise InputError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    return alphas.astype(np.float32), weights


def integrated_gradients(model: Model, images: np.ndarray, targets: object = None, *, layer: str | None = None,
                         batch_size: int = 64, score: str = "logit", baseline: object = None, steps: int = 50,
                         rule: str = "trapezoid", tolerance: float = 0.05) -> Explanation:
    """Integrated Gradients of the target's score; the map is the sum over channels (signed).

    ``baseline`` is given as loaded (None: zeros in normalized space, the dataset's mean colour;
    a pixel value; one image; or one per image). ``steps`` intervals of the ``rule``
    (``trapezoid`` or ``midpoint``; the midpoint rule is Captum's ``riemann_middle``, whose path points
    equal these exactly when ``steps`` is a power of two). The completeness error of each image, ``|sum of attributions
    - (f(x) - f(baseline))| / |f(x) - f(baseline)|``, is stored in ``completeness_error``; above
    ``tolerance`` an :class:`ExplanationWarning` suggests more steps. ``extras`` holds the signed
    ``attributions`` (N, H, W, C) in normalized space, ``values`` f(x) and ``baseline_values``.
    """
    require_gradients(model, "Integrated Gradients")
    no_layer(layer, "integrated_gradients")
    class_score(np.zeros(0, np.int64), score)
    steps = check_positive(steps, "steps")
    alphas, weights = path(steps, rule)
    prep = prepare(model, images, targets, batch_size)
    count, shape = len(prep.images), model.input_shape
    baselines = normalized_baseline(model, baseline, count)
    attributions = np.empty((count, *shape), np.float32)
    values = np.empty(count, np.float64)
    base_values = np.empty(count, np.float64)
    points = len(alphas)
    for start, stop in image_chunks(count, batch_size):
        x = model.normalization.apply(prep.images[start:stop])
        x0 = np.asarray(baselines[start:stop], np.float32)
        diff = x - x0
        total = np.zeros_like(x, dtype=np.float64)
        for img, k in work_chunks(len(x), points, batch_size):
            a = alphas[k].reshape(-1, 1, 1, 1)
            result = model.backend.value_and_grad(model.native, x0[img] + a * diff[img],
                                                  class_score(prep.targets[start + img], score),
                                                  wrt_input=True, batch_size=batch_size)
            assert result.input_grad is not None, "the backend returned no input gradient"
            np.add.at(total, img, weights[k].reshape(-1, 1, 1, 1) * result.input_grad)
            got = np.asarray(result.values, np.float64)
            values[start + img[k == points - 1]] = got[k == points - 1]
            base_values[start + img[k == 0]] = got[k == 0]
        attributions[start:stop] = (diff * total).astype(np.float32)
    sums = attributions.reshape(count, -1).sum(axis=1, dtype=np.float64)
    delta = values - base_values
    gap = sums - delta
    error = (np.abs(gap) / np.maximum(np.abs(delta), EPSILON)).astype(np.float32)
    bad = np.flatnonzero(error > tolerance)
    if bad.size:
        warnings.warn(f"Integrated Gradients: completeness error above {tolerance:g} for {bad.size} of {count} "
                      f"image(s) (worst {float(error.max()):.3g}, image {int(error.argmax())}); the path integral is "
                      f"not accurate with {steps} steps, use more steps", ExplanationWarning, stacklevel=2)
    return Explanation(attributions.sum(axis=-1), "integrated_gradients", prep.targets, prep.probabilities,
                       completeness_error=error,
                       extras={"attributions": attributions, "values": values.astype(np.float32),
                               "baseline_values": base_values.astype(np.float32),
                               "completeness_gap": gap.astype(np.float32), "steps": steps, "rule": rule})
