"""Datasets by name: :func:`load_dataset` and :func:`available_datasets` over the registry."""

from __future__ import annotations

import os

import numpy as np

from featurelens.backends.datasets import IMAGE_FOLDER, DatasetEntry
from featurelens.backends.registry import registry
from featurelens.data.dataset import Dataset, subset
from featurelens.errors import DataError, FeaturelensError


def available_datasets() -> dict[str, DatasetEntry]:
    """Every registered dataset (the built-in ones and those of plugins), by name."""
    return dict(registry.datasets)


def _unknown(name: str) -> DataError:
    names = ", ".join(registry.datasets) or "none"
    hint = (" (a folder of images loads with featurelens.load_image_folder, or `--dataset image-folder "
            "--data-dir PATH` on the command line)") if name == IMAGE_FOLDER else ""
    failures = "".join(f" The plugin {f.name!r} ({f.target}) failed to load: {f.error}" for f in registry.failures)
    return DataError(f"unknown dataset {name!r}; the registered datasets are {names}{hint}.{failures}")


def check_dataset(data: object, name: str) -> Dataset:
    """``data`` if it is a well-formed :class:`Dataset` (labels as int64), else a DataError."""
    if not isinstance(data, Dataset):
        raise DataError(f"the loader of the dataset {name!r} returned {type(data).__name__}, not a "
                        "featurelens.Dataset")
    problems = []
    for split in ("train", "test"):
        images, labels = getattr(data, f"{split}_images"), np.asarray(getattr(data, f"{split}_labels"))
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            problems.append(f"{split}_images must be a uint8 (N, H, W, C) array")
        elif labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
            problems.append(f"{split}_labels must be {len(images)} integers")
        elif len(labels) and (labels.min() < 0 or labels.max() >= len(data.class_names)):
            problems.append(f"{split}_labels must lie in 0..{len(data.class_names) - 1}")
        else:
            setattr(data, f"{split}_labels", labels.astype(np.int64, copy=False))
    if not problems and data.train_images.shape[1:] != data.test_images.shape[1:]:
        problems.append("train and test images must have the same (H, W, C)")
    if problems:
        raise DataError(f"the dataset {name!r} is malformed: {'; '.join(problems)}")
    return data


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None, *, download: bool = True,
                 train_per_class: int | None = None, test_per_class: int | None = None, seed: int = 0,
                 progress: bool = True) -> Dataset:
    """Load a registered dataset (``cifar10``, ``cifar100``, ``mnist``, ``fashion-mnist``, a plugin's).

    ``data_dir`` is where to look first (and download to); without it the dataset's own rules apply
    (``FEATURELENS_DATA_DIR``, the user cache, Keras's cache). ``download=False`` fails with a
    :class:`~featurelens.DataError` instead of downloading. ``train_per_class`` /
    ``test_per_class`` keep a seeded subset of that many images per class.
    """
    entries = registry.datasets
    if name not in entries:
        raise _unknown(name)
    try:
        data = entries[name].load(data_dir=data_dir, download=download, progress=progress)
    except FeaturelensError:
        raise
    except Exception as exc:  # a plugin's own error: say which dataset failed, keep the cause
        raise DataError(f"the dataset {name!r} failed to load: {type(exc).__name__}: {exc}") from exc
    data = check_dataset(data, name)
    data.name = data.name or name
    return subset(data, train_per_class, test_per_class, seed)
