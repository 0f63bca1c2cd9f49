"""What happened during training, epoch by epoch, as plain JSON-able data."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from featurelens._atomic import write_json
from featurelens.callbacks import mode_for
from featurelens.checks import (
    Bool,
    Check,
    ErrorType,
    Int,
    ListOf,
    Nullable,
    Number,
    Object,
    OneOf,
    Text,
    check_fields,
    fail,
    parse_json,
    require_object,
)
from featurelens.config import MAX_EPOCHS, METRICS
from featurelens.errors import ModelFolderError

#: Why training ended.
STOP_REASONS = {
    "early_stopping": "the monitored metric stopped improving (early stopping)",
    "max_epochs": "the epoch limit was reached",
    "interrupted": "training was interrupted (Ctrl-C)",
    "diverged": "the training loss became NaN, infinite or exploded (see TrainingDivergedError)",
}


@dataclass
class EpochRecord:
    """Metrics of one epoch (1-based ``epoch``). Validation values are None without a split."""

    epoch: int
    loss: float
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    learning_rate: float
    seconds: float


_LOSS = Number(0, math.inf, "a loss; NaN where training diverged", finite=False)
_ACCURACY = Number(0, 1, "a fraction of the examples; NaN when there were none", finite=False)
#: The checks of :class:`EpochRecord`'s fields (all required but the validation ones).
EPOCH_FIELDS: dict[str, Check] = {
    "epoch": Int(1, MAX_EPOCHS, "1-based"),
    "loss": _LOSS,
    "accuracy": _ACCURACY,
    "val_loss": Nullable(_LOSS),
    "val_accuracy": Nullable(_ACCURACY),
    "learning_rate": Number(0, math.inf),
    "seconds": Number(0, math.inf),
}
_OPTIONAL_EPOCH_FIELDS = ("val_loss", "val_accuracy")


def _records(error: ErrorType, path: str, value: Any) -> list[EpochRecord]:
    records: list[EpochRecord] = []
    for i, raw in enumerate(ListOf(Object("one epoch's metrics"), MAX_EPOCHS)(error, path, value)):
        where = f"{path}[{i}]"
        missing = [k for k in EPOCH_FIELDS if k not in raw and k not in _OPTIONAL_EPOCH_FIELDS]
        if missing:
            raise error(f"{where}.{missing[0]} is missing; every epoch records {', '.join(EPOCH_FIELDS)}")
        known = {k: v for k, v in raw.items() if k in EPOCH_FIELDS}  # fields of a newer version are left out
        record = EpochRecord(**{"val_loss": None, "val_accuracy": None,
                                **check_fields(error, where, known, EPOCH_FIELDS)})
        if records and record.epoch <= records[-1].epoch:
            fail(error, f"{where}.epoch", record.epoch, f"epochs must increase (the one before is {records[-1].epoch})")
        records.append(record)
    return records


#: The checks of :class:`History`'s fields; a field added to History gets its line here.
HISTORY_FIELDS: dict[str, Check] = {
    "epochs": _records,
    "monitor": OneOf(METRICS),
    "best_epoch": Nullable(Int(1, MAX_EPOCHS)),
    "stop_reason": Text(200, hint=f"why training ended, e.g. {', '.join(STOP_REASONS)}"),
    "restored_best_weights": Bool(),
    "backend": Text(200),
    "device": Text(200),
    "compile_seconds": Number(0, math.inf),
}


@dataclass
class History:
    """Per-epoch metrics plus the best epoch and why training stopped."""

    epochs: list[EpochRecord] = field(default_factory=list)
    monitor: str = "val_loss"
    best_epoch: int | None = None
    stop_reason: str = "max_epochs"
    restored_best_weights: bool = False
    backend: str = ""
    device: str = ""
    #: Seconds spent compiling the training step (left out of the epochs' ``seconds``); 0 when not compiled.
    compile_seconds: float = 0.0

    def append(self, record: EpochRecord) -> None:
        self.epochs.append(record)

    def metric(self, name: str) -> list[float | None]:
        """One metric over epochs, e.g. ``history.metric("val_loss")``."""
        return [getattr(r, name) for r in self.epochs]

    @property
    def lr_reductions(self) -> list[int]:
        """Epochs (1-based) whose learning rate is lower than the epoch before."""
        return [b.epoch for a, b in zip(self.epochs, self.epochs[1:]) if b.learning_rate < a.learning_rate]

    @property
    def best(self) -> EpochRecord | None:
        if self.best_epoch is None:
            return None
        return next((r for r in self.epochs if r.epoch == self.best_epoch), None)

    def best_epoch_by_monitor(self) -> int | None:
        """The 1-based epoch with the best ``monitor`` value (for runs without early stopping)."""
        values = self.metric(self.monitor)
        scored = [(v, r.epoch) for v, r in zip(values, self.epochs) if v is not None and v == v]
        if not scored:
            return None
        pick = max if mode_for(self.monitor) == "max" else min
        return pick(scored, key=lambda item: item[0])[1]

    def finish(self, *, stopped_early: bool, best_epoch: int | None = None,
               restored_best_weights: bool = False) -> None:
        """End-of-training bookkeeping, the same for every trainer.

        ``best_epoch`` (1-based) comes from the early stopper when one ran; without it the best
        epoch is the one with the best ``monitor`` value. An interrupted run keeps its reason.
        """
        if stopped_early and self.stop_reason != "interrupted":
            self.stop_reason = "early_stopping"
        self.best_epoch = best_epoch if best_epoch is not None else self.best_epoch_by_monitor()
        self.restored_best_weights = restored_best_weights

    @property
    def total_seconds(self) -> float:
        return sum(r.seconds for r in self.epochs)

    def describe(self) -> str:
        """One line: epochs run, why it stopped, the best epoch and its metrics."""
        if not self.epochs:
            return "no epoch was completed"
        text = f"{len(self.epochs)} epochs in {self.total_seconds:.0f} s; stopped because " \
               f"{STOP_REASONS.get(self.stop_reason, self.stop_reason)}"
        best = self.best
        if best is not None:
            value = getattr(best, self.monitor)
            text += f"; best epoch {best.epoch} ({self.monitor} {value:.4f})"
            if self.restored_best_weights:
                text += ", whose weights were restored"
        return text

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lr_reductions"] = self.lr_reductions
        return d

    @classmethod
    def from_dict(cls, data: Any) -> History:
        """From :meth:`to_dict`'s form, every field checked (a :class:`ModelFolderError` names the
        wrong one, e.g. ``epochs[3].loss``). Keys a newer featurelens added are left out."""
        data = require_object(ModelFolderError, "history", data, "as history.json holds it")
        known = {k: v for k, v in data.items() if k in HISTORY_FIELDS}
        history = cls(**check_fields(ModelFolderError, "", known, HISTORY_FIELDS))
        if history.best_epoch is not None:
            best = history.best
            if best is None or getattr(best, history.monitor) is None:
                fail(ModelFolderError, "best_epoch", history.best_epoch,
                     f"it must be a recorded epoch with a {history.monitor} value")
        return history

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> History:
        """Read a ``history.json``; anything wrong with it is a :class:`ModelFolderError` saying what."""
        try:
            raw = Path(path).read_bytes()
            return cls.from_dict(parse_json(raw, ModelFolderError, "the file"))
        except (OSError, ModelFolderError) as exc:
            raise ModelFolderError(f"cannot read the training history {path}: {exc}") from exc
