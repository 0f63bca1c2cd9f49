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
from featurelens.errors import FeaturelensError
from featurelens.evaluation import Evaluation, evaluate_probabilities
from featurelens.history import History
from featurelens.introspect import LayerInfo
from featurelens.normalization import Normalization
from featurelens.spec import ModelSpec


class Model:
    """A backend's model plus its spec, normalization, class names and history.

    Models a user built without a spec (see :func:`featurelens.wrap`) have ``spec=None``; they can
    be inspected and used for predictions but not saved as a featurelens folder.
    """

    def __init__(self, backend: Backend, native: Any, spec: ModelSpec | None,
                 normalization: Normalization, class_names: tuple[str, ...] | list[str] | None,
                 history: History | None = None, train_config: dict[str, Any] | None = None,
                 input_shape: tuple[int, int, int] | None = None) -> None:
        if spec is not None and class_names is not None and len(class_names) != spec.num_classes:
            raise ValueError(f"{len(class_names)} class names for a {spec.num_classes}-class spec")
        self.backend = backend
        self.native = native
        self.spec = spec
        self.input_shape = tuple(spec.input_shape if spec is not None else (input_shape or (32, 32, 3)))
        self.normalization = normalization
        self.class_names = tuple(class_names) if class_names is not None else None
        self.history = history
        self.train_config = train_config

    def __repr__(self) -> str:
        name = self.spec.name if self.spec is not None else type(self.native).__name__
        return (f"Model({name!r}, backend={self.backend.name!r}, "
                f"device={self.backend.device(self.native)!r})")

    def check_images(self, images: np.ndarray) -> np.ndarray:
        """Raise a clear error unless ``images`` is (N, H, W, C) as the spec expects."""
        images = np.asarray(images)
        if images.ndim == 3:
            raise ValueError(f"expected a batch (N, H, W, C) but got one image of shape {images.shape}; "
                             "wrap it as images[None]")
        expected = self.input_shape
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
        probs = self.predict(images, batch_size)
        names = self.class_names or tuple(str(i) for i in range(probs.shape[1]))
        return evaluate_probabilities(probs, labels, names)

    # -- looking inside ----------------------------------------------------------------------

    def layers(self) -> list[LayerInfo]:
        """Every layer in execution order: name, kind, output shape (channels last), parameters."""
        return self.backend.layers(self.native, self.input_shape)

    def conv_layers(self) -> list[str]:
        """Names of the convolution layers, in order."""
        return [info.name for info in self.layers() if info.kind == "conv2d"]

    def filters(self, layer: str) -> np.ndarray:
        """The kernels of conv layer ``layer``, (C_out, kh, kw, C_in) float32."""
        return self.backend.filters(self.native, layer)

    def iter_feature_maps(self, images: np.ndarray, layers: list[str] | None = None,
                          batch_size: int = 256):
        """Yield ``{layer: (n, H, W, C)}`` batch by batch: memory stays bounded for any N."""
        images = self.check_images(images)
        for start in range(0, len(images), batch_size):
            chunk = self.normalization.apply(images[start:start + batch_size])
            yield from self.backend.feature_maps(self.native, chunk, layers, batch_size)

    def feature_maps(self, images: np.ndarray, layers: list[str] | str | None = None,
                     batch_size: int = 256) -> dict[str, np.ndarray]:
        """``{layer: (N, H, W, C)}`` float32 for ``layers`` (default: every layer) of ``images``.

        Images are given as loaded and normalized the way the model was trained. Each batch
        takes one forward pass in inference mode that records every requested layer. On the CPU
        the arrays may share memory with the framework's outputs (no copy is made; layers that
        return their input unchanged, such as dropout at inference, share it), so copy an array
        before changing it in place.
        """
        if isinstance(layers, str):
            layers = [layers]
        images = self.check_images(images)
        if len(images) <= batch_size:  # one pass: hand over the backend's arrays as they are
            return next(iter(self.iter_feature_maps(images, layers, batch_size)), {})
        out: dict[str, np.ndarray] = {}
        filled = 0
        for batch in self.iter_feature_maps(images, layers, batch_size):
            n = len(next(iter(batch.values())))
            for name, array in batch.items():
                if name not in out:  # allocate once: no list of batches, no concatenate copy
                    out[name] = np.empty((len(images), *array.shape[1:]), np.float32)
                out[name][filled:filled + n] = array
            filled += n
        return out

    def save(self, folder: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the model folder (spec, weights, normalization, classes, history, versions)."""
        from featurelens.modeldir import save_model

        if self.spec is None:
            raise FeaturelensError("only models built from a ModelSpec can be saved as a featurelens "
                                   "folder; save a model you built yourself with its framework")
        return save_model(self, folder, overwrite=overwrite)
