"""Datasets as numpy arrays: the registered datasets, image folders, splits and subsets."""

from featurelens.data.arrays import per_class_subset, train_val_split
from featurelens.data.cifar10 import CLASS_NAMES, download_cifar10, find_cifar10, load_cifar10
from featurelens.data.dataset import Dataset
from featurelens.data.folder import UnreadableImagesWarning, is_image_folder, load_image_folder
from featurelens.data.loading import available_datasets, load_dataset

__all__ = [
    "CLASS_NAMES",
    "Dataset",
    "UnreadableImagesWarning",
    "available_datasets",
    "download_cifar10",
    "find_cifar10",
    "is_image_folder",
    "load_cifar10",
    "load_dataset",
    "load_image_folder",
    "per_class_subset",
    "train_val_split",
]
