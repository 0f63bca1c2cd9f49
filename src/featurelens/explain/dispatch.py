"""One entry point, ``explain(model, images, method=...)``, for code that picks methods by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from featurelens.errors import InputError
from featurelens.explain.cam import gradcam, gradcam_plus_plus, layercam
from featurelens.explain.gradients import saliency, smoothgrad
from featurelens.explain.integrated import integrated_gradients
from featurelens.explain.occlusion import occlusion
from featurelens.explain.result import Explanation
from featurelens.explain.scorecam import scorecam
from featurelens.model import Model

#: Every attribution method by the name ``explain(..., method=NAME)`` and the CLI accept.
METHODS: dict[str, Callable[..., Explanation]] = {
    "saliency": saliency,
    "smoothgrad": smoothgrad,
    "integrated_gradients": integrated_gradients,
    "gradcam": gradcam,
    "gradcam++": gradcam_plus_plus,
    "layercam": layercam,
    "scorecam": scorecam,
    "occlusion": occlusion,
}
"""The methods :func:`explain` knows, by name."""


def method_function(method: str) -> Callable[..., Explanation]:
    """The function of ``method``, or an :class:`InputError` listing the methods."""
    if not isinstance(method, str) or method not in METHODS:
        raise InputError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
    return METHODS[method]


def explain(model: Model, images: np.ndarray, targets: object = None, *, method: str = "gradcam",
            **options: Any) -> Explanation:
    """Explain ``images`` (as loaded) with ``method``; ``options`` go to the method's function
    (``layer``, ``batch_size``, ``steps`` ...). Default targets: the predicted classes."""
    return method_function(method)(model, images, targets, **options)
