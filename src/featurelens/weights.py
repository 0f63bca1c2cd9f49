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
from safetensors.numpy import load, save_file

from featurelens.errors import FeaturelensError, ModelFolderError, NonFiniteError
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


def check_finite(weights: dict[str, np.ndarray], source: str, error: type[FeaturelensError] = ModelFolderError
                 ) -> None:
    """Raise ``error`` naming every floating-point tensor of ``weights`` that holds NaN or infinities."""
    bad = [name for name, array in weights.items()
           if np.issubdtype(np.asarray(array).dtype, np.floating) and not np.isfinite(array).all()]
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise error(f"{source} hold NaN or infinite values in {', '.join(bad[:5])}{more}: the training diverged "
                    "(lower the learning rate) or the file is damaged (save or download the model again)")


def parse_safetensors(data: bytes, source: str) -> dict[str, np.ndarray]:
    """The arrays of a safetensors file's bytes (writable copies); never runs code."""
    try:
        arrays = load(data)
    except Exception as exc:  # the parser's own errors, unknown dtypes (KeyError), bad shapes: all damage
        raise ModelFolderError(f"{source} is not a readable safetensors file ({type(exc).__name__}: {exc}); "
                               "the folder is damaged") from exc
    return {name: np.array(array) for name, array in arrays.items()}


def canonical_weights(arrays: dict[str, np.ndarray], spec: ModelSpec, source: str) -> dict[str, np.ndarray]:
    """``arrays`` checked against the spec (names, shapes, float dtypes, finite values), as float32."""
    check_weights(spec, arrays, f"the weights in {source}")
    arrays = {name: arrays[name] for name in canonical_shapes(spec)}  # messages name them in layer order
    ints = [name for name, array in arrays.items() if not np.issubdtype(array.dtype, np.floating)]
    if ints:
        raise ModelFolderError(f"the weights in {source} hold {arrays[ints[0]].dtype} values in {ints[0]}, not "
                               "floats; the file is damaged")
    check_finite(arrays, f"the weights in {source}")
    negative = [name for name, array in arrays.items() if name.endswith(".moving_variance") and (array < 0).any()]
    if negative:
        raise ModelFolderError(f"the weights in {source} hold negative variances in {', '.join(negative[:5])}; the "
                               "file is damaged (save or download the model again)")
    return {name: array.astype(np.float32, copy=False) for name, array in arrays.items()}


def save_weights(path: str | os.PathLike[str], spec: ModelSpec, weights: dict[str, np.ndarray]) -> None:
    """Write canonical weights to a safetensors file (no pickle); non-finite ones are refused."""
    check_weights(spec, weights, "the weights to save")
    check_finite(weights, "the weights to save", NonFiniteError)
    arrays = {k: np.ascontiguousarray(weights[k], dtype=np.float32) for k in canonical_shapes(spec)}
    save_file(arrays, str(path), metadata={"format": "featurelens-canonical", "spec": spec.name})


def load_weights(path: str | os.PathLike[str], spec: ModelSpec) -> dict[str, np.ndarray]:
    """Read and check canonical weights (names, shapes, finite floats); loading a safetensors file never runs code."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelFolderError(f"cannot read {path}: {exc}") from exc
    return canonical_weights(parse_safetensors(data, str(path)), spec, str(path))
