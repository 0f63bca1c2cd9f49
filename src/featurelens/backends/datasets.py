"""Datasets as plugins: what ``featurelens.load_dataset`` and ``--dataset NAME`` can load.

A :class:`DatasetEntry` names a ``load`` function returning a :class:`featurelens.Dataset`; it is
registered through the hook ``featurelens_register_datasets``. The built-in CIFAR-10, CIFAR-100,
MNIST and Fashion-MNIST register exactly as a third-party package's datasets do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from featurelens.errors import BackendError

if TYPE_CHECKING:
    from featurelens.data.dataset import Dataset

#: Not a registrable name: ``--dataset image-folder`` means a folder of images (``--data-dir``).
IMAGE_FOLDER = "image-folder"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset, cheap to create: nothing is read until ``load`` is called.

    ``load(data_dir=..., download=..., progress=...)`` returns the whole
    :class:`featurelens.Dataset` (uint8 images ``(N, H, W, C)``, int64 labels, class names);
    ``data_dir`` is the user's ``--data-dir`` (``None``: the loader's own default places),
    ``download=False`` must fail with a :class:`featurelens.DataError` saying where it looked
    instead of fetching anything, and ``progress`` allows progress bars. Per-class subsets are
    applied by :func:`featurelens.load_dataset`, not by the loader. ``input_shape``
    (height, width, channels) and ``num_classes`` describe the data when known, so that listing
    datasets never reads them. Names are lower case (letters, digits, ``-``, ``_``, ``.``).
    """

    name: str
    description: str
    load: Callable[..., Dataset]
    input_shape: tuple[int, int, int] | None = None
    num_classes: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise BackendError(f"a dataset name must be lower-case letters, digits, '-', '_' or '.'; "
                               f"got {self.name!r}")
        if self.name == IMAGE_FOLDER:
            raise BackendError(f"the dataset name {IMAGE_FOLDER!r} is reserved for folders of images "
                               "(featurelens.load_image_folder); choose another name")
        if not callable(self.load):
            raise BackendError(f"the dataset {self.name!r} needs a callable `load`, got {self.load!r}")
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(self.input_shape))
