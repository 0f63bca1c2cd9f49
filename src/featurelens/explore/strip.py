"""Which layers the explorer shows, from input to head, and which conv layer explains each channel.

The strip holds what each stage passes on: every activation (ReLU, GELU) and pooling output, then
the head (the model's last layer). A channel of an activation or pooling output is the channel of
the conv layer before it (through batch norm, activation, pooling and dropout, which keep channels
apart), so its atlas entry is that conv layer's. A model whose layers have none of these kinds
(a backend that reports its own kinds) shows its conv and dense layers instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from featurelens.backends.layers import LayerInfo
from featurelens.errors import InputError
from featurelens.spec import ACTIVATIONS

POOLS = ("max_pool", "avg_pool")
SHOWN_KINDS = (*ACTIVATIONS, *POOLS, "softmax")
CHANNEL_PRESERVING = (*ACTIVATIONS, *POOLS, "batch_norm", "dropout")


@dataclass(frozen=True)
class StripLayer:
    """One layer of the strip: its output per image (``(h, w, c)`` or ``(features,)``) and the conv
    layer whose atlas describes its channels (None for dense layers and the head)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    atlas: str | None = None

    @property
    def spatial(self) -> bool:
        return len(self.shape) == 3

    @property
    def channels(self) -> int:
        return int(self.shape[-1])


def source_conv(infos: list[LayerInfo], index: int) -> str | None:
    """The conv layer whose channels layer ``index`` carries, walking back through layers that keep
    channels apart (batch norm, activation, pooling, dropout); None if another kind comes first."""
    channels = infos[index].output_shape[-1]
    for info in reversed(infos[:index + 1]):
        if len(info.output_shape) != 3 or info.output_shape[-1] != channels:
            return None
        if info.kind == "conv2d":
            return info.name
        if info.kind not in CHANNEL_PRESERVING:
            return None
    return None


def strip_layers(infos: list[LayerInfo]) -> list[StripLayer]:
    """The layers the explorer shows for a model whose layers are ``infos`` (in execution order)."""
    if not infos:
        raise InputError("the model reports no layers; the explorer needs a backend that introspects layers")
    chosen = [i for i, info in enumerate(infos) if info.kind in SHOWN_KINDS and len(info.output_shape) in (1, 3)]
    if not any(len(infos[i].output_shape) == 3 for i in chosen):
        chosen = [i for i, info in enumerate(infos) if info.kind in ("conv2d", "dense")
                  and len(info.output_shape) in (1, 3)]
    last = len(infos) - 1
    if last not in chosen and len(infos[last].output_shape) == 1:
        chosen.append(last)
    if not chosen:
        raise InputError("the model has no spatial or dense layer to show (kinds: "
                         f"{', '.join(sorted({info.kind for info in infos}))})")
    return [StripLayer(infos[i].name, infos[i].kind, tuple(int(s) for s in infos[i].output_shape),
                       source_conv(infos, i)) for i in chosen]


def atlas_layers(strip: list[StripLayer]) -> list[str]:
    """The conv layers an atlas is computed for: those the strip's channels come from, in order."""
    return list(dict.fromkeys(layer.atlas for layer in strip if layer.atlas is not None))
