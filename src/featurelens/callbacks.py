"""Early stopping and learning-rate reduction, with Keras's exact semantics, framework-free.

Both watch a metric after every epoch. An epoch *improves* on the best value so far when
(for a metric to minimise, such as ``val_loss``) ``value + min_delta < best``, or (for one to
maximise, such as ``val_accuracy``) ``value - min_delta > best``; the first epoch always improves.

Early stopping (``keras.callbacks.EarlyStopping``): a counter ``wait`` is increased every epoch
and reset to 0 when the epoch improves. Training stops after an epoch where ``wait >= patience``
(never after the first epoch). With ``restore_best_weights`` the weights of the best epoch are put
back when training ends, whether it stopped early or ran out of epochs.

Learning-rate reduction (``keras.callbacks.ReduceLROnPlateau``): if the epoch improves, ``wait``
resets; otherwise, outside a cooldown, ``wait`` grows and when it reaches ``patience`` the learning
rate becomes ``max(lr * factor, min_lr)`` (only if ``lr > min_lr``), ``wait`` resets and a
cooldown of ``cooldown`` epochs starts, during which ``wait`` stays 0.

Backends without these callbacks (the PyTorch trainer) drive these classes; the Keras backend
uses Keras's own callbacks, and the tests check both agree.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from featurelens.config import EarlyStopping, ReduceLROnPlateau
from featurelens.errors import ConfigError


def mode_for(monitor: str) -> str:
    """``min`` for losses, ``max`` for accuracies."""
    return "max" if monitor.removeprefix("val_") == "accuracy" else "min"


class _Monitor:
    def __init__(self, monitor: str, min_delta: float) -> None:
        self.monitor = monitor
        self.mode = mode_for(monitor)
        self.min_delta = abs(min_delta)
        self.best: float | None = None

    def is_improvement(self, value: float, reference: float | None) -> bool:
        if reference is None:
            return True
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    _STATE: tuple[str, ...] = ("best",)

    def state(self) -> dict[str, Any]:
        """The decision state as JSON-able values (for checkpoints); :meth:`load_state` puts it back."""
        return {name: getattr(self, name) for name in self._STATE}

    def load_state(self, state: dict[str, Any]) -> None:
        missing = [name for name in self._STATE if name not in state]
        if missing:
            raise ConfigError(f"the saved {type(self).__name__} state lacks {missing}; it cannot be resumed")
        for name in self._STATE:
            setattr(self, name, state[name])

    def value(self, metrics: dict[str, float]) -> float:
        if self.monitor not in metrics:
            raise ConfigError(f"{self.monitor!r} is monitored but is not among the epoch metrics {sorted(metrics)}; "
                              "monitor one of those")
        value = float(metrics[self.monitor])
        return value


class EarlyStopper(_Monitor):
    """Decides after each epoch whether to stop and which epoch's weights are best."""

    _STATE = ("best", "wait", "best_epoch", "stopped_epoch")

    def __init__(self, config: EarlyStopping) -> None:
        super().__init__(config.monitor, config.min_delta)
        self.patience = config.patience
        self.restore_best_weights = config.restore_best_weights
        self.wait = 0
        self.best_epoch = 0
        self.stopped_epoch: int | None = None

    def update(self, epoch: int, metrics: dict[str, float]) -> tuple[bool, bool]:
        """Record ``epoch`` (0-based); return (this epoch is the new best, stop now)."""
        value = self.value(metrics)
        if math.isnan(value):  # a diverged run never improves
            value = math.inf if self.mode == "min" else -math.inf
        self.wait += 1
        if self.is_improvement(value, self.best):
            self.best = value
            self.best_epoch = epoch
            self.wait = 0
            return True, False
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            return False, True
        return False, False


class LRReducer(_Monitor):
    """Decides after each epoch whether and how far to lower the learning rate."""

    _STATE = ("best", "wait", "cooldown_counter")

    def __init__(self, config: ReduceLROnPlateau) -> None:
        super().__init__(config.monitor, config.min_delta)
        self.factor = config.factor
        self.patience = config.patience
        self.min_lr = config.min_lr
        self.cooldown = config.cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def update(self, epoch: int, metrics: dict[str, float], lr: float) -> float:
        """Return the learning rate to use from the next epoch on."""
        value = self.value(metrics)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.is_improvement(value, self.best):
            self.best = value
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and lr > np.float32(self.min_lr):
                self.cooldown_counter = self.cooldown
                self.wait = 0
                return max(lr * self.factor, self.min_lr)
        return lr
