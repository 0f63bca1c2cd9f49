"""Report figures as plugins: what ``featurelens visualize`` draws, registered through a hook.

A :class:`ReportFigure` pairs a title and caption with a function of a :class:`ReportContext`.
The function returns a matplotlib Figure, a list of :class:`Panel` (several figures, e.g. one per
layer) or ``None`` when it does not apply (a model without a history has no history figure). The
built-in figures register exactly as a third-party package's do (hook
``featurelens_register_figures``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

import numpy as np

from featurelens.spec import ACTIVATIONS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from featurelens.data.cifar10 import Dataset
    from featurelens.model import Model


@dataclass(frozen=True)
class Panel:
    """One of several figures made by one :class:`ReportFigure` (``key`` becomes part of the file name)."""

    key: str
    figure: Figure
    title: str
    caption: str


FigureResult = Union["Figure", Sequence[Panel], None]


@dataclass(frozen=True)
class ReportFigure:
    """A figure of the report: ``make(context)`` draws it; ``order`` places it (lower first).

    ``name`` is the PNG's file name without extension (for panels, ``name_key.png``) and must be
    unique among registered figures. The built-in figures use orders 100-910 (100-900 in steps of 100,
    420, 850 and 910).
    """

    name: str
    title: str
    caption: str
    make: Callable[[ReportContext], FigureResult]
    order: int = 1000


class ReportContext:
    """What a figure may use: the model, the test split, and what the report computes once for all.

    ``images``/``labels`` are the test split as loaded; ``probabilities``, ``activation_maps`` and
    the rest are computed on first use and shared by every figure of one report.
    """

    def __init__(self, model: Model, data: Dataset, image_index: int = 0) -> None:
        self.model = model
        self.data = data
        self.image_index = image_index

    @property
    def images(self) -> np.ndarray:
        return self.data.test_images

    @property
    def labels(self) -> np.ndarray:
        return self.data.test_labels

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.model.class_names or self.data.class_names)

    @functools.cached_property
    def probabilities(self) -> np.ndarray:
        """The model's probabilities for every test image, (N, num_classes)."""
        return self.model.predict(self.images)

    @functools.cached_property
    def activation_layers(self) -> list[str]:
        """For each conv layer, the layer whose output is its feature map: its activation (ReLU or
        GELU) if one follows."""
        infos = self.model.layers()
        out = []
        for i, info in enumerate(infos):
            if info.kind == "conv2d":  # conv, maybe batch norm, then the ReLU whose output we want
                following = next((x.name for x in infos[i + 1:i + 3] if x.kind in ACTIVATIONS), None)
                out.append(following or info.name)
        return out or [infos[0].name]

    @functools.cached_property
    def activation_maps(self) -> dict[str, np.ndarray]:
        """``{layer: (H, W, C)}`` of :attr:`activation_layers` for the chosen test image."""
        image = self.images[self.image_index:self.image_index + 1]
        return {k: v[0] for k, v in self.model.feature_maps(image, self.activation_layers).items()}
