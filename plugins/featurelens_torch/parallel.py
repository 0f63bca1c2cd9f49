"""Data-parallel training with torch.distributed: one process per device, launched by torchrun.

``torchrun --nproc-per-node N -m featurelens train ...`` starts N processes with ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE`` set; the trainer then joins the process group (NCCL on GPUs, each
process on ``cuda:LOCAL_RANK``; gloo on CPUs) and wraps the model in ``DistributedDataParallel``.

How a data-parallel epoch is split:

* ``batch_size`` is the **global** batch. Every process draws the same permutation (the same seeded
  generator) and cuts the same global batches from it; process ``r`` takes the ``r``-th of ``N``
  contiguous parts of each, sizes differing by at most one. The loss a process back-propagates is
  its part's summed loss times ``N / global batch``, so DDP's gradient average is exactly the
  gradient of the global batch's mean loss, however the batch divides.
* Augmentation is drawn for the whole global batch from a generator all processes share, and each
  applies its slice: the same images get the same flips and shifts for any ``N``. Dropout's random
  stream is each process's own (seeded with the epoch and the rank).
* Training metrics (summed losses, correct predictions, counts) and validation (each process
  measures a contiguous part of the validation set) are all-reduced, so every process sees the same
  numbers; early stopping and LR reduction decide on them, and rank 0's decision is broadcast anyway.
* Without ``sync_batchnorm`` each process normalises with its own part's statistics and rank 0's
  running statistics are broadcast to the others (DDP's ``broadcast_buffers``, and again before
  validation). With it, batch norm uses the global batch's statistics: ``torch.nn.SyncBatchNorm`` on
  GPUs, and on CPUs (which torch's SyncBatchNorm refuses) :class:`GlobalBatchNorm`, the same
  computation over torch.distributed's differentiable all-reduce.
* The whole-step compilation of the fast path is not used (DDP's gradient hooks run outside a
  captured step): data-parallel steps run eagerly, with bf16 autocast and channels_last as configured.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from featurelens.backends import ConfigError, TrainConfig, local_rank, world_size


@dataclass
class Parallel:
    """This process's place among those training together (one process: rank 0 of 1, inactive)."""

    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    def bounds(self, n: int) -> tuple[int, int]:
        """This process's contiguous part ``[lo, hi)`` of ``n`` items (sizes differ by at most one)."""
        base, extra = divmod(n, self.world)
        lo = self.rank * base + min(self.rank, extra)
        return lo, lo + base + (1 if self.rank < extra else 0)

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.active:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_max(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.active:
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor

    def from_main(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``tensor`` on every process (in place)."""
        if self.active:
            dist.broadcast(tensor, src=0)
        return tensor

    def share_buffers(self, net: nn.Module) -> None:
        """Rank 0's buffers (batch-norm running statistics) on every process."""
        if self.active:
            for buffer in net.buffers():
                dist.broadcast(buffer, src=0)


def _device(config: TrainConfig) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` when CUDA is asked for or available, else the CPU."""
    wants_cuda = config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
    if config.device.startswith("mps"):
        raise ConfigError("data-parallel training runs on CUDA GPUs (NCCL) or CPUs (gloo), not on MPS; use "
                          "--device cuda or cpu")
    if wants_cuda:
        if not torch.cuda.is_available():
            raise ConfigError(f"device {config.device!r} was asked for but CUDA is not available here")
        if local_rank() >= torch.cuda.device_count():
            raise ConfigError(f"process {local_rank()} of this machine has no GPU of its own "
                              f"({torch.cuda.device_count()} visible); start at most one process per GPU "
                              "(--nproc-per-node)")
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


@contextlib.contextmanager
def joined(config: TrainConfig) -> Iterator[tuple[Parallel, torch.device | None]]:
    """Inside a torchrun launch: the process group joined (and left at the end, if joined here) and this
    process's device; otherwise one inactive :class:`Parallel` and None (the trainer picks the device)."""
    world = world_size()
    if world == 1:
        yield Parallel(), None
        return
    device = _device(config)
    created = not dist.is_initialized()
    if created:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.get_world_size() != world:
        raise ConfigError(f"WORLD_SIZE is {world} but the process group has {dist.get_world_size()} processes")
    try:
        yield Parallel(dist.get_rank(), world), device
    finally:
        if created:
            dist.destroy_process_group()


def warn_no_compile(config: TrainConfig) -> None:
    if config.compile == "on":
        warnings.warn("featurelens: compile='on' is not used in data-parallel training (DDP's gradient hooks run "
                      "outside a compiled step); the steps run eagerly", RuntimeWarning, stacklevel=3)


class _Scores(nn.Module):
    """What DDP runs: the scores the loss is taken from (a SpecNet's logits, a user's model's output)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = getattr(self.net, "logits", None)
        return logits(x) if callable(logits) else self.net(x)


def wrap(net: nn.Module, device: torch.device) -> nn.Module:
    """``net``'s scores under DistributedDataParallel (gradients averaged over the processes)."""
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(_Scores(net), device_ids=ids)


def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over the processes, differentiable (its gradient is the sum of the gradients)."""
    from torch.distributed import _functional_collectives as funcol  # torch's replacement of distributed.nn

    return funcol.wait_tensor(funcol.all_reduce(tensor, "sum", dist.group.WORLD))


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the global batch of all processes, on any device (torch's SyncBatchNorm is GPU-only).

    In training the per-channel sum and count are all-reduced for the mean, then the sum of squared
    deviations for the (biased) variance, with torch.distributed.nn's differentiable all-reduce so
    that gradients flow through the global statistics exactly as through a single process's batch
    norm (the functional all-reduce's backward all-reduces the gradient). Running statistics are
    updated with the unbiased variance, as ``nn.BatchNorm2d`` does.
    In evaluation it is plain batch norm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        dims = [d for d in range(input.dim()) if d != 1]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = all_reduce(torch.tensor(float(input.numel() // input.shape[1]), device=input.device))
        mean = all_reduce(input.sum(dims)) / count
        centered = input - mean.reshape(shape)
        var = all_reduce(centered.square().sum(dims)) / count
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                momentum = 0.1 if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * count / max(float(count) - 1, 1.0), momentum)
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
        out = centered * torch.rsqrt(var.reshape(shape) + self.eps)
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        return out


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _replace(net: nn.Module, make: type[nn.modules.batchnorm._BatchNorm], kinds: tuple[type, ...]) -> list[
        tuple[nn.Module, str, nn.Module]]:
    """Put a ``make`` sharing parameters and buffers in place of every module of ``kinds``; return
    (parent, name, original) to undo it."""
    replaced = []
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if type(child) in kinds:
                new = make(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
                new.weight, new.bias = child.weight, child.bias
                new.running_mean, new.running_var = child.running_mean, child.running_var
                new.num_batches_tracked = child.num_batches_tracked
                new.train(child.training)
                setattr(parent, name, new)
                replaced.append((parent, name, child))
    return replaced


@contextlib.contextmanager
def synced_batchnorm(net: nn.Module, device: torch.device) -> Iterator[None]:
    """Every BatchNorm of ``net`` normalising over the global batch inside the block (sharing its
    parameters and buffers, so nothing is copied back); the original modules again after it."""
    make: type[nn.modules.batchnorm._BatchNorm] = nn.SyncBatchNorm if device.type == "cuda" else GlobalBatchNorm
    replaced = _replace(net, make, _BATCH_NORMS)
    try:
        yield
    finally:
        for parent, name, original in replaced:
            original.train(getattr(parent, name).training)
            setattr(parent, name, original)

