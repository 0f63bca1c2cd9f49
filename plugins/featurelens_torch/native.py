"""Saving and loading models users built: their state dict under torch's own names, no pickle.

The architecture cannot be recorded without pickling code, so the record names the class and
keeps ``str(module)`` for people; loading takes a fresh instance (or a function building one)
from the user and fills it with the saved tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from featurelens.backends import InputError

SUMMARY_LIMIT = 20_000


def native_weights(net: torch.nn.Module) -> dict[str, np.ndarray]:
    return {name: tensor.detach().cpu().contiguous().numpy().copy() for name, tensor in net.state_dict().items()}


@torch.no_grad()
def load_native_weights(net: torch.nn.Module, weights: dict[str, np.ndarray],
                        input_shape: tuple[int, int, int]) -> None:
    if any(isinstance(p, torch.nn.parameter.UninitializedParameter) for p in net.parameters()):
        h, w, c = input_shape  # lazy modules (nn.LazyConv2d ...) create their weights on the first call
        net.eval()
        net(torch.zeros(1, c, h, w))
    expected = net.state_dict()
    weights = {k: _scalar_shape(v, expected[k]) if k in expected else v for k, v in weights.items()}
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    wrong = [f"{k} {tuple(weights[k].shape)} (the model has {tuple(expected[k].shape)})"
             for k in expected if k in weights and tuple(weights[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        raise InputError("the saved tensors do not fit this model: " + "; ".join(
            part for part in (f"missing {missing[:3]}" if missing else "",
                              f"unexpected {unexpected[:3]}" if unexpected else "",
                              f"shapes differ: {wrong[:3]}" if wrong else "") if part)
            + "; pass a model of the architecture that was saved")
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, strict=True)
    net.eval()


def _scalar_shape(array: np.ndarray, like: torch.Tensor) -> np.ndarray:
    """safetensors stores 0-d tensors (batch norm's num_batches_tracked) as shape (1,): undo that."""
    array = np.asarray(array)
    if like.dim() == 0 and array.shape == (1,):
        return array.reshape(())
    return array


def architecture(net: torch.nn.Module) -> dict[str, Any]:
    cls = type(net)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "framework": "torch",
            "parameters": int(sum(p.numel() for p in net.parameters())),
            "summary": str(net)[:SUMMARY_LIMIT]}
