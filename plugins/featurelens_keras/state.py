"""The Keras trainer's state as numpy arrays and JSON values (:class:`featurelens.backends.TrainingState`).

Arrays: ``model/<i>`` -- every variable of the model in order (``model.variables``: weights,
batch-norm moving statistics and the ``SeedGenerator`` states dropout draws from);
``optimizer/<i>`` -- every optimizer variable (iterations, learning rate, moments, the weight
average); ``early_stopping/<i>`` -- ``EarlyStopping.best_weights``. Values: the variables' paths
(checked on loading), ``EarlyStopping``'s ``wait``, ``best``, ``best_epoch`` and ``stopped_epoch``,
``ReduceLROnPlateau``'s ``wait``, ``cooldown_counter`` and ``best``. The batches need nothing: their
order and augmentation depend on the seed and the epoch only (:mod:`featurelens_keras.data`).

Keras's callbacks reset their state in ``on_train_begin``; :class:`CallbackRestorer`, placed after
them, puts the saved state back.
"""

from __future__ import annotations

import re
from typing import Any

import keras
import numpy as np

from featurelens.backends import FeaturelensError, History, RunFolderError, TrainingState

STOPPER_STATE = ("wait", "stopped_epoch", "best", "best_epoch")
REDUCER_STATE = ("wait", "cooldown_counter", "best")


def _numpy(variable: Any) -> np.ndarray:
    """A host copy in the variable's own shape (scalars convert to shape (1,) otherwise)."""
    return np.array(keras.ops.convert_to_numpy(variable.value), copy=True).reshape(tuple(variable.shape))


def _plain(value: Any) -> Any:
    """A callback attribute as a JSON value (numpy scalars become Python numbers)."""
    return value.item() if isinstance(value, np.generic) else value


def export(model: keras.Model, epoch: int, finished: bool, history: History,
           stopper: keras.callbacks.EarlyStopping | None,
           reducer: keras.callbacks.ReduceLROnPlateau | None) -> TrainingState:
    """The state after ``epoch`` (1-based), read in ``on_epoch_end`` after the callbacks decided."""
    state = TrainingState(epoch, finished, History.from_dict(history.to_dict()), backend="keras")
    state.put("model", {f"{i:04d}": _numpy(v) for i, v in enumerate(model.variables)})
    state.put("optimizer", {f"{i:04d}": _numpy(v) for i, v in enumerate(model.optimizer.variables)})
    state.values["model_paths"] = [v.path for v in model.variables]
    state.values["optimizer_paths"] = [v.path for v in model.optimizer.variables]
    if stopper is not None:
        state.values["stopper"] = {name: _plain(getattr(stopper, name)) for name in STOPPER_STATE}
        if stopper.best_weights is not None:
            best = {f"{i:04d}": np.array(w, copy=True) for i, w in enumerate(stopper.best_weights)}
            state.put("early_stopping", best)
    if reducer is not None:
        state.values["reducer"] = {name: _plain(getattr(reducer, name)) for name in REDUCER_STATE}
    return state


def _unnumbered(path: str) -> str:
    """``seed_generator_3/seed_generator_state`` -> ``seed_generator/seed_generator_state``: Keras numbers
    auto-named objects per process, so the same model built twice has other names."""
    return re.sub(r"_\d+(?=/|$)", "", path)


def _assign(variables: list[Any], arrays: dict[str, np.ndarray], paths: list[str], what: str) -> None:
    if [_unnumbered(v.path) for v in variables] != [_unnumbered(p) for p in paths] or len(arrays) != len(variables):
        raise FeaturelensError(f"the saved {what} variables ({len(paths)}) are not this model's "
                               f"({len(variables)}); the checkpoint belongs to another model or config")
    for i, variable in enumerate(variables):
        value = arrays[f"{i:04d}"]
        if tuple(value.shape) != tuple(variable.shape):
            raise FeaturelensError(f"the saved {what} variable {variable.path} has shape {value.shape}, the model's "
                                   f"{tuple(variable.shape)}; the checkpoint belongs to another model")
        variable.assign(value)


_DAMAGE = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def _damaged(exc: Exception) -> RunFolderError:
    return RunFolderError(f"the checkpoint's training state does not fit this run ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:300]}); the run folder is damaged")


def restore(model: keras.Model, state: TrainingState) -> None:
    """Load the model's and the (built) optimizer's variables; the callbacks' state waits for
    :class:`CallbackRestorer`. A state that does not fit is a :class:`RunFolderError`."""
    try:
        _assign(list(model.variables), state.group("model"), state.value("model_paths"), "model")
        model.optimizer.build(model.trainable_variables)
        _assign(list(model.optimizer.variables), state.group("optimizer"), state.value("optimizer_paths"),
                "optimizer")
    except _DAMAGE as exc:
        raise _damaged(exc) from exc


def _is_state_value(value: object) -> bool:
    return value is None or isinstance(value, (bool, int, float))


class CallbackRestorer(keras.callbacks.Callback):
    """Puts early stopping's and LR reduction's saved state back after their ``on_train_begin`` reset it."""

    def __init__(self, state: TrainingState, stopper: keras.callbacks.EarlyStopping | None,
                 reducer: keras.callbacks.ReduceLROnPlateau | None) -> None:
        super().__init__()
        self.state, self.stopper, self.reducer = state, stopper, reducer
        for name, fields, callback in (("stopper", STOPPER_STATE, stopper), ("reducer", REDUCER_STATE, reducer)):
            saved = state.values.get(name)
            if callback is not None and not (isinstance(saved, dict) and set(saved) <= set(fields)
                                             and all(_is_state_value(v) for v in saved.values())):
                raise _damaged(ValueError(f"{name}: {str(saved)[:100]} is not an object of {', '.join(fields)} "
                                          "(numbers, true/false or null)"))

    def on_train_begin(self, logs=None):
        if self.stopper is not None:
            for name, value in self.state.value("stopper").items():
                setattr(self.stopper, name, value)
            best = self.state.group("early_stopping")
            self.stopper.best_weights = [best[f"{i:04d}"] for i in range(len(best))] if best else None
        if self.reducer is not None:
            for name, value in self.state.value("reducer").items():
                setattr(self.reducer, name, value)
