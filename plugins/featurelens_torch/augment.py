"""Batched flip-and-crop augmentation on the device (no per-image Python loop)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def flip_and_crop(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random horizontal flips and random ``pad``-pixel shifts (zero padded) of an NCHW batch."""
    n, c, h, w = x.shape
    device = x.device
    flip = (torch.rand(n, generator=generator) < 0.5).to(device)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(device)
    rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]
    batch = torch.arange(n, device=device)[:, None, None, None]
    chan = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, chan, rows, cols]
