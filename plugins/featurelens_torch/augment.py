"""Batched flip-and-crop augmentation on the device (no per-image Python loop).

The random draws (:func:`draw`) are separate from their application (:func:`apply`) so that a
data-parallel process can draw for the whole global batch from the generator every process shares
and apply only its own slice: augmentation does not depend on the number of processes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAD = 4


def draw(n: int, generator: torch.Generator, pad: int = PAD) -> torch.Tensor:
    """Per image (flip, dy, dx) as an (n, 3) int64 CPU tensor, drawn from ``generator``."""
    flip = (torch.rand(n, generator=generator) < 0.5).long()
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    return torch.stack([flip, dy, dx], dim=1)


def apply(x: torch.Tensor, params: torch.Tensor, pad: int = PAD) -> torch.Tensor:
    """Flip and shift (zero padded) an NCHW batch by :func:`draw`'s ``params``."""
    n, c, h, w = x.shape
    device = x.device
    params = params.to(device)
    flip, dy, dx = params[:, 0].bool(), params[:, 1], params[:, 2]
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]
    batch = torch.arange(n, device=device)[:, None, None, None]
    chan = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def flip_and_crop(x: torch.Tensor, generator: torch.Generator, pad: int = PAD) -> torch.Tensor:
    """Random horizontal flips and random ``pad``-pixel shifts (zero padded) of an NCHW batch."""
    return apply(x, draw(len(x), generator, pad), pad)
