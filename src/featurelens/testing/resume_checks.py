"""Checks of long-run training: a NaN loss stops training, a resumed run ends bit-identical.

The resume check trains the kit spec for three CPU epochs with everything that carries state --
augmentation, dropout, early stopping keeping the best weights, LR reduction, weight averaging --
while a checkpointer keeps every state; each state goes through safetensors and JSON (what a
checkpoint on disk holds) and training resumed from it must end with the same weights, bit for
bit, and the same History but for timings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from safetensors.numpy import load, save

from featurelens.backends.contract import Capability
from featurelens.backends.state import TrainingState
from featurelens.errors import TrainingDivergedError
from featurelens.history import History
from featurelens.testing import fixtures
from featurelens.testing.checks import Check, KitContext, _expect_error, expect

TIMING_FIELDS = ("seconds",)


@dataclass
class KeepingCheckpointer:
    """A :class:`~featurelens.backends.Checkpointer` keeping every state in memory, as a checkpoint on
    disk would hold it (safetensors bytes and JSON text)."""

    states: list[TrainingState] = field(default_factory=list)

    def due(self, epoch: int, finished: bool) -> bool:
        return True

    def save(self, state: TrainingState) -> None:
        self.states.append(stored(state))


def stored(state: TrainingState) -> TrainingState:
    """``state`` after a trip through safetensors and JSON (what :mod:`featurelens.checkpoint` writes)."""
    arrays = load(save({k: np.asarray(v, order="C") for k, v in state.arrays.items()})) if state.arrays else {}
    record = json.loads(json.dumps({"values": state.values, "history": state.history.to_dict()}))
    return TrainingState(state.epoch, state.finished, History.from_dict(record["history"]), arrays,
                         record["values"], state.backend)


def comparable(history: History) -> dict[str, Any]:
    """The History without what depends on the clock."""
    data = history.to_dict()
    data.pop("compile_seconds", None)
    for record in data["epochs"]:
        for key in TIMING_FIELDS:
            record.pop(key, None)
    return data


def _fit(ctx: KitContext, resume: TrainingState | None = None,
         checkpoint: KeepingCheckpointer | None = None) -> tuple[dict[str, np.ndarray], History]:
    config = fixtures.resume_config()
    x, y = fixtures.learnable_data(ctx.spec, 48, seed=3)
    vx, vy = fixtures.learnable_data(ctx.spec, 12, seed=4)
    native = ctx.backend.build(ctx.spec, seed=config.seed)
    extra: dict[str, Any] = {}
    if resume is not None:
        extra["resume"] = resume
    if checkpoint is not None:
        extra["checkpoint"] = checkpoint
    history = ctx.backend.fit(native, ctx.spec, (x, y), (vx, vy), config, progress=False, **extra)
    return ctx.backend.get_weights(native), history


def check_resume_bit_identical(ctx: KitContext) -> str:
    keeper = KeepingCheckpointer()
    weights, history = _fit(ctx, checkpoint=keeper)
    epochs = [s.epoch for s in keeper.states]
    expect(epochs == [1, 2, 3], f"the checkpointer saw the states of epochs {epochs}; with due() always true it must "
           "see every epoch, [1, 2, 3]")
    expect([s.finished for s in keeper.states] == [False, False, True],
           "only the state after the last epoch may say finished")
    expect(all(s.backend == ctx.backend.name for s in keeper.states),
           f"TrainingState.backend must be {ctx.backend.name!r}")
    expect(len(history.lr_reductions) > 0, "the run's LR reduction never fired; the check needs it to")
    for resumed_from in (keeper.states[0], keeper.states[-1]):  # mid-run, and after the last epoch
        again, resumed = _fit(ctx, resume=resumed_from)
        changed = [k for k in weights if not np.array_equal(weights[k], again[k])]
        worst = max((float(np.abs(weights[k] - again[k]).max()) for k in changed), default=0.0)
        expect(not changed, f"resumed after epoch {resumed_from.epoch}, training ended with other weights: "
               f"{len(changed)} differ, first {changed[:1]}, by up to {worst:.3g}; every state (optimizer, "
               "callbacks, random streams, weight average) must be in the TrainingState")
        expect(comparable(resumed) == comparable(history), f"resumed after epoch {resumed_from.epoch}, the History "
               f"differs from the uninterrupted run's:\n{comparable(resumed)}\nvs\n{comparable(history)}")
    return ("resumed after epoch 1 and after the last (states through safetensors and JSON), training ends with the "
            "same weights bit for bit and the same History")


def check_nan_loss_stops_training(ctx: KitContext) -> str:
    config = fixtures.train_config(epochs=2)
    x, y = fixtures.learnable_data(ctx.spec, 48, seed=3)
    x[20] = np.nan  # batch 1 of 16 images: its loss is NaN
    native = ctx.backend.build(ctx.spec, seed=config.seed)
    error = _expect_error(lambda: ctx.backend.fit(native, ctx.spec, (x, y), None, config, progress=False),
                          TrainingDivergedError, "fit on a batch whose loss is NaN")
    assert isinstance(error, TrainingDivergedError)
    expect(error.epoch == 1, f"the NaN loss is in epoch 1 but the error says epoch {error.epoch}")
    expect(error.batch is not None and error.batch >= 0, f"the error must name the batch, got {error.batch!r}")
    expect(not np.isfinite(error.loss), f"the error must carry the loss, got {error.loss!r}")
    return f"a NaN loss stops training with TrainingDivergedError at epoch 1, batch {error.batch}"


CHECKS: tuple[Check, ...] = (
    Check("nan_loss_stops_training", "a NaN training loss raises TrainingDivergedError naming epoch, batch and loss",
          Capability.TRAIN, check_nan_loss_stops_training),
    Check("resume_bit_identical", "training resumed from the state after any epoch ends bit-identical on the CPU",
          Capability.RESUME, check_resume_bit_identical),
)
