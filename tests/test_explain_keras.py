"""Explanations on the Keras backend: the same maps as PyTorch for the same weights, and users' models."""

import numpy as np
import pytest
from conftest import synthetic_images

import featurelens as fl
from featurelens import explain
from featurelens.compare import relative_difference
from featurelens.convert import convert_model

pytestmark = [pytest.mark.keras, pytest.mark.torch]
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install 'featurelens[keras]')")
pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'featurelens[torch]')")


@pytest.fixture(scope="module")
def pair():
    """A tiny spec model on torch with non-trivial weights, and the same weights on Keras."""
    labels = np.arange(10)
    images = synthetic_images(labels, seed=3)
    torch_model = fl.build_model(fl.get_preset("tiny"), fl.Normalization.from_images(images),
                                 [str(i) for i in range(10)], backend="torch", seed=4)
    rng = np.random.default_rng(0)
    weights = {k: (v + rng.normal(0, 0.05, v.shape)).astype(np.float32) if "moving" not in k else
               np.abs(v + rng.normal(0, 0.2, v.shape)).astype(np.float32) + 0.5
               for k, v in torch_model.backend.get_weights(torch_model.native).items()}
    torch_model.backend.set_weights(torch_model.native, weights)
    return torch_model, convert_model(torch_model, "keras"), images


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "gradcam", "gradcam++", "layercam",
                                    "scorecam", "occlusion"])
def test_torch_and_keras_give_the_same_maps(pair, method):
    torch_model, keras_model, images = pair
    options = {"integrated_gradients": {"steps": 16}}.get(method, {})
    a = explain.explain(torch_model, images, method=method, **options)
    b = explain.explain(keras_model, images, a.targets, method=method, **options)
    assert a.layer == b.layer
    assert relative_difference(a.maps, b.maps) <= 1e-4, method


def test_a_functional_model_with_branches_is_explained():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    left = keras.layers.Conv2D(8, 3, padding="same", name="left")(x)
    right = keras.layers.Conv2D(8, 1, name="right")(x)
    x = keras.layers.ReLU(name="merged")(keras.layers.Add(name="add")([left, right]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = fl.wrap(keras.Model(inputs, keras.layers.Dense(10, name="logits")(x)))
    images = synthetic_images(np.arange(4))
    for method in ("saliency", "gradcam", "integrated_gradients"):
        result = explain.explain(model, images, method=method, layer="merged" if method == "gradcam" else None)
        assert result.maps.shape == (4, 32, 32) and np.isfinite(result.maps).all()
    assert explain.explain(model, images, method="gradcam").layer == "right"  # the last conv layer at >= 8x8
