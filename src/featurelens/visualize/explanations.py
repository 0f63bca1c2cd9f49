"""Attribution maps drawn over the images they explain, from arrays only.

Maps are (N, H, W) at the images' resolution (what :mod:`featurelens.explain` returns); images are
as loaded (uint8, 0-255 floats or [0, 1] floats) and go through :func:`to_display`. Every map is
scaled for display by its largest absolute value, so 1 is that map's strongest evidence; maps
with negative values (Integrated Gradients) are drawn signed, red for evidence for the class and
blue against it. The colour bars say which scaling was used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from featurelens.errors import InputError
from featurelens.visualize.images import to_display
from featurelens.visualize.predictions import RIGHT, WRONG

HEAT, SIGNED = "jet", "RdBu_r"
ALPHA = 0.5


class CurveLike(Protocol):
    """What :func:`deletion_insertion_figure` reads of a :class:`featurelens.explain.Curve`."""

    kind: str
    fractions: np.ndarray
    probabilities: np.ndarray
    auc: np.ndarray


def _maps(maps: Any, count: int | None, what: str = "maps") -> np.ndarray:
    array = np.asarray(maps, np.float32)
    if array.ndim != 3 or (count is not None and len(array) != count):
        wanted = f"({count}, H, W)" if count is not None else "(N, H, W)"
        raise InputError(f"{what} must be {wanted}, one map per image; got shape {array.shape}")
    return array


def _display(images: Any, maps: np.ndarray) -> np.ndarray:
    shown = to_display(np.asarray(images))
    if shown.ndim != 4 or shown.shape[:3] != maps.shape:
        raise InputError(f"images must be (N, H, W, C) matching the maps {maps.shape}; got shape {np.shape(images)}")
    return shown


def scale_maps(maps: np.ndarray, shared: bool = False) -> tuple[np.ndarray, bool]:
    """Maps divided by their largest absolute value (each on its own, or all together with
    ``shared``), and whether any is signed. Zero maps stay zero; NaNs become zero."""
    maps = np.nan_to_num(np.asarray(maps, np.float32))
    axes = None if shared else tuple(range(1, maps.ndim))
    peak = np.abs(maps).max(axis=axes, keepdims=True, initial=0.0)
    scaled = maps / np.where(peak > 0, peak, 1.0)
    return scaled.astype(np.float32), bool((maps < 0).any())


def _overlay(ax: Axes, image: np.ndarray, scaled: np.ndarray, signed: bool) -> None:
    ax.imshow(image, interpolation="nearest")
    if signed:
        ax.imshow(scaled, cmap=SIGNED, vmin=-1, vmax=1, alpha=ALPHA, interpolation="bilinear")
    else:
        ax.imshow(scaled, cmap=HEAT, vmin=0, vmax=1, alpha=ALPHA, interpolation="bilinear")
    ax.set_xticks([])
    ax.set_yticks([])


def _image(ax: Axes, image: np.ndarray) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _colour_bars(fig: Figure, axes: list[Axes], heat: bool, signed: bool, scale: str = "each map on its own") -> None:
    """Colour bars of the heat and signed scales; ``scale`` says which maps share one."""
    if heat:
        fig.colorbar(ScalarMappable(Normalize(0, 1), HEAT), ax=axes, shrink=0.8, pad=0.01,
                     label=f"attribution / largest value, {scale}\n(1 = strongest evidence)")
    if signed:
        fig.colorbar(ScalarMappable(Normalize(-1, 1), SIGNED), ax=axes, shrink=0.8, pad=0.01,
                     label=f"attribution / largest |value|, {scale}\n(red: for the class, blue: against)")


def _frame(ax: Axes, colour: str, width: float = 3) -> None:
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)


def explanation_overlay_figure(images: np.ndarray, maps: np.ndarray, titles: Sequence[str] | None = None,
                               cols: int = 4, title: str | None = None) -> Figure:
    """Each map (N, H, W) as a heat map over its image (N, H, W, C as loaded), ``cols`` per row."""
    maps = _maps(maps, None)
    shown = _display(images, maps)
    if titles is not None and len(titles) != len(maps):
        raise InputError(f"titles must give one title per image: {len(maps)}, got {len(titles)}")
    scaled, signed = scale_maps(maps)
    n = len(maps)
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig = Figure(figsize=(2.0 * cols + 1.4, 2.1 * rows + 0.6), layout="constrained")
    axes = []
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        axes.append(ax)
        if i >= n:
            ax.axis("off")
            continue
        _overlay(ax, shown[i], scaled[i], signed)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    _colour_bars(fig, axes, not signed, signed)
    fig.suptitle(title or "Where the model looks: the attribution map over each image", fontsize=11)
    return fig


def methods_grid_figure(images: np.ndarray, maps_by_method: Mapping[str, np.ndarray],
                        row_labels: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """One row per image: the image, then each method's map over it (one column per method)."""
    if not maps_by_method:
        raise InputError("maps_by_method is empty: give at least one method's (N, H, W) maps")
    first = _maps(next(iter(maps_by_method.values())), None)
    n = len(first)
    shown = _display(images, first)
    columns = {name: scale_maps(_maps(m, n, f"the maps of {name!r}")) for name, m in maps_by_method.items()}
    if row_labels is not None and len(row_labels) != n:
        raise InputError(f"row_labels must give one label per image: {n}, got {len(row_labels)}")
    cols = 1 + len(columns)
    fig = Figure(figsize=(1.6 * cols + 1.8, 1.6 * n + 0.8), layout="constrained")
    grid = fig.subplots(n, cols, squeeze=False)
    for i in range(n):
        _image(grid[i, 0], shown[i])
        if row_labels is not None:
            grid[i, 0].set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=8)
        for j, (name, (scaled, signed)) in enumerate(columns.items(), start=1):
            _overlay(grid[i, j], shown[i], scaled[i], signed)
            if i == 0:
                grid[i, j].set_title(name, fontsize=9)
    grid[0, 0].set_title("image", fontsize=9)
    signs = [signed for _, signed in columns.values()]
    _colour_bars(fig, list(grid.ravel()), not all(signs), any(signs))
    fig.suptitle(title or "The same images explained by each method", fontsize=11)
    return fig


def all_classes_figure(image: np.ndarray, maps_by_class: np.ndarray, class_names: Sequence[str],
                       probabilities: np.ndarray, cols: int = 6, method: str = "") -> Figure:
    """"What would make it a cat?": one image (H, W, C) and its map for every class (K, H, W),
    titled with the class's probability (K,); the predicted class framed. All maps share one
    scale, so classes with little evidence look faint."""
    maps = _maps(maps_by_class, len(class_names), "maps_by_class")
    probabilities = np.asarray(probabilities, np.float32)
    if probabilities.shape != (len(class_names),):
        raise InputError(f"probabilities must give one value per class: ({len(class_names)},), "
                         f"got shape {probabilities.shape}")
    shown = _display(np.asarray(image)[None], maps[:1])[0]
    scaled, signed = scale_maps(maps, shared=True)
    predicted = int(probabilities.argmax())
    k = len(class_names)
    cols = max(1, min(cols, k + 1))
    rows = -(-(k + 1) // cols)
    fig = Figure(figsize=(1.9 * cols + 1.4, 2.0 * rows + 0.6), layout="constrained")
    axes = []
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        axes.append(ax)
        if i == 0:
            _image(ax, shown)
            ax.set_title(f"image\npredicted: {class_names[predicted]}", fontsize=8)
        elif i <= k:
            c = i - 1
            _overlay(ax, shown, scaled[c], signed)
            ax.set_title(f"{class_names[c]}\n{probabilities[c]:.1%}", fontsize=8,
                         color=RIGHT if c == predicted else "black")
            if c == predicted:
                _frame(ax, RIGHT)
        else:
            ax.axis("off")
    _colour_bars(fig, axes, not signed, signed, "all classes on one scale")
    how = f" ({method})" if method else ""
    fig.suptitle(f"What would make it each class? Evidence for every class{how}; predicted framed in green",
                 fontsize=10)
    return fig


def mistakes_explained_figure(images: np.ndarray, maps_predicted: np.ndarray, maps_true: np.ndarray,
                              labels: np.ndarray, predicted: np.ndarray, class_names: Sequence[str],
                              probabilities: np.ndarray, per_row: int = 2, method: str = "") -> Figure:
    """For each wrong prediction: the image, the evidence for the predicted class and for the true
    class (maps (N, H, W) each; probabilities (N, num_classes)), ``per_row`` mistakes per row.
    Both maps of one image share a scale, so the stronger evidence looks stronger."""
    maps_p = _maps(maps_predicted, None, "maps_predicted")
    n = len(maps_p)
    maps_t = _maps(maps_true, n, "maps_true")
    shown = _display(images, maps_p)
    labels, predicted = np.asarray(labels, np.int64), np.asarray(predicted, np.int64)
    probabilities = np.asarray(probabilities, np.float32)
    if labels.shape != (n,) or predicted.shape != (n,) or probabilities.ndim != 2 or len(probabilities) != n:
        raise InputError(f"labels and predicted must be ({n},) and probabilities ({n}, num_classes); got "
                         f"{labels.shape}, {predicted.shape} and {probabilities.shape}")
    pair, signed = scale_maps(np.stack([maps_p, maps_t], axis=1).reshape(n, 2, -1), shared=False)
    pair = pair.reshape(n, 2, *maps_p.shape[1:])
    per_row = max(1, min(per_row, n))
    rows = -(-n // per_row)
    fig = Figure(figsize=(5.4 * per_row + 1.4, 2.0 * rows + 0.7), layout="constrained")
    grid = fig.subplots(rows, 3 * per_row, squeeze=False)
    for i in range(rows * per_row):
        r, c = divmod(i, per_row)
        cells = grid[r, 3 * c:3 * c + 3]
        if i >= n:
            for ax in cells:
                ax.axis("off")
            continue
        _image(cells[0], shown[i])
        cells[0].set_title(f"image {i + 1}", fontsize=8)
        p, t = int(predicted[i]), int(labels[i])
        _overlay(cells[1], shown[i], pair[i, 0], signed)
        cells[1].set_title(f"predicted: {class_names[p]}\n{probabilities[i, p]:.0%}", fontsize=8, color=WRONG)
        _frame(cells[1], WRONG)
        _overlay(cells[2], shown[i], pair[i, 1], signed)
        cells[2].set_title(f"true: {class_names[t]}\n{probabilities[i, t]:.0%}", fontsize=8, color=RIGHT)
        _frame(cells[2], RIGHT)
    _colour_bars(fig, list(grid.ravel()), not signed, signed, "both maps of an image on one scale")
    how = f" ({method})" if method else ""
    fig.suptitle(f"Mistakes explained{how}: evidence for the predicted class (red) beside the true class (green)",
                 fontsize=10)
    return fig


def deletion_insertion_figure(curves: Mapping[str, tuple[CurveLike, CurveLike]], title: str | None = None) -> Figure:
    """Mean deletion and insertion curves of each method (``{method: (deletion, insertion)}``, the
    :class:`featurelens.explain.Curve` objects), with each method's mean AUC in the legend."""
    if not curves:
        raise InputError("curves is empty: give {method: (deletion_curve, insertion_curve)}")
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    colours = [f"C{i % 10}" for i in range(len(curves))]
    for (name, pair), colour in zip(curves.items(), colours):
        for ax, curve, kind in zip(axes, pair, ("deletion", "insertion")):
            if curve.kind != kind:
                raise InputError(f"curves[{name!r}] must be (deletion curve, insertion curve); got a {curve.kind} "
                                 f"curve where the {kind} curve goes")
            mean = np.asarray(curve.probabilities, np.float64).mean(axis=0)
            auc = float(np.mean(curve.auc))
            ax.plot(curve.fractions, mean, color=colour, linewidth=1.6, label=f"{name} (AUC {auc:.3f})")
    for ax, kind, better, verb in zip(axes, ("deletion", "insertion"), ("lower", "higher"),
                                      ("removed", "inserted")):
        ax.set_xlabel(f"fraction of pixels {verb}, most attributed first")
        ax.set_title(f"{kind.capitalize()}: {better} area under the curve is better", fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right" if kind == "deletion" else "lower right")
    axes[0].set_ylabel("probability of the explained class (mean over images)")
    fig.suptitle(title or "Do the maps point at what the model uses? Pixels taken out of the image (deletion) "
                 "or put back into the baseline (insertion)", fontsize=10)
    return fig
