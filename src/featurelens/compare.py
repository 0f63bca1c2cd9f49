"""Two models of the same spec side by side: histories, first-layer filters, feature maps.

For each layer the feature maps of the same images are compared with a *relative difference*,
``||a - b|| / max(||a||, ||b||)`` over all values: 0 for identical maps, about 1.4 for unrelated
maps of the same scale. Two backends holding the same weights give about 1e-7; two trainings of
the same spec give large values, as their channels are learned in different orders.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from matplotlib.figure import Figure

from featurelens.model import Model


@dataclass(frozen=True)
class LayerDifference:
    layer: str
    relative_difference: float
    max_abs_difference: float

    def to_dict(self) -> dict:
        return asdict(self)


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.linalg.norm(a)), float(np.linalg.norm(b)))
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


def common_layers(a: Model, b: Model) -> list[str]:
    """Layer names both models have, in the first model's order."""
    other = {info.name for info in b.layers()}
    return [info.name for info in a.layers() if info.name in other]


def feature_map_differences(a: Model, b: Model, images: np.ndarray,
                            layers: list[str] | None = None) -> list[LayerDifference]:
    """Per-layer differences of the two models' feature maps on the same images."""
    layers = layers or common_layers(a, b)
    if not layers:
        raise ValueError("the two models share no layer name; compare models of the same spec")
    maps_a, maps_b = a.feature_maps(images, layers), b.feature_maps(images, layers)
    out = []
    for name in layers:
        if maps_a[name].shape != maps_b[name].shape:
            raise ValueError(f"{name}: shapes differ ({maps_a[name].shape} vs {maps_b[name].shape}); "
                             "compare models of the same spec")
        diff = np.abs(maps_a[name] - maps_b[name])
        out.append(LayerDifference(name, relative_difference(maps_a[name], maps_b[name]), float(diff.max())))
    return out


def histories_figure(a: Model, b: Model, labels: tuple[str, str]) -> Figure:
    """Loss and accuracy of both trainings on shared axes."""
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    for model, label, colour in ((a, labels[0], "#0969da"), (b, labels[1], "#bc4c00")):
        if model.history is None or not model.history.epochs:
            continue
        epochs = [r.epoch for r in model.history.epochs]
        for ax, metric in zip(axes, ("loss", "accuracy")):
            ax.plot(epochs, model.history.metric(metric), "--", color=colour, alpha=0.7, label=f"{label} train")
            val = [np.nan if v is None else v for v in model.history.metric(f"val_{metric}")]
            ax.plot(epochs, val, "-", color=colour, label=f"{label} validation")
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Training histories on shared axes (dashed: training, solid: validation)")
    return fig


def filters_figure(a: Model, b: Model, labels: tuple[str, str], layer: str | None = None) -> Figure:
    """The first conv layer's filters of both models, side by side, each filter scaled on its own."""
    from featurelens.visualize.filters import filter_mosaic

    layer = layer or a.conv_layers()[0]
    fig = Figure(figsize=(11, 5.5), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, model, label in zip(axes, (a, b), labels):
        picture, mode = filter_mosaic(model.filters(layer), "auto", "per_filter")
        if mode == "rgb":
            ax.imshow(np.nan_to_num(picture, nan=1.0), interpolation="nearest")
        else:
            ax.imshow(np.ma.masked_invalid(picture), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(label)
        ax.axis("off")
    fig.suptitle(f"Filters of {layer} (each filter scaled on its own)")
    return fig


def feature_maps_figure(a: Model, b: Model, image: np.ndarray, labels: tuple[str, str],
                        layers: list[str], channels: int = 8) -> Figure:
    """For one image: each layer's first channels in both models, with the layer's difference."""
    from featurelens.visualize.feature_maps import feature_map_mosaic
    from featurelens.visualize.images import to_display

    maps_a, maps_b = a.feature_maps(image[None], layers), b.feature_maps(image[None], layers)
    fig = Figure(figsize=(2.2 + 1.2 * channels, 0.6 + 2.2 * len(layers)), layout="constrained")
    grid = fig.add_gridspec(2 * len(layers), 2, width_ratios=[1.4, channels])
    ax_img = fig.add_subplot(grid[:, 0])
    ax_img.imshow(to_display(image), interpolation="nearest")
    ax_img.set_title("input")
    ax_img.axis("off")
    for i, name in enumerate(layers):
        ma, mb = maps_a[name][0], maps_b[name][0]
        picked = np.arange(min(channels, ma.shape[-1]))
        diff = relative_difference(ma, mb)
        for j, (maps, label) in enumerate(((ma, labels[0]), (mb, labels[1]))):
            ax = fig.add_subplot(grid[2 * i + j, 1])
            strip = feature_map_mosaic(maps, "per_channel", cols=len(picked), channels=picked)
            ax.imshow(np.ma.masked_invalid(strip), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
            if j == 0:
                ax.set_title(f"{name}: relative difference {diff:.2g}", fontsize=9, loc="left")
    fig.suptitle(f"The same image through both models: the first {channels} channels per layer "
                 "(each channel scaled to 0-1)", fontsize=10)
    return fig


def differences_figure(differences: list[LayerDifference]) -> Figure:
    """The per-layer relative difference as bars (log scale)."""
    fig = Figure(figsize=(9, 0.5 + 0.28 * len(differences)), layout="constrained")
    ax = fig.add_subplot()
    values = [max(d.relative_difference, 1e-12) for d in differences]
    ax.barh(range(len(values)), values, color="#6e7781")
    ax.set_yticks(range(len(values)), [d.layer for d in differences], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("relative difference of the feature maps, ||a - b|| / max(||a||, ||b||)")
    ax.set_title("How differently the two models see the same images, layer by layer")
    return fig
