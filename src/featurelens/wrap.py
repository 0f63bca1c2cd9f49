"""Look inside models featurelens did not build: wrap a framework model as a :class:`Model`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from featurelens.backend import Backend
from featurelens.errors import BackendError
from featurelens.model import Model
from featurelens.normalization import Normalization


def _detect(native: Any) -> Backend:
    from featurelens.backends import _ordered, get_backend
    from featurelens.plugins import registry

    for entry in _ordered(registry().backends):
        # only frameworks the user already imported can own the object; never import one here
        if entry.requires and not all(mod in sys.modules for mod in entry.requires):
            continue
        if entry.missing():
            continue
        backend = get_backend(entry.name)
        if backend.accepts(native):
            return backend
    raise BackendError(f"no installed backend recognises a {type(native).__module__}."
                       f"{type(native).__qualname__}; pass backend='torch' or 'keras' explicitly")


def wrap(native: Any, backend: str | Backend | None = None, *,
         normalization: Normalization | None = None, class_names: Sequence[str] | None = None,
         input_shape: tuple[int, int, int] = (32, 32, 3)) -> Model:
    """A :class:`Model` around a model you built yourself (a ``torch.nn.Module``, a Keras model).

    Layers are addressed by the framework's own names. Images are passed to the model after
    ``normalization`` (default: none, so give images exactly as your model expects them; for a
    model trained on pixels scaled to [0, 1] use ``Normalization((0,) * 3, (255,) * 3)``).
    """
    if isinstance(backend, str):
        from featurelens.backends import get_backend

        chosen = get_backend(backend)
    else:
        chosen = backend or _detect(native)
    if not chosen.accepts(native):
        raise BackendError(f"the {chosen.name!r} backend cannot inspect a {type(native).__qualname__}")
    channels = input_shape[2]
    norm = normalization or Normalization((0.0,) * channels, (1.0,) * channels)
    return Model(chosen, native, None, norm, class_names, input_shape=tuple(input_shape))
