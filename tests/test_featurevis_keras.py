"""Feature visualization and per-image ChannelMean on the Keras backend (JAX or torch underneath)."""

import numpy as np
import pytest

import featurelens as fl
from featurelens.atlas import featurevis as fv
from featurelens.backends import ChannelMean, InputError, get_backend
from featurelens.testing import fixtures

pytestmark = pytest.mark.keras
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install 'featurelens[keras]')")


def _model(backend):
    spec = fl.ModelSpec(blocks=(fl.ConvBlock(4, convs=1), fl.ConvBlock(6, convs=1)), num_classes=3,
                        input_shape=(10, 10, 3))
    model = fl.build_model(spec, fl.Normalization((120.0, 110.0, 100.0), (60.0, 55.0, 65.0)), ["a", "b", "c"],
                           backend=backend)
    model.backend.set_weights(model.native, fixtures.random_weights(spec, seed=3))
    return model


def test_keras_per_image_channels_equal_one_channel_at_a_time():
    backend = get_backend("keras")
    spec = fixtures.kit_spec()
    native = backend.build(spec)
    backend.set_weights(native, fixtures.random_weights(spec, seed=11))
    images = fixtures.images(spec, 5, seed=2)
    channels = (3, 0, 2, 2, 1)
    together = backend.value_and_grad(native, images, ChannelMean("block1_bn2", channels), layer="block1_conv1",
                                      batch_size=2)
    for i, channel in enumerate(channels):
        alone = backend.value_and_grad(native, images[i:i + 1], ChannelMean("block1_bn2", channel),
                                       layer="block1_conv1")
        np.testing.assert_allclose(together.values[i], alone.values[0], rtol=1e-5)
        np.testing.assert_allclose(together.input_grad[i], alone.input_grad[0], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(together.layer_grad[i], alone.layer_grad[0], rtol=1e-4, atol=1e-6)
    dense = backend.value_and_grad(native, images[:2], ChannelMean("dense1", np.array([7, 0])))
    maps = next(backend.feature_maps(native, images[:2], ["dense1"]))["dense1"]
    np.testing.assert_allclose(dense.values, maps[[0, 1], [7, 0]], rtol=1e-5)
    with pytest.raises(InputError, match="2 channel"):
        backend.value_and_grad(native, images[:3], ChannelMean("block1_bn2", (0, 1)))
    with pytest.raises(InputError, match="channel 4 does not exist"):
        backend.value_and_grad(native, images[:2], ChannelMean("block1_bn2", (0, 4)))
    assert backend.attachments(native) == []


def test_feature_visualization_runs_on_a_keras_spec_model():
    model = _model("keras")
    result = fv.feature_visualization(model, "block2_conv1", [0, 3, 5], steps=3, progress=False)
    assert result.images.shape == (3, 10, 10, 3) and result.objective_layer == "block2_bn1"
    assert result.images.min() >= 0 and result.images.max() <= 1 and np.isfinite(result.activations).all()
    classes = fv.class_visualization(model, steps=2, progress=False)
    assert classes.images.shape == (3, 10, 10, 3)


@pytest.mark.torch
def test_keras_and_torch_give_the_same_images_for_the_same_weights():
    pytest.importorskip("torch")
    a = fv.feature_visualization(_model("keras"), "block1_conv1", steps=4, progress=False)
    b = fv.feature_visualization(_model("torch"), "block1_conv1", steps=4, progress=False)
    np.testing.assert_allclose(a.images, b.images, atol=2e-3)
    np.testing.assert_allclose(a.activations, b.activations, rtol=1e-3, atol=1e-4)
