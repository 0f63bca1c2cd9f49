"""Gradients of objectives (:class:`featurelens.backends.ClassScore`, ``ChannelMean``, ``Unit``) with torch.autograd.

Layers are found as introspection finds them (:func:`featurelens_torch.introspect.find`: qualified
module names, ``name#2`` for a module's second call). For each batch, one forward pass in eval
mode with forward hooks on the modules involved: the hook of the gradient layer returns its output
plus a zero tensor ``delta`` that requires grad (so the gradient with respect to ``delta`` is the
gradient with respect to the activations, even when a later in-place operation changes the
output), and the hook of the objective's layer computes the objective from the output right away.
The layout of each layer's output (channels first or last) is the one introspection reports: a
first pass of :func:`featurelens_torch.introspect._capture` on one image tells it. Hooks are
removed, parameters' ``requires_grad`` and the training mode restored in ``finally`` blocks, and
``torch.autograd.grad`` is asked only for the input and ``delta``: nothing accumulates in ``.grad``.
For a ``ChannelMean`` or ``Unit``, the forward pass stops (a private exception raised by the hook)
once the objective and the gradient layer's activations are known: the layers after them cannot
change either, so feature visualization of an early layer does not pay for the whole network.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from featurelens.backends import ChannelMean, ClassScore, Gradients, InputError, Unit, checked_request
from featurelens_torch import introspect
from featurelens_torch.build import SpecNet
from featurelens_torch.modes import evaluating
from featurelens_torch.scores import are_probabilities, class_scores
from featurelens_torch.train import to_tensor


def _layouts(net: nn.Module, targets: dict[str, tuple[str, nn.Module, int]], x: torch.Tensor) -> dict[str, bool]:
    """Per layer name: whether introspection sees its output as channels last (also: that it runs)."""
    result = introspect._capture(net, [(name, module, call) for name, (_, module, call) in targets.items()], x,
                                 lambda out, last: (last, out.dim()))
    introspect.require_outputs(net, list(targets), result, "activations")
    return {name: bool(last) for name, (last, _) in result.outputs.items()}


def _canonical(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A tensor in the canonical layout (channels last for 4-D), as a view."""
    return t.permute(0, 2, 3, 1) if t.dim() == 4 and not channels_last else t


def _unit_value(objective: ChannelMean | Unit, out: torch.Tensor, start: int) -> torch.Tensor:
    out = out.float()
    objective.check_output(tuple(out.shape[1:]))
    if isinstance(objective, ChannelMean):
        if objective.per_image:  # image i of the batch: its own channel, gathered
            rows = torch.arange(len(out), device=out.device)
            channels = torch.as_tensor(objective.channels_for(start, len(out)), device=out.device)
            picked = out[rows, channels] if out.dim() == 2 else out[rows, :, :, channels]
        else:
            picked = out[..., objective.channel]
        return picked if out.dim() == 2 else picked.mean(dim=(1, 2))
    if out.dim() == 2:
        return out[:, objective.channel]
    return out[:, objective.y, objective.x, objective.channel]


def _class_value(objective: ClassScore, net: nn.Module, output: Any, start: int) -> torch.Tensor:
    scores = (output if isinstance(net, SpecNet) else class_scores(output)).float()
    batch = ClassScore(objective.target_array[start:start + len(scores)], objective.kind)
    targets = torch.as_tensor(batch.checked_targets(len(scores), scores.shape[1]), device=scores.device)
    if not isinstance(net, SpecNet) and are_probabilities(scores):
        logits = torch.log(scores.clamp_min(torch.finfo(torch.float32).tiny))
    else:
        logits = scores
    if objective.kind == "log_probability":
        logits = F.log_softmax(logits, dim=1)
    return logits.gather(1, targets[:, None])[:, 0]


def _forward(net: nn.Module, x: torch.Tensor) -> Any:
    """The model's class scores: a SpecNet's pre-softmax head (its softmax still runs), else its output."""
    if not isinstance(net, SpecNet):
        return net(x)
    modules = list(net._modules.values())
    for module in modules[:-1]:
        x = module(x)
    modules[-1](x)  # the softmax layer runs too, so it can be asked for
    return x


class _Done(Exception):
    """Raised by the hook of a ChannelMean's or Unit's layer once the objective (and the gradient
    layer's activations, if asked for) are known, to stop the forward pass there."""


def _batch(net: nn.Module, x: torch.Tensor, objective: Any, targets: dict[str, tuple[str, nn.Module, int]],
           layouts: dict[str, bool], layer: str | None, wrt_input: bool,
           start: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    by_module: dict[int, list[str]] = {}
    for name, (_, module, _call) in targets.items():
        by_module.setdefault(id(module), []).append(name)
    calls: dict[int, int] = {}
    found: dict[str, Any] = {}

    def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
        count = calls[id(module)] = calls.get(id(module), 0) + 1
        for name in by_module.get(id(module), ()):
            if targets[name][2] != count:
                continue
            tensor = introspect.first_tensor(output)
            if tensor is None:
                continue
            if name == layer:
                delta = torch.zeros_like(tensor, requires_grad=True)
                found["activations"] = _canonical(tensor, layouts[name]).detach().float().cpu().numpy().copy()
                found["delta"] = delta
                replaced = tensor + delta
                if isinstance(output, torch.Tensor):
                    output = replaced
                elif isinstance(output, tuple) and output and output[0] is tensor:
                    output = (replaced, *output[1:])
                elif isinstance(output, list) and output and output[0] is tensor:
                    output = [replaced, *output[1:]]
                else:
                    raise InputError(f"the layer {name!r} returns a {type(output).__name__}; gradients with "
                                     "respect to a layer need one that returns a tensor (or a tuple starting "
                                     "with one)")
                tensor = replaced
            if not isinstance(objective, ClassScore) and name == objective.layer:
                found["value"] = _unit_value(objective, _canonical(tensor, layouts[name]), start)
        if "value" in found and (layer is None or "delta" in found):
            raise _Done  # nothing later in the network is needed: skip the rest of the forward pass
        return output

    handles = []
    try:
        for module in {id(m): m for _, m, _ in targets.values()}.values():
            handles.append(module.register_forward_hook(hook))
        x = x.detach().requires_grad_(wrt_input)
        with torch.enable_grad():
            output = None
            try:
                output = _forward(net, x)
            except _Done:
                pass
            except RuntimeError as exc:
                raise InputError(f"the model could not run images of shape {(x.shape[2], x.shape[3], x.shape[1])} "
                                 f"(H, W, C): {exc}") from exc
            if isinstance(objective, ClassScore):
                values = _class_value(objective, net, output, start)
            else:
                values = found["value"]
            wrt = ([x] if wrt_input else []) + ([found["delta"]] if layer is not None else [])
            grads = list(torch.autograd.grad(values.sum(), wrt, allow_unused=True)) if wrt else []
    finally:
        for handle in handles:
            handle.remove()
    input_grad = layer_grad = None
    if wrt_input:
        g = grads.pop(0)
        g = torch.zeros_like(x) if g is None else g
        input_grad = g.detach().permute(0, 2, 3, 1).float().cpu().numpy().copy()
    if layer is not None:
        g = grads.pop(0)
        g = torch.zeros_like(found["delta"]) if g is None else g
        layer_grad = _canonical(g.detach(), layouts[layer]).float().cpu().numpy().copy()
    return values.detach().float().cpu().numpy().copy(), input_grad, found.get("activations"), layer_grad


def value_and_grad(net: nn.Module, images: np.ndarray, objective: Any, layer: str | None = None,
                   wrt_input: bool = True, batch_size: int = 64) -> Gradients:
    """See :meth:`featurelens.backends.Backend.value_and_grad`."""
    images = checked_request(images, objective, batch_size)
    if isinstance(objective, ClassScore):
        objective.checked_targets(len(images), np.iinfo(np.int64).max)  # the length; each batch checks the range
    elif isinstance(objective, ChannelMean):
        objective.channels_for(0, 0, total=len(images))  # one channel per image, when given per image
    targets: dict[str, tuple[str, nn.Module, int]] = {}
    for name in ([objective.layer] if not isinstance(objective, ClassScore) else []) + ([layer] if layer else []):
        targets[name] = introspect.find(net, name)
    device = introspect.module_device(net)
    params = list(net.parameters())
    flags = [p.requires_grad for p in params]
    parts: list[tuple[Any, ...]] = []
    with evaluating(net):
        try:
            for p in params:
                p.requires_grad_(False)
            layouts: dict[str, bool] = {}
            for start in range(0, len(images), batch_size):
                x = to_tensor(images[start:start + batch_size], device)
                if start == 0 and targets:
                    try:
                        layouts = _layouts(net, targets, x[:1])
                    except RuntimeError as exc:
                        raise InputError(f"the model could not run images of shape {images.shape[1:]} (H, W, C): "
                                         f"{exc}") from exc
                parts.append(_batch(net, x, objective, targets, layouts, layer, wrt_input, start))
        finally:
            for p, flag in zip(params, flags):
                p.requires_grad_(flag)
    if not parts:
        return Gradients(np.zeros(0, np.float32), np.zeros_like(images) if wrt_input else None, layer)
    values = np.concatenate([p[0] for p in parts]).astype(np.float32)
    input_grad = np.concatenate([p[1] for p in parts]).astype(np.float32) if wrt_input else None
    activations = np.concatenate([p[2] for p in parts]).astype(np.float32) if layer else None
    layer_grad = np.concatenate([p[3] for p in parts]).astype(np.float32) if layer else None
    return Gradients(values, input_grad, layer, activations, layer_grad)
