"""Feature maps reduced per image and channel: what dataset examples and channel statistics need.

Dataset examples read, for every image and channel, the largest activation, where it is, and the
mean. Reducing a batch's maps in numpy costs a large share of the forward pass on a CPU (numpy's
argmax over short rows), holding every asked-for map of a batch until the pass ends costs memory,
and on a GPU it means copying every map to the host. So the reduction is part of the backend
contract (:meth:`Backend.channel_summaries <featurelens.backends.Backend.channel_summaries>`): the
default reduces :meth:`~featurelens.backends.Backend.feature_maps` here, in numpy, and a backend may
reduce each layer's output the moment it is computed instead. ``floors`` tell it which positions
matter: only an image whose maximum beats the channel's current k-th best can enter a top-k, so
once the lists are full a few positions per batch are looked up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from featurelens.errors import FeaturelensError, InputError

#: Per layer, per channel: positions are needed only where an image's maximum is above this value.
Floors = Mapping[str, np.ndarray]

UNLOCATED = -1
"""The position ``(-1, -1)`` of a maximum that was not looked up (at or below its channel's floor)."""


@dataclass(frozen=True)
class ChannelSummary:
    """One batch of one layer's (n, H, W, C) maps, reduced over positions.

    - ``maxima`` (n, C) float32: each image's largest activation per channel;
    - ``means`` (n, C) float32: the mean over positions;
    - ``positions`` (n, C, 2) int64: the (y, x) of each maximum, the first in row-major order, or
      ``(-1, -1)`` where the maximum is at or below the channel's floor (a finite one) and was not
      looked up.
    """

    maxima: np.ndarray
    means: np.ndarray
    positions: np.ndarray

    @classmethod
    def of_maps(cls, maps: np.ndarray) -> ChannelSummary:
        """Everything from (n, H, W, C) maps in numpy, every position included (the argmax is needed
        for the maxima anyway).

        An argmax then a gather beats numpy's ``max`` on short rows, and the mean is a product with a
        constant vector (BLAS); both run over each channel's positions where they are contiguous
        (torch's channels-first memory seen channels last).
        """
        if maps.ndim != 4:
            raise InputError(f"channel summaries are for (n, H, W, C) feature maps, got a layer output of shape "
                             f"{maps.shape[1:]} per image; choose a spatial layer")
        n, h, w, c = maps.shape
        first = maps.transpose(0, 3, 1, 2)
        if first.flags.c_contiguous:
            flat = first.reshape(n, c, h * w)
            where = flat.argmax(axis=2)
            maxima = np.take_along_axis(flat, where[..., None], axis=2)[..., 0]
            means = flat @ np.full(h * w, 1.0 / (h * w), flat.dtype)
        else:
            flat = maps.reshape(n, h * w, c)
            where = flat.argmax(axis=1)
            maxima = np.take_along_axis(flat, where[:, None, :], axis=1)[:, 0]
            means = flat.mean(axis=1)
        return cls(maxima.astype(np.float32, copy=False), means.astype(np.float32, copy=False),
                   flat_to_yx(where, w))

    def locate(self, images: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """(P, 2) int64: the (y, x) of the maximum of each (image, channel) pair (indices into the batch)."""
        found = self.positions[np.asarray(images, np.int64), np.asarray(channels, np.int64)]
        if (found == UNLOCATED).any():
            raise FeaturelensError("a maximum at or below its channel's floor was asked for; its position was not "
                                   "looked up (pass floors=None for every position)")
        return found


def flat_to_yx(where: np.ndarray, width: int) -> np.ndarray:
    """(..., 2) int64 (y, x) of row-major flat indices into maps ``width`` wide."""
    where = np.asarray(where, np.int64)
    return np.stack([where // width, where % width], axis=-1)
