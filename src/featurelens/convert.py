"""Move a model between backends through the canonical weight layout."""

from __future__ import annotations

from featurelens.backends.contract import Backend
from featurelens.backends.registry import get_backend
from featurelens.errors import InputError
from featurelens.model import Model, SpecModel
from featurelens.weights import check_weights


def convert_model(model: Model, backend: str | Backend) -> SpecModel:
    """The same model (weights, batch-norm statistics, normalization, history, training snapshots)
    on ``backend``; snapshots are in canonical layouts, so they hold for every backend."""
    if not isinstance(model, SpecModel):
        raise InputError(f"{model.name} was built by its user, not from a featurelens spec; only spec-built "
                         "models move between backends (their weights have one canonical layout)")
    target = get_backend(backend) if isinstance(backend, str) else backend
    weights = model.backend.get_weights(model.native)
    check_weights(model.spec, weights, f"the {model.backend.name} model's weights")
    native = target.build(model.spec)
    target.set_weights(native, weights)
    converted = SpecModel(target, native, model.spec, model.normalization, model.class_names or (),
                          history=model.history, train_config=model.train_config)
    converted.snapshots = model.snapshots
    return converted
