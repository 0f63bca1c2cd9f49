"""Shared by the gallery examples: the data subset and one trained seed CNN, cached on disk."""

from __future__ import annotations

import os
from pathlib import Path

import featurelens as fl

CACHE = Path(os.environ.get("FEATURELENS_GALLERY_CACHE", Path.home() / ".cache" / "featurelens-gallery"))
TRAIN_PER_CLASS = int(os.environ.get("FEATURELENS_GALLERY_PER_CLASS", "1000"))
EPOCHS = 8
SITE_EXTRA = CACHE / "site-extra"
"""Copied into the built site's root (docs/conf.py's ``html_extra_path``)."""
EXPLORER = SITE_EXTRA / "explorer"
"""The gallery model's explorer, published at ``explorer/index.html``."""


def cifar10() -> fl.Dataset:
    """CIFAR-10 with 1,000 training images per class and the whole test set."""
    return fl.load_cifar10(train_per_class=TRAIN_PER_CLASS, progress=False)


def seed_model(backend: str = "torch") -> fl.Model:
    """The seed CNN trained on :func:`cifar10` with ``backend``, trained once and then reused.

    Snapshots are taken after every epoch (filters and probe maps, about 1 MB each), for the
    example on how the filters formed.
    """
    folder = CACHE / f"seed-{backend}"
    if (folder / "featurelens.json").is_file():
        model = fl.load_model(folder)
        if model.snapshots is not None:  # a cache from before snapshots is trained again
            return model
    data = cifar10()
    config = fl.TrainConfig(epochs=EPOCHS, seed=0, snapshot_every=1)
    model = fl.train(fl.get_preset("seed"), data.train_images, data.train_labels, config,
                     backend=backend, class_names=data.class_names, progress=False)
    model.save(folder, overwrite=True)
    return model
