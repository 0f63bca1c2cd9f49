"""A trainer's state between epochs, as plain data: what checkpoints hold and resuming continues from.

A backend declaring :attr:`~featurelens.backends.Capability.RESUME` exports its whole training state
after a completed epoch as a :class:`TrainingState` -- numpy arrays (weights, optimizer slots, the
best weights early stopping keeps, random-generator states) and JSON-able values (counters, the
callbacks' state, the learning rate) -- and continues from one it is given. The core writes it to
the run folder (safetensors plus JSON, no pickle; :mod:`featurelens.checkpoint`) and reads it back,
so a backend never touches files. The promise: on the CPU, training resumed from the state after
epoch ``k`` ends with exactly the weights and History (timings aside) of the uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from featurelens.errors import FeaturelensError
from featurelens.history import History


@dataclass
class TrainingState:
    """Everything a trainer needs to go on after epoch ``epoch`` (1-based, the last one completed).

    ``finished`` says that no epoch follows (early stopping stopped, or the last epoch ran): resuming
    then only ends training as the uninterrupted run did (e.g. restoring the best weights).
    ``arrays`` are numpy arrays under names the backend chooses (``/`` groups them); ``values`` is
    JSON-able. ``backend`` is the name of the backend that wrote it; another backend refuses it.
    """

    epoch: int
    finished: bool
    history: History
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    backend: str = ""

    def put(self, prefix: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Add ``arrays`` under ``prefix/``: ``put("optimizer", {"0/exp_avg": ...})``."""
        for name, array in arrays.items():
            self.arrays[f"{prefix}/{name}"] = np.asarray(array, order="C")  # (ascontiguousarray makes 0-d 1-d)

    def group(self, prefix: str) -> dict[str, np.ndarray]:
        """The arrays added under ``prefix/``, without it (empty when there are none)."""
        start = f"{prefix}/"
        return {name[len(start):]: array for name, array in self.arrays.items() if name.startswith(start)}

    def value(self, key: str) -> Any:
        """``values[key]``, or a clear error naming the key when the state lacks it."""
        if key not in self.values:
            raise FeaturelensError(f"the training state of epoch {self.epoch} lacks {key!r}; it was written by "
                                   "another version of the backend and cannot be resumed here")
        return self.values[key]


class Checkpointer(Protocol):
    """Given to :meth:`Backend.fit <featurelens.backends.Backend.fit>` to save the training state.

    After every completed epoch -- once the observers ran and early stopping and LR reduction took
    their decisions, so the state is the one the next epoch starts from -- a trainer asks
    ``due(epoch, finished)`` and, only if true, exports its state and calls ``save`` with it.
    ``due`` is false on every process but the main one of a data-parallel run.
    """

    def due(self, epoch: int, finished: bool) -> bool: ...

    def save(self, state: TrainingState) -> None: ...


def stream_seed(seed: int, *keys: int) -> int:
    """A seed for one random stream of a run, e.g. ``stream_seed(config.seed, epoch, SHUFFLE)``.

    Trainers re-seed their streams (shuffling, augmentation, dropout) at every epoch from the run's
    seed and the epoch, so the state after an epoch is fully given by the epoch number: a resumed
    run draws exactly what the uninterrupted one drew, whatever the world size for streams that do
    not depend on the process. numpy's ``SeedSequence`` mixes the keys; the result fits in 63 bits.
    """
    words = np.random.SeedSequence([int(seed), *(int(k) for k in keys)]).generate_state(2, np.uint32)
    return int(words[0]) << 31 | int(words[1]) >> 1
