"""Turn a ModelSpec's layer list into a torch module whose child names are the layer names."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from featurelens.backends import LayerSpec, ModelSpec, SpecError


class ChannelsLastFlatten(nn.Module):
    """Flatten (N, C, H, W) in H, W, C order, as Keras does, so dense weights mean the same."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        return x.flatten(1)


class GlobalMaxPool(nn.Module):
    """(N, C, H, W) -> (N, C): each channel's largest value (a spec's ``pooling="global_max"``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3))


class GlobalAvgPool(nn.Module):
    """(N, C, H, W) -> (N, C): each channel's mean (a spec's ``pooling="global_avg"``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class Scale(nn.Module):
    """Multiplies by a constant (a spec's ``logit_scale``, layer ``head_scale``)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}"


class SpecNet(nn.Sequential):
    """The spec's layers in order. ``forward`` gives probabilities, ``logits`` skips the softmax.

    Takes channels-first (N, C, H, W) tensors, torch's native layout.
    """

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        modules = list(self._modules.values())
        for module in modules[:-1]:
            x = module(x)
        return x


def _layer(spec: LayerSpec) -> nn.Module:
    o = spec.options
    if spec.kind == "conv2d":
        return nn.Conv2d(o["in_channels"], o["filters"], o["kernel_size"], padding=o["kernel_size"] // 2)
    if spec.kind == "batch_norm":
        cls = nn.BatchNorm2d if len(spec.input_shape) == 3 else nn.BatchNorm1d
        return cls(o["features"], eps=o["epsilon"], momentum=1.0 - o["momentum"])
    if spec.kind == "relu":
        return nn.ReLU()
    if spec.kind == "gelu":
        return nn.GELU(approximate="none")  # exact erf GELU, as Keras builds it
    if spec.kind == "max_pool":
        return nn.MaxPool2d(o["pool_size"])
    if spec.kind == "dropout":
        return nn.Dropout(o["rate"])
    if spec.kind == "flatten":
        return ChannelsLastFlatten()
    if spec.kind == "global_max_pool":
        return GlobalMaxPool()
    if spec.kind == "global_avg_pool":
        return GlobalAvgPool()
    if spec.kind == "scale":
        return Scale(o["scale"])
    if spec.kind == "dense":
        return nn.Linear(o["in_features"], o["units"])
    if spec.kind == "softmax":
        return nn.Softmax(dim=1)
    raise SpecError(f"the torch backend cannot build layer kind {spec.kind!r} ({spec.name})")


def _init(module: nn.Module) -> None:
    """Glorot-uniform kernels and zero biases, Keras's defaults, so both backends start alike."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


def build_net(spec: ModelSpec, seed: int = 0) -> SpecNet:
    """A freshly initialised :class:`SpecNet` (seeded, so the same seed gives the same weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SpecNet(OrderedDict((layer.name, _layer(layer)) for layer in spec.layers()))
        net.apply(_init)
    return net
