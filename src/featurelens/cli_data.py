"""Which data a command works on: ``--dataset``, ``--data-dir`` and the image-folder options.

How the options combine:

* ``--dataset NAME`` loads a registered dataset (``featurelens datasets`` lists them); ``--data-dir``
  is then where to look for (and download) it.
* ``--dataset image-folder --data-dir PATH`` loads your own images, ``PATH/<class>/*.png`` (or
  ``PATH/train/<class>/`` + ``PATH/test/<class>/``), at ``--image-size H W`` (default 32 32) with
  ``--channels`` 3 or 1 (default 3), holding out ``--test-fraction`` (default 0.2) when there is no
  ``test/`` folder.
* Without ``--dataset``: ``evaluate``, ``visualize`` and ``compare`` use the dataset the model was
  trained on (recorded under ``"dataset"`` in its ``train_config``: name, folder, image size,
  channels, split); otherwise a ``--data-dir`` holding class folders of images is an image
  folder, and anything else means CIFAR-10.

Flags given explicitly always win over what the model folder recorded.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featurelens.backends.datasets import IMAGE_FOLDER
from featurelens.data import is_image_folder, load_dataset, load_image_folder
from featurelens.data.dataset import Dataset, subset
from featurelens.data.folder import check_size
from featurelens.errors import DataError, FeaturelensError
from featurelens.folder_meta import DATASET_KEY

DEFAULT_DATASET = "cifar10"
DEFAULT_SIZE = (32, 32)
DEFAULT_CHANNELS = 3
DEFAULT_TEST_FRACTION = 0.2
RECORD_KEY = DATASET_KEY


def add_data_args(p: argparse.ArgumentParser) -> None:
    """The data options every command that reads data takes."""
    p.add_argument("--dataset", metavar="NAME",
                   help=f"a registered dataset (`featurelens datasets`: {DEFAULT_DATASET}, cifar100, mnist, "
                        f"fashion-mnist, ...) or {IMAGE_FOLDER} (your images in --data-dir). Default: the "
                        "model's own dataset; else an image folder if --data-dir holds class folders of "
                        f"images; else {DEFAULT_DATASET}")
    p.add_argument("--data-dir", help="where the dataset is (or goes when downloaded), or the image folder "
                   "(default: $FEATURELENS_DATA_DIR, the user cache, Keras's cache; downloads if absent)")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading the dataset")
    p.add_argument("--test-per-class", type=int, help="evaluate on this many test images per class")
    g = p.add_argument_group("image folders", "ROOT/<class>/*.png|jpg|jpeg|bmp|gif|webp, or ROOT/train/<class>/ "
                             "and ROOT/test/<class>/")
    g.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                   help=f"resize every image to H x W (default {DEFAULT_SIZE[0]} {DEFAULT_SIZE[1]}, or what the "
                        "model was trained on)")
    g.add_argument("--channels", type=int, choices=(1, 3), help=f"3 for RGB, 1 for grayscale (default "
                   f"{DEFAULT_CHANNELS}, or what the model was trained on)")
    g.add_argument("--test-fraction", type=float, help=f"share of every class held out for testing when "
                   f"there is no test/ folder (default {DEFAULT_TEST_FRACTION})")


@dataclass(frozen=True)
class DataChoice:
    """The dataset a command loads, resolved from its flags and the model's record."""

    name: str
    data_dir: str | None
    size: tuple[int, int] = DEFAULT_SIZE
    channels: int = DEFAULT_CHANNELS
    test_fraction: float = DEFAULT_TEST_FRACTION
    split_seed: int = 0

    def record(self) -> dict[str, Any]:
        """What a model folder keeps under ``train_config["dataset"]``."""
        folder = str(Path(self.data_dir).resolve()) if self.data_dir is not None else None
        if self.name != IMAGE_FOLDER:
            return {"name": self.name, "data_dir": folder}
        return {"name": self.name, "data_dir": folder, "image_size": list(self.size), "channels": self.channels,
                "test_fraction": self.test_fraction, "split_seed": self.split_seed}


def recorded(model: object) -> dict[str, Any]:
    """The dataset record of a loaded model (empty for models trained before it was recorded)."""
    config = getattr(model, "train_config", None)
    record = config.get(RECORD_KEY) if isinstance(config, dict) else None
    return record if isinstance(record, dict) else {}


def resolve(args: argparse.Namespace, record: dict[str, Any] | None = None) -> DataChoice:
    """The data to load: explicit flags, else the model's record, else auto-detection, else CIFAR-10."""
    record = record or {}
    if args.data_dir is not None and Path(args.data_dir).exists() and not Path(args.data_dir).is_dir():
        raise DataError(f"--data-dir {args.data_dir} is a file, not a folder; point at the folder holding the dataset")
    if args.dataset and args.dataset != record.get("name"):
        record = {}  # another dataset than the model's: nothing of its record applies
    name = args.dataset or record.get("name")
    data_dir = args.data_dir
    if data_dir is None:
        kept = record.get("data_dir")
        data_dir = kept if isinstance(kept, str) and Path(kept).is_dir() else None
    if name is None:
        name = IMAGE_FOLDER if data_dir is not None and is_image_folder(data_dir) else DEFAULT_DATASET
    image_flags = [flag for flag, value in (("--image-size", args.image_size), ("--channels", args.channels),
                                            ("--test-fraction", args.test_fraction)) if value is not None]
    if name != IMAGE_FOLDER:
        if image_flags:
            raise FeaturelensError(f"{', '.join(image_flags)} only apply to image folders (--dataset "
                                   f"{IMAGE_FOLDER} --data-dir PATH), not to the dataset {name!r}")
        return DataChoice(name, data_dir)
    if data_dir is None:
        raise FeaturelensError(f"--dataset {IMAGE_FOLDER} needs --data-dir PATH, a folder with one subfolder "
                               "of images per class")
    channels = int(args.channels or record.get("channels") or DEFAULT_CHANNELS)
    height, width = check_size(args.image_size or record.get("image_size") or DEFAULT_SIZE, channels)
    test_fraction = args.test_fraction if args.test_fraction is not None else record.get("test_fraction")
    return DataChoice(IMAGE_FOLDER, data_dir, size=(height, width), channels=channels,
                      test_fraction=float(DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction),
                      split_seed=int(record.get("split_seed", 0)))


def load(args: argparse.Namespace, choice: DataChoice, train_per_class: int | None = None) -> Dataset:
    """Load ``choice`` with the command's download, subset and progress options."""
    progress = not getattr(args, "no_progress", False)
    if choice.name != IMAGE_FOLDER:
        return load_dataset(choice.name, choice.data_dir, download=not args.no_download,
                            train_per_class=train_per_class, test_per_class=args.test_per_class,
                            progress=progress)
    assert choice.data_dir is not None  # resolve() guarantees it
    data = load_image_folder(choice.data_dir, choice.size, choice.channels, choice.test_fraction,
                             choice.split_seed, progress=progress)
    return subset(data, train_per_class, args.test_per_class)


def describe(data: Dataset) -> str:
    """``mnist (28x28x1, 10 classes)``: a dataset in a few words, for the commands' output."""
    h, w, c = data.input_shape
    return f"{data.name or 'dataset'} ({h}x{w}x{c}, {len(data.class_names)} classes)"
