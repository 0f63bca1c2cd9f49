"""Introspection of torch modules: layers, conv filters and feature maps via forward hooks.

Works on :class:`~featurelens_torch.build.SpecNet` (layers named as in the spec) and on any
``nn.Module`` a user wrote (layers named by their qualified module names, ``features.0``; the
default layer list is the leaf modules). Hooks are installed for one batch at a time and removed
in a ``finally`` block, so none is ever left behind, even when the forward pass fails, and none is
active while the caller handles a yielded batch.

The rules for models users built (docs/guide/visualizing.rst tells users the same):

- A layer is one *call* of a module. A module called k times in one forward pass (a shared block
  applied repeatedly) is k layers, ``name``, ``name#2`` ... ``name#k``, in execution order; its
  parameters are counted on the first call only. ``filters("dw#2")`` gives ``dw``'s kernels.
- Any module, containers included, can be asked for by its qualified name.
- Every 2-D convolution is kind ``conv2d`` (``nn.Conv2d`` with any ``groups``, and
  ``nn.ConvTranspose2d``); filters are ``(C_out, kh, kw, C_in // groups)``: ``filters[o, ..., i]``
  is the kernel from the ``i``-th input channel of output channel ``o``'s group to ``o``.
- Only modules are layers. Functional code in ``forward()`` (``F.relu``, ``torch.cat``,
  ``x + y``, ``torch.flatten``) has no feature maps of its own; :func:`layers` says where such code
  feeds a layer or makes the model's output, with a :class:`FunctionalOpsWarning`.
- A module returning a tuple, list or dict (a Hugging Face ``ModelOutput``) is recorded by the first
  tensor in it; ``predict`` takes the class scores with :func:`logits_of`.
- 4-D outputs are torch's channels-first and are transposed to channels last, except outputs
  already channels last: of ``nn.Linear`` and one-dimensional ``nn.LayerNorm`` on 4-D inputs, of
  modules with ``data_format == "channels_last"``, and of modules passing such a tensor on (same
  shape, or a permutation that moves the channel axis last).
"""

from __future__ import annotations

import functools
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from featurelens.backends import UNLOCATED, ChannelSummary, InputError, LayerInfo, flat_to_yx, unknown_layer
from featurelens_torch.build import ChannelsLastFlatten, GlobalAvgPool, GlobalMaxPool, Scale, SpecNet
from featurelens_torch.modes import evaluating
from featurelens_torch.scores import class_scores
from featurelens_torch.train import to_tensor

REPEAT = "#"  # "dw#2": the second call of module dw in one forward pass

KINDS = {nn.Conv2d: "conv2d", nn.ConvTranspose2d: "conv2d", nn.BatchNorm1d: "batch_norm",
         nn.BatchNorm2d: "batch_norm", nn.ReLU: "relu", nn.MaxPool2d: "max_pool", nn.Dropout: "dropout",
         ChannelsLastFlatten: "flatten", nn.Flatten: "flatten", nn.Linear: "dense",
         nn.Softmax: "softmax", GlobalMaxPool: "global_max_pool", GlobalAvgPool: "global_avg_pool",
         Scale: "scale"}
CONV2D = (nn.Conv2d, nn.ConvTranspose2d)
HOLDERS = (nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)  # hold modules, never called


class FunctionalOpsWarning(UserWarning):
    """A model's forward() computes values outside its modules: those steps are not layers."""


def kind_of(module: nn.Module) -> str:
    for cls, kind in KINDS.items():
        if isinstance(module, cls):
            return kind
    return type(module).__name__.lower()


def all_tensors(value: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    """The tensors in a module's output, in order: itself, or those in a tuple, list or dict."""
    if isinstance(value, torch.Tensor):
        yield value
    elif depth < 4 and isinstance(value, (Mapping, tuple, list)):
        for item in value.values() if isinstance(value, Mapping) else value:
            yield from all_tensors(item, depth + 1)


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor in a module's output: itself, or the first one in a tuple, list or dict."""
    return next(all_tensors(value), None)


def logits_of(output: Any) -> torch.Tensor:
    """The (N, classes) scores in what a model returns: a tensor, a tuple or list starting with it,
    or a dict-like output with ``logits`` (Hugging Face's ``ImageClassifierOutput``...).

    Anything else raises :class:`InputError` saying what came back.
    """
    return class_scores(output)


def named_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The default layer list: a SpecNet's children, or the leaf modules of any other module."""
    if isinstance(net, SpecNet):
        return list(net.named_children())
    return [(name, m) for name, m in net.named_modules()
            if name and next(m.children(), None) is None and not isinstance(m, HOLDERS)]


def find(net: nn.Module, layer: str) -> tuple[str, nn.Module, int]:
    """(module name, module, which call) for a layer name: ``features.0``, or ``dw#2`` (2nd call)."""
    modules = {name: m for name, m in net.named_modules(remove_duplicate=False) if name}
    if layer in modules:
        return layer, modules[layer], 1
    base, sep, call = layer.rpartition(REPEAT)
    if sep and base in modules and call.isdigit() and int(call) >= 1:
        return base, modules[base], int(call)
    raise unknown_layer(layer, [n for n, _ in named_layers(net)])


def canonical(output: torch.Tensor, channels_last: bool = False) -> np.ndarray:
    """A float32 numpy copy in the canonical layout (channels last for 4-D outputs).

    The transpose happens where the tensor lives (on a GPU: there, in one kernel), so the host
    receives exactly one contiguous copy.
    """
    out = output.detach()
    if out.dim() == 4 and not channels_last:
        out = out.permute(0, 2, 3, 1)
    out = out.to(dtype=torch.float32, memory_format=torch.contiguous_format)
    if out.device.type != "cpu" or out.data_ptr() != output.data_ptr():
        return out.cpu().numpy()
    return out.clone().numpy()


def canonical_view(output: torch.Tensor, channels_last: bool = False) -> np.ndarray:
    """The canonical layout without copying on the CPU: a channels-last view of the tensor's memory.

    On a GPU the transfer to the host is the one copy. Views are only handed out when nothing
    modified the tensor after it was recorded (see :func:`_capture`).
    """
    out = output.detach()
    if out.device.type != "cpu" or out.dtype != torch.float32:
        return canonical(out, channels_last)
    if out.dim() == 4 and not channels_last:
        out = out.permute(0, 2, 3, 1)
    return out.numpy()


def to_host(recorded: Mapping[str, tuple[torch.Tensor, bool] | None]) -> dict[str, np.ndarray | None]:
    """GPU outputs as numpy arrays in the canonical layout, with one wait for all of them.

    Each tensor is transposed on the device, then copied asynchronously into pinned (page-locked)
    host memory from torch's caching host allocator (reused batch after batch, once the arrays
    handed out are gone), and the stream is synchronised once, after the last copy. Pageable
    copies, one blocking call per layer into freshly faulted memory, cost several times that.
    Floating-point tensors arrive as float32; others (indices) keep their dtype.
    """
    staged: dict[str, torch.Tensor | None] = {}
    stream = None
    for name, item in recorded.items():
        if item is None:
            staged[name] = None
            continue
        tensor, channels_last = item
        out = tensor.detach()
        if out.dim() == 4 and not channels_last:
            out = out.permute(0, 2, 3, 1)
        dtype = torch.float32 if out.is_floating_point() else out.dtype
        out = out.to(dtype=dtype, memory_format=torch.contiguous_format)
        host = torch.empty(out.shape, dtype=dtype, pin_memory=True)
        host.copy_(out, non_blocking=True)
        staged[name] = host
        stream = torch.cuda.current_stream(out.device)
    if stream is not None:
        stream.synchronize()
    return {name: None if host is None else host.numpy() for name, host in staged.items()}


def parameter_count(module: nn.Module) -> int:
    """Parameters plus batch-norm statistics, counted as ModelSpec and Keras count them."""
    buffers = sum(b.numel() for n, b in module.named_buffers() if not n.endswith("num_batches_tracked"))
    return sum(p.numel() for p in module.parameters()) + buffers


def module_device(net: nn.Module) -> torch.device:
    tensor = next(net.parameters(), None)
    if tensor is None:
        tensor = next(net.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


# -- layouts: which 4-D outputs are already channels last ------------------------------------------

def _classes(module, *names: str) -> tuple[type, ...]:
    return tuple(cls for cls in (getattr(module, n, None) for n in names) if isinstance(cls, type))


_CHANNELS_FIRST = (
    _classes(nn.modules.conv, "_ConvNd") + _classes(nn.modules.batchnorm, "_BatchNorm")
    + _classes(nn.modules.instancenorm, "_InstanceNorm")
    + _classes(nn.modules.pooling, "_MaxPoolNd", "_AvgPoolNd", "_AdaptiveAvgPoolNd", "_AdaptiveMaxPoolNd", "_LPPoolNd")
    + _classes(nn.modules.padding, "_ConstantPadNd", "_ReflectionPadNd", "_ReplicationPadNd", "_CircularPadNd")
    + (nn.GroupNorm, nn.LocalResponseNorm, nn.Upsample, nn.PixelShuffle, nn.PixelUnshuffle, nn.Dropout2d))
_LAST_DIM_NORMS = (nn.LayerNorm,) + _classes(nn, "RMSNorm")


def _version(tensor: torch.Tensor) -> int:
    """A tensor's in-place modification counter (-1 for inference tensors, which keep none)."""
    try:
        return tensor._version
    except RuntimeError:
        return -1


class _Produced:
    """The tensors modules produced in one forward pass (weakly held): layout and version each."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[weakref.ref, bool, int]] = {}

    def note(self, tensor: torch.Tensor, channels_last: bool) -> None:
        self._seen[id(tensor)] = (weakref.ref(tensor), channels_last, _version(tensor))

    def _entry(self, tensor: torch.Tensor):
        entry = self._seen.get(id(tensor))
        return entry if entry is not None and entry[0]() is tensor else None

    def channels_last(self, tensor: torch.Tensor) -> bool | None:
        entry = self._entry(tensor)
        return entry[1] if entry is not None else None

    def unchanged(self, tensor: torch.Tensor) -> bool:
        """Whether a module (or the caller) produced ``tensor`` and nothing modified it since."""
        entry = self._entry(tensor)
        return entry is not None and entry[2] == _version(tensor)


def _channel_axis_after_permute(x: torch.Tensor, out: torch.Tensor, axis: int) -> int | None:
    """Where ``x``'s channel axis went, when ``out`` is a permuted view of ``x``."""
    if (out.dim() != 4 or sorted(x.shape) != sorted(out.shape) or x.layout != torch.strided
            or out.layout != torch.strided or x.untyped_storage().data_ptr() != out.untyped_storage().data_ptr()):
        return None
    found = [d for d in range(4) if out.stride(d) == x.stride(axis) and out.shape[d] == x.shape[axis]]
    return found[0] if len(found) == 1 else None


def _is_channels_last(module: nn.Module, inputs: tuple, out: torch.Tensor, produced: _Produced) -> bool:
    """Whether a module's 4-D output has its channels on the last axis (see the module docstring)."""
    known = produced.channels_last(out)
    if known is not None:  # a tensor the module was given, handed on (Identity, Dropout at inference)
        return known
    data_format = getattr(module, "data_format", None)
    if data_format in ("channels_last", "channels_first"):
        return data_format == "channels_last"
    if isinstance(module, nn.Linear):
        return True
    if isinstance(module, _LAST_DIM_NORMS):
        return len(module.normalized_shape) == 1
    if isinstance(module, _CHANNELS_FIRST):
        return False
    x = first_tensor(inputs)
    if x is None or x.dim() != 4:
        return False
    source = bool(produced.channels_last(x))  # unknown: torch's channels-first convention
    axis = _channel_axis_after_permute(x, out, 3 if source else 1)  # a view of the input: follow its axes
    if axis is not None:
        return axis == 3
    return source and x.shape == out.shape  # element-wise (activations ...): the input's layout


# -- one forward pass with hooks --------------------------------------------------------------------

Target = tuple[str, nn.Module, "int | None"]  # name, module, which call (None: every call, name#k)


class Capture:
    """What :func:`_capture` recorded: converted outputs by layer name, in execution order."""

    def __init__(self) -> None:
        self.outputs: dict[str, Any] = {}
        self.fed_from_outside: list[str] = []  # layers whose inputs functional code computed
        self.output_from_outside = False  # the model's output is not a module's output
        self.calls: dict[int, int] = {}  # id(module) -> how often it ran


def _tensors(args: tuple) -> Iterator[torch.Tensor]:
    for arg in args:
        if isinstance(arg, torch.Tensor):
            yield arg
        elif isinstance(arg, (tuple, list)):
            yield from (a for a in arg if isinstance(a, torch.Tensor))


class _Enough(Exception):
    """Raised by a hook once every target is recorded, to end the forward pass there."""


def _capture(net: nn.Module, targets: list[Target], x: torch.Tensor, convert: Callable[..., Any],
             check: bool = False, stop_early: bool = False, in_hook: bool = False) -> Capture:
    """Run one forward pass in eval mode without gradients, recording the targets' outputs.

    A target ``(name, module, k)`` records the module's k-th call under ``name``; ``k=None``
    records every call, as ``name``, ``name#2`` .... Every leaf module is hooked too, to follow
    layouts (and, with ``check``, functional code between modules). Outputs are kept as tensors
    during the pass and converted after it (``None`` for a call that returned no tensor). A tensor
    that a later in-place operation changed (``nn.ReLU(inplace=True)`` in a user's model, say) is
    detected by its version counter, and only then is the pass repeated with copies taken inside
    the hooks. With ``stop_early`` (targets of given calls only) the pass ends as soon as every
    target is recorded: the layers after the last one cannot change what was recorded, so maps of
    early layers do not pay for the rest of the network. With ``in_hook``, ``convert(name, tensor,
    channels_last)`` runs inside the hook instead and only its result is kept: the forward pass
    frees each map as usual, and nothing done in place later can change what was read.
    """
    wanted: dict[int, list[tuple[str, int | None]]] = {}
    for name, module, call in targets:
        wanted.setdefault(id(module), []).append((name, call))
    hooked = {id(m): m for m in net.modules() if next(m.children(), None) is None and m is not net}
    hooked.update({id(m): m for _, m, _ in targets})
    names = {id(m): name for name, m, _ in reversed(targets)}
    copy_in_hook: set[str] = set()
    stop_after = len({name for name, _, _ in targets}) if stop_early and not check and \
        all(call is not None for _, _, call in targets) else None

    def run() -> tuple[Capture, dict[str, tuple]]:
        result, raw = Capture(), {}
        produced = _Produced()
        produced.note(x, False)

        def post(module, inputs, output):
            count = result.calls[id(module)] = result.calls.get(id(module), 0) + 1
            tensor, last = None, False
            for i, t in enumerate(all_tensors(output)):  # the first is the one recorded
                t_last = t.dim() == 4 and _is_channels_last(module, inputs, t, produced)
                produced.note(t, t_last)
                if i == 0:
                    tensor, last = t, t_last
            for name, call in wanted.get(id(module), ()):
                if call is None:
                    key = name if count == 1 else f"{name}{REPEAT}{count}"
                elif call == count:
                    key = name
                else:
                    continue
                if tensor is None:
                    raw[key] = (None, False, 0)
                elif in_hook:
                    raw[key] = (convert(key, tensor, last), last, None)
                else:
                    raw[key] = (tensor.detach().clone() if key in copy_in_hook else tensor, last, _version(tensor))
            if stop_after is not None and len(raw) == stop_after:
                raise _Enough

        def pre(module, args):
            if id(module) in names and not all(produced.unchanged(t) for t in _tensors(args)):
                count = result.calls.get(id(module), 0) + 1
                name = names[id(module)]
                result.fed_from_outside.append(name if count == 1 else f"{name}{REPEAT}{count}")

        handles = []
        try:
            for module in hooked.values():
                handles.append(module.register_forward_hook(post))
                if check:
                    handles.append(module.register_forward_pre_hook(pre))
            with torch.no_grad():
                output = net(x)
        except _Enough:
            output = None
        finally:
            for handle in handles:
                handle.remove()
        if check:
            scores = output.get("logits") if isinstance(output, Mapping) else getattr(output, "logits", None)
            scores = scores if isinstance(scores, torch.Tensor) else first_tensor(output)
            result.output_from_outside = scores is not None and not produced.unchanged(scores)
        return result, raw

    with evaluating(net):
        result, raw = run()
        if in_hook:
            result.outputs = {name: value for name, (value, _, _) in raw.items()}
            return result
        changed = {n for n, (t, _, v) in raw.items() if t is not None and n not in copy_in_hook and _version(t) != v}
        if changed:
            copy_in_hook |= changed
            result, raw = run()
    result.outputs = {name: None if t is None else convert(t, last) for name, (t, last, _) in raw.items()}
    return result


def attached_hooks(net: nn.Module) -> list[str]:
    """Every forward (pre-)hook on ``net`` or its submodules, as ``module name: kind``."""
    found = []
    for name, module in net.named_modules():
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_forward_hooks_with_kwargs"):
            for _ in getattr(module, kind, {}) or {}:
                found.append(f"{name or '<model>'}: {kind.strip('_').replace('_', ' ')}")
    return found


def _warn_functional(net: nn.Module, result: Capture) -> None:
    fed, out = result.fed_from_outside, result.output_from_outside
    if not fed and not out:
        return
    where = []
    if fed:
        shown = ", ".join(fed[:5]) + (f" and {len(fed) - 5} more" if len(fed) > 5 else "")
        where.append(f"the inputs of {len(fed)} layer call(s) ({shown})")
    if out:
        where.append("the model's output")
    verb = "comes" if where == ["the model's output"] else "come"
    warnings.warn(
        f"{type(net).__name__}.forward() computes values outside its modules (functional code such as "
        f"F.relu, torch.cat, x + y or torch.flatten): {' and '.join(where)} {verb} from such code. Only "
        "modules are layers, so those steps have no feature maps of their own; their effect shows in "
        "the layers that follow. To inspect a step, make it a module (nn.ReLU, nn.Flatten ...)",
        FunctionalOpsWarning, stacklevel=5)


def layers(net: nn.Module, input_shape: tuple[int, int, int]) -> list[LayerInfo]:
    """One LayerInfo per layer call in execution order, then the layers that did not run (shape ())."""
    h, w, c = input_shape
    targets = named_layers(net)
    x = torch.zeros(1, c, h, w, device=module_device(net))
    result = _capture(net, [(n, m, None) for n, m in targets], x,
                      lambda out, last: tuple(canonical_view(out, last).shape[1:]), check=not isinstance(net, SpecNet))
    by_name = dict(targets)
    infos = []
    for key, shape in result.outputs.items():
        name, _, call = key.rpartition(REPEAT) if key not in by_name else (key, "", "1")
        module = by_name[name]
        infos.append(LayerInfo(key, kind_of(module), shape or (), parameter_count(module) if call == "1" else 0))
    ran = {id(m) for m in by_name.values() if id(m) in result.calls}
    infos += [LayerInfo(n, kind_of(m), (), parameter_count(m)) for n, m in targets if id(m) not in ran]
    _warn_functional(net, result)
    return infos


def filters(net: nn.Module, layer: str) -> np.ndarray:
    """A 2-D convolution's kernels as (C_out, kh, kw, C_in // groups) float32.

    ``nn.Conv2d.weight`` is (C_out, C_in/g, kh, kw) and only needs a transpose. A transposed
    convolution stores (C_in, C_out/g, kh, kw); it is regrouped so that ``filters[o, :, :, i]``
    is, as for ``nn.Conv2d``, the kernel between the ``i``-th input channel of ``o``'s group and
    output channel ``o``: the pattern a single input pixel paints into the output (not flipped).
    """
    _, module, _ = find(net, layer)
    if not isinstance(module, CONV2D):
        convs = [n for n, m in named_layers(net) if isinstance(m, CONV2D)]
        what = "a 1-D or 3-D convolution, not a 2-D one" if isinstance(module, nn.modules.conv._ConvNd) else \
            "not a convolution"
        raise InputError(f"{layer!r} is a {type(module).__name__}, {what}; the conv layers "
                         f"are: {', '.join(convs) or 'none'}")
    weight = module.weight.detach().to("cpu", torch.float32)
    if isinstance(module, nn.ConvTranspose2d):
        groups = module.groups
        c_in, c_out_g, kh, kw = weight.shape
        weight = (weight.reshape(groups, c_in // groups, c_out_g, kh, kw)
                  .permute(0, 2, 3, 4, 1).reshape(groups * c_out_g, kh, kw, c_in // groups))
        return np.ascontiguousarray(weight.numpy())
    return np.ascontiguousarray(weight.permute(0, 2, 3, 1).numpy())  # (C_out, C_in/g, kh, kw) -> last


def require_outputs(net: nn.Module, names: list[str], result: Any, what: str) -> None:
    """A clear error for requested layers that did not run, or that returned no tensor."""
    silent = [name for name in names if name not in result.outputs]
    if silent:
        raise InputError(f"the layer(s) {', '.join(silent)} did not run in the forward pass, so they have no "
                         f"{what}{_how_often(net, silent, result)}; choose layers the model's forward() calls")
    empty = [name for name in names if result.outputs[name] is None]
    if empty:
        raise InputError(f"the layer(s) {', '.join(empty)} returned no tensor, so they have no {what}; choose "
                         "layers that output tensors")


def _called(net: nn.Module, names: list[str]) -> list[Target]:
    """The targets of layer names: each name's module and which of its calls."""
    return [(name, module, call) for name, (_, module, call) in ((n, find(net, n)) for n in names)]


def feature_maps(net: nn.Module, images: np.ndarray, names: list[str] | None,
                 batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """``{layer: (n, H, W, C)}`` per batch. ``None``: every layer call that ran, in execution order."""
    if names is None:
        targets: list[Target] = [(n, m, None) for n, m in named_layers(net)]
    else:
        targets = _called(net, names)
    device = module_device(net)
    on_gpu = device.type == "cuda"
    for start in range(0, len(images), batch_size):
        x = to_tensor(images[start:start + batch_size], device)
        result = _capture(net, targets, x, (lambda out, last: (out, last)) if on_gpu else canonical_view,
                          stop_early=names is not None)
        if on_gpu:
            result.outputs = to_host(result.outputs)
        if names is None:
            yield {k: v for k, v in result.outputs.items() if v is not None}
            continue
        require_outputs(net, names, result, "feature maps")
        yield {name: result.outputs[name] for name in names}


def _reduce(name: str, output: torch.Tensor, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(n, C, positions) float32 values of one layer's output, and its maxima and means per channel."""
    if output.dim() != 4:
        raise InputError(f"layer {name!r} is not spatial (output {tuple(output.shape)}): channel summaries are for "
                         "(n, H, W, C) feature maps")
    out = output.detach()
    out = out if out.dtype == torch.float32 else out.to(torch.float32)
    flat = (out.flatten(1, 2).transpose(1, 2) if channels_last else out.flatten(2))  # (n, C, H*W)
    return flat, flat.amax(dim=2), flat.mean(dim=2)


def _width(output: torch.Tensor, channels_last: bool) -> int:
    return int(output.shape[2] if channels_last else output.shape[3])


def _summary_on_cpu(name: str, output: torch.Tensor, channels_last: bool,
                    floors: Mapping[str, np.ndarray]) -> ChannelSummary:
    """Maxima and means by torch's kernels; positions by numpy's argmax on the same memory, only for
    maxima above the floor (all of them while the caller's lists fill, a few per batch after)."""
    flat, maxima, means = _reduce(name, output, channels_last)
    values, top = flat.numpy(), maxima.numpy()
    positions = np.full((*top.shape, 2), UNLOCATED, np.int64)
    floor = floors.get(name)
    # Above the floor; and every position while a channel's list is not full (floor -inf), where
    # even an image whose maximum is -inf enters.
    wanted = np.ones(top.shape, bool) if floor is None else (top > floor) | np.isneginf(floor)
    if wanted.mean() > 0.25:  # most pairs: one argmax over everything beats gathering rows first
        positions[wanted] = flat_to_yx(values.argmax(axis=2), _width(output, channels_last))[wanted]
    elif wanted.any():
        images, channels = np.nonzero(wanted)
        positions[images, channels] = flat_to_yx(values[images, channels].argmax(axis=1), _width(output, channels_last))
    return ChannelSummary(top, means.numpy(), positions)


def _reduce_on_device(name: str, output: torch.Tensor, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Maxima and means stacked, and the flat index of every maximum (argmax gives the first), all on
    the device: only 3 x n x C numbers per layer will cross to the host."""
    flat, maxima, means = _reduce(name, output, channels_last)
    return torch.stack([maxima, means]), flat.argmax(dim=2), _width(output, channels_last)


def _summaries_from_device(reduced: Mapping[str, tuple[torch.Tensor, torch.Tensor, int]]) -> dict[str, ChannelSummary]:
    """On CUDA one pinned copy per array and one wait for all (:func:`to_host`); elsewhere (MPS ...)
    plain copies."""
    arrays = {f"{kind}:{name}": (tensor, False) for name, (values, where, _) in reduced.items()
              for kind, tensor in (("values", values), ("where", where))}
    if all(tensor.device.type == "cuda" for tensor, _ in arrays.values()):
        hosts = to_host(arrays)
    else:
        hosts = {key: tensor.cpu().numpy() for key, (tensor, _) in arrays.items()}
    summaries = {}
    for name, (_, _, width) in reduced.items():
        values, where = hosts[f"values:{name}"], hosts[f"where:{name}"]
        assert values is not None and where is not None
        summaries[name] = ChannelSummary(values[0], values[1], flat_to_yx(where, width))
    return summaries


def channel_summaries(net: nn.Module, images: np.ndarray, names: list[str], batch_size: int,
                      floors: Mapping[str, np.ndarray] | None = None) -> Iterator[dict[str, ChannelSummary]]:
    """``{layer: ChannelSummary}`` per batch (see the contract). Each layer's output is reduced in its
    hook, the moment it is computed, so no map outlives its place in the forward pass (and nothing
    done in place afterwards can change what was read). On an accelerator every position is found
    there (``floors`` save nothing on a device that does argmax in parallel)."""
    targets = _called(net, names)
    device = module_device(net)
    on_device = device.type != "cpu"
    for start in range(0, len(images), batch_size):
        x = to_tensor(images[start:start + batch_size], device)
        reduce = _reduce_on_device if on_device else functools.partial(_summary_on_cpu, floors=floors or {})
        result = _capture(net, targets, x, reduce, stop_early=True, in_hook=True)
        require_outputs(net, names, result, "channel summaries")
        outputs = {name: result.outputs[name] for name in names}
        yield _summaries_from_device(outputs) if on_device else outputs


def _how_often(net: nn.Module, silent: list[str], result: Capture) -> str:
    notes = []
    for name in silent:
        base, module, call = find(net, name)
        ran = result.calls.get(id(module), 0)
        if call > 1:
            notes.append(f"{base} ran {ran} time(s), so it has no call {call}")
    return f" ({'; '.join(notes)})" if notes else ""
