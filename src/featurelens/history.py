"""What happened during training, epoch by epoch, as plain JSON-able data."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from featurelens._atomic import write_json
from featurelens.callbacks import mode_for
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
    def from_dict(cls, data: dict[str, Any]) -> History:
        data = dict(data)
        data.pop("lr_reductions", None)
        data["epochs"] = [EpochRecord(**r) for r in data.get("epochs", [])]
        return cls(**data)

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> History:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise ModelFolderError(f"cannot read the training history {path}: {exc}") from exc
