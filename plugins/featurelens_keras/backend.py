"""The Keras 3 implementation of :class:`featurelens.Backend`."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from featurelens.backends import (
    Backend,
    Capability,
    Checkpointer,
    EpochObserver,
    Gradients,
    History,
    LayerInfo,
    ModelSpec,
    TrainConfig,
    TrainingState,
    as_probabilities,
)
from featurelens_keras import distribution, gradients, introspect, io, native, train
from featurelens_keras.build import build_model


class KerasBackend(Backend):
    name = "keras"
    capabilities = frozenset({Capability.TRAIN, Capability.INTROSPECT, Capability.WRAP, Capability.GRADIENTS,
                              Capability.RESUME, Capability.DATA_PARALLEL})

    @property
    def keras_backend(self) -> str:
        """The framework Keras runs on here: ``jax``, ``torch`` or ``tensorflow``."""
        return keras.backend.backend()

    def versions(self) -> dict[str, str]:
        versions = {"keras": keras.__version__, "keras_backend": self.keras_backend}
        framework = __import__(self.keras_backend)
        versions[self.keras_backend] = getattr(framework, "__version__", "unknown")
        return versions

    def build(self, spec: ModelSpec, seed: int = 0) -> keras.Model:
        return build_model(spec, seed)

    def fit(self, native: keras.Model, spec: ModelSpec | None, train_data, validation, config: TrainConfig,
            progress: bool = True, observers: Sequence[EpochObserver] = (), checkpoint: Checkpointer | None = None,
            resume: TrainingState | None = None) -> History:
        return train.fit(native, train_data, validation, config, progress=progress, spec_built=spec is not None,
                         observers=observers, checkpoint=checkpoint, resume=resume)

    def launch_command(self, devices: int, argv: Sequence[str]) -> None:
        """None: Keras trains on several devices within one process (:meth:`use_devices`)."""
        return None

    def use_devices(self, devices: int) -> None:
        """``keras.distribution.DataParallel`` over the first ``devices`` devices (JAX only)."""
        distribution.use_devices(devices)

    def predict(self, native: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, 0), np.float32)
        # spec-built models end in a softmax; a user's model may output logits instead
        return as_probabilities(native.predict(images, batch_size=batch_size, verbose=0))

    def get_weights(self, native: keras.Model) -> dict[str, np.ndarray]:
        return io.get_weights(native)

    def set_weights(self, native: keras.Model, weights: dict[str, np.ndarray]) -> None:
        io.set_weights(native, weights)

    def device(self, native: keras.Model) -> str:
        return f"keras-{self.keras_backend}"

    def accepts(self, native) -> bool:
        return isinstance(native, keras.Model)

    def layers(self, native: keras.Model, input_shape: tuple[int, int, int]) -> list[LayerInfo]:
        return introspect.layers(native, input_shape)

    def filters(self, native: keras.Model, layer: str) -> np.ndarray:
        return introspect.filters(native, layer)

    def feature_maps(self, native: keras.Model, images: np.ndarray, layers: list[str] | None,
                     batch_size: int = 64):
        return introspect.feature_maps(native, images, layers, batch_size)

    def attachments(self, native: keras.Model) -> list[str]:
        return introspect.attached(native)

    def value_and_grad(self, native: keras.Model, images: np.ndarray, objective, *, layer: str | None = None,
                       wrt_input: bool = True, batch_size: int = 64) -> Gradients:
        """On JAX (``jax.value_and_grad``) and torch (``torch.autograd``); see :mod:`featurelens_keras.gradients`."""
        return gradients.value_and_grad(native, images, objective, layer=layer, wrt_input=wrt_input,
                                        batch_size=batch_size)

    # -- models users built (Capability.WRAP): weights in order, Keras's JSON config -----------------

    def native_weights(self, native_model: keras.Model) -> dict[str, np.ndarray]:
        return native.native_weights(native_model)

    def load_native_weights(self, native_model: keras.Model, weights: dict[str, np.ndarray],
                            input_shape: tuple[int, int, int]) -> None:
        native.load_native_weights(native_model, weights, input_shape)

    def architecture(self, native_model: keras.Model) -> dict:
        return native.architecture(native_model)

    def rebuild(self, architecture: dict) -> keras.Model:
        return native.rebuild(architecture)
