"""Two models side by side, from arrays: histories, filters, feature maps, per-layer differences and CKA.

Names start with ``comparison_`` so they never collide with the single-model figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from featurelens.compare import LayerDifference, relative_difference
from featurelens.history import History
from featurelens.visualize.feature_maps import feature_map_mosaic
from featurelens.visualize.filters import filter_mosaic
from featurelens.visualize.images import to_display

COLOURS = ("#0969da", "#bc4c00")


def comparison_histories_figure(histories: Sequence[History | None], labels: Sequence[str]) -> Figure:
    """Loss and accuracy of two trainings on shared axes (dashed: training, solid: validation)."""
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    for history, label, colour in zip(histories, labels, COLOURS):
        if history is None or not history.epochs:
            continue
        epochs = [r.epoch for r in history.epochs]
        for ax, metric in zip(axes, ("loss", "accuracy")):
            ax.plot(epochs, history.metric(metric), "--", color=colour, alpha=0.7, label=f"{label} train")
            val = [np.nan if v is None else v for v in history.metric(f"val_{metric}")]
            ax.plot(epochs, val, "-", color=colour, label=f"{label} validation")
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Training histories on shared axes (dashed: training, solid: validation)")
    return fig


def comparison_filters_figure(filters: Sequence[np.ndarray], labels: Sequence[str], layer: str = "") -> Figure:
    """One conv layer's kernels (C_out, kh, kw, C_in) of two models side by side, each filter scaled on its own."""
    fig = Figure(figsize=(11, 5.5), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, kernels, label in zip(axes, filters, labels):
        picture, mode = filter_mosaic(kernels, "auto", "per_filter")
        if mode == "rgb":
            ax.imshow(np.nan_to_num(picture, nan=1.0), interpolation="nearest")
        else:
            ax.imshow(np.ma.masked_invalid(picture), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(label)
        ax.axis("off")
    fig.suptitle(f"Filters of {layer} (each filter scaled on its own)" if layer else "Filters (each scaled on its own)")
    return fig


def comparison_feature_maps_figure(image: np.ndarray, maps: Sequence[Mapping[str, np.ndarray]],
                                   labels: Sequence[str], channels: int = 8) -> Figure:
    """For one image (H, W, C as loaded) and two models' ``{layer: (H, W, C)}`` maps: each
    layer's first channels in both, with the layer's relative difference."""
    maps_a, maps_b = maps
    layers = [name for name in maps_a if name in maps_b]
    fig = Figure(figsize=(2.2 + 1.2 * channels, 0.6 + 2.2 * len(layers)), layout="constrained")
    grid = fig.add_gridspec(2 * len(layers), 2, width_ratios=[1.4, channels])
    ax_img = fig.add_subplot(grid[:, 0])
    ax_img.imshow(to_display(image), interpolation="nearest")
    ax_img.set_title("input")
    ax_img.axis("off")
    for i, name in enumerate(layers):
        ma, mb = maps_a[name], maps_b[name]
        picked = np.arange(min(channels, ma.shape[-1]))
        diff = relative_difference(ma, mb)
        for j, (layer_maps, label) in enumerate(((ma, labels[0]), (mb, labels[1]))):
            ax = fig.add_subplot(grid[2 * i + j, 1])
            strip = feature_map_mosaic(layer_maps, "per_channel", cols=len(picked), channels=picked)
            ax.imshow(np.ma.masked_invalid(strip), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
            if j == 0:
                ax.set_title(f"{name}: relative difference {diff:.2g}", fontsize=9, loc="left")
    fig.suptitle(f"The same image through both models: the first {channels} channels per layer "
                 "(each channel scaled to 0-1)", fontsize=10)
    return fig


def comparison_differences_figure(differences: Sequence[LayerDifference]) -> Figure:
    """Per layer, the relative difference of two models' feature maps as bars (log scale) and,
    beside it where computed, their linear CKA (0 to 1, 1: the same representation)."""
    with_cka = any(d.cka is not None for d in differences)
    fig = Figure(figsize=(12 if with_cka else 9, 0.9 + 0.28 * len(differences)), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True, width_ratios=[3, 2]) if with_cka else [fig.add_subplot()]
    ax = axes[0]
    values = [max(d.relative_difference, 1e-12) for d in differences]
    ax.barh(range(len(values)), values, color="#6e7781")
    ax.set_yticks(range(len(values)), [d.layer for d in differences], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("relative difference of the feature maps, ||a - b|| / max(||a||, ||b||)")
    if not with_cka:
        ax.set_title("How differently the two models see the same images, layer by layer")
        return fig
    ax.set_title("Relative difference (0: identical)", fontsize=10)
    ax_cka = axes[1]
    cka = [np.nan if d.cka is None else d.cka for d in differences]
    ax_cka.barh(range(len(cka)), np.nan_to_num(cka), color=COLOURS[0])
    for i, v in enumerate(cka):
        ax_cka.text(0.02 if np.isnan(v) or v < 0.25 else v - 0.02, i, "n/a" if np.isnan(v) else f"{v:.3f}",
                    va="center", ha="left" if np.isnan(v) or v < 0.25 else "right", fontsize=7,
                    color="black" if np.isnan(v) or v < 0.25 else "white")
    ax_cka.set_xlim(0, 1)
    ax_cka.set_xlabel("linear CKA of the feature maps (1: the same representation)")
    ax_cka.set_title("Linear CKA (1: alike up to rotation and scale)", fontsize=10)
    ax_cka.grid(axis="x", alpha=0.3)
    fig.suptitle("How differently the two models see the same images, layer by layer")
    return fig
