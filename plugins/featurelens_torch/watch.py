"""Stop training at a NaN or infinite batch loss (Keras's ``TerminateOnNaN``) without stalling a GPU.

Semantics, by where the model trains:

* **CPU** (one process): every step's loss is read right after the step -- a host read is free
  there -- and training stops at that very batch, as Keras's ``TerminateOnNaN`` does.
* **CUDA**: a flag on the device collects "a loss was not
  finite" without synchronising. After every step a non-blocking copy of it goes to host memory,
  and the copy made ``LAG`` steps earlier is read (waited for, if the device is that far behind).
  Training therefore stops at most ``LAG`` steps after the bad batch, the host never runs more than
  ``LAG`` steps ahead of the device, and no step waits for its own result.
* **MPS**: the flag is read at the end of each epoch only (there is no event to tell when a
  non-blocking copy has landed).
* **Data-parallel** (several processes): the flag is all-reduced (maximum) every step before it is
  read, so all processes stop at the same step; on the CPU that is the same step, on a GPU ``LAG``
  steps later as above.

The first bad batch and its loss are then looked up in the epoch's losses for the message.
"""

from __future__ import annotations

import math

import torch

from featurelens_torch.parallel import Parallel

#: Steps between a step and the read of its flag on devices the host runs ahead of.
LAG = 2


class LossWatch:
    """Call :meth:`bad` after every step with its loss: True when training must stop."""

    def __init__(self, device: torch.device, parallel: Parallel, lag: int | None = None) -> None:
        self.device = device
        self.parallel = parallel
        if lag is None:
            lag = 0 if device.type == "cpu" else LAG if device.type == "cuda" else -1
        self.lag = lag  # -1: read at the epoch's end only (MPS: no non-blocking copy to rely on)
        self.flag = torch.zeros((), dtype=torch.float32, device=device)
        self.step = 0
        self.slots: list[tuple[torch.Tensor, torch.cuda.Event | None]] = []
        if self.lag > 0:  # a ring of host buffers (pinned on CUDA) and events, allocated once
            pinned = device.type == "cuda"
            self.slots = [(torch.zeros((), dtype=torch.float32, pin_memory=pinned),
                           torch.cuda.Event() if pinned else None) for _ in range(self.lag + 1)]

    def bad(self, loss: torch.Tensor) -> bool:
        """Record this step's loss; whether a non-finite loss has been seen (``lag`` steps late at most)."""
        if self.lag == 0 and not self.parallel.active:
            return not math.isfinite(float(loss))
        torch.maximum(self.flag, (~torch.isfinite(loss.detach().float())).float(), out=self.flag)
        if self.parallel.active:
            self.parallel.all_max(self.flag)
        if self.lag == 0:
            return bool(self.flag.item())
        if self.lag < 0:
            return False
        host, event = self.slots[self.step % len(self.slots)]
        host.copy_(self.flag, non_blocking=event is not None)
        if event is not None:
            event.record()
        self.step += 1
        if self.step <= self.lag:
            return False
        host, event = self.slots[(self.step - 1 - self.lag) % len(self.slots)]  # the copy made lag steps ago
        if event is not None:
            event.synchronize()
        return bool(host.item())

    def flush(self) -> bool:
        """Whether any step so far had a non-finite loss (waits for the device: at the epoch's end)."""
        self.step = 0
        return bool(self.flag.item())


def first_bad(losses: list[torch.Tensor] | torch.Tensor, steps: int) -> tuple[int | None, float]:
    """The first of the epoch's ``steps`` losses that is not finite (index, value), or (None, nan)."""
    values = torch.stack(list(losses)[:steps]) if isinstance(losses, list) else losses[:steps]
    if not len(values):
        return None, math.nan
    bad = (~torch.isfinite(values.float())).nonzero()
    if not len(bad):
        return None, math.nan
    index = int(bad[0, 0])
    return index, float(values[index])
