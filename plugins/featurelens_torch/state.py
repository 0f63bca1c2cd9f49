"""The torch trainer's state as numpy arrays and JSON values (:class:`featurelens.backends.TrainingState`).

Arrays: ``model/<state_dict key>`` (parameters and buffers, batch-norm statistics included),
``optimizer/<parameter index>/<slot>`` (Adam's moments and step, SGD's momentum), ``average/<i>``
(the weight average), ``best/<state_dict key>`` (early stopping's best weights). Values: the base
learning rate, the step count (the LR schedule's position), early stopping's and LR reduction's
state, and whether a user's model outputs probabilities. The random streams need nothing: they
are re-seeded from the run's seed and the epoch at every epoch's start
(:func:`featurelens.backends.stream_seed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from featurelens.backends import FeaturelensError


def to_numpy(tensors: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Copies on the host (training goes on changing the tensors)."""
    return {name: t.detach().to("cpu", copy=True).contiguous().numpy() for name, t in tensors.items()}


def to_tensors(arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.array(a)) for name, a in arrays.items()}


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The optimizer's per-parameter state: tensors as arrays ``<index>/<slot>``, other values as JSON."""
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, slots in optimizer.state_dict()["state"].items():
        for slot, value in slots.items():
            if isinstance(value, torch.Tensor):
                arrays[f"{index}/{slot}"] = value.detach().to("cpu", copy=True).contiguous().numpy()
            else:
                scalars.setdefault(str(index), {})[slot] = value
    return arrays, {"scalars": scalars, "groups": len(optimizer.param_groups)}


def load_optimizer_state(optimizer: torch.optim.Optimizer, arrays: Mapping[str, np.ndarray],
                         values: Mapping[str, Any]) -> None:
    """Put :func:`optimizer_state`'s state into a fresh optimizer of the same config. Its parameter
    groups (and learning-rate tensor) stay the optimizer's own: the trainer sets the rate."""
    fresh = optimizer.state_dict()
    if values.get("groups") != len(fresh["param_groups"]):
        raise FeaturelensError("the saved optimizer state has another number of parameter groups; it belongs to "
                               "another model or config")
    state: dict[int, dict[str, Any]] = {}
    for name, array in arrays.items():
        index, slot = name.split("/", 1)
        state.setdefault(int(index), {})[slot] = torch.from_numpy(np.array(array))
    for index, slots in values.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(slots)
    optimizer.load_state_dict({"state": state, "param_groups": fresh["param_groups"]})


def load_module_state(net: torch.nn.Module, arrays: Mapping[str, np.ndarray], what: str) -> None:
    """Strictly load ``arrays`` into ``net`` (a clear error when the names or shapes differ)."""
    try:
        net.load_state_dict(to_tensors(arrays), strict=True)
    except (RuntimeError, KeyError) as exc:
        raise FeaturelensError(f"the saved {what} do not fit the model ({str(exc).splitlines()[0]}); the "
                               "checkpoint belongs to another model") from exc
