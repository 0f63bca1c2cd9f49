"""What introspection answers, for every backend, in canonical numpy layouts.

- :class:`LayerInfo` for each layer: name, kind, output shape (per example, channels last) and
  parameter count, in execution order.
- Filters of a conv layer: ``(C_out, kh, kw, C_in)`` float32, so ``filters[i]`` is image-like.
- Feature maps: ``{layer name: (N, H, W, C)}`` float32 (``(N, features)`` for dense layers),
  from one forward pass per batch in inference mode.

Layers are addressed by the spec's names for models featurelens built, and by the framework's
own names (``features.0``, ``conv2d_1`` ...) for models a user built.
"""

from __future__ import annotations

from dataclasses import dataclass

from featurelens.errors import FeaturelensError


class LayerNotFoundError(FeaturelensError, KeyError):
    """A layer name that the model does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class LayerInfo:
    """One layer as introspection sees it."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int


def unknown_layer(name: str, known: list[str], wanted: str = "layer") -> LayerNotFoundError:
    """The error for a missing layer, listing the ones that exist."""
    shown = ", ".join(known[:40]) + (" ..." if len(known) > 40 else "")
    return LayerNotFoundError(f"the model has no {wanted} named {name!r}; it has: {shown}")
