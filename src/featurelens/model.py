"""A trained (or freshly built) model, whatever the backend, with what it needs to be used.

:class:`Model` pairs the backend's native model with its spec, the normalization it was trained
with, the class names and its training history. Users hand it images as loaded (uint8 or float
in the 0-255 scale, (N, H, W, C)); it normalizes them itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from featurelens.backend import Backend
from featurelens.evaluation import Evaluation, evaluate_probabilities
from featurelens.history import History
from featurelens.normalization import Normalization
from featurelens.spec import ModelSpec


class Model:
    """A backend's model plus its spec, normalization, class names and history."""

    def __init__(self, backend: Backend, native: Any, spec: ModelSpec,
                 normalization: Normalization, class_names: tuple[str, ...] | list[str],
                 history: History | None = None, train_config: dict[str, Any] | None = None) -> None:
        if len(class_names) != spec.num_classes:
            raise ValueError(f"{len(class_names)} class names for a {spec.num_classes}-class spec")
        self.backend = backend
        self.native = native
        self.spec = spec
        self.normalization = normalization
        self.class_names = tuple(class_names)
        self.history = history
        self.train_config = train_config

    def __repr__(self) -> str:
        return (f"Model(spec={self.spec.name!r}, backend={self.backend.name!r}, "
                f"params={self.spec.parameter_count():,}, device={self.backend.device(self.native)!r})")

    def check_images(self, images: np.ndarray) -> np.ndarray:
        """Raise a clear error unless ``images`` is (N, H, W, C) as the spec expects."""
        images = np.asarray(images)
        if images.ndim == 3:
            raise ValueError(f"expected a batch (N, H, W, C) but got one image of shape {images.shape}; "
                             "wrap it as images[None]")
        expected = tuple(self.spec.input_shape)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            hint = ""
            if images.ndim == 4 and tuple(images.shape[1:]) == (expected[2], expected[0], expected[1]):
                hint = "; these look channels-first, transpose them with images.transpose(0, 2, 3, 1)"
            raise ValueError(f"expected images of shape (N, {', '.join(map(str, expected))}) "
                             f"(channels last) but got {images.shape}{hint}")
        if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
            raise ValueError(f"images must be numeric (uint8 or float), not {images.dtype}")
        return images

    def normalize(self, images: np.ndarray) -> np.ndarray:
        return self.normalization.apply(self.check_images(images))

    def predict(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, num_classes) float32; rows sum to 1."""
        return self.backend.predict(self.native, self.normalize(images), batch_size=batch_size)

    def evaluate(self, images: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> Evaluation:
        """Loss, accuracy, per-class accuracy and confusion matrix on ``images``."""
        return evaluate_probabilities(self.predict(images, batch_size), labels, self.class_names)

    def save(self, folder: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the model folder (spec, weights, normalization, classes, history, versions)."""
        from featurelens.modeldir import save_model

        return save_model(self, folder, overwrite=overwrite)
