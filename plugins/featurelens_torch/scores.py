"""Class scores from whatever a model returns, and the loss the trainer takes from them.

Models users write return a tensor of logits, sometimes probabilities (a final softmax), a tuple
whose first element is the scores, or a dict-like output with ``logits`` (Hugging Face models).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from featurelens.backends import InputError, looks_like_probabilities


def class_scores(output: Any) -> torch.Tensor:
    """The (N, classes) tensor in a model's output."""
    if isinstance(output, torch.Tensor):
        scores = output
    elif isinstance(output, Mapping) or hasattr(output, "logits"):
        scores = output["logits"] if isinstance(output, Mapping) and "logits" in output else \
            getattr(output, "logits", None)
    elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        scores = output[0]
    else:
        scores = None
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2:
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(output).__name__
        raise InputError(f"the model returned {shape}; featurelens needs one row of class scores per image, "
                         "(N, classes): a tensor, a tuple starting with it, or an output with .logits")
    return scores


def are_probabilities(scores: torch.Tensor) -> bool:
    """Whether rows are probabilities (a model ending in a softmax) rather than logits."""
    return looks_like_probabilities(scores.detach().float().cpu().numpy())


def cross_entropy(scores: torch.Tensor, target: torch.Tensor, probabilities: bool,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of logits, or of probabilities (then on their clamped log), against targets
    smoothed towards uniform by ``label_smoothing``: ``(1 - s) * one_hot + s / classes``."""
    if probabilities:
        log_p = torch.log(scores.float().clamp_min(1e-7))
        loss = F.nll_loss(log_p, target, reduction=reduction)
        if not label_smoothing:
            return loss
        uniform = -log_p.mean(1)  # cross-entropy against the uniform distribution, per row
        uniform = uniform.sum() if reduction == "sum" else uniform.mean() if reduction == "mean" else uniform
        return (1.0 - label_smoothing) * loss + label_smoothing * uniform
    if not label_smoothing:
        return F.cross_entropy(scores, target, reduction=reduction)
    return F.cross_entropy(scores, target, reduction=reduction, label_smoothing=label_smoothing)
