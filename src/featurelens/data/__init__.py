"""Datasets as numpy arrays: CIFAR-10 loading, splits and subsets."""

from featurelens.data.arrays import per_class_subset, train_val_split
from featurelens.data.cifar10 import (
    CLASS_NAMES,
    Dataset,
    download_cifar10,
    find_cifar10,
    load_cifar10,
)

__all__ = [
    "CLASS_NAMES",
    "Dataset",
    "download_cifar10",
    "find_cifar10",
    "load_cifar10",
    "per_class_subset",
    "train_val_split",
]
