"""Training configuration, backend-neutral and validated field by field.

Early stopping and learning-rate reduction follow Keras's ``EarlyStopping`` and
``ReduceLROnPlateau`` exactly (see :mod:`featurelens.callbacks` for the rules), so a config means
the same on every backend.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, NoReturn

from featurelens.errors import ConfigError

MAX_EPOCHS_ENV = "FEATURELENS_MAX_EPOCHS"
MAX_SNAPSHOT_PROBE = 256
OPTIMIZERS = ("adam", "adamw", "sgd")
DEVICES = ("auto", "cpu", "cuda", "mps")
METRICS = ("val_loss", "val_accuracy", "loss", "accuracy")
LR_SCHEDULES = ("constant", "warmup_linear", "warmup_cosine")
PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_MODES = ("auto", "on", "off")


def _bad(path: str, value: Any, why: str) -> NoReturn:
    raise ConfigError(f"{path}: {value!r} is invalid: {why}")


def _number(path: str, value: Any, low: float, high: float | None = None, *, low_open: bool = False,
            integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        _bad(path, value, "expected an integer" if integer else "expected a number")
    if value < low or (low_open and value == low) or (high is not None and value > high):
        bound = f"> {low}" if low_open else f">= {low}"
        _bad(path, value, f"must be {bound}" + (f" and <= {high}" if high is not None else ""))


def _monitor(path: str, value: Any) -> None:
    if value not in METRICS:
        _bad(path, value, f"choose one of {', '.join(METRICS)}")


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs."""

    monitor: str = "val_loss"
    patience: int = 10
    min_delta: float = 0.0
    restore_best_weights: bool = True

    def __post_init__(self) -> None:
        _monitor("early_stopping.monitor", self.monitor)
        _number("early_stopping.patience", self.patience, 0, integer=True)
        _number("early_stopping.min_delta", self.min_delta, 0)


@dataclass(frozen=True)
class ReduceLROnPlateau:
    """Multiply the learning rate by ``factor`` when ``monitor`` plateaus for ``patience`` epochs."""

    monitor: str = "val_loss"
    factor: float = 0.5
    patience: int = 5
    min_delta: float = 1e-4
    min_lr: float = 1e-6
    cooldown: int = 0

    def __post_init__(self) -> None:
        _monitor("reduce_lr.monitor", self.monitor)
        _number("reduce_lr.factor", self.factor, 0, low_open=True)
        if self.factor >= 1:
            _bad("reduce_lr.factor", self.factor, "must be < 1 to reduce the learning rate")
        _number("reduce_lr.patience", self.patience, 0, integer=True)
        _number("reduce_lr.min_delta", self.min_delta, 0)
        _number("reduce_lr.min_lr", self.min_lr, 0)
        _number("reduce_lr.cooldown", self.cooldown, 0, integer=True)


@dataclass(frozen=True)
class TrainConfig:
    """How to train: the seed recipe's defaults (Adam 1e-3, batch 64, 10% validation, ...)."""

    epochs: int = 100
    batch_size: int = 64
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    validation_split: float = 0.1
    early_stopping: EarlyStopping | None = field(default_factory=EarlyStopping)
    reduce_lr: ReduceLROnPlateau | None = field(default_factory=ReduceLROnPlateau)
    augment: bool = False
    seed: int = 0
    device: str = "auto"
    #: Record snapshots (conv filters, probe feature maps) every this many epochs; 0: never.
    snapshot_every: int = 0
    #: Epochs (1-based) to record snapshots at, besides every ``snapshot_every``-th.
    snapshot_epochs: tuple[int, ...] = ()
    #: How many held-out images the snapshots' feature maps are taken of (fixed by ``seed``).
    snapshot_probe: int = 32
    #: Cross-entropy against targets smoothed towards uniform by this much (0: none).
    label_smoothing: float = 0.0
    #: A per-step factor on the learning rate: ``constant`` (1), or a linear warm-up from 0 over
    #: ``warmup_epochs`` then a linear (``warmup_linear``) or cosine (``warmup_cosine``) decay to 0 at
    #: the last step. It multiplies the rate that plateau reduction (``reduce_lr``) sets.
    lr_schedule: str = "constant"
    #: Epochs (fractions allowed) of the schedule's linear warm-up; one longer than the run (say, a
    #: recipe's warm-up with fewer ``epochs``) is cut at the run's end.
    warmup_epochs: float = 0.0
    #: Weight averaging: an exponential moving average of the weights with this decay per step,
    #: which training returns and validates (0: off).
    weight_averaging: float = 0.0
    #: ``auto``: bfloat16 autocast where the device supports it (CUDA), float32 elsewhere.
    precision: str = "auto"
    #: Compile and graph-capture the training step: ``auto`` on CUDA, off on the CPU.
    compile: str = "auto"
    #: With a run folder, write a checkpoint every this many epochs (0: none; resuming then restarts).
    checkpoint_every: int = 1
    #: Data-parallel training (torchrun): batch-norm statistics over the global batch, not each process's.
    sync_batchnorm: bool = False
    #: Stop as diverged when an epoch's mean training loss exceeds this many times the loss of guessing
    #: uniformly, ln(classes) (0: off; NaN or infinite losses always stop training).
    divergence_factor: float = 3.0

    def __post_init__(self) -> None:
        _number("epochs", self.epochs, 1, integer=True)
        _number("batch_size", self.batch_size, 1, integer=True)
        if self.optimizer not in OPTIMIZERS:
            _bad("optimizer", self.optimizer, f"choose one of {', '.join(OPTIMIZERS)}")
        _number("learning_rate", self.learning_rate, 0, low_open=True)
        _number("weight_decay", self.weight_decay, 0)
        _number("momentum", self.momentum, 0, 1)
        _number("validation_split", self.validation_split, 0, 1)
        if self.validation_split >= 1:
            _bad("validation_split", self.validation_split, "must be < 1 so something is left to train on")
        if not isinstance(self.augment, bool):
            _bad("augment", self.augment, "expected true or false")
        _number("seed", self.seed, 0, integer=True)
        if self.device not in DEVICES and not str(self.device).startswith(("cuda:", "mps:")):
            _bad("device", self.device, f"choose one of {', '.join(DEVICES)} or cuda:N")
        _number("snapshot_every", self.snapshot_every, 0, integer=True)
        if isinstance(self.snapshot_epochs, (str, bytes)) or not hasattr(self.snapshot_epochs, "__iter__"):
            _bad("snapshot_epochs", self.snapshot_epochs, "expected a list of epoch numbers, e.g. [1, 5, 20]")
        for i, epoch in enumerate(self.snapshot_epochs):
            _number(f"snapshot_epochs[{i}]", epoch, 1, self.epochs, integer=True)
        object.__setattr__(self, "snapshot_epochs", tuple(sorted(set(self.snapshot_epochs))))
        _number("snapshot_probe", self.snapshot_probe, 1, MAX_SNAPSHOT_PROBE, integer=True)
        _number("label_smoothing", self.label_smoothing, 0, 1)
        if self.label_smoothing >= 1:
            _bad("label_smoothing", self.label_smoothing, "must be < 1 (1 would make every target uniform)")
        if self.lr_schedule not in LR_SCHEDULES:
            _bad("lr_schedule", self.lr_schedule, f"choose one of {', '.join(LR_SCHEDULES)}")
        _number("warmup_epochs", self.warmup_epochs, 0)
        if self.warmup_epochs and self.lr_schedule == "constant":
            _bad("warmup_epochs", self.warmup_epochs, "a warm-up needs lr_schedule warmup_linear or warmup_cosine")
        _number("weight_averaging", self.weight_averaging, 0, 1)
        if self.weight_averaging >= 1:
            _bad("weight_averaging", self.weight_averaging, "the decay must be < 1 (e.g. 0.99; 0 turns it off)")
        if self.precision not in PRECISIONS:
            _bad("precision", self.precision, f"choose one of {', '.join(PRECISIONS)}")
        if self.compile not in COMPILE_MODES:
            _bad("compile", self.compile, f"choose one of {', '.join(COMPILE_MODES)}")
        _number("checkpoint_every", self.checkpoint_every, 0, integer=True)
        if not isinstance(self.sync_batchnorm, bool):
            _bad("sync_batchnorm", self.sync_batchnorm, "expected true or false")
        _number("divergence_factor", self.divergence_factor, 0)
        if 0 < self.divergence_factor < 1:
            _bad("divergence_factor", self.divergence_factor, "must be 0 (off) or >= 1: a fresh model's loss is 1x")
        needs_val = [c.monitor for c in (self.early_stopping, self.reduce_lr)
                     if c is not None and c.monitor.startswith("val_")]
        if needs_val and self.validation_split == 0:
            _bad("validation_split", 0, f"{needs_val[0]} is monitored, so a validation split is "
                 "needed; set validation_split > 0 or monitor 'loss'/'accuracy'")

    @property
    def snapshots(self) -> bool:
        """Whether this config records training snapshots."""
        return self.snapshot_every > 0 or bool(self.snapshot_epochs)

    def snapshot_schedule(self, epochs: int | None = None) -> tuple[int, ...]:
        """The epochs (1-based) snapshots are recorded at, up to ``epochs`` (default: the effective
        epochs); the model as initialized (epoch 0) and as returned are recorded besides."""
        last = self.effective_epochs() if epochs is None else epochs
        every = set(range(self.snapshot_every, last + 1, self.snapshot_every)) if self.snapshot_every else set()
        return tuple(sorted(every | {e for e in self.snapshot_epochs if e <= last}))

    def monitor(self, has_validation: bool) -> str:
        """The metric the History calls best: early stopping's, else ``val_loss`` (``loss`` without
        validation data)."""
        if self.early_stopping is not None:
            return self.early_stopping.monitor
        return "val_loss" if has_validation else "loss"

    def effective_epochs(self) -> int:
        """``epochs``, capped by ``FEATURELENS_MAX_EPOCHS`` when set (docs builds, CI)."""
        cap = os.environ.get(MAX_EPOCHS_ENV, "").strip()
        if not cap:
            return self.epochs
        if not cap.isdigit() or int(cap) < 1:
            raise ConfigError(f"{MAX_EPOCHS_ENV}={cap!r} is invalid: set it to a positive integer or unset it")
        return min(self.epochs, int(cap))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["snapshot_epochs"] = list(self.snapshot_epochs)  # JSON has lists; from_dict takes them back
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(sorted(unknown))}; "
                              f"the known ones are {', '.join(sorted(known))}")
        kwargs = dict(data)
        for key, sub in (("early_stopping", EarlyStopping), ("reduce_lr", ReduceLROnPlateau)):
            if isinstance(kwargs.get(key), dict):
                try:
                    kwargs[key] = sub(**kwargs[key])
                except TypeError as exc:
                    raise ConfigError(f"{key}: {exc}") from exc
        return cls(**kwargs)

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)
