"""Feature maps of one image: every channel of a layer, and the hierarchy through the blocks."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from featurelens.errors import InputError
from featurelens.visualize.mosaic import mosaic, scale_all, scale_each

SCALINGS = ("per_channel", "shared")


def _channels_first(maps: np.ndarray) -> np.ndarray:
    if maps.ndim != 3:
        raise InputError(f"expected one image's maps as (H, W, C), got shape {maps.shape}; "
                         "take one image with maps[i]")
    return np.moveaxis(np.asarray(maps, np.float32), 2, 0)


def strongest_channels(maps: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` channels with the highest mean activation, strongest first."""
    means = np.asarray(maps, np.float32).reshape(-1, maps.shape[-1]).mean(axis=0)
    return np.argsort(-means, kind="stable")[:count]


def feature_map_mosaic(maps: np.ndarray, scaling: str = "per_channel", cols: int | None = None,
                       channels: np.ndarray | None = None) -> np.ndarray:
    """The channels of (H, W, C) maps as one (H', W') mosaic in [0, 1] (NaN between tiles)."""
    if scaling not in SCALINGS:
        raise InputError(f"scaling {scaling!r} is not one of {', '.join(SCALINGS)}")
    tiles = _channels_first(maps)
    if channels is not None:
        tiles = tiles[np.asarray(channels)]
    tiles = scale_each(tiles) if scaling == "per_channel" else scale_all(tiles)
    return mosaic(tiles, cols=cols, pad=1)


def feature_maps_figure(maps: np.ndarray, layer: str = "", image: np.ndarray | None = None,
                        scaling: str = "per_channel") -> Figure:
    """Every channel of one layer for one image, beside the image itself (display-ready, [0, 1])."""
    picture = feature_map_mosaic(maps, scaling)
    h, w, c = maps.shape
    fig = Figure(figsize=(11, 8) if c > 16 else (9, 5), layout="constrained")
    grid = fig.add_gridspec(1, 2, width_ratios=[1, 4])
    if image is not None:
        ax_img = fig.add_subplot(grid[0])
        ax_img.imshow(image, interpolation="nearest")
        ax_img.set_title("input image")
        ax_img.axis("off")
    ax = fig.add_subplot(grid[1] if image is not None else grid[:])
    ax.set_facecolor("white")
    shown = ax.imshow(np.ma.masked_invalid(picture), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    scale_text = "each channel scaled to 0-1 on its own" if scaling == "per_channel" else \
        f"one scale for all channels: 0 = {float(maps.min()):.3g}, 1 = {float(maps.max()):.3g}"
    ax.set_title(f"{layer}: {c} channels of {h}x{w}\n{scale_text}", fontsize=10)
    fig.colorbar(shown, ax=ax, shrink=0.7, label="activation (scaled)")
    return fig


def hierarchy_figure(image: np.ndarray, maps_by_layer: Mapping[str, np.ndarray], channels: int = 8,
                     title: str | None = None) -> Figure:
    """The input beside a strip of the strongest channels of each layer, from shallow to deep.

    ``image`` is display-ready (H, W, 3) in [0, 1]; each map is one image's (H, W, C). Each
    strip shows the ``channels`` channels with the highest mean activation, each scaled to 0-1.
    """
    layers = list(maps_by_layer)
    if not layers:
        raise InputError("no layers given; pass {layer name: (H, W, C) maps}")
    fig = Figure(figsize=(2.2 + 1.3 * channels, 0.4 + 1.5 * len(layers)), layout="constrained")
    grid = fig.add_gridspec(len(layers), 2, width_ratios=[1.6, channels])
    ax_img = fig.add_subplot(grid[:, 0])
    ax_img.imshow(image, interpolation="nearest")
    ax_img.set_title("input")
    ax_img.axis("off")
    shown = None
    for row, name in enumerate(layers):
        maps = maps_by_layer[name]
        picked = strongest_channels(maps, min(channels, maps.shape[-1]))
        strip = feature_map_mosaic(maps, "per_channel", cols=len(picked), channels=picked)
        ax = fig.add_subplot(grid[row, 1])
        ax.set_facecolor("white")
        shown = ax.imshow(np.ma.masked_invalid(strip), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        h, w, c = maps.shape
        ax.set_ylabel(f"{name}\n{h}x{w}, {c} ch", rotation=0, ha="right", va="center", fontsize=9)
    assert shown is not None  # layers is not empty, so the loop ran
    fig.colorbar(shown, ax=fig.axes[1:], shrink=0.6, label="activation (each channel scaled to 0-1)")
    fig.suptitle(title or f"From edges to parts: the {channels} most active channels per layer", fontsize=11)
    return fig
