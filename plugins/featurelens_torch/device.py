"""Pick the torch device: CUDA, then Apple MPS, then the CPU, unless one is asked for."""

from __future__ import annotations

import torch

from featurelens.backends import ConfigError


def select_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {requested!r} was asked for but CUDA is not available here; "
                          "use device='auto' or 'cpu'")
    if requested.startswith("mps") and not (getattr(torch.backends, "mps", None)
                                            and torch.backends.mps.is_available()):
        raise ConfigError(f"device {requested!r} was asked for but MPS is not available here; "
                          "use device='auto' or 'cpu'")
    return torch.device(requested)
