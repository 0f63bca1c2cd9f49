"""The plugin's own test suite: the featurelens conformance kit, one test per check, and a few
promises of this backend. Run it with the plugin installed: ``pip install -e '.[test]'``, ``pytest tests``."""

import numpy as np
import pytest

import featurelens as fl
from featurelens.backends import BackendError, InputError, LayerNotFoundError, get_backend
from featurelens.testing import CHECKS, require


@pytest.mark.parametrize("check", CHECKS, ids=str)
def test_conformance(check):
    require(check, "numpy")  # fails with the kit's message, or skips (the training checks)


@pytest.fixture
def seed_cnn():
    backend = get_backend("numpy")
    return backend, backend.build(fl.get_preset("seed"), seed=0)


def test_bad_arguments_fail_when_called_not_when_iterated(seed_cnn):
    backend, native = seed_cnn
    images = np.zeros((2, 32, 32, 3), np.float32)
    with pytest.raises(LayerNotFoundError, match="block1_conv1"):
        backend.feature_maps(native, images, ["block1_conv1", "nope"])
    with pytest.raises(InputError, match=r"\(N, 32, 32, 3\)"):
        backend.feature_maps(native, images[:, :16], None)
    with pytest.raises(InputError, match="block1_conv1, block1_conv2"):
        backend.filters(native, "block1_bn1")


def test_the_callers_images_are_never_changed(seed_cnn):
    backend, native = seed_cnn
    images = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
    before = images.copy()
    backend.predict(native, images)
    list(backend.feature_maps(native, images, None))
    assert np.array_equal(images, before)


def test_training_is_refused_with_a_clear_message():
    images = np.zeros((20, 32, 32, 3), np.uint8)
    with pytest.raises(BackendError, match="'train' capability"):
        fl.train(fl.get_preset("seed"), images, np.arange(20) % 10, backend="numpy", progress=False)
