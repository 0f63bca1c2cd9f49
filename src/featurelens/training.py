"""Train a spec on arrays with any backend: split, normalize, build, fit."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from featurelens.backends.contract import Backend, Capability
from featurelens.backends.registry import get_backend
from featurelens.config import TrainConfig
from featurelens.data.arrays import train_val_split
from featurelens.errors import InputError
from featurelens.model import SpecModel
from featurelens.normalization import Normalization
from featurelens.spec import ModelSpec


def _resolve_backend(backend: str | Backend | None) -> Backend:
    return backend if isinstance(backend, Backend) else get_backend(backend)


def build_model(spec: ModelSpec, normalization: Normalization, class_names: Sequence[str],
                backend: str | Backend | None = None, seed: int = 0) -> SpecModel:
    """An untrained model of ``spec`` on ``backend``."""
    chosen = _resolve_backend(backend)
    return SpecModel(chosen, chosen.build(spec, seed=seed), spec, normalization, tuple(class_names))


def train(spec: ModelSpec, images: np.ndarray, labels: np.ndarray,
          config: TrainConfig | None = None, *, backend: str | Backend | None = None,
          class_names: Sequence[str] | None = None, progress: bool = True) -> SpecModel:
    """Train ``spec`` on images as loaded (N, H, W, C) and integer labels.

    Holds out ``config.validation_split`` of every class (seeded), computes the per-channel
    normalization from the remaining training images, builds the model and fits it.
    """
    config = config or TrainConfig()
    chosen = _resolve_backend(backend)
    chosen.require(Capability.TRAIN, "train models")
    labels = np.asarray(labels, np.int64)
    names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(spec.num_classes))
    train_x, train_y, val_x, val_y = train_val_split(images, labels, config.validation_split, config.seed)
    normalization = Normalization.from_images(train_x)
    model = build_model(spec, normalization, names, chosen, seed=config.seed)
    model.check_images(train_x)
    if len(train_y) and (train_y.min() < 0 or train_y.max() >= spec.num_classes):
        raise InputError(f"labels must be in 0..{spec.num_classes - 1} for this spec")
    validation = (normalization.apply(val_x), val_y) if len(val_y) else None
    model.history = chosen.fit(model.native, spec, (normalization.apply(train_x), train_y),
                               validation, config, progress=progress)
    model.train_config = config.to_dict()
    return model
