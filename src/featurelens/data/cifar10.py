"""CIFAR-10 as numpy arrays: find an extracted copy, or download, check and extract the official one.

Where the data is looked for, in order: the ``data_dir`` argument, ``FEATURELENS_DATA_DIR``, the
per-user cache (``platformdirs.user_cache_dir("featurelens")``), then Keras's cache
(``~/.keras/datasets``). Each may hold ``cifar-10-batches-py/`` or be that folder itself. If no
copy is found, the official archive is downloaded into ``data_dir`` (or the environment folder,
or the cache), its md5 checked, and extracted atomically.

The batch files are pickles; they are read with an unpickler that only accepts the few numpy
constructors the official files use, so a tampered file cannot run code. The reader is shared with
CIFAR-100 (:mod:`featurelens.data.cifar`); this module keeps CIFAR-10's own names.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from featurelens.data.cifar import CIFAR10
from featurelens.data.dataset import Dataset, subset
from featurelens.data.sources import DATA_DIR_ENV, Remote, download_root

__all__ = [
    "ARCHIVE", "CLASS_NAMES", "DATA_DIR_ENV", "FOLDER", "MD5", "META_FILE", "TEST_FILE", "TRAIN_FILES", "URL",
    "Dataset", "download_cifar10", "download_root", "find_cifar10", "load_cifar10", "read_cifar10_folder",
]

(_REMOTE,) = CIFAR10.files.remotes
URL = _REMOTE.url
ARCHIVE = _REMOTE.name
MD5 = _REMOTE.md5
FOLDER = CIFAR10.files.folder
TRAIN_FILES = CIFAR10.train_files
TEST_FILE = CIFAR10.test_file
META_FILE = CIFAR10.meta_file
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")


def find_cifar10(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The first complete extracted ``cifar-10-batches-py`` folder where featurelens looks."""
    return CIFAR10.files.find(data_dir)


def download_cifar10(data_dir: str | os.PathLike[str] | None = None, *, url: str = URL,
                     md5: str = MD5, progress: bool = True) -> Path:
    """Download (if needed), verify and extract the official archive; return the folder."""
    files = replace(CIFAR10.files, remotes=(Remote(ARCHIVE, url, md5),))
    return files.download(data_dir, progress=progress)


def read_cifar10_folder(folder: str | os.PathLike[str]) -> Dataset:
    """Parse an extracted ``cifar-10-batches-py`` folder."""
    return CIFAR10.read(folder)


def load_cifar10(data_dir: str | os.PathLike[str] | None = None, *, download: bool = True,
                 train_per_class: int | None = None, test_per_class: int | None = None,
                 seed: int = 0, progress: bool = True) -> Dataset:
    """Load CIFAR-10 as uint8 (N, 32, 32, 3) arrays, downloading it if no copy is found.

    ``train_per_class`` / ``test_per_class`` keep a seeded subset of that many images per class.
    The same as ``featurelens.load_dataset("cifar10", ...)``.
    """
    data = CIFAR10.load(data_dir, download=download, progress=progress)
    return subset(data, train_per_class, test_per_class, seed)
