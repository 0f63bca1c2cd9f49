"""Introspection of torch modules: layers, conv filters and feature maps via forward hooks.

Works on :class:`~featurelens_torch.build.SpecNet` (layers named as in the spec) and on any
``nn.Module`` a user wrote (layers named by their qualified module names, ``features.0``; the
default layer list is the leaf modules). Hooks are installed for one batch at a time and removed
in a ``finally`` block, so none is ever left behind, even when the forward pass fails, and none is
active while the caller handles a yielded batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from featurelens.backends import InputError, LayerInfo, unknown_layer
from featurelens_torch.build import ChannelsLastFlatten, SpecNet
from featurelens_torch.train import to_tensor

KINDS = {nn.Conv2d: "conv2d", nn.BatchNorm1d: "batch_norm", nn.BatchNorm2d: "batch_norm",
         nn.ReLU: "relu", nn.MaxPool2d: "max_pool", nn.Dropout: "dropout",
         ChannelsLastFlatten: "flatten", nn.Flatten: "flatten", nn.Linear: "dense",
         nn.Softmax: "softmax"}


def kind_of(module: nn.Module) -> str:
    for cls, kind in KINDS.items():
        if isinstance(module, cls):
            return kind
    return type(module).__name__.lower()


def named_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The default layer list: a SpecNet's children, or the leaf modules of any other module."""
    if isinstance(net, SpecNet):
        return list(net.named_children())
    return [(name, m) for name, m in net.named_modules() if name and next(m.children(), None) is None]


def resolve(net: nn.Module, names: list[str] | None) -> list[tuple[str, nn.Module]]:
    """(name, module) pairs for ``names`` (None: every layer), with a clear error for unknown ones."""
    if names is None:
        return named_layers(net)
    modules = dict(net.named_modules())
    missing = [n for n in names if n not in modules or not n]
    if missing:
        raise unknown_layer(missing[0], [n for n, _ in named_layers(net)])
    return [(n, modules[n]) for n in names]


def canonical(output: torch.Tensor) -> np.ndarray:
    """A float32 numpy copy in the canonical layout (channels last for 4-D outputs).

    The transpose happens where the tensor lives (on a GPU: there, in one kernel), so the host
    receives exactly one contiguous copy.
    """
    out = output.detach()
    if out.dim() == 4:
        out = out.permute(0, 2, 3, 1)
    out = out.to(dtype=torch.float32, memory_format=torch.contiguous_format)
    if out.device.type != "cpu" or out.data_ptr() != output.data_ptr():
        return out.cpu().numpy()
    return out.clone().numpy()


def canonical_view(output: torch.Tensor) -> np.ndarray:
    """The canonical layout without copying on the CPU: a channels-last view of the tensor's memory.

    On a GPU the transfer to the host is the one copy. Views are only handed out when nothing
    modified the tensor after it was recorded (see :func:`_capture`).
    """
    out = output.detach()
    if out.device.type != "cpu" or out.dtype != torch.float32:
        return canonical(out)
    if out.dim() == 4:
        out = out.permute(0, 2, 3, 1)
    return out.numpy()


def parameter_count(module: nn.Module) -> int:
    """Parameters plus batch-norm statistics, counted as ModelSpec and Keras count them."""
    buffers = sum(b.numel() for n, b in module.named_buffers() if not n.endswith("num_batches_tracked"))
    return sum(p.numel() for p in module.parameters()) + buffers


def module_device(net: nn.Module) -> torch.device:
    tensor = next(net.parameters(), None)
    if tensor is None:
        tensor = next(net.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _capture(net: nn.Module, targets: list[tuple[str, nn.Module]], x: torch.Tensor,
             convert) -> dict[str, object]:
    """Run one forward pass in eval mode without gradients, recording each target's first output.

    Outputs are kept as tensors during the pass and converted after it. A tensor that a later
    in-place operation changed (``nn.ReLU(inplace=True)`` in a user's model, say) is detected by
    its version counter, and only then is the pass repeated with copies taken inside the hooks.
    """
    captured: dict[str, torch.Tensor] = {}
    versions: dict[str, int] = {}
    copy_in_hook: set[str] = set()

    def hook_for(name: str):
        def hook(module, inputs, output):
            if name not in captured:
                tensor = output[0] if isinstance(output, (tuple, list)) else output
                captured[name] = tensor.detach().clone() if name in copy_in_hook else tensor
                versions[name] = tensor._version
        return hook

    def run() -> None:
        captured.clear()
        handles = []
        try:
            for name, module in targets:
                handles.append(module.register_forward_hook(hook_for(name)))
            with torch.no_grad():
                net(x)
        finally:
            for handle in handles:
                handle.remove()

    was_training = net.training
    try:
        net.eval()
        run()
        changed = {n for n, t in captured.items() if n not in copy_in_hook and t._version != versions[n]}
        if changed:
            copy_in_hook |= changed
            run()
    finally:
        net.train(was_training)
    return {name: convert(tensor) for name, tensor in captured.items()}


def attached_hooks(net: nn.Module) -> list[str]:
    """Every forward (pre-)hook on ``net`` or its submodules, as ``module name: kind``."""
    found = []
    for name, module in net.named_modules():
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_forward_hooks_with_kwargs"):
            for _ in getattr(module, kind, {}) or {}:
                found.append(f"{name or '<model>'}: {kind.strip('_').replace('_', ' ')}")
    return found


def layers(net: nn.Module, input_shape: tuple[int, int, int]) -> list[LayerInfo]:
    h, w, c = input_shape
    targets = named_layers(net)
    x = torch.zeros(1, c, h, w, device=module_device(net))
    shapes = _capture(net, targets, x, lambda out: tuple(canonical_view(out).shape[1:]))
    order = {name: i for i, name in enumerate(shapes)}  # hooks fire in execution order
    infos = [LayerInfo(name, kind_of(m), shapes.get(name, ()), parameter_count(m)) for name, m in targets]
    return sorted(infos, key=lambda info: order.get(info.name, len(order)))


def filters(net: nn.Module, layer: str) -> np.ndarray:
    (name, module), = resolve(net, [layer])
    if not isinstance(module, nn.Conv2d):
        convs = [n for n, m in named_layers(net) if isinstance(m, nn.Conv2d)]
        raise InputError(f"{layer!r} is a {type(module).__name__}, not a convolution; the conv layers "
                         f"are: {', '.join(convs)}")
    weight = module.weight.detach().to("cpu", torch.float32)  # (C_out, C_in, kh, kw)
    return np.ascontiguousarray(weight.permute(0, 2, 3, 1).numpy())


def feature_maps(net: nn.Module, images: np.ndarray, names: list[str] | None,
                 batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    targets = resolve(net, names)
    device = module_device(net)
    for start in range(0, len(images), batch_size):
        x = to_tensor(images[start:start + batch_size], device)
        captured = _capture(net, targets, x, canonical_view)
        silent = [name for name, _ in targets if name not in captured]
        if silent:
            raise InputError(f"the layer(s) {', '.join(silent)} did not run in the forward pass, so they "
                             "have no feature maps; choose layers the model's forward() calls")
        yield {name: captured[name] for name, _ in targets}
