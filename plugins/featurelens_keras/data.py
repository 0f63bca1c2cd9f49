"""The training batches ``model.fit`` is given: a seeded order per epoch, augmented when asked.

Keras 3's ``model.fit`` shuffles arrays with a global generator -- ``np.random.permutation`` on JAX,
a torch ``RandomSampler`` (torch's global generator) on the torch backend -- and, given a
``PyDataset`` with ``shuffle=True``, the order of its batches with Python's ``random.shuffle``:
states a checkpoint would have to capture, per framework. featurelens always feeds this
``PyDataset`` with ``shuffle=False`` instead: epoch ``e``'s order and each batch's flips and shifts come from
:func:`~featurelens.backends.stream_seed` of the config's seed, ``e`` and the batch, so they depend
on nothing but those numbers -- a resumed run reads exactly the batches of the uninterrupted one.
A callback tells the dataset which epoch starts (:class:`EpochStreams`); on Keras's torch backend it
also re-seeds torch's global generator, which Keras's dropout draws from there when the layer has
no seed of its own (on JAX dropout draws from its layer's ``SeedGenerator`` state, a variable the
checkpoint holds).
"""

from __future__ import annotations

import keras
import numpy as np

from featurelens.backends import stream_seed

SHUFFLE, AUGMENT, DROPOUT = 0, 1, 2  # the random streams of an epoch (stream_seed keys; the torch trainer's too)
PAD = 4


class TrainingBatches(keras.utils.PyDataset):
    """Shuffled batches of ``(x, y)``; with ``augment``, random horizontal flips and zero-padded shifts
    of up to ``pad`` pixels. ``multiple`` > 1 (data-parallel devices) leaves out a last batch whose
    size is not a multiple of it, so that every device gets an equal part."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, augment: bool = False,
                 pad: int = PAD, multiple: int = 1) -> None:
        super().__init__()
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.augment, self.pad = augment, pad
        full, last = divmod(len(x), batch_size)
        self.batches = full + (1 if last and last % multiple == 0 else 0)
        self.epoch = 0
        self.order = self._order(0)

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng(stream_seed(self.seed, epoch, SHUFFLE)).permutation(len(self.x))

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s order (0-based, as Keras counts)."""
        self.epoch, self.order = epoch, self._order(epoch)

    def __len__(self) -> int:
        return self.batches

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        xb = self.x[idx]
        if self.augment:
            xb = flip_and_shift(xb, np.random.default_rng(stream_seed(self.seed, self.epoch, AUGMENT, index)), self.pad)
        return xb, self.y[idx]


def flip_and_shift(xb: np.ndarray, rng: np.random.Generator, pad: int = PAD) -> np.ndarray:
    """Random horizontal flips and zero-padded shifts of up to ``pad`` pixels of an NHWC batch."""
    n, p = len(xb), pad
    flip = rng.random(n) < 0.5
    xb = np.where(flip[:, None, None, None], xb[:, :, ::-1], xb)
    padded = np.pad(xb, ((0, 0), (p, p), (p, p), (0, 0)))
    h, w = xb.shape[1:3]
    dy, dx = rng.integers(0, 2 * p + 1, n), rng.integers(0, 2 * p + 1, n)
    rows = (dy[:, None] + np.arange(h))[:, :, None]
    cols = (dx[:, None] + np.arange(w))[:, None, :]
    return padded[np.arange(n)[:, None, None], rows, cols]


class EpochStreams(keras.callbacks.Callback):
    """Tells the :class:`TrainingBatches` which epoch begins (before Keras reads its first batch) and, on
    Keras's torch backend, seeds torch's global generator for the epoch's unseeded dropout."""

    def __init__(self, batches: TrainingBatches) -> None:
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)
        if keras.backend.backend() == "torch":
            import torch

            torch.manual_seed(stream_seed(self.batches.seed, epoch, DROPOUT))
