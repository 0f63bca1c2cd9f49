"""Training with ``model.fit``: TrainConfig mapped onto Keras's own callbacks.

Early stopping and learning-rate reduction are ``keras.callbacks.EarlyStopping`` and
``ReduceLROnPlateau`` with the config's values (featurelens's own implementation for the other
backends is tested to agree with them). The validation images come from the core's seeded,
stratified split and reach Keras as ``validation_data``, so every backend validates on the same
images. The training batches always come from a featurelens ``PyDataset``
(:mod:`featurelens_keras.data`: a seeded order per epoch, flips and 4-pixel shifts when augmenting),
so that a run resumed from a checkpoint (:mod:`featurelens_keras.state`) reads the same batches.
A NaN or infinite training loss stops training after the batch it appeared in (Keras's
``TerminateOnNaN`` semantics; Keras's per-batch logs are read, a host synchronisation per step on
a GPU, as Keras's own callback does).

The fast-path fields of TrainConfig map onto Keras as follows.

* ``label_smoothing``: cross-entropy against one-hot targets smoothed as
  ``(1 - s) * onehot + s / classes`` (torch's definition), on the model's probabilities or logits.
* ``lr_schedule``: the optimizer's update uses ``base * factor(step)`` with the torch trainer's
  factor (taken at the end of each step), while ``optimizer.learning_rate`` read from outside a
  step, by ``ReduceLROnPlateau`` and by the History, is the base rate, so plateau reduction keeps
  Keras's exact semantics on it. The History records the base rate of each epoch.
* ``weight_averaging``: Keras's optimizer EMA (``use_ema``, ``ema_momentum``) of the trainable
  weights; validation during training runs with the averaged weights swapped in (then swapped
  back), and ``fit`` returns the averaged weights. Unlike the torch trainer, batch-norm moving
  statistics are not averaged (Keras averages trainable variables only) and the average starts
  from the weights after the first step. Early stopping's best weights and epoch observers see the
  live, not the averaged, weights.
* ``precision``: ``bf16`` runs every layer but the final softmax under Keras's
  ``mixed_bfloat16`` policy (float32 weights, bfloat16 compute) for the duration of ``fit``, then
  restores each layer's policy; ``auto`` means ``bf16`` on a GPU, float32 elsewhere.
* ``compile``: ``auto`` and ``on`` compile the step (``jit_compile``: XLA on JAX; ``on`` asks
  torch.compile of Keras's torch backend, which ``auto`` leaves off there), ``off`` runs it
  un-compiled.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from featurelens.backends import (
    Checkpointer,
    EpochObserver,
    EpochRecord,
    History,
    TrainConfig,
    TrainingDivergedError,
    TrainingState,
    looks_like_probabilities,
    mode_for,
)
from featurelens_keras import state as saved_state
from featurelens_keras.data import EpochStreams, TrainingBatches


def lr_factor(config: TrainConfig, iterations, steps_per_epoch: int, epochs: int):
    """The schedule's factor for the step after ``iterations`` steps, as a Keras tensor (traceable).

    The torch trainer's definition: with ``t = iterations + 1``, ``t / warmup`` during the warm-up,
    then a linear or cosine decay reaching 0 at the last step.
    """
    ops = keras.ops
    t = ops.cast(iterations, "float32") + 1.0
    total = float(steps_per_epoch * epochs)
    warmup = min(float(config.warmup_epochs * steps_per_epoch), total)  # a warm-up longer than the run is cut
    span = total - warmup
    progress = ops.clip((t - warmup) / span, 0.0, 1.0) if span > 0 else ops.ones_like(t)
    decay = 0.5 * (1.0 + ops.cos(np.pi * progress)) if config.lr_schedule == "warmup_cosine" else 1.0 - progress
    return ops.where(t < warmup, t / max(warmup, 1e-12), decay)


class _ScheduledRate:
    """Optimizer mixin: updates use the base rate times a per-step factor, while
    ``learning_rate`` read outside a step (callbacks, the History) is the base rate itself."""

    _factor = None  # (iterations) -> factor tensor
    _in_step = False

    @property
    def learning_rate(self):
        base = self._get_current_learning_rate()
        return base * self._factor(self.iterations) if self._in_step and self._factor else base

    @learning_rate.setter
    def learning_rate(self, value):
        keras.optimizers.Optimizer.learning_rate.fset(self, value)

    def apply(self, grads, trainable_variables=None):
        self._in_step = True  # traced once per compilation, so the factor is inside the graph
        try:
            return super().apply(grads, trainable_variables)  # type: ignore[misc]
        finally:
            self._in_step = False


def make_optimizer(config: TrainConfig, steps_per_epoch: int | None = None) -> keras.optimizers.Optimizer:
    """The config's optimizer; with ``steps_per_epoch``, its LR schedule and weight averaging too."""
    extra = {}
    if config.weight_averaging and steps_per_epoch is not None:
        extra = dict(use_ema=True, ema_momentum=config.weight_averaging)
    if config.optimizer == "adam":
        cls, kwargs = keras.optimizers.Adam, dict(weight_decay=config.weight_decay or None)
    elif config.optimizer == "adamw":
        cls, kwargs = keras.optimizers.AdamW, dict(weight_decay=config.weight_decay)
    else:
        cls, kwargs = keras.optimizers.SGD, dict(momentum=config.momentum, nesterov=config.momentum > 0,
                                                 weight_decay=config.weight_decay or None)
    if config.lr_schedule == "constant" or steps_per_epoch is None:
        return cls(config.learning_rate, **kwargs, **extra)
    scheduled = type(f"Scheduled{cls.__name__}", (_ScheduledRate, cls), {})
    optimizer = scheduled(config.learning_rate, **kwargs, **extra)
    epochs = config.effective_epochs()
    optimizer._factor = lambda iterations: lr_factor(config, iterations, steps_per_epoch, epochs)
    return optimizer


def smoothed_crossentropy(smoothing: float, from_logits: bool):
    """Cross-entropy of integer labels against targets smoothed towards uniform by ``smoothing``."""

    def loss(y_true, y_pred):
        classes = keras.ops.shape(y_pred)[-1]
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        onehot = keras.ops.one_hot(labels, classes, dtype="float32")
        return keras.losses.categorical_crossentropy(onehot, keras.ops.cast(y_pred, "float32"),
                                                     from_logits=from_logits, label_smoothing=smoothing)

    loss.__name__ = "smoothed_crossentropy"
    return loss


class AveragedValidation(keras.callbacks.Callback):
    """Validates with the optimizer's averaged (EMA) weights: swapped in before each validation
    run inside ``fit`` and the live weights put back after it."""

    def __init__(self) -> None:
        super().__init__()
        self._live: list | None = None

    def on_test_begin(self, logs=None):
        # Copies, not optimizer.finalize_variable_values: that shares the average's buffer with the
        # weight, and JAX's next (donating) training step would then delete the average.
        optimizer = self.model.optimizer
        self._live = [keras.ops.convert_to_numpy(w) for w in self.model.trainable_weights]
        for variable, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average):
            if average is not None:
                variable.assign(keras.ops.convert_to_numpy(average))

    def on_test_end(self, logs=None):
        if self._live is not None:
            for variable, value in zip(self.model.trainable_weights, self._live):
                variable.assign(value)
            self._live = None


def on_gpu(config: TrainConfig) -> bool:
    if config.device == "cpu":
        return False
    if config.device.startswith("cuda"):
        return True
    return any(d.startswith("gpu") or d.startswith("cuda") for d in _devices())


def _devices() -> list[str]:
    try:
        return [str(d).lower() for d in keras.distribution.list_devices()]
    except Exception:  # a backend without the distribution API: assume no GPU
        return []


@contextlib.contextmanager
def precision_policy(model: keras.Model, config: TrainConfig):
    """Every layer but the final softmax in ``mixed_bfloat16`` while the block runs, when asked."""
    bf16 = config.precision == "bf16" or (config.precision == "auto" and on_gpu(config))
    if not bf16:
        yield
        return
    layers = [layer for layer in model._flatten_layers(include_self=False)
              if not isinstance(layer, (keras.layers.Softmax, keras.layers.InputLayer))]
    saved = [layer.dtype_policy for layer in layers]
    for layer in layers:
        layer.dtype_policy = "mixed_bfloat16"
    try:
        yield
    finally:
        for layer, policy in zip(layers, saved):
            layer.dtype_policy = policy


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


class StopOnNaN(keras.callbacks.Callback):
    """Raises :class:`TrainingDivergedError` after a batch whose loss (Keras's running mean of the
    epoch's batch losses, which a NaN or infinite batch makes NaN or infinite) is not finite."""

    def __init__(self, history: History) -> None:
        super().__init__()
        self.record = history
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            self.record.stop_reason = "diverged"
            raise TrainingDivergedError(self.epoch + 1, int(batch), float(loss), lr, history=self.record)


class CheckpointCallback(keras.callbacks.Callback):
    """Hands the training state to the checkpointer after every epoch, once the other callbacks decided."""

    def __init__(self, checkpoint: Checkpointer, history: History, epochs: int,
                 stopper: keras.callbacks.EarlyStopping | None,
                 reducer: keras.callbacks.ReduceLROnPlateau | None) -> None:
        super().__init__()
        self.checkpoint, self.record, self.epochs = checkpoint, history, epochs
        self.stopper, self.reducer = stopper, reducer

    def on_epoch_end(self, epoch, logs=None):
        finished = bool(self.model.stop_training) or epoch + 1 >= self.epochs
        if self.checkpoint.due(epoch + 1, finished):
            self.checkpoint.save(saved_state.export(self.model, epoch + 1, finished, self.record, self.stopper,
                                                    self.reducer))


def outputs_probabilities(model: keras.Model, x: np.ndarray) -> bool:
    """Whether the model's rows are probabilities (it ends in a softmax) rather than logits."""
    return looks_like_probabilities(keras.ops.convert_to_numpy(model(x[:8], training=False)))


def fit(model: keras.Model, train: tuple[np.ndarray, np.ndarray],
        validation: tuple[np.ndarray, np.ndarray] | None, config: TrainConfig, progress: bool = True,
        spec_built: bool = True, observers: Sequence[EpochObserver] = (), checkpoint: Checkpointer | None = None,
        resume: TrainingState | None = None) -> History:
    """Train with ``model.fit``; a user's model (``spec_built=False``) may output logits or
    probabilities, and is compiled with the matching loss (its own compile settings are replaced).
    ``observers`` see every finished epoch, ``checkpoint`` saves the state after epochs, training
    goes on from ``resume`` when given."""
    keras.utils.set_random_seed(config.seed)
    loss: Any = "sparse_categorical_crossentropy"  # spec-built models end in a softmax
    logits = False
    if not spec_built:
        logits = not outputs_probabilities(model, np.asarray(train[0][:8], np.float32))
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
    if config.label_smoothing:
        loss = smoothed_crossentropy(config.label_smoothing, logits)
    x, y = np.asarray(train[0], np.float32), np.asarray(train[1], np.int64)
    batches = TrainingBatches(x, y, config.batch_size, config.seed, augment=config.augment,
                              multiple=data_parallel_devices())
    jit = {"auto": "auto", "on": True, "off": False}[config.compile]
    model.compile(optimizer=make_optimizer(config, len(batches)), loss=loss, metrics=["accuracy"], jit_compile=jit)
    es_cfg, rl_cfg = config.early_stopping, config.reduce_lr
    history = History(monitor=config.monitor(validation is not None), backend="keras", device=keras.backend.backend())
    if resume is not None:
        history = History.from_dict({**resume.history.to_dict(), "backend": "keras", "device": history.device})
    callbacks: list[keras.callbacks.Callback] = [EpochStreams(batches), EpochRecorder(history)]
    if config.weight_averaging and validation is not None:
        callbacks.insert(0, AveragedValidation())
    if observers:
        callbacks.append(ObserverCallback(history, observers))
    callbacks.append(StopOnNaN(history))
    stopper = reducer = None
    if es_cfg is not None:
        stopper = keras.callbacks.EarlyStopping(monitor=es_cfg.monitor, patience=es_cfg.patience,
                                                min_delta=es_cfg.min_delta, mode=mode_for(es_cfg.monitor),
                                                restore_best_weights=es_cfg.restore_best_weights)
        callbacks.append(stopper)
    if rl_cfg is not None:
        reducer = keras.callbacks.ReduceLROnPlateau(
            monitor=rl_cfg.monitor, factor=rl_cfg.factor, patience=rl_cfg.patience, min_delta=rl_cfg.min_delta,
            cooldown=rl_cfg.cooldown, min_lr=rl_cfg.min_lr, mode=mode_for(rl_cfg.monitor))
        callbacks.append(reducer)
    epochs, initial_epoch = config.effective_epochs(), 0
    if resume is not None:
        saved_state.restore(model, resume)
        callbacks.append(saved_state.CallbackRestorer(resume, stopper, reducer))
        initial_epoch = resume.epoch
        epochs = resume.epoch if resume.finished else max(epochs, resume.epoch)
    if checkpoint is not None:
        callbacks.append(CheckpointCallback(checkpoint, history, epochs, stopper, reducer))
    spread = data_parallel_devices() > 1  # the distribution places every computation itself
    device = contextlib.nullcontext() if config.device == "auto" or spread else keras.device(
        "cpu:0" if config.device == "cpu" else config.device.replace("cuda", "gpu"))
    try:
        with device, precision_policy(model, config):
            model.fit(batches, epochs=epochs, initial_epoch=initial_epoch, validation_data=validation, shuffle=False,
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


def data_parallel_devices() -> int:
    """How many devices Keras's distribution (``keras.distribution.DataParallel``) spreads a batch over; 1 without."""
    distribution = keras.distribution.distribution() if hasattr(keras, "distribution") else None
    mesh = getattr(distribution, "device_mesh", None)
    return int(np.prod(mesh.shape)) if mesh is not None else 1
