"""Stop a run whose training loss exploded, whatever the backend: an epoch observer run by the core.

Backends stop at the first NaN or infinite batch loss themselves (Keras's ``TerminateOnNaN``
semantics; :class:`~featurelens.backends.TrainingDivergedError`). A loss can also blow up and stay
finite -- Adam at a learning rate of 1e6 trains on to losses of 1e12 -- so after every epoch this
observer compares the epoch's mean training loss with the loss of guessing uniformly, ln(classes):
above ``config.divergence_factor`` times that (3 by default; a fresh model starts near 1x and a
learning one goes below it) the run has diverged. The check reads the History only: no cost.
"""

from __future__ import annotations

import math
from typing import Any

from featurelens.config import TrainConfig
from featurelens.errors import TrainingDivergedError
from featurelens.history import EpochRecord, History


class DivergenceGuard:
    """An :class:`~featurelens.backends.EpochObserver` raising :class:`TrainingDivergedError`."""

    def __init__(self, config: TrainConfig, num_classes: int, history: History | None = None) -> None:
        self.factor = config.divergence_factor
        self.guess = math.log(num_classes) if num_classes > 1 else 0.0
        self.history = History(epochs=list(history.epochs) if history else [], monitor=config.monitor(True))

    @property
    def limit(self) -> float:
        """The largest mean training loss an epoch may end with (inf when the check is off)."""
        return self.factor * self.guess if self.factor and self.guess else math.inf

    def __call__(self, epoch: int, record: EpochRecord, native: Any) -> None:
        self.history.append(record)
        loss = record.loss
        if math.isfinite(loss) and loss <= self.limit:
            return
        why = f"the training loss is {loss}" if not math.isfinite(loss) else (
            f"the epoch's mean training loss {loss:.4g} is over {self.factor:g} times the {self.guess:.3g} of guessing "
            f"uniformly (divergence_factor)")
        self.history.stop_reason = "diverged"
        raise TrainingDivergedError(epoch, None, loss, record.learning_rate, why=why, history=self.history)
