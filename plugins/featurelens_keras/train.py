"""Training with ``model.fit``: TrainConfig mapped onto Keras's own callbacks.

Early stopping and learning-rate reduction are ``keras.callbacks.EarlyStopping`` and
``ReduceLROnPlateau`` with the config's values (featurelens's own implementation for the other
backends is tested to agree with them). The validation images come from the core's seeded,
stratified split and reach Keras as ``validation_data``, so every backend validates on the same
images. Augmentation (flips and 4-pixel shifts) runs on numpy batches in a ``PyDataset``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence

import keras
import numpy as np

from featurelens.backends import EpochObserver, EpochRecord, History, TrainConfig, looks_like_probabilities, mode_for


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    if config.optimizer == "adam":
        return keras.optimizers.Adam(config.learning_rate, weight_decay=config.weight_decay or None)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(config.learning_rate, weight_decay=config.weight_decay)
    return keras.optimizers.SGD(config.learning_rate, momentum=config.momentum, nesterov=config.momentum > 0,
                                weight_decay=config.weight_decay or None)


class FlipAndShift(keras.utils.PyDataset):
    """Shuffled batches with random horizontal flips and zero-padded shifts of up to ``pad`` pixels."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, pad: int = 4) -> None:
        super().__init__()
        self.x, self.y, self.batch_size, self.pad = x, y, batch_size, pad
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.x))

    def __getitem__(self, index: int):
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        xb, n, p = self.x[idx], len(idx), self.pad
        flip = self.rng.random(n) < 0.5
        xb = np.where(flip[:, None, None, None], xb[:, :, ::-1], xb)
        padded = np.pad(xb, ((0, 0), (p, p), (p, p), (0, 0)))
        h, w = xb.shape[1:3]
        dy, dx = self.rng.integers(0, 2 * p + 1, n), self.rng.integers(0, 2 * p + 1, n)
        rows = (dy[:, None] + np.arange(h))[:, :, None]
        cols = (dx[:, None] + np.arange(w))[:, None, :]
        return padded[np.arange(n)[:, None, None], rows, cols], self.y[idx]


class EpochRecorder(keras.callbacks.Callback):
    """Collects each epoch's metrics, learning rate and duration into a featurelens History."""

    def __init__(self, history: History) -> None:
        super().__init__()
        self.record = history
        self._start = 0.0
        self._lr = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}

        def get(key):
            return float(logs[key]) if key in logs else None

        self.record.append(EpochRecord(epoch + 1, get("loss"), get("accuracy"), get("val_loss"),
                                       get("val_accuracy"), self._lr, time.perf_counter() - self._start))


class ObserverCallback(keras.callbacks.Callback):
    """Calls featurelens's epoch observers with the epoch :class:`EpochRecorder` has just recorded.

    It runs right after the recorder, before early stopping, so the model holds that epoch's
    weights (Keras's JAX trainer has synced them back into the variables by ``on_epoch_end``).
    """

    def __init__(self, history: History, observers: Sequence[EpochObserver]) -> None:
        super().__init__()
        self.record = history
        self.observers = tuple(observers)

    def on_epoch_end(self, epoch, logs=None):
        record = self.record.epochs[-1]
        for observer in self.observers:
            observer(record.epoch, record, self.model)


def outputs_probabilities(model: keras.Model, x: np.ndarray) -> bool:
    """Whether the model's rows are probabilities (it ends in a softmax) rather than logits."""
    return looks_like_probabilities(keras.ops.convert_to_numpy(model(x[:8], training=False)))


def fit(model: keras.Model, train: tuple[np.ndarray, np.ndarray],
        validation: tuple[np.ndarray, np.ndarray] | None, config: TrainConfig, progress: bool = True,
        spec_built: bool = True, observers: Sequence[EpochObserver] = ()) -> History:
    """Train with ``model.fit``; a user's model (``spec_built=False``) may output logits or
    probabilities, and is compiled with the matching loss (its own compile settings are replaced).
    ``observers`` see every finished epoch."""
    keras.utils.set_random_seed(config.seed)
    loss: str | keras.losses.Loss = "sparse_categorical_crossentropy"  # spec-built models end in a softmax
    if not spec_built:
        logits = not outputs_probabilities(model, np.asarray(train[0][:8], np.float32))
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
    model.compile(optimizer=make_optimizer(config), loss=loss, metrics=["accuracy"])
    es_cfg, rl_cfg = config.early_stopping, config.reduce_lr
    history = History(monitor=config.monitor(validation is not None), backend="keras", device=keras.backend.backend())
    callbacks: list[keras.callbacks.Callback] = [EpochRecorder(history)]
    if observers:
        callbacks.append(ObserverCallback(history, observers))
    stopper = None
    if es_cfg is not None:
        stopper = keras.callbacks.EarlyStopping(monitor=es_cfg.monitor, patience=es_cfg.patience,
                                                min_delta=es_cfg.min_delta, mode=mode_for(es_cfg.monitor),
                                                restore_best_weights=es_cfg.restore_best_weights)
        callbacks.append(stopper)
    if rl_cfg is not None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=rl_cfg.monitor, factor=rl_cfg.factor, patience=rl_cfg.patience, min_delta=rl_cfg.min_delta,
            cooldown=rl_cfg.cooldown, min_lr=rl_cfg.min_lr, mode=mode_for(rl_cfg.monitor)))
    x, y = np.asarray(train[0], np.float32), np.asarray(train[1], np.int64)
    inputs = dict(x=FlipAndShift(x, y, config.batch_size, config.seed)) if config.augment else \
        dict(x=x, y=y, batch_size=config.batch_size, shuffle=True)
    device = contextlib.nullcontext() if config.device == "auto" else keras.device(
        "cpu:0" if config.device == "cpu" else config.device.replace("cuda", "gpu"))
    try:
        with device:
            model.fit(**inputs, epochs=config.effective_epochs(), validation_data=validation,
                      callbacks=callbacks, verbose=(1 if sys.stderr.isatty() else 2) if progress else 0)
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
        if stopper is not None and stopper.restore_best_weights and stopper.best_weights is not None:
            model.set_weights(stopper.best_weights)
    ran = stopper is not None and stopper.best is not None
    history.finish(stopped_early=stopper is not None and stopper.stopped_epoch > 0,
                   best_epoch=stopper.best_epoch + 1 if ran else None,
                   restored_best_weights=ran and stopper.restore_best_weights and stopper.best_weights is not None)
    return history
