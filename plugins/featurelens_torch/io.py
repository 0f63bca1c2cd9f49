"""Torch state dicts to and from the canonical weight layout of :mod:`featurelens.weights`."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from featurelens_torch.build import SpecNet

#: canonical batch-norm name -> torch attribute
BN = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def get_weights(net: SpecNet) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, module in net.named_children():
        if isinstance(module, nn.Conv2d):  # (O, I, kh, kw) -> (kh, kw, I, O)
            out[f"{name}.kernel"] = module.weight.detach().permute(2, 3, 1, 0).cpu().numpy()
            out[f"{name}.bias"] = module.bias.detach().cpu().numpy()
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            for param, attr in BN.items():
                out[f"{name}.{param}"] = getattr(module, attr).detach().cpu().numpy()
        elif isinstance(module, nn.Linear):  # (out, in) -> (in, out)
            out[f"{name}.kernel"] = module.weight.detach().t().cpu().numpy()
            out[f"{name}.bias"] = module.bias.detach().cpu().numpy()
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


@torch.no_grad()
def set_weights(net: SpecNet, weights: dict[str, np.ndarray]) -> None:
    def tensor(key: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(weights[key], np.float32))

    for name, module in net.named_children():
        def take(param: str, name: str = name) -> torch.Tensor:
            return tensor(f"{name}.{param}")

        if isinstance(module, nn.Conv2d):
            module.weight.copy_(take("kernel").permute(3, 2, 0, 1))
            module.bias.copy_(take("bias"))
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            for param, attr in BN.items():
                getattr(module, attr).copy_(take(param))
        elif isinstance(module, nn.Linear):
            module.weight.copy_(take("kernel").t())
            module.bias.copy_(take("bias"))
    net.eval()
