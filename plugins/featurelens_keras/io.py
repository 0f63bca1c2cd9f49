"""Keras layer weights to and from the canonical layout of :mod:`featurelens.weights` (Keras's own)."""

from __future__ import annotations

import keras
import numpy as np

from featurelens.backends import BN_PARAMS

PARAMS = {keras.layers.Conv2D: ("kernel", "bias"), keras.layers.Dense: ("kernel", "bias"),
          keras.layers.BatchNormalization: BN_PARAMS}


def _params(layer) -> tuple[str, ...]:
    for cls, names in PARAMS.items():
        if isinstance(layer, cls):
            return names
    return ()


def get_weights(model: keras.Model) -> dict[str, np.ndarray]:
    out = {}
    for layer in model.layers:
        names = _params(layer)
        for param, value in zip(names, layer.get_weights() if names else []):
            out[f"{layer.name}.{param}"] = np.ascontiguousarray(value, np.float32)
    return out


def set_weights(model: keras.Model, weights: dict[str, np.ndarray]) -> None:
    for layer in model.layers:
        names = _params(layer)
        if names:
            layer.set_weights([np.asarray(weights[f"{layer.name}.{p}"], np.float32) for p in names])
