"""Backend-neutral weights: one canonical name and layout per spec layer parameter.

Every backend exchanges weights with the core as ``{"<layer>.<param>": array}`` in these layouts
(Keras's own), so a model folder written by one backend loads in another:

=============  ==========================================  ==============================
layer kind     parameters                                  layout
=============  ==========================================  ==============================
conv2d         ``kernel``, ``bias``                        (kh, kw, C_in, C_out), (C_out,)
batch_norm     ``gamma``, ``beta``, ``moving_mean``,       (C,) each
               ``moving_variance``
dense          ``kernel``, ``bias``                        (in, out), (out,)
=============  ==========================================  ==============================

Dense layers after ``flatten`` see the features in (H, W, C) order in every backend.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from featurelens.errors import ModelFolderError
from featurelens.spec import ModelSpec

BN_PARAMS = ("gamma", "beta", "moving_mean", "moving_variance")


def canonical_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Every weight of ``spec`` with its canonical shape, in layer order."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in spec.layers():
        o = layer.options
        if layer.kind == "conv2d":
            k = o["kernel_size"]
            shapes[f"{layer.name}.kernel"] = (k, k, o["in_channels"], o["filters"])
            shapes[f"{layer.name}.bias"] = (o["filters"],)
        elif layer.kind == "batch_norm":
            for param in BN_PARAMS:
                shapes[f"{layer.name}.{param}"] = (o["features"],)
        elif layer.kind == "dense":
            shapes[f"{layer.name}.kernel"] = (o["in_features"], o["units"])
            shapes[f"{layer.name}.bias"] = (o["units"],)
    return shapes


def check_weights(spec: ModelSpec, weights: dict[str, np.ndarray], source: str = "the weights") -> None:
    """Raise a clear error unless ``weights`` has exactly the spec's names and shapes."""
    expected = canonical_shapes(spec)
    problems = [f"missing {k}" for k in expected if k not in weights]
    problems += [f"unexpected {k}" for k in weights if k not in expected]
    problems += [f"{k} has shape {tuple(weights[k].shape)} but the spec needs {shape}"
                 for k, shape in expected.items() if k in weights and tuple(weights[k].shape) != shape]
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise ModelFolderError(f"{source} do not match the spec: {'; '.join(problems[:3])}{more}")


def save_weights(path: str | os.PathLike[str], spec: ModelSpec, weights: dict[str, np.ndarray]) -> None:
    """Write canonical weights to a safetensors file (no pickle)."""
    check_weights(spec, weights, "the weights to save")
    arrays = {k: np.ascontiguousarray(weights[k], dtype=np.float32) for k in canonical_shapes(spec)}
    save_file(arrays, str(path), metadata={"format": "featurelens-canonical", "spec": spec.name})


def load_weights(path: str | os.PathLike[str], spec: ModelSpec) -> dict[str, np.ndarray]:
    """Read and check canonical weights; loading a safetensors file never runs code."""
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFolderError(f"{Path(path)} is not a readable safetensors file ({exc})") from exc
    check_weights(spec, weights, f"the weights in {path}")
    return weights
