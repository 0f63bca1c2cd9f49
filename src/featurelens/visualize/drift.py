"""How a model formed in training, from snapshot arrays: filters across epochs and CKA heatmaps.

- :func:`filters_over_epochs_figure`: one conv layer's kernels (the first layer's as colour
  images) with one row per recorded epoch, so a filter's column shows it forming;
- :func:`write_filters_gif`: the same as an animated GIF, one frame per epoch;
- :func:`cka_heatmap_figure`: linear CKA of every layer at every epoch against the final model
  (:func:`featurelens.atlas.cka.cka_over_training`), an epochs x layers heatmap.

The arrays come from :class:`featurelens.atlas.snapshots.Snapshots` (``layer_filters``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from featurelens._atomic import atomic_path
from featurelens.errors import InputError
from featurelens.visualize.mosaic import grid_shape, mosaic, scale_all, scale_each

SCALINGS = ("per_filter", "shared")
MAX_FILTERS = 64
ANNOTATE_CELLS = 400


def _stack(filters: Sequence[np.ndarray], labels: Sequence[str]) -> np.ndarray:
    """(epochs, C_out, kh, kw, C_in) float32, checked."""
    if len(filters) == 0:
        raise InputError("no filters to show: give at least one epoch's (C_out, kh, kw, C_in) kernels")
    if len(labels) != len(filters):
        raise InputError(f"{len(labels)} labels for {len(filters)} epochs of filters; give one label per epoch")
    shapes = {np.shape(f) for f in filters}
    if len(shapes) != 1 or len(next(iter(shapes))) != 4:
        raise InputError(f"expected one (C_out, kh, kw, C_in) shape for every epoch, got {sorted(shapes)}")
    return np.stack([np.asarray(f, np.float32) for f in filters])


def _tiles(stacked: np.ndarray, scaling: str) -> tuple[np.ndarray, bool]:
    """Display tiles (epochs, C_out, kh, kw[, 3]) in [0, 1] and whether they are colour images.

    Three input channels are drawn as RGB; otherwise each filter is averaged over its inputs and
    mapped to [0, 1] around 0.5 (= a zero weight) for a diverging colour map.
    """
    if scaling not in SCALINGS:
        raise InputError(f"scaling {scaling!r} is not one of {', '.join(SCALINGS)}")
    epochs, c_out = stacked.shape[:2]
    if stacked.shape[-1] == 3:
        flat = stacked.reshape(epochs * c_out, *stacked.shape[2:])
        tiles = scale_each(flat) if scaling == "per_filter" else scale_all(flat)
        return tiles.reshape(stacked.shape), True
    mean = stacked.mean(axis=-1)
    if scaling == "shared":
        top = np.full((epochs, c_out, 1, 1), float(np.abs(mean).max()) or 1.0)
    else:
        top = np.abs(mean).max(axis=(2, 3), keepdims=True)
        top = np.where(top > 0, top, 1.0)
    return (0.5 + 0.5 * mean / top).astype(np.float32), False


def _rows(count: int, max_rows: int) -> list[int]:
    """Up to ``max_rows`` evenly spread indices, always the first and the last."""
    if count <= max_rows:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, max_rows)})


def filters_over_epochs_figure(filters: Sequence[np.ndarray], labels: Sequence[str], layer: str = "",
                               scaling: str = "per_filter", max_rows: int = 16) -> Figure:
    """A conv layer's kernels across training: one row per epoch (``labels``), one column per filter.

    ``filters`` holds one (C_out, kh, kw, C_in) array per epoch. First-layer (RGB) kernels are
    colour images; others are averaged over their input channels (blue negative, red positive).
    ``per_filter`` scales each filter at each epoch on its own (shapes show, strengths do not);
    ``shared`` uses one scale for all, so growing weights show too. At most ``max_rows`` epochs
    (evenly spread, first and last kept) and the first 64 filters are drawn.
    """
    stacked = _stack(filters, labels)
    rows = _rows(len(stacked), max(2, max_rows))
    shown = min(stacked.shape[1], MAX_FILTERS)
    tiles, rgb = _tiles(stacked[rows][:, :shown], scaling)
    kh, kw = tiles.shape[2:4]
    picture = mosaic(tiles.reshape(len(rows) * shown, *tiles.shape[2:]), cols=shown, pad=1)
    width = min(14.0, max(6.0, 0.3 * shown + 2.0))
    image_width = width - 1.4 - (0 if rgb else 1.1)  # less the epoch labels and the colour bar
    height = max(1.0 if rgb else 1.3, image_width * picture.shape[0] / picture.shape[1]) + 1.0  # fills its axes
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    if rgb:
        ax.imshow(np.nan_to_num(picture, nan=1.0), interpolation="nearest")
    else:
        ax.set_facecolor("white")
        image = ax.imshow(np.ma.masked_invalid(2 * picture - 1), cmap="RdBu_r", vmin=-1, vmax=1,
                          interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.04, pad=0.01, label="scaled mean weight")
    ax.set_yticks([1 + r * (kh + 1) + (kh - 1) / 2 for r in range(len(rows))], [labels[i] for i in rows],
                  fontsize=8)
    step = 1 if shown <= 16 else 4
    ax.set_xticks([1 + c * (kw + 1) + (kw - 1) / 2 for c in range(0, shown, step)],
                  [str(c) for c in range(0, shown, step)], fontsize=7)
    ax.set_xlabel("filter")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    c_out, c_in = stacked.shape[1], stacked.shape[4]
    view = "colour images" if rgb else f"averaged over {c_in} input channels"
    more = f" (first {shown} of {c_out})" if shown < c_out else ""
    scale_text = "each filter scaled on its own" if scaling == "per_filter" else "one scale for all"
    ax.set_title(f"{layer + ' — ' if layer else ''}{kh}x{kw} kernels{more} across training, {view}; "
                 f"{scale_text}", fontsize=10)
    return fig


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def filter_frames(filters: Sequence[np.ndarray], labels: Sequence[str], scaling: str = "per_filter",
                  scale: int = 12) -> list[Image.Image]:
    """The frames of :func:`write_filters_gif`: per epoch, its filters on a square grid (each weight
    ``scale`` pixels wide, white gaps) under a caption with the epoch's label."""
    stacked = _stack(filters, labels)
    tiles, rgb = _tiles(stacked, scaling)
    if not rgb:
        tiles = colormaps["RdBu_r"](tiles)[..., :3].astype(np.float32)
    rows, cols = grid_shape(tiles.shape[1])
    caption = 22
    frames = []
    for label, epoch_tiles in zip(labels, tiles):
        picture = np.nan_to_num(mosaic(epoch_tiles, cols=cols, pad=1), nan=1.0)
        pixels = np.kron(picture, np.ones((scale, scale, 1), np.float32))
        canvas = np.ones((pixels.shape[0] + caption, pixels.shape[1], 3), np.float32)
        canvas[caption:] = pixels
        frame = Image.fromarray((canvas * 255).round().astype(np.uint8), "RGB")
        ImageDraw.Draw(frame).text((4, 3), str(label), fill=(0, 0, 0), font=_font(14))
        frames.append(frame)
    return frames


def write_filters_gif(filters: Sequence[np.ndarray], labels: Sequence[str], path: str | os.PathLike[str],
                      scaling: str = "per_filter", scale: int = 12, frame_ms: int = 600) -> Path:
    """Write the kernels across training as an animated GIF (one frame per epoch, the last held three
    times as long, looping), atomically; returns ``path``."""
    frames = filter_frames(filters, labels, scaling, scale)
    durations = [frame_ms] * (len(frames) - 1) + [3 * frame_ms]
    path = Path(path)
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return path


def cka_heatmap_figure(cka: np.ndarray, epochs: Sequence[str | int], layers: Sequence[str],
                       probe: int | None = None) -> Figure:
    """Linear CKA of every layer (columns) at every recorded epoch (rows) against the final model.

    ``cka`` is (epochs, layers) in [0, 1], e.g. from :func:`featurelens.atlas.cka.cka_over_training`;
    cells are annotated when there are at most 400. ``probe`` (the number of probe images) goes
    into the title.
    """
    values = np.asarray(cka, np.float64)
    if values.ndim != 2 or values.shape != (len(epochs), len(layers)):
        raise InputError(f"expected CKA values of shape (epochs, layers) = ({len(epochs)}, {len(layers)}), "
                         f"got {values.shape}")
    n_rows, n_cols = values.shape
    fig = Figure(figsize=(min(16.0, max(7.5, 3.0 + 0.75 * n_cols)), min(14.0, max(3.6, 2.0 + 0.32 * n_rows))),
                 layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(n_cols), list(layers), rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(n_rows), [f"epoch {e}" if isinstance(e, (int, np.integer)) else str(e) for e in epochs],
                  fontsize=8)
    ax.set_xlabel("layer")
    if values.size <= ANNOTATE_CELLS:
        size = 8 if n_cols <= 12 else 6
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=size,
                    color="black" if v > 0.6 else "white")
    fig.colorbar(image, ax=ax, shrink=0.9, label="linear CKA with the final model")
    images = f" of {probe} held-out images" if probe else ""
    ax.set_title(f"How close each layer's representation{images} is to the final model's\n"
                 "(linear CKA, 1: the same up to rotation and scale)", fontsize=10)
    return fig
