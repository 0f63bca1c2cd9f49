"""The built-in datasets, registered through the ``featurelens_register_datasets`` hook.

This module is the ``datasets`` entry point of featurelens's own distribution: CIFAR-10,
CIFAR-100, MNIST and Fashion-MNIST register exactly as a third-party package's datasets do.
Nothing is read until a dataset is loaded.
"""

from __future__ import annotations

from collections.abc import Callable

from featurelens.backends import DatasetEntry, hookimpl
from featurelens.data import cifar, idx
from featurelens.data.cifar10 import load_cifar10


@hookimpl
def featurelens_register_datasets(register: Callable[[DatasetEntry], None]) -> None:
    register(DatasetEntry("cifar10", "60,000 32x32 colour images in 10 classes (the official python archive)",
                          load_cifar10, (32, 32, 3), 10))
    register(DatasetEntry("cifar100", "60,000 32x32 colour images in 100 fine classes (the official python "
                          "archive)", cifar.load_cifar100, (32, 32, 3), 100))
    register(DatasetEntry("mnist", "70,000 28x28 grayscale handwritten digits (the official IDX files)",
                          idx.load_mnist, (28, 28, 1), 10))
    register(DatasetEntry("fashion-mnist", "70,000 28x28 grayscale clothing images in 10 classes (Zalando's "
                          "IDX files)", idx.load_fashion_mnist, (28, 28, 1), 10))
