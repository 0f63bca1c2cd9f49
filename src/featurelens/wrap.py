"""Look inside models featurelens did not build: wrap a framework model as a :class:`WrappedModel`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from featurelens.backends.contract import Backend, Capability
from featurelens.backends.registry import get_backend, registry
from featurelens.errors import BackendError
from featurelens.model import WrappedModel
from featurelens.normalization import Normalization


def wrap(native: Any, backend: str | Backend | None = None, *,
         normalization: Normalization | None = None, class_names: Sequence[str] | None = None,
         input_shape: tuple[int, int, int] = (32, 32, 3)) -> WrappedModel:
    """A model you built yourself (a ``torch.nn.Module``, a Keras model), ready to inspect.

    Layers are addressed by the framework's own names. Images are passed to the model after
    ``normalization`` (default: none, so give images exactly as your model expects them; for a
    model trained on pixels scaled to [0, 1] use ``Normalization((0,) * 3, (255,) * 3)``).
    """
    if isinstance(backend, str):
        chosen = get_backend(backend)
    else:
        chosen = backend or registry.detect(native)
    chosen.require(Capability.WRAP, "inspect models users built")
    if not chosen.accepts(native):
        raise BackendError(f"the {chosen.name!r} backend cannot inspect a {type(native).__qualname__}")
    channels = input_shape[2]
    norm = normalization or Normalization((0.0,) * channels, (1.0,) * channels)
    return WrappedModel(chosen, native, norm, class_names, input_shape)
