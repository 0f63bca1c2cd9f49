"""Training history: loss, accuracy and learning rate per epoch, with the events marked."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from featurelens.errors import InputError
from featurelens.history import History

SHORT_REASONS = {"early_stopping": "early stopping", "max_epochs": "epoch limit reached",
                 "interrupted": "interrupted"}


def history_figure(history: History, title: str | None = None) -> Figure:
    """Loss and accuracy (train and validation) and the learning rate on its own log axis.

    Dotted lines mark the epochs whose learning rate was reduced; a star marks the best epoch
    (whose weights were kept when ``restored_best_weights``); the last epoch says why training stopped.
    """
    if not history.epochs:
        raise InputError("the history has no epoch to draw")
    epochs = np.array([r.epoch for r in history.epochs])
    fig = Figure(figsize=(9, 8), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True, height_ratios=[3, 3, 1.6])
    for ax, metric, label in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, history.metric(metric), "o-", ms=3, label=f"train {label}", color="#0969da")
        val = history.metric(f"val_{metric}")
        if any(v is not None for v in val):
            ax.plot(epochs, [np.nan if v is None else v for v in val], "o-", ms=3,
                    label=f"validation {label}", color="#bc4c00")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[2].step(epochs, history.metric("learning_rate"), where="post", color="#6e7781")
    axes[2].set_yscale("log")
    axes[2].set_ylabel("learning rate")
    axes[2].set_xlabel("epoch")
    axes[2].grid(alpha=0.3)
    for i, epoch in enumerate(history.lr_reductions):
        for ax in axes:
            ax.axvline(epoch, color="#6e7781", linestyle=":", linewidth=1,
                       label="learning rate reduced" if i == 0 and ax is axes[0] else None)
    best = history.best
    if best is not None:
        monitor_axis = axes[0] if "loss" in history.monitor else axes[1]
        value = getattr(best, history.monitor)
        restored = " (weights kept)" if history.restored_best_weights else ""
        monitor_axis.plot([best.epoch], [value], marker="*", ms=16, color="#bf8700", linestyle="none",
                          label=f"best {history.monitor}: epoch {best.epoch}{restored}")
    last = history.epochs[-1]
    top = max(v for v in (last.loss, last.val_loss) if v is not None)
    axes[0].annotate(f"stopped here: {SHORT_REASONS.get(history.stop_reason, history.stop_reason)}",
                     xy=(last.epoch, top), xytext=(0, 28), textcoords="offset points",
                     ha="right", fontsize=8, arrowprops={"arrowstyle": "->", "color": "#57606a"})
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    where = " on ".join(x for x in (history.backend, history.device) if x) or "unknown backend"
    fig.suptitle(title or f"Training history ({where}, {len(epochs)} epochs, {history.total_seconds:.0f} s)")
    return fig
