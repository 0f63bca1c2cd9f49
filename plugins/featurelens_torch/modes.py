"""Inference mode for one call, with every module's own mode given back afterwards.

``net.train(was_training)`` after ``net.eval()`` would set every submodule to the root's mode,
undoing a user's deliberate mix (a frozen batch norm in eval mode inside a model being trained).
Here only the modules that were training are switched, and exactly those are switched back; a model
already in eval mode (the usual case for inspection) is not walked twice per batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def evaluating(net: nn.Module) -> Iterator[None]:
    """``net`` in eval mode inside the block (through its own ``eval()``), each module's mode restored after."""
    training = [module for module in net.modules() if module.training]
    if training:
        net.eval()
    try:
        yield
    finally:
        for module in training:
            module.training = True
