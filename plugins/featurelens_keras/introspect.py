"""Introspection of Keras models: layers, conv filters and feature maps, for every common model shape.

A model is run in inference mode by featurelens itself, so that every layer call can be seen
without changing the model (on JAX the whole pass is then compiled with ``jax.jit``, see
:class:`Forward`; elsewhere layers run eagerly):

- Functional models, built Sequential models and nested Functional/Sequential models are run by
  walking Keras's own graph (the nodes of ``_nodes_by_depth``, in the order Keras runs them) and
  calling each layer on the values of its inputs, as ``Functional.call`` does. Nothing is attached
  to the model, no node is created, no helper model is built.
- An unbuilt Sequential (no ``Input``, never called) is run layer by layer on the images' shape:
  its layers create their weights on that first call, as they would on the model's first call; the
  model itself is left unbuilt (no ``Input`` is added to it).
- Subclassed models (a custom ``call``) and custom layers made of other layers are run through
  their own ``call``, with each of their sublayers' ``call`` replaced, for that one forward pass, by
  a wrapper that records its output. The wrappers are removed in a ``finally`` block, so none is
  ever left behind (:func:`attached` lists any that are), and none is active while the caller
  handles a yielded batch.

The rules for models users built (docs/guide/visualizing.rst tells users the same):

- A layer is one *call* of a layer. A layer called k times (a shared layer) is k layers, ``name``,
  ``name#2`` ... ``name#k``, in execution order; its parameters are counted on the first call only.
  ``filters("shared#2")`` gives ``shared``'s kernels.
- The layers of a nested model (or of a custom layer made of layers) are addressed by a path,
  ``block/conv1`` (outer name / inner name; Keras forbids ``/`` in names, so paths are unambiguous)
  and listed in its place instead of the nested model; the nested model's own output can still be
  asked for by its name (``block``). A nested model called twice gives ``block/conv1`` and
  ``block#2/conv1``. Keras's own composite layers (``MultiHeadAttention`` ...) stay one layer.
- Every 2-D convolution is kind ``conv2d``: ``Conv2D`` (any ``groups``, 1x1 included),
  ``DepthwiseConv2D``, ``SeparableConv2D`` and ``Conv2DTranspose``. Filters are
  ``(C_out, kh, kw, C_in // groups)``: ``filters[o, ..., i]`` is the kernel from the ``i``-th
  input channel of output channel ``o``'s group to ``o``. A depthwise kernel is
  ``(C_in * depth_multiplier, kh, kw, 1)`` (output channel ``o`` reads input channel
  ``o // depth_multiplier``). A separable convolution's filters are its depthwise kernel; its
  pointwise (1x1) kernel is ``filters("name/pointwise")``, ``(C_out, 1, 1, C_in * depth_multiplier)``;
  the layer has one output (after the pointwise step), so it is one layer. A transposed
  convolution's kernel (Keras: ``(kh, kw, C_out, C_in)``) is given as ``(C_out, kh, kw, C_in)``:
  the pattern a single input pixel paints into the output (not flipped).
- A layer returning several tensors is recorded by its first one. Operations in a Functional graph
  that are not layers (``keras.ops.add(x, y)`` on symbolic tensors) are layers under their own
  names; operations inside a subclassed model's ``call`` (``x + y``, ``keras.ops.relu``) are not
  layers: they have no name and no feature maps of their own.
- 4-D outputs of layers with ``data_format="channels_first"`` (and of the layers that take such
  an output and keep its shape, as batch norm and activations do) are transposed to channels last.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras.src.models.functional import Functional

from featurelens.backends import InputError, LayerInfo, unknown_layer

try:
    from keras.src.backend import in_symbolic_scope
except ImportError:  # pragma: no cover
    def in_symbolic_scope() -> bool:
        return False

REPEAT = "#"  # "shared#2": the second call of layer shared in one forward pass
SEP = "/"  # "block/conv1": layer conv1 of the nested model block
POINTWISE = "pointwise"  # "sep/pointwise": the 1x1 kernel of separable convolution sep
_MARK = "__featurelens_capture__"
_MISSING = object()

CONV2D = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D,
          keras.layers.Conv2DTranspose)
KINDS = {CONV2D: "conv2d", keras.layers.BatchNormalization: "batch_norm",
         keras.layers.ReLU: "relu", keras.layers.MaxPooling2D: "max_pool", keras.layers.Dropout: "dropout",
         keras.layers.Flatten: "flatten", keras.layers.Dense: "dense", keras.layers.Softmax: "softmax",
         keras.layers.GlobalMaxPooling2D: "global_max_pool", keras.layers.GlobalAveragePooling2D: "global_avg_pool",
         keras.layers.Rescaling: "scale"}

# how featurelens runs a model (or a layer holding layers): see the module docstring
GRAPH, SEQUENCE, WRAPPED = "graph", "sequence", "wrapped"


def kind_of(layer: Any) -> str:
    for cls, kind in KINDS.items():
        if isinstance(layer, cls):
            return kind
    if isinstance(layer, keras.layers.Activation):
        return getattr(layer.activation, "__name__", "activation")
    return type(layer).__name__.lower()


def _join(prefix: str, name: str) -> str:
    return f"{prefix}{SEP}{name}" if prefix else name


def _children(layer: Any) -> list[Any]:
    """The layers directly inside ``layer`` (no InputLayer)."""
    if isinstance(layer, keras.Model):
        found = layer.layers
    else:
        flatten = getattr(layer, "_flatten_layers", None)
        found = list(flatten(include_self=False, recursive=False)) if flatten is not None else []
    return [x for x in found if isinstance(x, keras.layers.Layer) and not isinstance(x, keras.layers.InputLayer)]


def _overrides_call(layer: Any, base: type) -> bool:
    return type(layer).call is not base.call


def _container(op: Any, root: bool = False) -> str | None:
    """How ``op`` is run when it holds layers (GRAPH, SEQUENCE, WRAPPED), or None for a plain layer."""
    if isinstance(op, keras.Sequential) and not _overrides_call(op, keras.Sequential):
        return GRAPH if getattr(op, "_functional", None) is not None else SEQUENCE
    if isinstance(op, keras.Model) and hasattr(op, "_nodes_by_depth") and not _overrides_call(op, Functional):
        return GRAPH
    if root:
        return WRAPPED
    if not isinstance(op, keras.layers.Layer) or not _children(op):
        return None
    if isinstance(op, keras.Model) or not type(op).__module__.startswith("keras."):
        return WRAPPED  # a subclassed model or a user's layer made of layers (Keras's own stay whole)
    return None


def _graph(model: Any) -> Any:
    """The Functional graph that runs ``model`` (a built Sequential runs an inner Functional)."""
    return model._functional if isinstance(model, keras.Sequential) else model


def _graph_nodes(graph: Any) -> Iterator[Any]:
    """The graph's layer calls in the order Keras runs them (deepest first, as Functional.call).

    Calls at one depth do not depend on each other; they come in the order of ``model.layers``
    (what ``model.summary()`` shows), which Keras does not promise for its own run.
    """
    rank = {id(op): i for i, op in enumerate(graph.operations)}
    by_depth = graph._nodes_by_depth
    for depth in sorted(by_depth, reverse=True):
        nodes = [n for n in by_depth[depth] if n.operation is not None and not n.is_input]
        yield from sorted(nodes, key=lambda n: rank.get(id(n.operation), len(rank)))


class _Counter:
    """Names layer calls: the first call of a path is ``path``, the k-th ``path#k``."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, path: str) -> str:
        count = self.counts[path] = self.counts.get(path, 0) + 1
        return path if count == 1 else f"{path}{REPEAT}{count}"


# -- the layers a model has, without running it -----------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    path: str
    layer: Any
    listed: bool  # a layer of the default list (containers are not)


def _subtree(container: Any, prefix: str, seen: set[int]) -> list[_Entry]:
    """Every layer inside a WRAPPED container, once each, under its place in the layer tree."""
    out = []
    for layer in _children(container):
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        path = _join(prefix, layer.name)
        inner = _container(layer) is not None
        out.append(_Entry(path, layer, not inner))
        if inner:
            out.extend(_subtree(layer, path, seen))
    return out


def _walk(container: Any, prefix: str, kind: str, entries: list[_Entry], counter: _Counter) -> None:
    if kind == WRAPPED:
        entries.extend(_subtree(container, prefix, set()))
        return
    ops = ([node.operation for node in _graph_nodes(_graph(container))] if kind == GRAPH
           else list(container.layers))
    for op in ops:
        path = counter(_join(prefix, op.name))
        inner = _container(op)
        entries.append(_Entry(path, op, inner is None))
        if inner is not None:
            _walk(op, path, inner, entries, counter)


def catalog(model: keras.Model) -> list[_Entry]:
    """Every addressable layer (and nested container), in execution order for graphs."""
    entries: list[_Entry] = []
    _walk(model, "", _container(model, root=True), entries, _Counter())  # type: ignore[arg-type]
    return entries


def _find(entries: list[_Entry], name: str) -> _Entry:
    """The entry of ``name``: a path, or ``path#k`` (the k-th call of that layer)."""
    for entry in entries:
        if entry.path == name:
            return entry
    base, call = _split_call(name)
    if base != name:
        for entry in entries:
            if entry.path == base:
                return entry
    raise unknown_layer(name, [e.path for e in entries if e.listed])


def _split_call(name: str) -> tuple[str, int]:
    """``("shared", 2)`` for ``shared#2``; ``(name, 1)`` for a name without a call number."""
    base, sep, call = name.rpartition(REPEAT)
    if sep and call.isdigit() and int(call) >= 1:
        return base, int(call)
    return name, 1


def _canonical_name(entries: list[_Entry], name: str) -> str:
    """``name`` as a forward pass records it (``x#1`` is ``x``); raises for unknown layers."""
    _find(entries, name)
    if any(e.path == name for e in entries):
        return name
    base, call = _split_call(name)
    return base if call == 1 else name


# -- one forward pass ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    path: str
    layer: Any
    listed: bool
    shape: tuple[int, ...] | None  # None: the call returned no tensor
    channels_first: bool


def _first_tensor(value: Any) -> Any:
    for item in keras.tree.flatten(value):
        if keras.ops.is_tensor(item) or isinstance(item, keras.KerasTensor):
            return item
    return None


def _symbolic(value: Any) -> bool:
    """Whether a call happened while Keras traced shapes (building a layer), not on real values."""
    return in_symbolic_scope() or isinstance(value, keras.KerasTensor)


class _Run:
    """What one forward pass recorded: every layer call in execution order, the outputs asked for."""

    def __init__(self, keep: set[str] | None, keep_listed: bool) -> None:
        self.keep, self.keep_listed = keep, keep_listed
        self.calls: list[_Call] = []
        self.outputs: dict[str, tuple[Any, bool]] = {}
        self.counter = _Counter()
        self._layouts: dict[int, tuple[Any, bool]] = {}  # tensors seen in wrapped containers

    def record(self, path: str, layer: Any, out: Any, channels_first: bool, listed: bool) -> None:
        tensor = _first_tensor(out)
        shape = tuple(int(d) for d in tensor.shape) if tensor is not None else None
        self.calls.append(_Call(path, layer, listed, shape, channels_first))
        if tensor is not None and ((self.keep is not None and path in self.keep) or (self.keep_listed and listed)):
            self.outputs[path] = (tensor, channels_first)

    def substitute(self, path: str, out: Any) -> Any:
        """What the model goes on with after the call recorded as ``path``: ``out`` itself (the
        gradients module replaces one layer's output, see :mod:`featurelens_keras.gradients`)."""
        return out

    def note(self, tensor: Any, channels_first: bool) -> None:
        if tensor is not None:
            self._layouts[id(tensor)] = (tensor, channels_first)  # holds the tensor: ids stay unique

    def layout(self, tensor: Any, default: bool) -> bool:
        entry = self._layouts.get(id(tensor)) if tensor is not None else None
        return entry[1] if entry is not None and entry[0] is tensor else default


def _layout(layer: Any, channels_first_in: bool) -> bool:
    """Whether ``layer``'s output is channels first: its data_format says, else as its input."""
    data_format = getattr(layer, "data_format", None)
    if data_format in ("channels_first", "channels_last"):
        return data_format == "channels_first"
    return channels_first_in


def _call(op: Any, args: Any, kwargs: dict[str, Any]) -> Any:
    """Call a layer (or an operation) in inference mode."""
    if getattr(op, "_call_has_training_arg", False):
        kwargs = {**kwargs, "training": False}
    return op(*args, **kwargs)


def _execute(op: Any, args: Any, kwargs: dict[str, Any], path: str, run: _Run, channels_first: bool,
             kind: str | None) -> tuple[Any, bool]:
    """Run one layer call (a container: every call inside it) and record it under ``path``."""
    if kind == GRAPH:
        inputs = args[0] if args else kwargs.get("inputs")
        out, last = _run_graph(_graph(op), keras.tree.flatten(inputs), path, run, channels_first)
    elif kind == SEQUENCE:
        out, last = args[0] if args else kwargs.get("inputs"), channels_first
        for layer in op.layers:
            out, last = _execute(layer, (out,), {}, run.counter(_join(path, layer.name)), run, last,
                                 _container(layer))
    elif kind == WRAPPED:
        out, last = _run_wrapped(op, args, kwargs, path, run, channels_first)
    else:
        out = _call(op, args, kwargs)
        last = _layout(op, channels_first)
    if path:
        out = run.substitute(path, out)
        run.record(path, op, out, last, kind is None)
    return out, last


def _run_graph(graph: Any, inputs: list[Any], prefix: str, run: _Run, channels_first: bool) -> tuple[Any, bool]:
    """Functional.call's walk through the graph, calling (and recording) each layer call."""
    values: dict[int, Any] = {}
    layouts: dict[int, bool] = {}
    for symbolic, value in zip(graph.inputs, inputs):
        values[id(symbolic)] = keras.ops.convert_to_tensor(value, dtype=symbolic.dtype)
        layouts[id(symbolic)] = channels_first
    for node in _graph_nodes(graph):
        sources = node.input_tensors
        if any(id(x) not in values for x in sources):
            continue  # not computable from these inputs (Functional.call skips it too)
        args, kwargs = node.arguments.fill_in(values)
        op = node.operation
        out, last = _execute(op, args, kwargs, run.counter(_join(prefix, op.name)), run,
                             layouts.get(id(sources[0]), channels_first) if sources else channels_first,
                             _container(op))
        for symbolic, value in zip(node.outputs, keras.tree.flatten(out)):
            values[id(symbolic)] = value
            layouts[id(symbolic)] = last
    outputs = [values[id(x)] for x in graph.outputs]
    last = layouts[id(graph.outputs[0])]
    return (outputs[0] if len(outputs) == 1 else outputs), last


def _recording_call(layer: Any, original: Callable[..., Any], path: str, listed: bool, run: _Run):
    def call(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        if not _symbolic(out):
            last = _layout(layer, run.layout(_first_tensor((args, kwargs)), False))
            key = run.counter(path)
            out = run.substitute(key, out)
            run.note(_first_tensor(out), last)
            run.record(key, layer, out, last, listed)
        return out

    setattr(call, _MARK, path)
    return call


def _run_wrapped(container: Any, args: Any, kwargs: dict[str, Any], prefix: str, run: _Run,
                 channels_first: bool) -> tuple[Any, bool]:
    """Call a subclassed model (or a layer made of layers) with every layer inside it recorded."""
    run.note(_first_tensor((args, kwargs)), channels_first)
    installed: list[tuple[Any, Any]] = []
    try:
        for entry in _subtree(container, prefix, set()):
            layer = entry.layer
            original = layer.call
            installed.append((layer, layer.__dict__.get("call", _MISSING)))
            object.__setattr__(layer, "call", _recording_call(layer, original, entry.path, entry.listed, run))
        out = _call(container, args, kwargs)
    finally:
        for layer, previous in reversed(installed):
            if previous is _MISSING:
                object.__delattr__(layer, "call")
            else:
                object.__setattr__(layer, "call", previous)
    return out, run.layout(_first_tensor(out), channels_first)


def _inference() -> contextlib.AbstractContextManager[Any]:
    if keras.backend.backend() == "torch":  # no autograd graph for a forward pass nobody differentiates
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def _check_images(model: keras.Model, kind: str, images: np.ndarray) -> None:
    if images.ndim != 4:
        raise InputError(f"expected images of shape (N, H, W, C), got {images.shape}")
    if kind != GRAPH:
        return
    inputs = _graph(model).inputs
    if len(inputs) != 1:
        raise InputError(f"the Keras model {model.name!r} takes {len(inputs)} inputs; featurelens feeds it one "
                         "batch of images, so inspect a model with a single image input")
    expected = tuple(inputs[0].shape)
    got = tuple(images.shape)
    if len(expected) != 4 or any(e is not None and e != g for e, g in zip(expected[1:], got[1:])):
        shown = tuple(expected[1:])
        raise InputError(f"the Keras model {model.name!r} takes inputs of shape {shown} (after the batch axis) but "
                         f"got images of shape {got[1:]}; give images of that shape (featurelens.wrap(model, "
                         f"input_shape={shown}) for a wrapped model)")


def _unbuilt(model: keras.Model, kind: str) -> frozenset[int]:
    """The layers of ``model`` without their weights yet (an unbuilt Sequential itself does not count)."""
    layers_of = getattr(model, "_flatten_layers", None)
    layers = list(layers_of(include_self=kind != SEQUENCE, recursive=True)) if layers_of is not None else []
    return frozenset(id(layer) for layer in layers if not layer.built)


class Forward:
    """Forward passes of one model in inference mode, recording every layer call.

    On JAX, once every layer the model calls is built, the pass is traced once per batch shape and
    compiled with ``jax.jit`` (the model's variables are passed in through a
    ``keras.StatelessScope``, as Keras's own JAX trainer does), which is many times faster than
    running each layer eagerly; ``shapes_only`` only traces it. :meth:`cached` keeps the compiled
    passes of the last few layer sets asked for, per model (weakly: they go with the model, and
    nothing is stored on it), as Keras keeps its compiled predict function. Elsewhere, before the
    layers are built, and where tracing fails (a user's layer branching on values), layers run
    eagerly, without gradients: a model that really fails fails there, with its own error.
    """

    _cache: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Forward]] = weakref.WeakKeyDictionary()
    CACHED_PER_MODEL = 4
    #: per model, the layers still unbuilt after a whole eager pass: the model does not call them
    _not_called: weakref.WeakKeyDictionary[Any, frozenset[int]] = weakref.WeakKeyDictionary()

    def __init__(self, model: keras.Model, keep: set[str] | None = None, keep_listed: bool = False) -> None:
        self._model = weakref.ref(model)  # the compiled pass must not keep the model alive
        self.keep, self.keep_listed = keep, keep_listed
        self.kind: str = _container(model, root=True)  # type: ignore[assignment]
        self._jitted: Any = None
        self._traced: dict[tuple[int, ...], _Run] = {}
        self._variables: list[Any] = []

    @classmethod
    def cached(cls, model: keras.Model, keep: set[str] | None = None, keep_listed: bool = False) -> Forward:
        """The Forward of ``model`` for these layers, compiled before if it was asked for recently."""
        if keras.backend.backend() != "jax":
            return cls(model, keep, keep_listed)
        key = (_container(model, root=True), frozenset(keep) if keep is not None else None, keep_listed,
               tuple(id(v) for v in model.variables))  # new weights or layers: a new pass
        try:
            per_model = cls._cache.setdefault(model, {})
        except TypeError:  # not weakly referenceable or hashable: no cache
            return cls(model, keep, keep_listed)
        found = per_model.pop(key, None) or cls(model, keep, keep_listed)
        per_model[key] = found  # the most recently used last
        while len(per_model) > cls.CACHED_PER_MODEL:
            per_model.pop(next(iter(per_model)))
        return found

    @property
    def model(self) -> keras.Model:
        model = self._model()
        if model is None:  # pragma: no cover - a Forward is used only while its caller holds the model
            raise RuntimeError("the model of this forward pass was deleted")
        return model

    def _use_jax(self) -> bool:
        """Whether to compile: never while a layer the pass calls still has to create its weights."""
        if keras.backend.backend() != "jax" or self._jitted is False:
            return False
        unbuilt = _unbuilt(self.model, self.kind)
        try:
            return not unbuilt or unbuilt == self._not_called.get(self.model)
        except TypeError:
            return False

    def _pure(self, values: list[Any], x: Any) -> dict[str, Any]:
        run = _Run(self.keep, self.keep_listed)
        with keras.StatelessScope(state_mapping=list(zip(self._variables, values))):
            _execute(self.model, (x,), {}, "", run, False, self.kind)
        self._traced[tuple(x.shape)] = run
        return {path: tensor for path, (tensor, _) in run.outputs.items()}

    def _eager(self, x: np.ndarray) -> _Run:
        run = _Run(self.keep, self.keep_listed)
        with _inference():
            _execute(self.model, (keras.ops.convert_to_tensor(x),), {}, "", run, False, self.kind)
        with contextlib.suppress(TypeError):  # a model that cannot be weakly referenced: always eager
            self._not_called[self.model] = _unbuilt(self.model, self.kind)  # built now unless never called
        return run

    def _jax(self, x: np.ndarray, shapes_only: bool) -> _Run | None:
        import jax

        if self._jitted is None:
            self._variables = list(self.model.variables)
            self._jitted = jax.jit(self._pure)
        try:
            if shapes_only:
                values = [jax.ShapeDtypeStruct(tuple(v.shape), v.dtype) for v in self._variables]
                jax.eval_shape(self._pure, values, jax.ShapeDtypeStruct(x.shape, x.dtype))
                return self._traced.pop(tuple(x.shape))
            outputs = self._jitted([v.value for v in self._variables], x)
        except Exception:  # noqa: BLE001 - Keras re-wraps JAX's tracer errors (even into AttributeError)
            self._jitted = False  # a layer needs concrete values (or fails): run eagerly, which says why
            self._traced.clear()
            return None
        traced = self._traced[tuple(x.shape)]
        run = _Run(self.keep, self.keep_listed)
        run.calls = traced.calls
        run.outputs = {path: (outputs[path], last) for path, (_, last) in traced.outputs.items()}
        return run

    def __call__(self, images: np.ndarray, shapes_only: bool = False) -> _Run:
        """Run ``images`` (N, H, W, C); with ``shapes_only`` only the calls and their shapes are needed."""
        _check_images(self.model, self.kind, images)
        x = np.asarray(images, np.float32)
        if self._use_jax():
            run = self._jax(x, shapes_only)
            if run is not None:
                return run
        return self._eager(x)


def _canonical(tensor: Any, channels_first: bool) -> np.ndarray:
    array = np.asarray(keras.ops.convert_to_numpy(tensor), dtype=np.float32)
    if channels_first and array.ndim == 4:
        array = np.ascontiguousarray(array.transpose(0, 2, 3, 1))
    return array


def _shape(shape: tuple[int, ...] | None, channels_first: bool) -> tuple[int, ...]:
    if shape is None:
        return ()
    shape = shape[1:]
    return (shape[1], shape[2], shape[0]) if channels_first and len(shape) == 3 else shape


def _params(layer: Any) -> int:
    try:
        return int(layer.count_params())
    except Exception:  # an operation, or a layer that is not built: no weights
        return 0


# -- the backend's introspection methods --------------------------------------------------------------


def layers(model: keras.Model, input_shape: tuple[int, int, int]) -> list[LayerInfo]:
    """One LayerInfo per layer call in execution order, then the layers that did not run (shape ())."""
    run = Forward.cached(model)(np.zeros((1, *input_shape), np.float32), shapes_only=True)
    seen: set[int] = set()
    infos = []
    for call in run.calls:
        if call.listed:
            first = id(call.layer) not in seen
            seen.add(id(call.layer))
            infos.append(LayerInfo(call.path, kind_of(call.layer), _shape(call.shape, call.channels_first),
                                   _params(call.layer) if first else 0))
    ran = {id(call.layer) for call in run.calls}
    for entry in catalog(model):
        if entry.listed and id(entry.layer) not in ran and id(entry.layer) not in seen:
            seen.add(id(entry.layer))
            infos.append(LayerInfo(entry.path, kind_of(entry.layer), (), _params(entry.layer)))
    return infos


def _conv_names(entries: list[_Entry]) -> str:
    return ", ".join(e.path for e in entries if e.listed and isinstance(e.layer, CONV2D)) or "none"


def _kernel(layer: Any, attribute: str, name: str) -> np.ndarray:
    variable = getattr(layer, attribute, None) if layer.built else None
    if variable is None:
        raise InputError(f"the layer {name!r} has no weights yet: the model was never built or called; build it "
                         "(model.build((None, H, W, C)), or keras.Input) or call layers() or feature_maps() first")
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)


def filters(model: keras.Model, name: str) -> np.ndarray:
    """A 2-D convolution's kernels as (C_out, kh, kw, C_in // groups) float32 (see the module docstring)."""
    entries = catalog(model)
    head, sep, tail = name.rpartition(SEP)
    if sep and tail == POINTWISE and not any(e.path == name for e in entries):
        entry = _find(entries, head)
        if not isinstance(entry.layer, keras.layers.SeparableConv2D):
            raise InputError(f"{name!r}: only separable convolutions have a pointwise kernel, and {head!r} is a "
                             f"{type(entry.layer).__name__}; the conv layers are: {_conv_names(entries)}")
        pointwise = _kernel(entry.layer, "pointwise_kernel", name)  # (1, 1, C_in * multiplier, C_out)
        return np.ascontiguousarray(pointwise.transpose(3, 0, 1, 2))
    layer = _find(entries, name).layer
    if not isinstance(layer, CONV2D):
        conv_nd = isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv3D, keras.layers.Conv1DTranspose,
                                     keras.layers.Conv3DTranspose, keras.layers.SeparableConv1D,
                                     keras.layers.DepthwiseConv1D))
        what = "a 1-D or 3-D convolution, not a 2-D one" if conv_nd else "not a convolution"
        raise InputError(f"{name!r} is a {type(layer).__name__}, {what}; the conv layers are: {_conv_names(entries)}")
    if isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):
        attribute = "kernel" if isinstance(layer, keras.layers.DepthwiseConv2D) else "depthwise_kernel"
        kernel = _kernel(layer, attribute, name)  # (kh, kw, C_in, multiplier): output c_in * multiplier + m
        kh, kw, c_in, multiplier = kernel.shape
        return np.ascontiguousarray(kernel.reshape(kh, kw, c_in * multiplier).transpose(2, 0, 1)[..., None])
    kernel = _kernel(layer, "kernel", name)
    if isinstance(layer, keras.layers.Conv2DTranspose):  # (kh, kw, C_out, C_in)
        return np.ascontiguousarray(kernel.transpose(2, 0, 1, 3))
    return np.ascontiguousarray(kernel.transpose(3, 0, 1, 2))  # (kh, kw, C_in / groups, C_out)


def feature_maps(model: keras.Model, images: np.ndarray, names: list[str] | None,
                 batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """``{layer: (n, H, W, C)}`` per batch. ``None``: every layer call that ran, in execution order."""
    wanted = None
    if names is not None:
        entries = catalog(model)
        wanted = [_canonical_name(entries, n) for n in names]
    forward = Forward.cached(model, set(wanted) if wanted is not None else None, keep_listed=wanted is None)
    for start in range(0, len(images), batch_size):
        run = forward(images[start:start + batch_size])
        if wanted is None:
            chosen = [c.path for c in run.calls if c.listed and c.path in run.outputs]
        else:
            silent = [n for n in wanted if n not in run.outputs]
            if silent:
                raise InputError(_silent_message(run, silent))
            chosen = wanted
        yield {name: _canonical(*run.outputs[name]) for name in chosen}


def _silent_message(run: _Run, silent: list[str]) -> str:
    recorded = {c.path for c in run.calls}
    empty = [n for n in silent if n in recorded]
    if empty:
        return (f"the layer(s) {', '.join(empty)} returned no tensor, so they have no feature maps; choose layers "
                "that output tensors")
    notes = []
    for name in silent:
        base, call = _split_call(name)
        ran = sum(1 for path in recorded if _split_call(path)[0] == base)
        notes.append(f"{name} (that layer ran {ran} time(s))" if call > 1 else name)
    return (f"the layer(s) {', '.join(notes)} did not run in the forward pass, so they have no feature maps; "
            "choose layers the model's call() uses")


def attached(model: keras.Model) -> list[str]:
    """The call wrappers featurelens installed on ``model``'s layers (empty between calls)."""
    found = []
    layers_of = getattr(model, "_flatten_layers", None)
    for layer in layers_of(include_self=True, recursive=True) if layers_of is not None else [model]:
        wrapper = layer.__dict__.get("call")
        if wrapper is not None and hasattr(wrapper, _MARK):
            found.append(f"{getattr(wrapper, _MARK)}: featurelens call wrapper")
    return found
