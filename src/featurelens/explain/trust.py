"""Can an attribution map be trusted? Two standard checks.

- :func:`randomization_check`, the model-parameter randomization test (Adebayo et al. 2018,
  "Sanity Checks for Saliency Maps"): maps that stay alike when the weights are re-initialized
  explain the image, not the model. Low rank correlation is what a faithful method shows.
- :func:`deletion_curve` and :func:`insertion_curve` (Petsiuk et al. 2018, RISE): remove (or
  insert) pixels in order of attribution and follow the target's probability; a faithful map makes
  it fall fast (low deletion AUC) and rise fast (high insertion AUC).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from featurelens.errors import InputError
from featurelens.explain.batching import check_positive, image_chunks, work_chunks
from featurelens.explain.dispatch import method_function
from featurelens.explain.inputs import normalized_baseline, prepare
from featurelens.explain.ranks import rank_correlation
from featurelens.explain.result import Explanation, ExplanationWarning
from featurelens.model import Model, SpecModel


@dataclass
class RandomizationCheck:
    """Maps of the trained and the re-initialized model, and how alike they are per image."""

    trained: Explanation
    randomized: Explanation
    spearman: np.ndarray
    """(N,) rank correlation of the maps (NaN where a map is constant)."""
    spearman_abs: np.ndarray
    """(N,) rank correlation of their absolute values (Adebayo et al. report both)."""

    def describe(self) -> str:
        rho = np.nanmean(self.spearman) if np.isfinite(self.spearman).any() else float("nan")
        rho_abs = np.nanmean(self.spearman_abs) if np.isfinite(self.spearman_abs).any() else float("nan")
        return (f"{self.trained.method}: mean Spearman rank correlation between trained and randomized-model maps "
                f"{rho:.3f} (absolute values {rho_abs:.3f}) over {len(self.spearman)} image(s); "
                "near 0 means the maps depend on what the model learned")


def reinitialized(model: Model, seed: int) -> SpecModel:
    """The same architecture with freshly initialized weights (``backend.build(spec, seed)``)."""
    if not isinstance(model, SpecModel):
        raise InputError(f"featurelens re-initializes only models it built from a spec; for a {type(model).__name__}, "
                         "pass randomized= (the same architecture with re-initialized weights, wrapped the same way)")
    names = model.class_names or tuple(str(i) for i in range(model.spec.num_classes))
    return SpecModel(model.backend, model.backend.build(model.spec, seed=seed), model.spec, model.normalization, names)


def randomization_check(model: Model, images: np.ndarray, targets: object = None, *, method: str = "saliency",
                        randomized: Model | None = None, seed: int = 12345, **options: Any) -> RandomizationCheck:
    """Explain ``images`` with the trained ``model`` and with a re-initialized copy, for the same
    targets (default: the trained model's predictions), and compare the maps per image.

    ``randomized`` is the copy; default for spec-built models: ``backend.build(spec, seed=seed)``
    with the same normalization. ``options`` go to the method (``layer``, ``batch_size`` ...).
    """
    function = method_function(method)
    trained = function(model, images, targets, **options)
    other = randomized if randomized is not None else reinitialized(model, seed)
    random_maps = function(other, images, trained.targets, **options)
    rho = rank_correlation(trained.maps, random_maps.maps)
    rho_abs = rank_correlation(np.abs(trained.maps), np.abs(random_maps.maps))
    if not np.isfinite(rho).all():
        warnings.warn(f"randomization check: {int((~np.isfinite(rho)).sum())} image(s) have a constant map, whose "
                      "rank correlation is undefined (NaN)", ExplanationWarning, stacklevel=2)
    return RandomizationCheck(trained, random_maps, rho, rho_abs)


@dataclass
class Curve:
    """A deletion or insertion curve per image."""

    kind: str
    """``deletion`` or ``insertion``."""
    fractions: np.ndarray
    """(steps + 1,) fraction of pixels removed or inserted, from 0 to 1."""
    probabilities: np.ndarray
    """(N, steps + 1) probability of each image's target after each step."""
    auc: np.ndarray
    """(N,) area under each curve (trapezoid rule over the fractions)."""
    targets: np.ndarray


def _area(fractions: np.ndarray, values: np.ndarray) -> np.ndarray:
    return (((values[:, 1:] + values[:, :-1]) / 2) * np.diff(fractions)).sum(axis=1)


def _curve(kind: str, model: Model, images: np.ndarray, maps: Explanation | np.ndarray, targets: object,
           steps: int, baseline: object, batch_size: int) -> Curve:
    if isinstance(maps, Explanation):
        targets = maps.targets if targets is None else targets
        maps = maps.maps
    steps = check_positive(steps, "steps")
    prep = prepare(model, images, targets, batch_size)
    count, (height, width, _) = len(prep.images), model.input_shape
    maps = np.asarray(maps, np.float32)
    if maps.shape != (count, height, width):
        raise InputError(f"maps must be ({count}, {height}, {width}), one per image at the input's resolution; "
                         f"got {maps.shape}")
    pixels = height * width
    order = np.argsort(-np.nan_to_num(maps.reshape(count, -1), nan=-np.inf), axis=1, kind="stable")
    sizes = np.round(np.linspace(0, pixels, steps + 1)).astype(np.int64)
    baselines = normalized_baseline(model, baseline, count)
    probs = np.empty((count, steps + 1), np.float32)
    for start, stop in image_chunks(count, batch_size):
        x = model.normalization.apply(prep.images[start:stop])
        x0 = np.asarray(baselines[start:stop], np.float32)
        for img, k in work_chunks(len(x), steps + 1, batch_size):
            flat = np.zeros((len(img), pixels), bool)
            for row, (i, s) in enumerate(zip(img, k)):
                flat[row, order[start + i, :sizes[s]]] = True
            chosen = flat.reshape(len(img), height, width, 1)
            first, second = (x0[img], x[img]) if kind == "deletion" else (x[img], x0[img])
            batch = np.where(chosen, first, second)
            out = model.backend.predict(model.native, batch.astype(np.float32), batch_size=batch_size)
            probs[start + img, k] = out[np.arange(len(img)), prep.targets[start + img]]
    fractions = sizes / pixels
    return Curve(kind, fractions, probs, _area(fractions, probs).astype(np.float32), prep.targets)


def deletion_curve(model: Model, images: np.ndarray, maps: Explanation | np.ndarray, targets: object = None, *,
                   steps: int = 32, baseline: object = None, batch_size: int = 64) -> Curve:
    """Probability of the target as the most-attributed pixels are replaced by ``baseline`` (as
    loaded; None: the dataset's mean colour), ``1/steps`` of the pixels (all channels) at a time.

    ``maps`` is an :class:`Explanation` (its targets are the default) or (N, H, W) maps; lower AUC
    is better."""
    return _curve("deletion", model, images, maps, targets, steps, baseline, batch_size)


def insertion_curve(model: Model, images: np.ndarray, maps: Explanation | np.ndarray, targets: object = None, *,
                    steps: int = 32, baseline: object = None, batch_size: int = 64) -> Curve:
    """Probability of the target as the most-attributed pixels are put back into the ``baseline``
    image, ``1/steps`` of the pixels at a time; higher AUC is better. See :func:`deletion_curve`."""
    return _curve("insertion", model, images, maps, targets, steps, baseline, batch_size)
