"""The pieces of the fast training path: precision, compilation, the LR schedule, weight averaging.

On CUDA the trainer by default runs the training step in bfloat16 autocast, channels_last, and
compiled with ``torch.compile(mode="reduce-overhead")`` (CUDA graphs), because at CIFAR sizes a
GPU is starved by per-step launch overhead rather than arithmetic. Everything here is also usable
on the CPU (``compile="on"``, ``precision="bf16"``) so that CPU tests cover it.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch

from featurelens.backends import ConfigError, TrainConfig

#: Tests set this to "eager" to exercise the compiled path on the CPU without a C++ compiler.
COMPILE_BACKEND_OVERRIDE: str | None = None


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype the training step runs in, or None for float32.

    ``bf16`` is allowed on the CPU (torch's CPU autocast supports it; it is slower than float32 on
    CPUs without bf16 units) and refused where the device cannot run it.
    """
    if config.precision == "fp32":
        return None
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if config.precision == "auto":
        return torch.bfloat16 if cuda_bf16 else None
    if device.type == "cuda" and not cuda_bf16:
        raise ConfigError(f"precision='bf16' was asked for but the GPU on {device} does not support bfloat16; "
                          "use precision='fp32' or 'auto'")
    if device.type not in ("cuda", "cpu"):
        raise ConfigError(f"precision='bf16' is supported on CUDA and the CPU, not on {device.type}; "
                          "use precision='fp32' or 'auto'")
    return torch.bfloat16


def wants_compile(config: TrainConfig, device: torch.device) -> bool:
    """Whether the training step is compiled: ``auto`` means on CUDA only."""
    return config.compile == "on" or (config.compile == "auto" and device.type == "cuda")


def compile_step(fn: Callable[..., Any], device: torch.device) -> Callable[..., Any]:
    """``fn`` compiled with static shapes; CUDA graphs (``reduce-overhead``) with inductor on CUDA."""
    backend = COMPILE_BACKEND_OVERRIDE or "inductor"
    options: dict[str, Any] = {"dynamic": False, "backend": backend}
    if backend == "inductor" and device.type == "cuda":
        options["mode"] = "reduce-overhead"
    return torch.compile(fn, **options)


def warn_fallback(exc: BaseException) -> None:
    """Say once, with the reason, that the compiled step failed and training goes on eagerly."""
    reason = (str(exc).strip().splitlines() or [""])[0][:300]
    warnings.warn(f"featurelens: torch.compile of the training step failed ({type(exc).__name__}: {reason}); "
                  "training eagerly instead. Set compile='off' to skip the attempt.", RuntimeWarning, stacklevel=3)


def lr_factor(schedule: str, step: int, total_steps: int, warmup_steps: float) -> float:
    """The schedule's factor on the learning rate for the 0-based ``step`` of ``total_steps``.

    The factor is taken at the end of the step (``t = step + 1``): a linear warm-up ``t / warmup``
    up to 1, then a linear or cosine decay reaching exactly 0 at the last step.
    """
    if schedule == "constant":
        return 1.0
    t = step + 1
    if t < warmup_steps:
        return t / warmup_steps
    span = total_steps - warmup_steps
    progress = min(1.0, (t - warmup_steps) / span) if span > 0 else 1.0
    if schedule == "warmup_cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress


class WeightAverage:
    """An exponential moving average of a module's floating-point state, updated after every step.

    Parameters *and* floating buffers (batch-norm running statistics) are averaged, so the averaged
    model is self-consistent; integer buffers (``num_batches_tracked``) are the live model's. The
    average starts at the initial weights and has no bias correction. It uses ``torch._foreach``
    ops (one kernel launch per group of tensors, and traceable by ``torch.compile``).
    """

    def __init__(self, net: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.live = [t for t in net.state_dict().values() if t.is_floating_point()]  # share storage
        self.average = [t.detach().clone() for t in self.live]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.average, self.live, 1.0 - self.decay)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The module holds the averaged weights inside the block, its own ones again after."""
        with torch.no_grad():
            backup = [t.clone() for t in self.live]
            torch._foreach_copy_(self.live, self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.live, backup)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        torch._foreach_copy_(self.live, self.average)
