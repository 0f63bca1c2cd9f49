"""Learned filters: first-layer kernels as colour images, deeper ones per input channel or averaged.

Three views of a (C_out, kh, kw, C_in) kernel array:

- ``rgb``: each filter as a small colour image (only when C_in == 3, i.e. the first layer);
- ``channels``: one row per filter, one column per input channel, each a kh x kw weight patch;
- ``mean``: each filter averaged over its input channels, a kh x kw patch per filter.

Scaling is stated on every figure: ``per_filter`` stretches each filter to the full colour range
(shapes are easy to see, strengths are not comparable), ``shared`` uses one range for the layer.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from featurelens.errors import InputError
from featurelens.visualize.mosaic import mosaic, scale_all, scale_each

MODES = ("auto", "rgb", "channels", "mean")
CHANNEL_GRID_MAX = 512
SCALINGS = ("per_filter", "shared")


def _check(filters: np.ndarray) -> None:
    if filters.ndim != 4:
        raise InputError(f"expected filters as (C_out, kh, kw, C_in), got shape {filters.shape}")


def resolve_mode(filters: np.ndarray, mode: str = "auto") -> str:
    _check(filters)
    if mode not in MODES:
        raise InputError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "auto":  # a per-channel grid of more than ~500 patches reads as noise: average instead
        if filters.shape[3] == 3:
            return "rgb"
        return "channels" if filters.shape[3] * filters.shape[0] <= CHANNEL_GRID_MAX else "mean"
    if mode == "rgb" and filters.shape[3] != 3:
        raise InputError(f"the rgb view needs 3 input channels, these filters have {filters.shape[3]}; "
                         "use mode='channels' or 'mean'")
    return mode


def _symmetric(tiles: np.ndarray, scaling: str) -> np.ndarray:
    """Map weights to [-1, 1] around zero, per tile row (filter) or for all."""
    if scaling == "shared":
        top = float(np.abs(tiles).max()) or 1.0
        return tiles / top
    top = np.abs(tiles).reshape(len(tiles), -1).max(axis=1)
    return tiles / np.where(top > 0, top, 1.0)[:, None, None, None]


def filter_mosaic(filters: np.ndarray, mode: str = "auto", scaling: str = "per_filter") -> tuple[np.ndarray, str]:
    """The filters as one mosaic array and the resolved mode.

    ``rgb`` gives (H', W', 3) in [0, 1]; ``channels`` and ``mean`` give (H', W') in [-1, 1] (weights
    divided by the largest absolute weight of the filter or of the layer, so 0 stays 0).
    """
    mode = resolve_mode(filters, mode)
    if scaling not in SCALINGS:
        raise InputError(f"scaling {scaling!r} is not one of {', '.join(SCALINGS)}")
    f = np.asarray(filters, np.float32)
    c_out, kh, kw, c_in = f.shape
    if mode == "rgb":
        tiles = scale_each(f) if scaling == "per_filter" else scale_all(f)
        return mosaic(tiles, pad=1, fill=np.nan), mode
    if mode == "mean":
        tiles = _symmetric(f.mean(axis=3, keepdims=True), scaling)[..., 0]
        return mosaic(tiles, pad=1), mode
    tiles = _symmetric(f, scaling)  # (C_out, kh, kw, C_in): row o, column i is filter o on input i
    per_channel = np.moveaxis(tiles, 3, 1).reshape(c_out * c_in, kh, kw)
    return mosaic(per_channel, cols=c_in, pad=1), mode


def filters_figure(filters: np.ndarray, layer: str = "", mode: str = "auto",
                   scaling: str = "per_filter") -> Figure:
    """One figure of every filter of a conv layer (see the module docstring for the views)."""
    picture, mode = filter_mosaic(filters, mode, scaling)
    c_out, kh, kw, c_in = filters.shape
    scale_text = ("each filter scaled on its own" if scaling == "per_filter"
                  else "one scale for the whole layer")
    view = {"rgb": f"{c_out} filters shown as {kh}x{kw} colour images",
            "channels": f"rows: {c_out} filters; columns: their {c_in} input channels",
            "mean": f"{c_out} filters, each averaged over its {c_in} input channels"}[mode]
    aspect = picture.shape[1] / picture.shape[0]
    height = 6.0 if mode != "channels" else min(12.0, 3 + picture.shape[0] / 60)
    fig = Figure(figsize=(min(14.0, max(5.0, height * aspect + 1.8)), height + 0.8), layout="constrained")
    ax = fig.add_subplot()
    if mode == "rgb":
        ax.set_facecolor("white")
        ax.imshow(np.nan_to_num(picture, nan=1.0), interpolation="nearest")
    else:
        ax.set_facecolor("#dddddd")
        image = ax.imshow(np.ma.masked_invalid(picture), cmap="RdBu_r", vmin=-1, vmax=1,
                          interpolation="nearest")
        label = "weight / largest |weight| of the filter" if scaling == "per_filter" else \
                f"weight / {float(np.abs(filters).max()):.3g} (largest |weight| in the layer)"
        fig.colorbar(image, ax=ax, shrink=0.8, label=label)
    if mode == "channels":
        ax.set_xlabel("input channel")
        ax.set_ylabel("filter")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{layer} — {kh}x{kw}x{c_in} kernels\n{view}; {scale_text}", fontsize=10)
    return fig
