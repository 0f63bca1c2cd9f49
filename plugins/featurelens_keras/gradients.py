"""Gradients of objectives (:class:`featurelens.backends.ClassScore`, ``ChannelMean``, ``Unit``) for Keras models.

The model runs through introspection's layer-recording forward pass (:func:`featurelens_keras.introspect._execute`,
every layer called in inference mode, ``training=False``), so layers have the names introspection
gives them (paths into nested models, ``name#2`` for a second call). The gradient layer's output
is replaced, for the rest of the pass, by itself plus a zero tensor ``delta``: the gradient with
respect to ``delta`` is the gradient with respect to the activations.

- On JAX: ``jax.value_and_grad`` of a pure function of (images, delta), the model's variables
  given through a ``keras.StatelessScope`` as Keras's own JAX trainer does (nothing is written to
  the model).
- On torch: ``torch.autograd.grad`` with respect to the images and ``delta`` only, so nothing
  accumulates in the variables' ``.grad``.

A :class:`ClassScore` ``"logit"`` of a model whose output layer is a ``Softmax`` layer (spec-built
models are) is that layer's input; of another model, its output, or the log of its output when the
outputs are probabilities. Subclassed models are run through their own ``call`` with every inner
layer's call recorded; where that cannot be differentiated, a clear error says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from featurelens.backends import (
    BackendError,
    ChannelMean,
    ClassScore,
    FeaturelensError,
    Gradients,
    InputError,
    checked_request,
    looks_like_probabilities,
)
from featurelens_keras import introspect
from featurelens_keras.introspect import GRAPH, SEQUENCE, WRAPPED

_TINY = float(np.finfo(np.float32).tiny)


class _GradRun(introspect._Run):
    """A recording forward pass that adds ``delta`` to the output of the gradient layer."""

    def __init__(self, keep: set[str], layer: str | None, add: Callable[[Any], Any] | None) -> None:
        super().__init__(keep, False)
        self.layer, self.add = layer, add

    def substitute(self, path: str, out: Any) -> Any:
        if path != self.layer or self.add is None:
            return out
        if not keras.ops.is_tensor(out):
            raise InputError(f"the layer {path!r} returns a {type(out).__name__}; gradients with respect to a layer "
                             "need one that returns a single tensor")
        return self.add(out)


def _logits_path(model: keras.Model, kind: str) -> str | None:
    """The path of the layer whose output is the input of the model's final Softmax layer, if any."""
    if kind == SEQUENCE:
        layers = [x for x in model.layers if not isinstance(x, keras.layers.InputLayer)]
        if len(layers) >= 2 and isinstance(layers[-1], keras.layers.Softmax) and \
                all(x is not layers[-2] for x in layers[:-2]):
            return layers[-2].name
        return None
    if kind != GRAPH:
        return None
    graph = introspect._graph(model)
    if len(graph.outputs) != 1:
        return None
    history = getattr(graph.outputs[0], "_keras_history", None)
    op = getattr(history, "operation", None)
    if not isinstance(op, keras.layers.Softmax) or len(op._inbound_nodes) != 1:
        return None
    sources = op._inbound_nodes[0].input_tensors
    source = getattr(sources[0], "_keras_history", None) if len(sources) == 1 else None
    source_op = getattr(source, "operation", None)
    if source_op is None or isinstance(source_op, keras.layers.InputLayer) or len(source_op._inbound_nodes) != 1:
        return None
    return str(source_op.name)


def _canonical(tensor: Any, channels_first: bool) -> Any:
    return keras.ops.transpose(tensor, (0, 2, 3, 1)) if channels_first and len(tensor.shape) == 4 else tensor


def _values(run: _GradRun, output: Any, objective: Any, objective_path: str | None, logits_path: str | None,
            targets: np.ndarray | None, probabilities: bool, start: int = 0) -> Any:
    ops = keras.ops
    if isinstance(objective, ClassScore):
        if logits_path is not None:
            scores = run.outputs[logits_path][0]
        else:
            scores = introspect._first_tensor(output)
            if probabilities:
                scores = ops.log(ops.maximum(ops.cast(scores, "float32"), _TINY))
        scores = ops.cast(scores, "float32")
        if objective.kind == "log_probability":
            scores = ops.log_softmax(scores, axis=1)
        return ops.take_along_axis(scores, ops.convert_to_tensor(targets[:, None]), axis=1)[:, 0]
    tensor, channels_first = run.outputs[objective_path]  # type: ignore[index]
    out = ops.cast(_canonical(tensor, channels_first), "float32")
    if isinstance(objective, ChannelMean):
        if objective.per_image:  # image i: its own channel, by a one-hot mask (differentiable everywhere)
            channels = objective.channels_for(start, int(out.shape[0]))
            mask = np.eye(int(out.shape[-1]), dtype=np.float32)[channels]
            if len(out.shape) == 2:
                return ops.sum(out * ops.convert_to_tensor(mask), axis=1)
            return ops.sum(ops.mean(out, axis=(1, 2)) * ops.convert_to_tensor(mask), axis=1)
        return out[:, objective.channel] if len(out.shape) == 2 else ops.mean(out[..., objective.channel], axis=(1, 2))
    if len(out.shape) == 2:
        return out[:, objective.channel]
    return out[:, objective.y, objective.x, objective.channel]


def _output_shapes(model: keras.Model, kind: str, x: np.ndarray, keep: set[str]) -> dict[str, tuple[tuple, bool]]:
    """Per kept layer: its output shape (per image, canonical) and whether it is channels first; checks they ran."""
    forward = introspect.Forward.cached(model, keep)
    run = forward(x[:1])
    silent = [n for n in keep if n not in run.outputs]
    if silent:
        raise InputError(introspect._silent_message(run, silent))
    shapes = {}
    for path, (tensor, channels_first) in run.outputs.items():
        shape = tuple(int(d) for d in tensor.shape[1:])
        if channels_first and len(shape) == 3:
            shape = (shape[1], shape[2], shape[0])
        shapes[path] = (shape, channels_first)
    return shapes


def _jax_batch(model: keras.Model, kind: str, x: np.ndarray, keep: set[str], layer: str | None,
               layer_shape: tuple[int, ...] | None, compute: Callable[[_GradRun, Any], Any]) -> tuple[Any, ...]:
    import jax
    import jax.numpy as jnp

    variables = list(model.variables)
    values = [v.value for v in variables]

    def f(images: Any, delta: Any) -> tuple[Any, tuple[Any, Any]]:
        run = _GradRun(keep, layer, (lambda out: out + delta) if layer is not None else None)
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            output, _ = introspect._execute(model, (images,), {}, "", run, False, kind)
        vals = compute(run, output)
        acts = run.outputs[layer] if layer is not None else None
        return jnp.sum(vals), (vals, None if acts is None else acts[0])

    delta = jnp.zeros((len(x), *layer_shape), jnp.float32) if layer is not None and layer_shape else jnp.zeros(())
    (_, (vals, acts)), (gx, gd) = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(jnp.asarray(x), delta)
    return vals, gx, acts, (gd if layer is not None else None)


def _torch_batch(model: keras.Model, kind: str, x: np.ndarray, keep: set[str], layer: str | None, wrt_input: bool,
                 compute: Callable[[_GradRun, Any], Any]) -> tuple[Any, ...]:
    import torch

    deltas: list[Any] = []

    def add(out: Any) -> Any:
        delta = torch.zeros_like(out, requires_grad=True)
        deltas.append(delta)
        return out + delta

    images = torch.tensor(x, requires_grad=wrt_input)
    with torch.enable_grad():
        run = _GradRun(keep, layer, add if layer is not None else None)
        output, _ = introspect._execute(model, (keras.ops.convert_to_tensor(images),), {}, "", run, False, kind)
        vals = compute(run, output)
        wrt = ([images] if wrt_input else []) + deltas
        grads = list(torch.autograd.grad(vals.sum(), wrt, allow_unused=True)) if wrt else []
    gx = grads.pop(0) if wrt_input else None
    gx = torch.zeros_like(images) if wrt_input and gx is None else gx
    gd = None
    if layer is not None:
        gd = grads.pop(0)
        gd = torch.zeros_like(deltas[0]) if gd is None else gd
    acts = run.outputs[layer][0] if layer is not None else None
    return vals.detach(), gx, None if acts is None else acts.detach(), gd


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    return np.array(keras.ops.convert_to_numpy(value), dtype=np.float32)


def value_and_grad(model: keras.Model, images: np.ndarray, objective: Any, layer: str | None = None,
                   wrt_input: bool = True, batch_size: int = 64) -> Gradients:
    """See :meth:`featurelens.backends.Backend.value_and_grad`."""
    x_all = checked_request(images, objective, batch_size)
    framework = keras.backend.backend()
    if framework not in ("jax", "torch"):
        raise BackendError(f"featurelens computes Keras gradients on JAX and torch, not on {framework}; set "
                           "KERAS_BACKEND=jax or torch")
    kind: str = introspect._container(model, root=True)  # type: ignore[assignment]
    introspect._check_images(model, kind, x_all)
    entries = introspect.catalog(model)
    objective_path = None if isinstance(objective, ClassScore) else introspect._canonical_name(entries, objective.layer)
    layer_path = introspect._canonical_name(entries, layer) if layer is not None else None
    targets_all = objective.checked_targets(len(x_all), np.iinfo(np.int64).max) \
        if isinstance(objective, ClassScore) else None
    if isinstance(objective, ChannelMean):
        objective.channels_for(0, 0, total=len(x_all))  # one channel per image, when given per image
    logits_path = _logits_path(model, kind) if isinstance(objective, ClassScore) else None
    keep = {p for p in (objective_path, layer_path, logits_path) if p is not None}
    parts: list[tuple[np.ndarray, ...]] = []
    shapes: dict[str, tuple[tuple, bool]] = {}
    for start in range(0, len(x_all), batch_size):
        x = x_all[start:start + batch_size]
        if start == 0 and keep:
            shapes = _output_shapes(model, kind, x, keep)
            if objective_path is not None:
                objective.check_output(shapes[objective_path][0])  # type: ignore[union-attr]
        targets = probabilities = None
        if targets_all is not None:
            if logits_path is not None:
                num_classes = shapes[logits_path][0][-1]
            else:
                predicted = model.predict(x, verbose=0)
                while isinstance(predicted, (list, tuple, dict)):
                    predicted = list(predicted.values())[0] if isinstance(predicted, dict) else predicted[0]
                predicted = np.asarray(predicted)
                num_classes = predicted.shape[-1]
                probabilities = looks_like_probabilities(predicted.reshape(len(x), -1))
            batch = ClassScore(targets_all[start:start + len(x)], objective.kind)
            targets = batch.checked_targets(len(x), num_classes)

        def compute(run: _GradRun, output: Any, targets: Any = targets, probabilities: Any = probabilities,
                    start: int = start) -> Any:
            return _values(run, output, objective, objective_path, logits_path, targets, bool(probabilities), start)

        try:
            if framework == "jax":
                layer_shape = shapes[layer_path][0] if layer_path is not None else None
                if layer_path is not None and shapes[layer_path][1] and len(layer_shape or ()) == 3:
                    h, w, c = layer_shape  # type: ignore[misc]
                    layer_shape = (c, h, w)  # delta has the layer's own layout
                vals, gx, acts, gd = _jax_batch(model, kind, x, keep, layer_path, layer_shape, compute)
            else:
                vals, gx, acts, gd = _torch_batch(model, kind, x, keep, layer_path, wrt_input, compute)
        except FeaturelensError:
            raise
        except Exception as exc:
            if kind != WRAPPED:
                raise
            raise BackendError(f"featurelens could not differentiate the subclassed Keras model {model.name!r} on "
                               f"{framework} ({type(exc).__name__}: {exc}); gradients need a model whose call() "
                               "can be traced, such as a Functional or Sequential model") from exc
        channels_first = shapes[layer_path][1] if layer_path is not None else False
        parts.append((
            _numpy(vals).reshape(len(x)),
            _numpy(gx) if wrt_input else None,
            _numpy(_canonical(acts, channels_first)) if layer_path is not None else None,
            _numpy(_canonical(gd, channels_first)) if layer_path is not None else None,
        ))
    if not parts:
        return Gradients(np.zeros(0, np.float32), np.zeros_like(x_all) if wrt_input else None, layer)
    values = np.concatenate([p[0] for p in parts])
    input_grad = np.concatenate([p[1] for p in parts]) if wrt_input else None  # type: ignore[misc]
    activations = np.concatenate([p[2] for p in parts]) if layer_path is not None else None  # type: ignore[misc]
    layer_grad = np.concatenate([p[3] for p in parts]) if layer_path is not None else None  # type: ignore[misc]
    return Gradients(values, input_grad, layer, activations, layer_grad)
