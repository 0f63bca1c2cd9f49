"""Move a model between backends through the canonical weight layout."""

from __future__ import annotations

from featurelens.backends.contract import Backend
from featurelens.backends.registry import get_backend
from featurelens.model import SpecModel
from featurelens.weights import check_weights


def convert_model(model: SpecModel, backend: str | Backend) -> SpecModel:
    """The same model (weights, batch-norm statistics, normalization, history) on ``backend``."""
    target = get_backend(backend) if isinstance(backend, str) else backend
    weights = model.backend.get_weights(model.native)
    check_weights(model.spec, weights, f"the {model.backend.name} model's weights")
    native = target.build(model.spec)
    target.set_weights(native, weights)
    return SpecModel(target, native, model.spec, model.normalization, model.class_names or (),
                     history=model.history, train_config=model.train_config)
