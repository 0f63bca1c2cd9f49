"""What :meth:`Backend.value_and_grad <featurelens.backends.Backend.value_and_grad>` differentiates.

Objectives are plain data (frozen dataclasses, no framework callables), so the core and attribution
methods describe *what* to differentiate and every backend computes it its own way:

- :class:`ClassScore`: the score of one target class per image, a logit or a log-probability;
- :class:`ChannelMean`: the mean over positions of one channel of a named layer's output (one
  channel for all images, or one per image);
- :class:`Unit`: one unit of a named layer's output at one position.

Each image of a batch has its own value; the gradients are those of each image's value with
respect to that image (the values are independent, so one backward pass of their sum gives them).
:class:`Gradients` is what comes back, in the canonical channels-last layouts of feature maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from featurelens.errors import InputError

KINDS = ("logit", "log_probability")


def _index(value: object, what: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 0:
        raise InputError(f"{what} must be a non-negative int, got {value!r}")


def _layer_name(layer: object, what: str) -> None:
    if not isinstance(layer, str) or not layer:
        raise InputError(f"{what} needs a layer name (a non-empty string), got {layer!r}")


@dataclass(frozen=True)
class ClassScore:
    """The score of one target class per image: ``targets[i]`` is image ``i``'s class.

    ``kind="logit"``: the model's pre-softmax class score (for a model that outputs probabilities,
    the log of the probability); ``kind="log_probability"``: the log-softmax of the logits. The
    backend checks that there is one target per image and that each is a class of the model.
    """

    targets: tuple[int, ...] | np.ndarray
    kind: Literal["logit", "log_probability"] = "logit"

    def __post_init__(self) -> None:
        targets = np.asarray(self.targets)
        if targets.ndim != 1:
            raise InputError(f"ClassScore targets must be one class index per image, a 1-D sequence of ints; got "
                             f"shape {targets.shape}")
        if targets.size and (targets.dtype.kind not in "iu" or bool((targets < 0).any())):
            raise InputError(f"ClassScore targets must be non-negative class indices (ints), got {targets[:8]!r}")
        if self.kind not in KINDS:
            raise InputError(f"ClassScore kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    @property
    def target_array(self) -> np.ndarray:
        """The targets as an int64 array."""
        return np.asarray(self.targets, dtype=np.int64).reshape(-1)

    def checked_targets(self, count: int, num_classes: int) -> np.ndarray:
        """The targets as int64, after checking one per image and each below ``num_classes``."""
        targets = self.target_array
        if len(targets) != count:
            raise InputError(f"ClassScore has {len(targets)} target(s) for {count} image(s); give one target class "
                             "per image")
        bad = targets[(targets < 0) | (targets >= num_classes)]
        if bad.size:
            raise InputError(f"ClassScore target {int(bad[0])} is not a class of the model: it has {num_classes} "
                             f"classes (0 to {num_classes - 1})")
        return targets

    def __eq__(self, other: object) -> bool:  # arrays do not compare as booleans
        return (isinstance(other, ClassScore) and self.kind == other.kind
                and np.array_equal(self.target_array, other.target_array))

    def __hash__(self) -> int:
        return hash((self.kind, tuple(self.target_array.tolist())))


@dataclass(frozen=True)
class ChannelMean:
    """The mean over positions of channel ``channel`` of layer ``layer``'s output (for a 2-D output,
    such as a dense layer's, the value of that feature).

    ``channel`` is one int for every image, or a 1-D sequence of ints, one per image (``channel[i]``
    is image ``i``'s channel), so that one batch can optimise or explain a different channel per
    image; the backend then checks that there is one channel per image.
    """

    layer: str
    channel: int | tuple[int, ...] | np.ndarray

    def __post_init__(self) -> None:
        _layer_name(self.layer, "ChannelMean")
        if isinstance(self.channel, (int, np.integer)) and not isinstance(self.channel, bool):
            _index(self.channel, "ChannelMean channel")
            return
        channels = np.asarray(self.channel)
        if channels.ndim != 1 or (channels.size and channels.dtype.kind not in "iu"):
            raise InputError(f"ChannelMean channel must be a non-negative int or a 1-D sequence of them (one per "
                             f"image); got {self.channel!r}")
        if channels.size and bool((channels < 0).any()):
            raise InputError(f"ChannelMean channels must be non-negative ints, got {channels[:8]!r}")

    @property
    def per_image(self) -> bool:
        """Whether ``channel`` gives one channel per image rather than one for all."""
        return not isinstance(self.channel, (int, np.integer))

    @property
    def channel_array(self) -> np.ndarray:
        """The channels as an int64 array: one element for a shared channel, else one per image."""
        return np.asarray(self.channel, dtype=np.int64).reshape(-1)

    def channels_for(self, start: int, count: int, total: int | None = None) -> np.ndarray:
        """The channels of images ``start`` to ``start + count`` (int64, one per image).

        ``total``, when given, is the number of images of the whole request: per-image channels
        must be exactly that many (checked once, before the first batch).
        """
        channels = self.channel_array
        if not self.per_image:
            return np.full(count, int(channels[0]), np.int64)
        if total is not None and len(channels) != total:
            raise InputError(f"ChannelMean has {len(channels)} channel(s) for {total} image(s); give one channel per "
                             "image, or one int for all")
        part = channels[start:start + count]
        if len(part) != count:
            raise InputError(f"ChannelMean has {len(channels)} channel(s), too few for images {start} to "
                             f"{start + count - 1}; give one channel per image, or one int for all")
        return part

    def check_output(self, shape: tuple[int, ...]) -> None:
        """Raise :class:`InputError` unless the channel exists in a layer output of ``shape``
        (per image, channels last)."""
        _check_output(self, shape)

    def __eq__(self, other: object) -> bool:  # arrays do not compare as booleans
        return (isinstance(other, ChannelMean) and self.layer == other.layer and self.per_image == other.per_image
                and np.array_equal(self.channel_array, other.channel_array))

    def __hash__(self) -> int:
        return hash((self.layer, self.per_image, tuple(self.channel_array.tolist())))


@dataclass(frozen=True)
class Unit:
    """One unit of layer ``layer``'s output: channel ``channel`` at row ``y``, column ``x``.

    ``y`` and ``x`` are None for 2-D outputs (a dense layer's), and both given for feature maps.
    """

    layer: str
    channel: int
    y: int | None = None
    x: int | None = None

    def __post_init__(self) -> None:
        _layer_name(self.layer, "Unit")
        _index(self.channel, "Unit channel")
        _index(self.y, "Unit y", allow_none=True)
        _index(self.x, "Unit x", allow_none=True)
        if (self.y is None) != (self.x is None):
            raise InputError(f"Unit needs both y and x (a position in a feature map) or neither (a 2-D output), "
                             f"got y={self.y!r}, x={self.x!r}")

    def check_output(self, shape: tuple[int, ...]) -> None:
        """Raise :class:`InputError` unless the unit exists in a layer output of ``shape``
        (per image, channels last)."""
        _check_output(self, shape)


Objective = ClassScore | ChannelMean | Unit
"""Any of the objectives."""


@dataclass(frozen=True, eq=False)
class Gradients:
    """What :meth:`Backend.value_and_grad <featurelens.backends.Backend.value_and_grad>` returns.

    - ``values``: (N,) float32, the objective's value for each image;
    - ``input_grad``: (N, H, W, C) float32, the gradient of each image's value with respect to that
      (normalized) image, or None when it was not asked for (``wrt_input=False``);
    - ``layer``: the layer whose activations and gradients follow, or None;
    - ``activations``: that layer's output, (N, h, w, c) float32 (``(N, features)`` for 2-D
      outputs), as :meth:`~featurelens.backends.Backend.feature_maps` gives it;
    - ``layer_grad``: the gradient of each image's value with respect to those activations, same
      shape.
    """

    values: np.ndarray
    input_grad: np.ndarray | None = None
    layer: str | None = None
    activations: np.ndarray | None = None
    layer_grad: np.ndarray | None = None


def _check_output(objective: ChannelMean | Unit, shape: tuple[int, ...]) -> None:
    name = type(objective).__name__
    if len(shape) not in (1, 3):
        raise InputError(f"{name} needs a layer with (h, w, c) or (features,) outputs; {objective.layer!r} gives "
                         f"{shape}")
    channels = shape[-1]
    wanted = objective.channel_array if isinstance(objective, ChannelMean) else np.array([objective.channel])
    if wanted.size and int(wanted.max()) >= channels:
        raise InputError(f"{name} channel {int(wanted.max())} does not exist: {objective.layer!r} has {channels} "
                         "channel(s)")
    if isinstance(objective, Unit):
        if len(shape) == 3 and (objective.y is None or objective.x is None):
            raise InputError(f"Unit on {objective.layer!r} needs a position y, x: its output is {shape} (h, w, c)")
        if len(shape) == 1 and objective.y is not None:
            raise InputError(f"Unit on {objective.layer!r} takes no position: its output is {shape} (features,); "
                             "leave y and x None")
        if len(shape) == 3 and (int(objective.y) >= shape[0] or int(objective.x) >= shape[1]):  # type: ignore[arg-type]
            raise InputError(f"Unit position y={objective.y}, x={objective.x} is outside {objective.layer!r}'s "
                             f"{shape[0]}x{shape[1]} output")


def checked_request(images: np.ndarray, objective: object, batch_size: int) -> np.ndarray:
    """The checks every ``value_and_grad`` starts with: a known objective, a positive batch size,
    numeric (N, H, W, C) images; returns the images as contiguous float32."""
    if not isinstance(objective, (ClassScore, ChannelMean, Unit)):
        raise InputError(f"the objective must be a ClassScore, ChannelMean or Unit from featurelens.backends, got "
                         f"{type(objective).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
    array = np.asarray(images)
    if array.ndim != 4 or array.dtype.kind not in "fiu":
        raise InputError(f"expected numeric images of shape (N, H, W, C), got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array, np.float32)
