"""Where datasets are looked for and downloaded to: the rules every built-in dataset follows.

A dataset's files live in one folder (``cifar-10-batches-py``, ``mnist``, ...). It is looked for,
in order, in the ``data_dir`` argument, ``FEATURELENS_DATA_DIR``, the per-user cache
(``platformdirs.user_cache_dir("featurelens")``) and Keras's cache (``~/.keras/datasets``, where
Keras keeps the same files); each place may hold the folder or be it. Only ``data_dir`` is looked
at when it is given. If no complete folder is found, the official files are downloaded into
``data_dir`` (else ``FEATURELENS_DATA_DIR``, else the user cache) with their md5 checked, and an
archive is extracted atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from featurelens.data.archive import extract_tar
from featurelens.data.dataset import Dataset
from featurelens.data.download import download, file_md5
from featurelens.errors import DataError

DATA_DIR_ENV = "FEATURELENS_DATA_DIR"


def user_cache() -> Path:
    """featurelens's per-user cache folder (``~/.cache/featurelens`` on Linux)."""
    return Path(platformdirs.user_cache_dir("featurelens"))


def keras_cache() -> Path:
    """Where Keras keeps the datasets it downloads."""
    return Path.home() / ".keras" / "datasets"


def download_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where a download goes: ``data_dir``, else ``FEATURELENS_DATA_DIR``, else the user cache."""
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    return user_cache()


@dataclass(frozen=True)
class Remote:
    """One official file: its name, where to download it and its md5."""

    name: str
    url: str
    md5: str


@dataclass(frozen=True)
class DatasetFiles:
    """The folder of one dataset: the files it must hold, where it is looked for, how to fetch it.

    With ``archive`` the single remote is a tar archive whose only top-level folder is ``folder``;
    otherwise every remote is downloaded into ``folder`` as it is. ``also`` are other paths, under
    every place looked at, where other tools keep the same files (Keras 3's
    ``cifar-10-batches-py-target/cifar-10-batches-py``, torchvision's ``MNIST/raw``). A place
    named like one of ``others`` (the folders of datasets made of files with the same names) is
    not taken for this dataset's folder itself.
    """

    title: str
    folder: str
    files: tuple[str, ...]
    remotes: tuple[Remote, ...]
    archive: bool = False
    also: tuple[str, ...] = ()
    others: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"extracted {self.title}" if self.archive else self.title

    def candidates(self, data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
        """Every folder that is checked, in order (each root's ``folder`` before the root itself)."""
        roots: list[Path] = []
        if data_dir is not None:
            roots.append(Path(data_dir))
        else:
            if os.environ.get(DATA_DIR_ENV):
                roots.append(Path(os.environ[DATA_DIR_ENV]))
            roots.append(user_cache())
        if data_dir is None:
            roots.append(keras_cache())
        found = [c for root in roots for c in (root / self.folder, *(root / sub for sub in self.also), root)
                 if c != root or root.name not in self.others]
        return list(dict.fromkeys(found))

    def missing_files(self, folder: Path) -> list[str]:
        return [name for name in self.files if not (folder / name).is_file()]

    def is_complete(self, folder: Path) -> bool:
        return not self.missing_files(folder)

    def find(self, data_dir: str | os.PathLike[str] | None = None) -> Path | None:
        """The first complete folder where featurelens looks, or None."""
        for folder in self.candidates(data_dir):
            if self.is_complete(folder):
                return folder
        return None

    def not_found(self, data_dir: str | os.PathLike[str] | None = None) -> DataError:
        where = ", ".join(str(c) for c in self.candidates(data_dir) if c.name == self.folder) or "nowhere"
        files = "" if self.archive else f" with {', '.join(self.files)}"
        return DataError(
            f"no {self.label} found (looked for {self.folder}{files} in {where}); pass download=True (drop "
            f"--no-download) or point {DATA_DIR_ENV} (or --data-dir) at a folder holding {self.folder}")

    def download(self, data_dir: str | os.PathLike[str] | None = None, *, progress: bool = True) -> Path:
        """Download what is missing (md5-checked), extract an archive, and return the folder."""
        root = download_root(data_dir)
        hint = f"a complete {self.folder} folder"
        if self.archive:
            (remote,) = self.remotes
            archive = fetch(remote, root, progress=progress, hint=hint)
            folder = extract_tar(archive, root, self.folder)
        else:
            folder = root / self.folder
            for remote in self.remotes:
                fetch(remote, folder, progress=progress, hint=hint)
        missing = self.missing_files(folder)
        if missing:
            raise DataError(f"the download of {self.title} did not provide {', '.join(missing)}; delete "
                            f"{folder} and retry")
        return folder

    def locate(self, data_dir: str | os.PathLike[str] | None = None, *, download: bool = True,
               progress: bool = True) -> Path:
        """A complete folder: found where featurelens looks, else downloaded (unless ``download=False``)."""
        folder = self.find(data_dir)
        if folder is not None:
            return folder
        if not download:
            raise self.not_found(data_dir)
        return self.download(data_dir, progress=progress)

    def require(self, folder: Path) -> None:
        """Raise a DataError naming the files ``folder`` lacks."""
        missing = self.missing_files(folder)
        if missing:
            raise DataError(f"{folder} is missing {', '.join(missing)}; point at a complete {self.folder} "
                            "folder or delete it so that featurelens downloads a fresh copy")


def fetch(remote: Remote, folder: Path, *, progress: bool = True, hint: str = "the dataset") -> Path:
    """``folder/remote.name``, downloaded unless a file with the right md5 is already there."""
    dest = folder / remote.name
    if not (dest.is_file() and file_md5(dest) == remote.md5):
        download(remote.url, dest, remote.md5, progress=progress, hint=hint)
    return dest


class FolderFormat:
    """A dataset read from one folder of files: ``read`` parses it, ``load`` finds (or fetches) and reads it."""

    files: DatasetFiles

    def read(self, folder: str | os.PathLike[str]) -> Dataset:
        raise NotImplementedError

    def load(self, data_dir: str | os.PathLike[str] | None = None, *, download: bool = True,
             progress: bool = True) -> Dataset:
        """The whole dataset, from a folder found where featurelens looks, else downloaded."""
        return self.read(self.files.locate(data_dir, download=download, progress=progress))
