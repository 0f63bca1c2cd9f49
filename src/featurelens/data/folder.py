"""Your own images: one subfolder per class, read with Pillow into uint8 arrays.

Layout: ``root/<class name>/*.png`` (also ``.jpg``, ``.jpeg``, ``.bmp``, ``.gif``, ``.webp``,
in any letter case; subfolders of a class folder count too; hidden files and folders are
ignored). Class names are the folder names, sorted. When ``root/train/<class>/`` and
``root/test/<class>/`` exist, they are the two splits; otherwise a seeded, stratified
``test_fraction`` of every class is held out as the test split. Every image is converted to RGB
(``channels=3``) or grayscale (``channels=1``) and resized to ``size`` (height, width; the aspect
ratio is not kept), straight into one preallocated uint8 array. Files Pillow cannot read are
skipped with one warning listing them; a class left without images is an error.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from featurelens.data.arrays import train_val_split
from featurelens.data.dataset import Dataset
from featurelens.errors import DataError, InputError
from featurelens.spec import MAX_SIDE

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
NAME = "image-folder"
SPLITS = ("train", "test")
MAX_LISTED = 10


class UnreadableImagesWarning(UserWarning):
    """Some files of an image folder could not be read and were skipped."""


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() for p in folder.iterdir())


def is_image_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` looks like an image folder: a class subfolder (or ``train/<class>``) holds images."""
    root = Path(path)
    if not root.is_dir():
        return False
    if all((root / split).is_dir() for split in SPLITS):
        root = root / "train"
    try:
        return any(_has_images(sub) for sub in _visible_dirs(root))
    except OSError:
        return False


def _classes(folder: Path) -> dict[str, list[Path]]:
    return {sub.name: _image_files(sub) for sub in _visible_dirs(folder)}


def check_size(size: Sequence[int], channels: int) -> tuple[int, int]:
    """``size`` as (height, width), each from 1 to MAX_SIDE, and ``channels`` 1 or 3, else an InputError."""
    if (len(size) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE
                                  for v in size)):
        raise InputError(f"size={tuple(size)!r} must be (height, width), two integers >= 1 and <= {MAX_SIDE}")
    if channels not in (1, 3):
        raise InputError(f"channels={channels!r} must be 1 (grayscale) or 3 (RGB)")
    return int(size[0]), int(size[1])


def _read_into(files: list[tuple[Path, int]], size: tuple[int, int], channels: int, progress: bool,
               skipped: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``(path, label)`` pairs into a preallocated array; unreadable ones go to ``skipped``."""
    from PIL import Image

    height, width = size
    images = np.empty((len(files), height, width, channels), np.uint8)
    labels = np.empty(len(files), np.int64)
    mode = "L" if channels == 1 else "RGB"
    filled = 0
    for path, label in tqdm(files, desc="Reading images", unit="img", disable=not progress):
        try:
            with Image.open(path) as img:
                picture: Any = img.convert(mode)
                if picture.size != (width, height):
                    picture = picture.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(picture, np.uint8)
        except Exception as exc:  # any decoding failure (truncated, not an image, unsupported mode)
            skipped.append(f"{path} ({type(exc).__name__}: {exc})")
            continue
        images[filled] = pixels.reshape(height, width, channels)
        labels[filled] = label
        filled += 1
    return images[:filled], labels[:filled]


def _load_split(classes: dict[str, list[Path]], names: tuple[str, ...], size: tuple[int, int], channels: int,
                progress: bool, skipped: list[str], where: Path) -> tuple[np.ndarray, np.ndarray]:
    index = {name: i for i, name in enumerate(names)}
    files = [(path, index[name]) for name, paths in classes.items() for path in paths]
    images, labels = _read_into(files, size, channels, progress, skipped)
    empty = [name for name in classes if not np.any(labels == index[name])]
    if empty:
        unreadable = f" (unreadable: {_listing(skipped)})" if skipped else ""
        raise DataError(f"{where}: no readable image in the class folder(s) {', '.join(empty)}{unreadable}; add "
                        f"images ({', '.join(IMAGE_SUFFIXES)}) or remove the folder(s)")
    return images, labels


def _listing(skipped: list[str]) -> str:
    more = f"; and {len(skipped) - MAX_LISTED} more" if len(skipped) > MAX_LISTED else ""
    return "; ".join(skipped[:MAX_LISTED]) + more


def load_image_folder(root: str | os.PathLike[str], size: Sequence[int] = (32, 32), channels: int = 3,
                      test_fraction: float = 0.2, seed: int = 0, *, progress: bool = False) -> Dataset:
    """Load ``root/<class name>/*.png`` (or ``root/train/...`` + ``root/test/...``) as a :class:`Dataset`.

    ``size`` is (height, width) every image is resized to; ``channels`` is 3 (RGB) or 1
    (grayscale). Without ``train/`` and ``test/`` folders, ``test_fraction`` of every class
    (chosen with ``seed``) becomes the test split. Unreadable files are skipped with an
    :class:`UnreadableImagesWarning` listing them; a class without any readable image, fewer than
    two classes or a split that would be empty is a :class:`~featurelens.DataError`.
    """
    root = Path(root)
    hw = check_size(size, channels)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; point at a folder with one subfolder of images per class")
    split = all((root / s).is_dir() for s in SPLITS)
    classes = _classes(root / "train" if split else root)
    names = tuple(classes)
    if len(names) < 2:
        raise DataError(f"{root / 'train' if split else root} has {len(names)} class folder(s) "
                        f"({', '.join(names) or 'none'}); a classifier needs at least two, one subfolder "
                        "of images per class")
    skipped: list[str] = []
    if split:
        test_classes = _classes(root / "test")
        unknown = sorted(set(test_classes) - set(names))
        if unknown:
            raise DataError(f"{root / 'test'} has class folder(s) {', '.join(unknown)} that {root / 'train'} "
                            "lacks; the two splits must use the same class names")
        train_x, train_y = _load_split(classes, names, hw, channels, progress, skipped, root / "train")
        test_x, test_y = _load_split(test_classes, names, hw, channels, progress, skipped, root / "test")
    else:
        if not 0 < test_fraction < 1:
            raise InputError(f"test_fraction={test_fraction!r} must be between 0 and 1 (exclusive), or give "
                             f"{root} train/ and test/ subfolders")
        images, labels = _load_split(classes, names, hw, channels, progress, skipped, root)
        try:
            train_x, train_y, test_x, test_y = train_val_split(images, labels, test_fraction, seed)
        except InputError as exc:
            raise DataError(f"{root}: {len(labels)} readable images are too few to hold out a test fraction "
                            f"of {test_fraction}; add images or use train/ and test/ subfolders") from exc
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable file(s) in {root}: {_listing(skipped)}",
                      UnreadableImagesWarning, stacklevel=2)
    return Dataset(train_x, train_y, test_x, test_y, names, str(root), NAME)
