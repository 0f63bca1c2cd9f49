"""CIFAR-10 and CIFAR-100 from the official python archives: one reader for both.

Both archives hold one folder of pickled batches: each a dict with ``data`` (N, 3072) uint8
planes (1024 red, 1024 green, 1024 blue values of a 32x32 image) and a list of labels, plus a meta
file naming the classes. CIFAR-10 has five training batches and ``labels``; CIFAR-100 has one
``train`` file and both ``fine_labels`` (100 classes, the ones featurelens uses) and
``coarse_labels`` (20 superclasses). Where the folder is looked for and how it is downloaded is
:mod:`featurelens.data.sources`; the pickles are read by :mod:`featurelens.data.pickles`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featurelens.data.dataset import Dataset
from featurelens.data.pickles import read_pickle
from featurelens.data.sources import DatasetFiles, FolderFormat, Remote
from featurelens.errors import DataError

SIDE = 32


@dataclass(frozen=True)
class CifarFormat(FolderFormat):
    """One of the CIFAR archives: its files and the keys of its labels and class names."""

    name: str
    files: DatasetFiles
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int

    def read(self, folder: str | os.PathLike[str]) -> Dataset:
        """Parse an extracted CIFAR folder (``cifar-10-batches-py`` or ``cifar-100-python``)."""
        folder = Path(folder)
        self.files.require(folder)
        parts = [read_batch(self, folder / name) for name in self.train_files]
        if len(parts) == 1:
            train_images, train_labels = parts[0]
        else:
            train_images = np.concatenate([p[0] for p in parts])
            train_labels = np.concatenate([p[1] for p in parts])
        test_images, test_labels = read_batch(self, folder / self.test_file)
        meta = read_pickle(folder / self.meta_file, f"{self.files.title} meta file")
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(self.names_key, ()))
        if len(names) != self.num_classes:
            raise DataError(f"{folder / self.meta_file} lists {len(names)} class names instead of {self.num_classes}")
        return Dataset(train_images, train_labels, test_images, test_labels, names, str(folder), self.name)


def _cifar(name: str, title: str, archive: str, md5: str, folder: str, train: tuple[str, ...], test: str,
           meta: str, label_key: str, names_key: str, num_classes: int) -> CifarFormat:
    remote = Remote(archive, f"https://www.cs.toronto.edu/~kriz/{archive}", md5)
    files = DatasetFiles(title, folder, (*train, test, meta), (remote,), archive=True,
                         also=(f"{folder}-target/{folder}",))  # where Keras 3 extracts it
    return CifarFormat(name, files, train, test, meta, label_key, names_key, num_classes)


CIFAR10 = _cifar("cifar10", "CIFAR-10", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                 "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch",
                 "batches.meta", "labels", "label_names", 10)
CIFAR100 = _cifar("cifar100", "CIFAR-100", "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                  "cifar-100-python", ("train",), "test", "meta", "fine_labels", "fine_label_names", 100)


def read_batch(fmt: CifarFormat, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as uint8 (N, 32, 32, 3) images and int64 labels, checked."""
    what = f"{fmt.files.title} batch"
    batch = read_pickle(path, what)
    for key in ("data", fmt.label_key):
        if key not in batch:
            raise DataError(f"{path} has no {key!r} entry; it is not a {what} file")
    data = np.asarray(batch["data"])
    try:
        labels = np.asarray(batch[fmt.label_key], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: {fmt.label_key!r} is not a list of integers; the file is damaged") from exc
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE:
        raise DataError(f"{path}: 'data' has shape {data.shape} and dtype {data.dtype}; "
                        "expected (N, 3072) uint8 as in the official batches")
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {labels.size} labels; the file is damaged")
    if len(labels) and (labels.min() < 0 or labels.max() >= fmt.num_classes):
        raise DataError(f"{path}: labels outside 0..{fmt.num_classes - 1}; the file is damaged")
    images = data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)  # planes -> (N, H, W, C)
    return np.ascontiguousarray(images), labels


def load_cifar100(data_dir: str | os.PathLike[str] | None = None, *, download: bool = True,
                  progress: bool = True) -> Dataset:
    """CIFAR-100 with its 100 fine labels as uint8 (N, 32, 32, 3) images, downloading it if absent."""
    return CIFAR100.load(data_dir, download=download, progress=progress)
