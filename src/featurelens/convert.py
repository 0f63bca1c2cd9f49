"""Move a model between backends through the canonical weight layout."""

from __future__ import annotations

from featurelens.backend import Backend
from featurelens.model import Model


def convert_model(model: Model, backend: str | Backend) -> Model:
    """The same model (weights, batch-norm statistics, normalization, history) on ``backend``."""
    from featurelens.backends import get_backend
    from featurelens.weights import check_weights

    if model.spec is None:
        raise ValueError("only models built from a ModelSpec can be converted between backends")
    target = get_backend(backend) if isinstance(backend, str) else backend
    weights = model.backend.get_weights(model.native)
    check_weights(model.spec, weights, f"the {model.backend.name} model's weights")
    native = target.build(model.spec)
    target.set_weights(native, weights)
    return Model(target, native, model.spec, model.normalization, model.class_names,
                 history=model.history, train_config=model.train_config)
