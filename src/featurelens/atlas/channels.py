"""The channel atlas: for every channel of a conv layer, what it detects, in one object.

It ties together the channel's kernel, its dataset examples (top patches, positions, receptive
field), its statistics (mean activation, how often it is never active, its mean per class) and its
feature-visualization image. Channels are read where they are passed on: a conv layer followed by
batch norm and a ReLU is read at the ReLU (statistics and examples) and optimized at the batch
norm's output (feature visualization, see :func:`~featurelens.atlas.featurevis.feature_visualization`),
the channel's pre-activation, whose mean has a gradient even where the ReLU is off and whose sign is
that of the ReLU's input (a conv output would not do: batch norm may flip its sign).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from featurelens.atlas.examples import LayerExamples, dataset_examples, measured_layer
from featurelens.backends.contract import Capability
from featurelens.backends.layers import unknown_layer
from featurelens.errors import InputError
from featurelens.model import Model


def default_atlas_layers(model: Model) -> list[str]:
    """Each conv block's last conv layer for a spec-built model; every conv layer otherwise."""
    from featurelens.model import SpecModel

    if isinstance(model, SpecModel):
        last: dict[str, str] = {}
        for layer in model.spec.layers():
            if layer.kind == "conv2d":
                last[layer.name.split("_")[0]] = layer.name
        return list(last.values())
    convs = model.conv_layers()
    if not convs:
        raise InputError("the model has no conv layer (kind conv2d) for an atlas; name a spatial layer")
    return convs


@dataclass
class ChannelAtlas:
    """Everything known about the channels of one conv layer (arrays indexed by channel)."""

    layer: str
    examples: LayerExamples
    kernels: np.ndarray | None
    patches: np.ndarray | None
    feature_vis: np.ndarray | None = None
    feature_vis_layer: str | None = None
    feature_vis_activation: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None

    @property
    def channels(self) -> int:
        return self.examples.channels

    def figure(self, channels: Sequence[int] | None = None, title: str | None = None) -> Any:
        """The atlas figure of ``channels`` (default: all; pages of 16-32 read well)."""
        from featurelens.visualize.atlas import channel_atlas_figure

        stats = self.examples.stats
        return channel_atlas_figure(self.layer, channels, kernels=self.kernels, feature_vis=self.feature_vis,
                                    patches=self.patches, mean=stats.mean, never_active=stats.never_active,
                                    class_mean=stats.class_mean, class_names=self.class_names,
                                    measured_at=self.examples.measured_at, title=title)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every array, named, for ``np.savez`` (no pickle needed to read them back)."""
        arrays = self.examples.to_arrays()
        for name, value in (("kernels", self.kernels), ("patches", self.patches), ("feature_vis", self.feature_vis),
                            ("feature_vis_activation", self.feature_vis_activation)):
            if value is not None:
                arrays[name] = np.asarray(value)
        arrays["field_size"] = np.asarray(self.examples.field.size if self.examples.field else (0, 0))
        arrays["field_jump"] = np.asarray(self.examples.field.jump if self.examples.field else (0, 0))
        arrays["field_offset"] = np.asarray(self.examples.field.offset if self.examples.field else (0, 0))
        return arrays

    def summary(self) -> dict[str, Any]:
        """A JSON-able account: where it was read, its field, dead channels, most selective ones."""
        stats = self.examples.stats
        field = self.examples.field
        selectivity = stats.selectivity
        info: dict[str, Any] = {
            "layer": self.layer, "channels": self.channels, "measured_at": self.examples.measured_at,
            "images": self.examples.images_seen, "top": int(self.examples.indices.shape[1]),
            "dead_channels": np.flatnonzero(stats.dead).tolist(),
            "receptive_field": None if field is None else {"size": list(field.size), "jump": list(field.jump),
                                                           "offset": list(field.offset), "exact": field.exact},
            "feature_visualization_layer": self.feature_vis_layer, "notes": list(self.examples.notes)}
        if selectivity is not None and stats.class_mean is not None:
            order = np.argsort(-selectivity)[:5]
            names = self.class_names
            info["most_selective"] = [
                {"channel": int(c), "selectivity": round(float(selectivity[c]), 4),
                 "class": names[int(np.nanargmax(stats.class_mean[:, c]))] if names and
                 np.isfinite(stats.class_mean[:, c]).any() else None} for c in order]
        return info


def channel_atlas(model: Model, images: np.ndarray, layers: str | Sequence[str] | None = None, *,
                  labels: np.ndarray | None = None, top: int = 9, steps: int = 256,
                  colour_images: np.ndarray | None = None, batch_size: int = 64, seed: int = 0,
                  progress: bool = False) -> dict[str, ChannelAtlas]:
    """The atlas of every layer of ``layers`` (default :func:`default_atlas_layers`).

    ``images`` (as loaded) are streamed once for all layers together (dataset examples and
    statistics; ``labels`` add the per-class means); ``steps`` of feature visualization per layer
    (0 leaves it out; needs a backend with gradients), with the colour correlation estimated from
    ``colour_images`` (default: ``images``).
    """
    wanted = default_atlas_layers(model) if layers is None else ([layers] if isinstance(layers, str) else list(layers))
    infos = model.layers()
    kinds = {info.name: info.kind for info in infos}
    for name in wanted:
        if name not in kinds:
            raise unknown_layer(name, list(kinds))
        if kinds[name] != "conv2d":
            raise InputError(f"the channel atlas is drawn for conv layers; {name!r} is a {kinds[name]} layer. Conv "
                             f"layers: {', '.join(n for n, k in kinds.items() if k == 'conv2d')}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise InputError(f"steps must be a non-negative int (0: no feature visualization), got {steps!r}")
    if steps and not model.backend.supports(Capability.GRADIENTS):
        raise InputError(f"feature visualization needs gradients, which the {model.backend.name!r} backend does not "
                         "compute; pass steps=0 for the rest of the atlas")
    found = dataset_examples(model, images, wanted, top=top, labels=labels, batch_size=batch_size, progress=progress)
    names = model.class_names
    result: dict[str, ChannelAtlas] = {}
    for name in wanted:
        examples = found[name]
        patches = examples.patches(images) if examples.field is not None else None
        atlas = ChannelAtlas(name, examples, model.filters(name), patches, class_names=names)
        if steps:
            from featurelens.atlas.featurevis import feature_visualization

            colour = colour_images if colour_images is not None else images
            vis = feature_visualization(model, name, steps=steps, seed=seed, colour=colour, progress=progress)
            atlas.feature_vis, atlas.feature_vis_layer = vis.images, vis.objective_layer
            atlas.feature_vis_activation = vis.activations
        result[name] = atlas
    return result


__all__ = ["ChannelAtlas", "channel_atlas", "default_atlas_layers", "measured_layer"]
