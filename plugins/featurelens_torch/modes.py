"""Inference mode for one call, with every module's own mode given back afterwards.

``net.train(was_training)`` after ``net.eval()`` would set every submodule to the root's mode,
undoing a user's deliberate mix (a frozen batch norm in eval mode inside a model being trained).
Here each module's flag is put back as it was; a model already entirely in eval mode (the usual
case for inspection) is left alone, not walked twice per batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def evaluating(net: nn.Module) -> Iterator[None]:
    """``net`` in eval mode inside the block, each module's own mode restored after, even on failure.

    Both switches go through the model's own ``eval()`` / ``train()`` (so overrides with side effects
    run), then each module's flag is set back exactly.
    """
    training = {id(module) for module in net.modules() if module.training}
    if not training:
        yield
        return
    root_training = net.training
    try:
        net.eval()
        yield
    finally:
        net.train(root_training)
        for module in net.modules():
            module.training = id(module) in training
