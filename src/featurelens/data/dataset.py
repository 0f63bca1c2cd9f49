"""The :class:`Dataset` every loader returns, and per-class subsets of one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featurelens.data.arrays import per_class_subset


@dataclass
class Dataset:
    """A train and a test split as loaded: uint8 images ``(N, H, W, C)``, int64 labels ``(N,)``.

    ``class_names[i]`` names label ``i``. Images keep the dataset's own size and channel count
    (CIFAR: 32x32x3; MNIST and Fashion-MNIST: 28x28x1; an image folder: what it was loaded at).
    ``source`` says where the data was read from, ``name`` which dataset it is (``cifar10``,
    ``mnist``, ``image-folder``, ...; empty when unknown).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    source: str = ""
    name: str = ""

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)`` of one image."""
        h, w, c = self.train_images.shape[1:]
        return int(h), int(w), int(c)

    def __repr__(self) -> str:
        shape = "x".join(str(d) for d in np.shape(self.train_images)[1:])
        return (f"Dataset({self.name + ', ' if self.name else ''}train={len(self.train_labels)}, "
                f"test={len(self.test_labels)}, images={shape}, classes={len(self.class_names)}, "
                f"source={self.source!r})")


def subset(data: Dataset, train_per_class: int | None = None, test_per_class: int | None = None,
           seed: int = 0) -> Dataset:
    """Keep a seeded subset of at most that many images per class of each split (in place)."""
    if train_per_class is not None:
        data.train_images, data.train_labels = per_class_subset(
            data.train_images, data.train_labels, train_per_class, seed)
    if test_per_class is not None:
        data.test_images, data.test_labels = per_class_subset(
            data.test_images, data.test_labels, test_per_class, seed)
    return data
