"""What a backend is: the contract between the core and PyTorch, Keras or a third party.

The core never imports a framework. A backend turns a :class:`~featurelens.spec.ModelSpec` into a
framework model (the *native* model), trains it, predicts and saves it, exchanging only numpy
arrays in the canonical layouts: images (N, H, W, C) float32 already normalized, labels (N,)
int64, probabilities (N, num_classes) float32.
"""

from __future__ import annotations

import abc
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from featurelens.introspect import LayerInfo

if TYPE_CHECKING:
    from featurelens.config import TrainConfig
    from featurelens.history import History
    from featurelens.spec import ModelSpec

WEIGHTS_FILE = "weights.safetensors"


class Backend(abc.ABC):
    """Base class every backend implements. Methods receive and return numpy arrays."""

    #: Short name used on the command line and in saved model folders.
    name: str = ""

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """Framework versions to record in a saved model folder, e.g. ``{"torch": "2.13.0"}``."""

    @abc.abstractmethod
    def build(self, spec: ModelSpec, seed: int = 0) -> Any:
        """A freshly initialised native model for ``spec`` with the spec's layer names."""

    @abc.abstractmethod
    def fit(self, native: Any, spec: ModelSpec, train: tuple[np.ndarray, np.ndarray],
            validation: tuple[np.ndarray, np.ndarray] | None, config: TrainConfig,
            progress: bool = True) -> History:
        """Train in place following ``config`` (early stopping, LR reduction, ...)."""

    @abc.abstractmethod
    def predict(self, native: Any, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, num_classes) float32 for normalized NHWC float32 images."""

    @abc.abstractmethod
    def get_weights(self, native: Any) -> dict[str, np.ndarray]:
        """The weights in the canonical names and layouts of :mod:`featurelens.weights`."""

    @abc.abstractmethod
    def set_weights(self, native: Any, weights: dict[str, np.ndarray]) -> None:
        """Load canonical weights (already checked against the spec) into ``native``."""

    def device(self, native: Any) -> str:
        """Where the model lives (``cpu``, ``cuda:0`` ...), for messages."""
        return "cpu"

    # -- introspection (see featurelens.introspect for the layouts) ------------------------------

    def accepts(self, native: Any) -> bool:
        """Whether ``native`` is a model of this backend's framework (for :func:`featurelens.wrap`)."""
        return False

    def layers(self, native: Any, input_shape: tuple[int, int, int]) -> list[LayerInfo]:
        """Every layer in execution order with its output shape for one (H, W, C) input."""
        raise NotImplementedError(f"the {self.name!r} backend does not implement introspection")

    def filters(self, native: Any, layer: str) -> np.ndarray:
        """The kernels of conv layer ``layer`` as (C_out, kh, kw, C_in) float32."""
        raise NotImplementedError(f"the {self.name!r} backend does not implement introspection")

    def feature_maps(self, native: Any, images: np.ndarray, layers: list[str] | None,
                     batch_size: int = 64) -> Iterator[dict[str, np.ndarray]]:
        """Yield, batch by batch, ``{layer: (n, H, W, C)}`` for normalized NHWC float32 images.

        One forward pass per batch in inference mode, without gradients; every hook or helper
        model it installs is gone when the iterator finishes or fails. ``None`` means all layers.
        """
        raise NotImplementedError(f"the {self.name!r} backend does not implement introspection")


@dataclass(frozen=True)
class BackendEntry:
    """A registered backend, cheap to create: the framework is imported only by ``load``."""

    name: str
    load: Callable[[], Backend]
    requires: tuple[str, ...] = ()
    install: str = ""
    description: str = ""

    def missing(self) -> list[str]:
        """The required modules that are not importable here."""
        return [mod for mod in self.requires if importlib.util.find_spec(mod) is None]
