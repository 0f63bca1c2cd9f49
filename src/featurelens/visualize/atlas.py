"""What each channel detects, drawn from arrays: the channel atlas, top patches, examples in context.

- :func:`channel_atlas_figure`: one row per channel: its kernel (colour for a first layer, else
  averaged over input channels), its feature-visualization image, its top dataset patches and its
  mean activation per class, with its statistics written beside it (dead channels say so);
- :func:`top_patches_figure`: per channel a row of the receptive-field patches that excite it most;
- :func:`examples_in_context_figure`: the top images of one channel, whole, with the patch outlined.

Patches are the image pixels a unit sees; where its field reaches past the border (zero padding
for the network) they are NaN and drawn in light gray, so a patch cut by the border looks cut.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from featurelens.errors import InputError
from featurelens.visualize.images import to_display
from featurelens.visualize.mosaic import scale_each

PADDING_GRAY = 0.82
DEAD_COLOUR = "#c0392b"


def _patch_display(patches: np.ndarray) -> np.ndarray:
    """Patches as loaded (0-255, NaN outside the image) -> [0, 1] RGB with gray outside."""
    patches = np.asarray(patches, np.float32)
    missing = np.isnan(patches)
    finite = patches[~missing]
    scale = 255.0 if finite.size and float(finite.max()) > 1.5 else 1.0
    shown = np.clip(np.where(missing, PADDING_GRAY * scale, patches) / scale, 0, 1)
    return np.repeat(shown, 3, axis=-1) if shown.shape[-1] == 1 else shown


def _blank(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _kernel(ax: Axes, kernel: np.ndarray) -> None:
    """A (kh, kw, C_in) kernel: colour when C_in is 3, else its mean over inputs on a diverging scale."""
    if kernel.shape[-1] == 3:
        ax.imshow(scale_each(kernel[None])[0], interpolation="nearest")
    else:
        mean = kernel.mean(axis=-1)
        top = float(np.abs(mean).max()) or 1.0
        ax.imshow(mean / top, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    _blank(ax)


def _channels(channels: Sequence[int] | np.ndarray | None, count: int) -> list[int]:
    chosen = list(range(count)) if channels is None else [int(c) for c in channels]
    bad = [c for c in chosen if not 0 <= c < count]
    if bad:
        raise InputError(f"channel {bad[0]} does not exist: the layer has {count} channel(s)")
    if not chosen:
        raise InputError("no channels to draw")
    return chosen


def _label(c: int, mean: np.ndarray | None, never: np.ndarray | None, class_mean: np.ndarray | None,
           class_names: Sequence[str] | None) -> tuple[str, bool]:
    dead = never is not None and float(never[c]) >= 1.0
    lines = [f"channel {c}"]
    if dead:
        lines.append("DEAD: never active")
    if mean is not None:
        lines.append(f"mean {float(mean[c]):.3g}")
    if never is not None and not dead:
        lines.append(f"inactive on {float(never[c]):.0%}")
    if class_mean is not None and not dead and np.isfinite(class_mean[:, c]).any():
        best = int(np.nanargmax(class_mean[:, c]))
        lines.append(f"most: {class_names[best] if class_names else best}")
    return "\n".join(lines), dead


def channel_atlas_figure(layer: str, channels: Sequence[int] | np.ndarray | None = None, *,
                         kernels: np.ndarray | None = None,
                         feature_vis: np.ndarray | None = None, patches: np.ndarray | None = None,
                         mean: np.ndarray | None = None, never_active: np.ndarray | None = None,
                         class_mean: np.ndarray | None = None, class_names: Sequence[str] | None = None,
                         measured_at: str | None = None, title: str | None = None) -> Figure:
    """One row per channel of ``layer``: kernel, feature visualization, top patches, class profile.

    Every array is indexed by channel over the whole layer: ``kernels`` (C, kh, kw, C_in),
    ``feature_vis`` (C, H, W, 3) in [0, 1], ``patches`` (C, k, fh, fw, channels) as loaded (NaN
    outside the image), ``mean`` and ``never_active`` (C,), ``class_mean`` (classes, C). Any of
    them may be None (its column is left out). ``channels`` picks the rows (default: all).
    """
    sizes = [len(a) for a in (kernels, feature_vis, patches, mean, never_active) if a is not None]
    if class_mean is not None:
        sizes.append(class_mean.shape[1])
    if not sizes:
        raise InputError("channel_atlas_figure needs at least one of kernels, feature_vis, patches or statistics")
    if len(set(sizes)) != 1:
        raise InputError(f"the arrays disagree on the number of channels: {sorted(set(sizes))}")
    rows = _channels(channels, sizes[0])
    k = patches.shape[1] if patches is not None else 0
    columns: list[tuple[str, float]] = [("label", 1.55)]
    if kernels is not None:
        columns.append(("kernel", 0.8))
    if feature_vis is not None:
        columns.append(("featurevis", 1.0))
    columns += [(f"patch{j}", 0.8) for j in range(k)]
    if class_mean is not None:
        columns.append(("classes", 2.2))
    row_height = 0.92
    fig = Figure(figsize=(sum(w for _, w in columns) + 0.4, row_height * len(rows) + 1.6), layout="constrained")
    grid = fig.add_gridspec(len(rows), len(columns), width_ratios=[w for _, w in columns])
    shown_patches = _patch_display(patches) if patches is not None else None
    for r, c in enumerate(rows):
        text, dead = _label(c, mean, never_active, class_mean, class_names)
        for j, (kind, _) in enumerate(columns):
            ax = fig.add_subplot(grid[r, j])
            if kind == "label":
                ax.axis("off")
                ax.text(0.0, 0.5, text, fontsize=7.5, va="center", ha="left", transform=ax.transAxes,
                        color=DEAD_COLOUR if dead else "black")
            elif kind == "kernel":
                _kernel(ax, np.asarray(kernels[c], np.float32))  # type: ignore[index]
            elif kind == "featurevis":
                ax.imshow(np.clip(feature_vis[c], 0, 1), interpolation="nearest")  # type: ignore[index]
                _blank(ax)
            elif kind.startswith("patch"):
                ax.imshow(shown_patches[c, int(kind[5:])], interpolation="nearest")  # type: ignore[index]
                _blank(ax)
            else:
                _class_bars(ax, class_mean[:, c], class_names, last=r == len(rows) - 1, dead=dead)  # type: ignore[index]
            if r == 0 and kind != "label":
                heading = {"kernel": "kernel", "featurevis": "optimized\nimage", "patch0": "top dataset patches →",
                           "classes": "mean activation\nper class"}.get(kind, "")
                if heading:
                    ax.set_title(heading, fontsize=7.5, loc="left" if kind == "patch0" else "center")
    at = f" (read at {measured_at})" if measured_at and measured_at != layer else ""
    fig.suptitle(title or f"What each channel of {layer}{at} detects", fontsize=11)
    return fig


def _class_bars(ax: Axes, values: np.ndarray, class_names: Sequence[str] | None, last: bool, dead: bool) -> None:
    values = np.nan_to_num(np.asarray(values, np.float64), nan=0.0)
    colours = ["#bbbbbb"] * len(values)
    if not dead and len(values) and values.max() > 0:
        colours[int(values.argmax())] = "#1f77b4"
    ax.bar(np.arange(len(values)), values, color=colours, width=0.8)
    ax.set_yticks([])
    ax.tick_params(axis="x", labelsize=6, length=0)
    if last and class_names is not None:
        ax.set_xticks(np.arange(len(values)), list(class_names), rotation=60, ha="right")
    else:
        ax.set_xticks([])
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def top_patches_figure(patches: np.ndarray, channels: Sequence[int] | None = None, values: np.ndarray | None = None,
                       layer: str = "", measured_at: str | None = None) -> Figure:
    """Per channel a row of its top receptive-field patches (C, k, fh, fw, channels), best first,
    with each image's largest activation above it when ``values`` (C, k) is given."""
    patches = np.asarray(patches)
    if patches.ndim != 5:
        raise InputError(f"expected patches as (C, k, fh, fw, channels), got shape {patches.shape}")
    rows = _channels(channels, patches.shape[0])
    k = patches.shape[1]
    shown = _patch_display(patches)
    fig = Figure(figsize=(0.85 * k + 1.0, 0.95 * len(rows) + 1.0), layout="constrained")
    grid = fig.add_gridspec(len(rows), k)
    for r, c in enumerate(rows):
        for j in range(k):
            ax = fig.add_subplot(grid[r, j])
            ax.imshow(shown[c, j], interpolation="nearest")
            _blank(ax)
            if values is not None and np.isfinite(values[c, j]):
                ax.set_title(f"{float(values[c, j]):.2g}", fontsize=6, pad=1)
            if j == 0:
                ax.set_ylabel(f"ch {c}", fontsize=7, rotation=0, ha="right", va="center")
    at = f" (read at {measured_at})" if measured_at and measured_at != layer else ""
    fig.suptitle(f"{layer}{at}: the {k} receptive-field patches that excite each channel most "
                 f"({patches.shape[2]}x{patches.shape[3]} px; gray: past the image border)", fontsize=10)
    return fig


def examples_in_context_figure(images: np.ndarray, boxes: np.ndarray, values: np.ndarray | None = None,
                               titles: Sequence[str] | None = None, channel: int | None = None, layer: str = "",
                               cols: int = 5) -> Figure:
    """The top images of one channel (k, H, W, C as loaded), whole, each with its patch outlined
    (``boxes`` (k, 4) as ``(top, left, bottom, right)``, bottom and right exclusive)."""
    images = np.asarray(images)
    boxes = np.asarray(boxes)
    if images.ndim != 4 or boxes.shape != (len(images), 4):
        raise InputError(f"expected images (k, H, W, C) and boxes (k, 4), got {images.shape} and {boxes.shape}")
    shown = to_display(images)
    n = len(images)
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig = Figure(figsize=(1.9 * cols + 0.4, 2.05 * rows + 0.7), layout="constrained")
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        _blank(ax)
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(shown[i], interpolation="nearest")
        top, left, bottom, right = (int(v) for v in boxes[i])
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, edgecolor="#ffdd00",
                               linewidth=2.0))
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, edgecolor="black",
                               linewidth=0.6))
        label = titles[i] if titles is not None else ""
        if values is not None:
            label = f"{label}\nmax {float(values[i]):.3g}" if label else f"max {float(values[i]):.3g}"
        if label:
            ax.set_title(label, fontsize=7.5)
    which = f"channel {channel} of {layer}" if channel is not None else layer
    fig.suptitle(f"The images that excite {which} most, with the part the unit sees outlined", fontsize=10)
    return fig
