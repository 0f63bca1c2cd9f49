"""Training configuration, backend-neutral and validated field by field.

Early stopping and learning-rate reduction follow Keras's ``EarlyStopping`` and
``ReduceLROnPlateau`` exactly (see :mod:`featurelens.callbacks` for the rules), so a config means
the same on every backend.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, NoReturn

from featurelens.checks import Bool, Check, Int, ListOf, Number, OneOf, Text, check_dataclass, check_fields, fail, shown
from featurelens.errors import ConfigError

MAX_EPOCHS_ENV = "FEATURELENS_MAX_EPOCHS"
MAX_SNAPSHOT_PROBE = 256
OPTIMIZERS = ("adam", "adamw", "sgd")
DEVICES = ("auto", "cpu", "cuda", "mps")
METRICS = ("val_loss", "val_accuracy", "loss", "accuracy")
LR_SCHEDULES = ("constant", "warmup_linear", "warmup_cosine")
PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_MODES = ("auto", "on", "off")


#: Upper bounds, so that a typo cannot start a run that never ends or a batch that exhausts memory.
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 65_536
MAX_LEARNING_RATE = 10.0
MAX_SEED = 2**32 - 1  # what every framework's seeding takes
MAX_SNAPSHOT_EPOCHS = 10_000
_FOREVER = math.inf  # a finite number with no upper bound

_EPOCH_COUNT = Int(0, MAX_EPOCHS, "a number of epochs")
_MONITOR = OneOf(METRICS)

#: The checks of :class:`EarlyStopping`'s fields.
EARLY_STOPPING_FIELDS: dict[str, Check] = {
    "monitor": _MONITOR,
    "patience": _EPOCH_COUNT,
    "min_delta": Number(0, _FOREVER, "the smallest change that counts as an improvement"),
    "restore_best_weights": Bool(),
}
#: The checks of :class:`ReduceLROnPlateau`'s fields.
REDUCE_LR_FIELDS: dict[str, Check] = {
    "monitor": _MONITOR,
    "factor": Number(0, 1, "the learning rate is multiplied by it on a plateau, so < 1 reduces it",
                     low_open=True, high_open=True),
    "patience": _EPOCH_COUNT,
    "min_delta": Number(0, _FOREVER, "the smallest change that counts as an improvement"),
    "min_lr": Number(0, _FOREVER, "the learning rate is never reduced below it"),
    "cooldown": _EPOCH_COUNT,
}


def _bad(path: str, value: Any, why: str) -> NoReturn:
    fail(ConfigError, path, value, why)


def _sub_config(path: str, cls: type, table: dict[str, Check], value: Any) -> Any:
    """``value`` as a ``cls`` (EarlyStopping, ReduceLROnPlateau): an instance, an object of its fields, or None."""
    if value is None or isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        _bad(path, value, f"expected an object with the fields {', '.join(table)} (all optional), or null "
                          "to turn it off")
    check_fields(ConfigError, path, value, {}, known=tuple(table))
    return cls(**value)


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs."""

    monitor: str = "val_loss"
    patience: int = 10
    min_delta: float = 0.0
    restore_best_weights: bool = True

    def __post_init__(self) -> None:
        check_dataclass(ConfigError, "early_stopping", self, EARLY_STOPPING_FIELDS)


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
        check_dataclass(ConfigError, "reduce_lr", self, REDUCE_LR_FIELDS)


#: The checks of :class:`TrainConfig`'s fields (relations between fields are checked besides).
#: A new field gets its line here; a test fails while a field has none.
TRAIN_FIELDS: dict[str, Check] = {
    "epochs": Int(1, MAX_EPOCHS),
    "batch_size": Int(1, MAX_BATCH_SIZE),
    "optimizer": OneOf(OPTIMIZERS),
    "learning_rate": Number(0, MAX_LEARNING_RATE, low_open=True),
    "weight_decay": Number(0, 1),
    "momentum": Number(0, 1),
    "validation_split": Number(0, 1, "must be < 1 so something is left to train on", high_open=True),
    "early_stopping": lambda error, path, value: _sub_config(path, EarlyStopping, EARLY_STOPPING_FIELDS, value),
    "reduce_lr": lambda error, path, value: _sub_config(path, ReduceLROnPlateau, REDUCE_LR_FIELDS, value),
    "augment": Bool(),
    "seed": Int(0, MAX_SEED),
    "device": Text(16, r"auto|cpu|cuda|mps|(cuda|mps):\d{1,3}", f"choose one of {', '.join(DEVICES)} or cuda:N"),
    "snapshot_every": _EPOCH_COUNT,
    "snapshot_epochs": ListOf(Int(1, MAX_EPOCHS), MAX_SNAPSHOT_EPOCHS, hint="epoch numbers, e.g. [1, 5, 20]"),
    "snapshot_probe": Int(1, MAX_SNAPSHOT_PROBE),
    "label_smoothing": Number(0, 1, "1 would make every target uniform", high_open=True),
    "lr_schedule": OneOf(LR_SCHEDULES),
    "warmup_epochs": Number(0, MAX_EPOCHS),
    "weight_averaging": Number(0, 1, "the decay per step, e.g. 0.99; 0 turns it off", high_open=True),
    "precision": OneOf(PRECISIONS),
    "compile": OneOf(COMPILE_MODES),
    "checkpoint_every": _EPOCH_COUNT,
    "sync_batchnorm": Bool(),
    "divergence_factor": Number(0, 1e6, "0 turns it off; otherwise >= 1, e.g. 3"),
}


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
        if isinstance(self.snapshot_epochs, (set, frozenset, range)):  # any collection of epochs will do
            object.__setattr__(self, "snapshot_epochs", tuple(self.snapshot_epochs))
        check_dataclass(ConfigError, "", self, TRAIN_FIELDS)
        for i, epoch in enumerate(self.snapshot_epochs):
            Int(1, self.epochs, "snapshots are taken at epochs of the run")(ConfigError, f"snapshot_epochs[{i}]", epoch)
        object.__setattr__(self, "snapshot_epochs", tuple(sorted(set(self.snapshot_epochs))))
        if self.warmup_epochs and self.lr_schedule == "constant":
            _bad("warmup_epochs", self.warmup_epochs, "a warm-up needs lr_schedule warmup_linear or warmup_cosine")
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
    def from_dict(cls, data: Any) -> TrainConfig:
        """A config from plain data (a ``--config`` file's object), naming the exact field that is wrong."""
        if not isinstance(data, dict):
            _bad("config", data, "expected a JSON object of TrainConfig fields")
        known = {f.name for f in fields(cls)}
        unknown = sorted(map(str, set(data) - known))
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(shown(k) for k in unknown[:5])}; "
                              f"the known ones are {', '.join(sorted(known))}")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)
