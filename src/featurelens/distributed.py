"""Which process this is in a data-parallel run, from the variables ``torchrun`` sets (no framework import).

``torchrun --nproc-per-node N`` (``torch.distributed.run``) starts N copies of a program and gives
each ``RANK`` (0 .. ``WORLD_SIZE`` - 1 over all machines), ``LOCAL_RANK`` (its index on its machine)
and ``WORLD_SIZE``. Outside such a launch none is set: one process, rank 0. Only the main process
(rank 0) writes model folders, checkpoints, logs and progress; every process trains.
"""

from __future__ import annotations

import os

from featurelens.errors import ConfigError

RANK_ENV = "RANK"
LOCAL_RANK_ENV = "LOCAL_RANK"
WORLD_SIZE_ENV = "WORLD_SIZE"


def _read(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise ConfigError(f"{name}={value!r} is invalid: torchrun sets it to a non-negative integer; unset it "
                          "outside a torchrun launch")
    return int(value)


def world_size() -> int:
    """How many processes train together (``WORLD_SIZE``; 1 outside a torchrun launch)."""
    return max(1, _read(WORLD_SIZE_ENV, 1))


def process_rank() -> int:
    """This process's rank among all of them (``RANK``; 0 outside a torchrun launch)."""
    rank = _read(RANK_ENV, 0)
    if rank >= world_size():
        raise ConfigError(f"{RANK_ENV}={rank} but {WORLD_SIZE_ENV}={world_size()}: the rank must be below the world "
                          "size; launch with torchrun, which sets both")
    return rank


def local_rank() -> int:
    """This process's index on its own machine (``LOCAL_RANK``; picks its GPU)."""
    return _read(LOCAL_RANK_ENV, 0)


def is_main_process() -> bool:
    """Whether this process writes files and prints progress: rank 0, or the only process."""
    return process_rank() == 0


def is_distributed() -> bool:
    """Whether this process is one of several training together."""
    return world_size() > 1
