"""CIFAR-10 as numpy arrays: find an extracted copy, or download, check and extract the official one.

Where the data is looked for, in order: the ``data_dir`` argument, ``FEATURELENS_DATA_DIR``, the
per-user cache (``platformdirs.user_cache_dir("featurelens")``), then Keras's cache
(``~/.keras/datasets``). Each may hold ``cifar-10-batches-py/`` or be that folder itself. If no
copy is found, the official archive is downloaded into ``data_dir`` (or the environment folder,
or the cache), its md5 checked, and extracted atomically.

The batch files are pickles; they are read with an unpickler that only accepts the few numpy
constructors the official files use, so a tampered file cannot run code.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

from featurelens.data.archive import extract_tar
from featurelens.data.arrays import per_class_subset
from featurelens.data.download import download, file_md5
from featurelens.errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
DATA_DIR_ENV = "FEATURELENS_DATA_DIR"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")

def _numpy_reconstruct() -> Callable[..., object]:
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct as _legacy_reconstruct
        return _legacy_reconstruct
    return _reconstruct


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only; any other global is refused."""

    def find_class(self, module: str, name: str) -> Callable[..., Any]:
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"),
                              ("numpy._core.multiarray", "_reconstruct")):
            return _numpy_reconstruct()
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if (module, name) == ("_codecs", "encode"):  # how Python 3 writes bytes at protocol 2
            return codecs.encode
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a CIFAR-10 batch")


def _read_pickle(path: Path) -> dict:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    try:
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:  # truncated (EOFError), garbage (UnpicklingError), tampered
        raise DataError(
            f"{path} is truncated or corrupted ({type(exc).__name__}: {exc}); delete the folder "
            f"{path.parent} and load again to re-download, or extract a fresh copy there"
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path} does not hold a CIFAR-10 batch (found {type(obj).__name__})")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _read_pickle(path)
    for key in ("data", "labels"):
        if key not in batch:
            raise DataError(f"{path} has no {key!r} entry; it is not a CIFAR-10 batch file")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' has shape {data.shape} and dtype {data.dtype}; "
                        "expected (N, 3072) uint8 as in the official batches")
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels; the file is damaged")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels outside 0..9; the file is damaged")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # planes -> (N, H, W, C)
    return np.ascontiguousarray(images), labels


@dataclass
class Dataset:
    """Images (N, 32, 32, 3) uint8, labels (N,) int64 and class names, as loaded."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    source: str = ""

    def __repr__(self) -> str:
        return (f"Dataset(train={len(self.train_labels)}, test={len(self.test_labels)}, "
                f"classes={len(self.class_names)}, source={self.source!r})")


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (*TRAIN_FILES, TEST_FILE, META_FILE))


def _candidates(data_dir: str | os.PathLike[str] | None) -> list[Path]:
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir))
    else:
        if os.environ.get(DATA_DIR_ENV):
            roots.append(Path(os.environ[DATA_DIR_ENV]))
        roots.append(Path(platformdirs.user_cache_dir("featurelens")))
        roots.append(Path.home() / ".keras" / "datasets")
    return [c for root in roots for c in (root / FOLDER, root)]


def find_cifar10(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The first complete extracted ``cifar-10-batches-py`` folder where featurelens looks."""
    for folder in _candidates(data_dir):
        if _is_complete(folder):
            return folder
    return None


def download_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where a download goes: ``data_dir``, else ``FEATURELENS_DATA_DIR``, else the user cache."""
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    return Path(platformdirs.user_cache_dir("featurelens"))


def download_cifar10(data_dir: str | os.PathLike[str] | None = None, *, url: str = URL,
                     md5: str = MD5, progress: bool = True) -> Path:
    """Download (if needed), verify and extract the official archive; return the folder."""
    root = download_root(data_dir)
    archive = root / ARCHIVE
    if not (archive.is_file() and file_md5(archive) == md5):
        download(url, archive, md5, progress=progress)
    folder = extract_tar(archive, root, FOLDER)
    if not _is_complete(folder):
        raise DataError(f"{archive} did not contain every CIFAR-10 batch file; delete it and retry")
    return folder


def read_cifar10_folder(folder: str | os.PathLike[str]) -> Dataset:
    """Parse an extracted ``cifar-10-batches-py`` folder."""
    folder = Path(folder)
    missing = [n for n in (*TRAIN_FILES, TEST_FILE, META_FILE) if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder} is missing {', '.join(missing)}; point at a complete "
                        f"{FOLDER} folder or delete it so that featurelens downloads a fresh copy")
    parts = [_read_batch(folder / name) for name in TRAIN_FILES]
    train_images = np.concatenate([p[0] for p in parts])
    train_labels = np.concatenate([p[1] for p in parts])
    test_images, test_labels = _read_batch(folder / TEST_FILE)
    meta = _read_pickle(folder / META_FILE)
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("label_names", ()))
    if len(names) != 10:
        raise DataError(f"{folder / META_FILE} lists {len(names)} class names instead of 10")
    return Dataset(train_images, train_labels, test_images, test_labels, names, str(folder))


def load_cifar10(data_dir: str | os.PathLike[str] | None = None, *, download: bool = True,
                 train_per_class: int | None = None, test_per_class: int | None = None,
                 seed: int = 0, progress: bool = True) -> Dataset:
    """Load CIFAR-10 as uint8 (N, 32, 32, 3) arrays, downloading it if no copy is found.

    ``train_per_class`` / ``test_per_class`` keep a seeded subset of that many images per class.
    """
    folder = find_cifar10(data_dir)
    if folder is None:
        if not download:
            where = ", ".join(str(c) for c in _candidates(data_dir)[::2])
            raise DataError(f"no extracted CIFAR-10 found (looked for {FOLDER} in {where}); "
                            "pass download=True (drop --no-download) or point "
                            f"{DATA_DIR_ENV} at a folder holding {FOLDER}")
        folder = download_cifar10(data_dir, progress=progress)
    data = read_cifar10_folder(folder)
    if train_per_class is not None:
        data.train_images, data.train_labels = per_class_subset(
            data.train_images, data.train_labels, train_per_class, seed)
    if test_per_class is not None:
        data.test_images, data.test_labels = per_class_subset(
            data.test_images, data.test_labels, test_per_class, seed)
    return data
