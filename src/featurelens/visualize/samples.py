"""Dataset samples: N labelled examples of every class in one mosaic."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from featurelens.visualize.images import to_display
from featurelens.visualize.mosaic import mosaic


def sample_indices(labels: np.ndarray, per_class: int = 8, seed: int = 0) -> np.ndarray:
    """(num_classes, per_class) indices of randomly chosen examples of every class (-1 if short)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = np.arange(int(labels.max()) + 1) if labels.size else np.arange(0)
    out = np.full((len(classes), per_class), -1, np.int64)
    for c in classes:
        idx = np.flatnonzero(labels == c)
        chosen: np.ndarray | list[int] = (rng.choice(idx, size=min(per_class, len(idx)), replace=False)
                                          if len(idx) else [])
        out[c, :len(chosen)] = np.sort(chosen)
    return out


def samples_mosaic(images: np.ndarray, labels: np.ndarray, per_class: int = 8, seed: int = 0) -> np.ndarray:
    """The sample grid as one (H', W', 3) array: a row per class, ``per_class`` images each."""
    grid = sample_indices(labels, per_class, seed)
    shown = to_display(images[np.clip(grid.ravel(), 0, None)])
    shown[grid.ravel() < 0] = np.nan
    return mosaic(shown, cols=per_class, pad=2, fill=1.0)


def samples_figure(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                   per_class: int = 8, seed: int = 0, title: str | None = None) -> Figure:
    """A labelled grid with ``per_class`` random examples of every class."""
    picture = samples_mosaic(images, labels, per_class, seed)
    h = images.shape[1]
    rows = len(class_names)
    fig = Figure(figsize=(1.0 + per_class * 0.75, 0.6 + rows * 0.75), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(np.nan_to_num(picture, nan=1.0), interpolation="nearest")
    ax.set_yticks([2 + r * (h + 2) + h / 2 for r in range(rows)], list(class_names))
    ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title or f"{per_class} random images of each class ({len(labels):,} in all)")
    return fig
