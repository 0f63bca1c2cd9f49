"""MNIST and Fashion-MNIST from the official gzipped IDX files.

Each dataset is four files in one folder (``mnist/`` or ``fashion-mnist/``, found and downloaded
by the rules of :mod:`featurelens.data.sources`; torchvision's ``MNIST/raw/`` and
``FashionMNIST/raw/`` are found too): ``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz``.
An IDX file is a magic number (two zero bytes, the element type, the number of dimensions), one
big-endian uint32 per dimension, then the elements. Every part is checked: the magic number, the
dimensions (28x28 images), the exact size, that images and labels pair up and that labels name a
class. A truncated or corrupted file is a :class:`~featurelens.DataError`, never another exception.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featurelens.data.dataset import Dataset
from featurelens.data.sources import DatasetFiles, FolderFormat, Remote
from featurelens.errors import DataError

UBYTE = 0x08
#: deflate cannot compress better than about 1032:1; a header declaring more data is a lie.
MAX_RATIO = 1032
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@dataclass(frozen=True)
class IdxFormat(FolderFormat):
    """A dataset of four IDX files: where they are, the image size and the class names."""

    name: str
    files: DatasetFiles
    class_names: tuple[str, ...]
    image_size: tuple[int, int] = (28, 28)

    def read(self, folder: str | os.PathLike[str]) -> Dataset:
        """Parse a folder holding the four IDX files."""
        folder = Path(folder)
        self.files.require(folder)
        train_images, train_labels = read_split(self, folder / TRAIN_IMAGES, folder / TRAIN_LABELS)
        test_images, test_labels = read_split(self, folder / TEST_IMAGES, folder / TEST_LABELS)
        return Dataset(train_images, train_labels, test_images, test_labels, self.class_names, str(folder),
                       self.name)


#: the folder names of the IDX datasets (ours and torchvision's): their files have the same names
IDX_FOLDERS = ("mnist", "MNIST", "fashion-mnist", "FashionMNIST")


def idx_files(title: str, folder: str, base_url: str, md5s: tuple[str, str, str, str],
              torchvision: str = "") -> DatasetFiles:
    """The :class:`DatasetFiles` of an IDX dataset whose four files are at ``base_url``."""
    remotes = tuple(Remote(name, base_url + name, md5) for name, md5 in zip(FILES, md5s))
    also = (f"{torchvision}/raw",) if torchvision else ()
    others = tuple(f for f in IDX_FOLDERS if f not in (folder, torchvision))
    return DatasetFiles(title, folder, FILES, remotes, also=also, others=others)


MNIST = IdxFormat("mnist", idx_files("MNIST", "mnist", MNIST_URL, (
    "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
    "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"), "MNIST"),
    tuple(str(d) for d in range(10)))
FASHION_MNIST = IdxFormat("fashion-mnist", idx_files("Fashion-MNIST", "fashion-mnist", FASHION_MNIST_URL, (
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
    "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"), "FashionMNIST"), FASHION_CLASSES)


def _damaged(path: Path, why: str) -> DataError:
    return DataError(f"{path} {why}; it is not an intact official file. Delete it and load again to "
                     "re-download, or put a fresh copy there")


def read_idx(path: str | os.PathLike[str], dims: tuple[int | None, ...]) -> np.ndarray:
    """The uint8 array of a gzipped IDX file with ``len(dims)`` dimensions (``None``: any size)."""
    path = Path(path)
    ndim = len(dims)
    try:
        compressed = path.stat().st_size
        with gzip.open(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4:
                raise _damaged(path, "ends inside its magic number")
            if magic[:2] != b"\0\0" or magic[2] != UBYTE or magic[3] != ndim:
                raise _damaged(path, f"starts with the magic number 0x{magic.hex()}, not 0x0000{UBYTE:02x}{ndim:02x} "
                                     f"(unsigned bytes in {ndim} dimensions)")
            raw = f.read(4 * ndim)
            if len(raw) < 4 * ndim:
                raise _damaged(path, "ends inside its header")
            shape = struct.unpack(f">{ndim}I", raw)
            for axis, (got, want) in enumerate(zip(shape, dims)):
                if got == 0 or (want is not None and got != want):
                    expected = "x".join("N" if d is None else str(d) for d in dims)
                    raise _damaged(path, f"declares the shape {'x'.join(map(str, shape))} (axis {axis} is wrong); "
                                         f"expected {expected}")
            count = math.prod(shape)
            if count > MAX_RATIO * compressed:
                raise _damaged(path, f"declares {count:,} bytes of data, more than a {compressed:,}-byte gzip "
                                     "file can hold: it is truncated or corrupted")
            out = np.empty(shape, np.uint8)
            view, filled = memoryview(out.data).cast("B"), 0
            while filled < count:
                n = f.readinto(view[filled:])
                if not n:
                    raise _damaged(path, f"is truncated: it holds {filled:,} of the {count:,} bytes its header "
                                         "declares")
                filled += n
            if f.read(1):
                raise _damaged(path, f"holds more than the {count:,} bytes its header declares")
    except (OSError, EOFError, zlib.error) as exc:  # not gzip, cut short, bad CRC, unreadable
        raise _damaged(path, f"is truncated or corrupted ({type(exc).__name__}: {exc})") from exc
    return out


def read_split(fmt: IdxFormat, images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, 1) uint8 and int64 labels of one split, checked against each other."""
    images = read_idx(images_path, (None, *fmt.image_size))
    labels = read_idx(labels_path, (None,)).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(f"{images_path.name} holds {len(images):,} images but {labels_path.name} "
                        f"{len(labels):,} labels; the files in {images_path.parent} do not belong together")
    if len(labels) and labels.max() >= len(fmt.class_names):
        raise _damaged(labels_path, f"holds the label {labels.max()}, outside 0..{len(fmt.class_names) - 1}")
    return images[..., None], labels


def load_mnist(data_dir: str | os.PathLike[str] | None = None, *, download: bool = True,
               progress: bool = True) -> Dataset:
    """MNIST's handwritten digits as uint8 (N, 28, 28, 1) images, downloading them if absent."""
    return MNIST.load(data_dir, download=download, progress=progress)


def load_fashion_mnist(data_dir: str | os.PathLike[str] | None = None, *, download: bool = True,
                       progress: bool = True) -> Dataset:
    """Fashion-MNIST's clothing images as uint8 (N, 28, 28, 1) images, downloading them if absent."""
    return FASHION_MNIST.load(data_dir, download=download, progress=progress)
