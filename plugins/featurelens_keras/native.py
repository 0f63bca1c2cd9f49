"""Saving and loading models users built: every weight in order, and Keras's own JSON config.

Weights are stored as ``NNNN/<variable path>`` in the model's weight order, and loaded back by
that order with every shape checked (the path's first part is the model's name, which Keras may
number differently in the next session). Functional and Sequential models made of Keras's own
layers are rebuilt from their JSON config in Keras's safe mode (no lambda, no code from the
folder); subclassed models and custom layers need the user's model or builder.
"""

from __future__ import annotations

import json
from typing import Any

import keras
import numpy as np

from featurelens.backends import BackendError, InputError


def native_weights(model: keras.Model) -> dict[str, np.ndarray]:
    return {f"{i:04d}/{variable.path}": np.array(keras.ops.convert_to_numpy(variable))
            for i, variable in enumerate(model.weights)}


def load_native_weights(model: keras.Model, weights: dict[str, np.ndarray], input_shape: tuple[int, int, int]) -> None:
    if not model.built:  # a Sequential without an Input creates its weights on its first call
        model(np.zeros((1, *input_shape), np.float32), training=False)
    saved = [weights[key] for key in sorted(weights)]
    variables = model.weights
    if len(saved) != len(variables):
        raise InputError(f"{len(saved)} tensors were saved but this model has {len(variables)} weights; pass a "
                         "model of the architecture that was saved")
    wrong = [f"{variable.path} {tuple(array.shape)} (the model has {tuple(variable.shape)})"
             for variable, array in zip(variables, saved) if tuple(array.shape) != tuple(variable.shape)]
    if wrong:
        raise InputError(f"the saved tensors do not fit this model: shapes differ: {wrong[:3]}; pass a model of "
                         "the architecture that was saved")
    for variable, array in zip(variables, saved):
        variable.assign(array)


def architecture(model: keras.Model) -> dict[str, Any]:
    cls = type(model)
    record: dict[str, Any] = {"class": f"{cls.__module__}.{cls.__qualname__}", "framework": "keras",
                              "parameters": int(model.count_params()) if model.built else None}
    try:
        record["keras_config"] = json.loads(model.to_json())
    except Exception:  # subclassed models without get_config: the user passes the model when loading
        record["keras_config"] = None
    return record


def rebuild(record: dict[str, Any]) -> keras.Model:
    config = record.get("keras_config")
    if not config:
        raise BackendError(f"Keras cannot describe a {record.get('class')} (a subclassed model) without code; "
                           "pass the model (or a function building it) to featurelens.load_model(folder, model=...)")
    try:
        return keras.models.model_from_json(json.dumps(config))
    except Exception as exc:
        raise BackendError(f"Keras could not rebuild the saved {record.get('class')} from its config in safe mode "
                           f"({type(exc).__name__}: {exc}); pass the model (or a function building it) to "
                           "featurelens.load_model(folder, model=...)") from exc
