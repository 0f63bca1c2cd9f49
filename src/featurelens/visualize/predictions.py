"""Predictions: labelled image grids, top-k bars, the confusion matrix, the worst mistakes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

RIGHT, WRONG = "#1a7f37", "#cf222e"


def confident_mistakes(labels: np.ndarray, probabilities: np.ndarray, count: int = 16) -> np.ndarray:
    """Indices of wrong predictions, most confident first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:count]


def top_k(probabilities: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(indices, probabilities) of the k most likely classes of each row, most likely first."""
    order = np.argsort(-probabilities, axis=-1, kind="stable")[..., :k]
    return order, np.take_along_axis(probabilities, order, axis=-1)


def predictions_figure(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                       class_names: Sequence[str], cols: int = 6, title: str | None = None) -> Figure:
    """A grid of display-ready images titled true / predicted (confidence); wrong ones in red."""
    n = len(images)
    rows = max(1, -(-n // cols))
    fig = Figure(figsize=(1.9 * cols, 2.1 * rows + 0.5), layout="constrained")
    predicted = probabilities.argmax(axis=1)
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(images[i], interpolation="nearest")
        ok = predicted[i] == labels[i]
        colour = RIGHT if ok else WRONG
        ax.set_title(f"true: {class_names[labels[i]]}\npred: {class_names[predicted[i]]} "
                     f"{probabilities[i, predicted[i]]:.0%}", fontsize=8, color=colour)
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(1 if ok else 3)
    correct = int((predicted == labels).sum())
    fig.suptitle(title or f"{correct} of {n} right; wrong predictions framed in red", fontsize=11)
    return fig


def topk_figure(images: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str],
                labels: np.ndarray | None = None, k: int = 5) -> Figure:
    """Each image beside a bar chart of its k most likely classes (the true class highlighted)."""
    n = len(images)
    fig = Figure(figsize=(7.5, 1.7 * n + 0.3), layout="constrained")
    grid = fig.add_gridspec(n, 2, width_ratios=[1, 3])
    order, probs = top_k(probabilities, k)
    for i in range(n):
        ax_img = fig.add_subplot(grid[i, 0])
        ax_img.imshow(images[i], interpolation="nearest")
        ax_img.axis("off")
        if labels is not None:
            ax_img.set_title(f"true: {class_names[labels[i]]}", fontsize=9)
        ax = fig.add_subplot(grid[i, 1])
        colours = ["#8c959f"] * k
        if labels is not None:
            colours = [(RIGHT if c == labels[i] else WRONG) if j == 0 else
                       (RIGHT if c == labels[i] else "#8c959f") for j, c in enumerate(order[i])]
        ax.barh(range(k), probs[i], color=colours)
        ax.set_yticks(range(k), [class_names[c] for c in order[i]], fontsize=9)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        for j, p in enumerate(probs[i]):
            ax.text(min(p + 0.01, 0.88), j, f"{p:.1%}", va="center", fontsize=8)
        if i == n - 1:
            ax.set_xlabel("predicted probability")
    fig.suptitle(f"Top-{k} predictions (green: the true class)", fontsize=11)
    return fig


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Row-normalised confusion matrix (counts written in) beside per-class accuracy bars."""
    confusion = np.asarray(confusion)
    totals = confusion.sum(axis=1, keepdims=True)
    fraction = confusion / np.where(totals > 0, totals, 1)
    k = len(class_names)
    fig = Figure(figsize=(13, 6), layout="constrained")
    grid = fig.add_gridspec(1, 2, width_ratios=[3, 1.3])
    ax = fig.add_subplot(grid[0])
    shown = ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
    for t in range(k):
        for p in range(k):
            if confusion[t, p]:
                ax.text(p, t, str(confusion[t, p]), ha="center", va="center", fontsize=7,
                        color="white" if fraction[t, p] > 0.5 else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix (numbers: image counts)")
    fig.colorbar(shown, ax=ax, shrink=0.8, label="fraction of the true class")
    accuracy = np.diag(fraction)
    overall = np.trace(confusion) / max(confusion.sum(), 1)
    ax2 = fig.add_subplot(grid[1])
    ax2.barh(range(k), accuracy, color=[RIGHT if a >= overall else WRONG for a in accuracy])
    ax2.axvline(overall, color="black", linestyle="--", linewidth=1, label=f"overall {overall:.1%}")
    ax2.legend(loc="lower right", fontsize=8)
    ax2.set_yticks(range(k), class_names)
    ax2.invert_yaxis()
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("accuracy")
    ax2.set_title("Per-class accuracy")
    for i, a in enumerate(accuracy):
        ax2.text(min(a + 0.01, 0.9), i, f"{a:.0%}", va="center", fontsize=8)
    return fig
