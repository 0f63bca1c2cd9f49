"""Dataset examples (streaming top-k, statistics) and receptive fields, on the torch backend."""

from __future__ import annotations

import numpy as np
import pytest

import featurelens as fl
from featurelens.atlas.examples import dataset_examples, measured_layer
from featurelens.atlas.receptive import ReceptiveField, crop, estimate_field, receptive_field, spec_fields
from featurelens.backends import Unit

torch = pytest.importorskip("torch")

SPEC = fl.ModelSpec(blocks=(fl.ConvBlock(8, convs=2), fl.ConvBlock(12, convs=1, kernel_size=5),
                            fl.ConvBlock(16, convs=2, pool_size=1)),
                    dense=(fl.DenseBlock(16),), num_classes=4, input_shape=(16, 16, 3), name="atlas-test")
NORM = fl.Normalization((120.0, 110.0, 100.0), (60.0, 55.0, 50.0))


@pytest.fixture(scope="module")
def model() -> fl.SpecModel:
    built = fl.build_model(SPEC, NORM, ["a", "b", "c", "d"], backend="torch", seed=1)
    with torch.no_grad():  # batch-norm statistics away from 0/1, so BN is not the identity
        for module in built.native.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return built


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (70, 16, 16, 3)).astype(np.uint8)


def brute_force(model: fl.Model, images: np.ndarray, layer: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    maps = model.feature_maps(images, layer, batch_size=len(images))[layer]
    maxima = maps.max(axis=(1, 2))  # (N, C)
    order = np.lexsort((np.broadcast_to(np.arange(len(images))[:, None], maxima.shape).T, -maxima.T.astype(np.float64)),
                       axis=1)[:, :k]
    return order, np.take_along_axis(maxima.T, order, axis=1)


def test_top_k_matches_a_brute_force_sort_whatever_the_batch_size(model, images):
    layers = ["block1_relu1", "block2_relu1", "block3_conv2"]
    for batch_size in (7, 64):
        found = dataset_examples(model, images, layers, top=5, batch_size=batch_size, measure_at_relu=False)
        for layer in layers:
            indices, values = brute_force(model, images, layer, 5)
            np.testing.assert_array_equal(found[layer].indices, indices)
            np.testing.assert_allclose(found[layer].values, values, rtol=1e-6)
            maps = model.feature_maps(images, layer)[layer]
            for c in range(indices.shape[0]):  # the position is that of the maximum
                for j in range(5):
                    y, x = found[layer].positions[c, j]
                    assert maps[indices[c, j], y, x, c] == pytest.approx(values[c, j], rel=1e-6)


def test_ties_go_to_the_lower_image_index(model):
    same = np.full((10, 16, 16, 3), 128, np.uint8)
    found = dataset_examples(model, same, "block1_conv1", top=3, batch_size=4)["block1_conv1"]
    np.testing.assert_array_equal(found.indices, np.tile([0, 1, 2], (found.channels, 1)))


def test_fewer_images_than_k_leave_empty_slots(model, images):
    found = dataset_examples(model, images[:2], "block1_conv2", top=4)["block1_conv2"]
    assert (found.indices[:, 2:] == -1).all() and (found.indices[:, :2] >= 0).all()
    patches = found.patches(images[:2])
    assert np.isnan(patches[:, 2:]).all()


def test_statistics(model, images):
    labels = np.arange(len(images)) % 4
    found = dataset_examples(model, images, "block2_conv1", labels=labels)["block2_conv1"]
    assert found.measured_at == "block2_relu1"  # a conv is read after its batch norm and ReLU
    maps = model.feature_maps(images, "block2_relu1")["block2_relu1"].astype(np.float64)
    np.testing.assert_allclose(found.stats.mean, maps.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(found.stats.never_active, (maps.max(axis=(1, 2)) <= 0).mean(axis=0))
    per_image = maps.mean(axis=(1, 2))
    for c in range(4):
        np.testing.assert_allclose(found.stats.class_mean[c], per_image[labels == c].mean(axis=0), rtol=1e-5)
    assert found.stats.selectivity.shape == (12,)
    assert np.isfinite(found.stats.selectivity).all()


def test_dead_channels_are_reported(model, images):
    with torch.no_grad():
        bn = model.native.block1_bn1 if hasattr(model.native, "block1_bn1") else None
        assert bn is not None
        saved = bn.bias.clone()
        bn.bias[3] = -1e6  # channel 3's ReLU never fires
        try:
            found = dataset_examples(model, images, "block1_conv1")["block1_conv1"]
        finally:
            bn.bias.copy_(saved)
    assert found.stats.dead[3] and found.stats.never_active[3] == 1.0
    assert found.stats.dead.sum() == 1


def test_spec_fields_are_composed_exactly():
    fields = spec_fields(SPEC)
    assert fields["block1_conv1"] == ReceptiveField("block1_conv1", (3, 3), (1, 1), (-1, -1))
    assert fields["block1_conv2"].size == (5, 5)
    assert fields["block1_pool"] == ReceptiveField("block1_pool", (6, 6), (2, 2), (-2, -2))
    assert fields["block2_conv1"] == ReceptiveField("block2_conv1", (14, 14), (2, 2), (-6, -6))
    assert fields["block2_pool"].jump == (4, 4) and fields["block2_pool"].size == (16, 16)
    assert fields["block3_conv2"].size == (32, 32)
    assert "flatten" not in fields


def _gradient_region(model: fl.Model, layer: str, y: int, x: int, count: int = 24) -> tuple[int, int, int, int]:
    rng = np.random.default_rng(5)
    images = model.normalization.apply(rng.uniform(0, 255, (count, 16, 16, 3)).astype(np.float32))
    seen = np.zeros((16, 16), bool)
    channels = dict((i.name, i.output_shape) for i in model.layers())[layer][2]
    for channel in range(channels):
        g = model.backend.value_and_grad(model.native, images, Unit(layer, channel, y, x)).input_grad
        seen |= (g != 0).any(axis=(0, 3))
    rows, cols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


@pytest.mark.parametrize("layer", SPEC.conv_layer_names())
def test_computed_fields_are_where_the_input_gradient_is_non_zero(model, layer):
    field = receptive_field(model, layer)
    h, w = dict((i.name, i.output_shape) for i in model.layers())[layer][:2]
    for y, x in {(0, 0), (h // 2, w // 2), (h - 1, w // 3)}:
        assert _gradient_region(model, layer, y, x) == field.box(y, x, (16, 16)), (layer, y, x)


def test_wrapped_models_get_an_estimated_field(model):
    wrapped = fl.wrap(model.native, input_shape=(16, 16, 3), normalization=NORM)
    for layer in ("block1_conv2", "block2_conv1"):
        estimated = estimate_field(wrapped, layer)
        exact = spec_fields(SPEC)[layer]
        assert not estimated.exact
        assert (estimated.size, estimated.jump, estimated.offset) == (exact.size, exact.jump, exact.offset)
    found = dataset_examples(wrapped, np.zeros((3, 16, 16, 3), np.uint8), "block1_conv2")["block1_conv2"]
    assert found.field is not None and not found.field.exact and found.boxes is not None


def test_crop_pads_past_the_border():
    image = np.arange(16 * 16 * 3, dtype=np.float32).reshape(16, 16, 3)
    field = ReceptiveField("x", (6, 6), (2, 2), (-2, -2))
    patch = crop(image, field, 0, 0)
    assert patch.shape == (6, 6, 3)
    assert np.isnan(patch[:2]).all() and np.isnan(patch[:, :2]).all()
    np.testing.assert_array_equal(patch[2:, 2:], image[:4, :4])
    assert field.box(0, 0, (16, 16)) == (0, 0, 4, 4)


def test_measured_layer_rules(model):
    infos = model.layers()
    assert measured_layer(infos, "block1_conv1") == "block1_relu1"
    assert measured_layer(infos, "block1_pool") == "block1_pool"
    with pytest.raises(fl.LayerNotFoundError):
        measured_layer(infos, "nope")


def test_bad_input(model, images):
    with pytest.raises(fl.InputError, match="not spatial"):
        dataset_examples(model, images, "dense1")
    with pytest.raises(fl.LayerNotFoundError):
        dataset_examples(model, images, "nope")
    with pytest.raises(fl.InputError, match="top"):
        dataset_examples(model, images, top=0)
    with pytest.raises(fl.InputError, match="labels"):
        dataset_examples(model, images, labels=np.arange(3))
    with pytest.raises(fl.InputError, match="labels"):
        dataset_examples(model, images, labels=np.full(len(images), 7))
    with pytest.raises(fl.InputError, match="expected images"):
        dataset_examples(model, images[:, :8])


def test_a_layer_asked_for_twice_is_counted_once(model, images):
    found = dataset_examples(model, images, ["block1_conv1", "block1_conv1"], top=3)["block1_conv1"]
    indices, _ = brute_force(model, images, found.measured_at, 3)
    np.testing.assert_array_equal(found.indices, indices)


def test_channels_whose_maximum_is_minus_infinity_are_ranked_and_located():
    class LogOfRelu(torch.nn.Module):  # log(0) = -inf: a channel silent on an image has maximum -inf
        def forward(self, x):
            return torch.log(x)

    torch.manual_seed(4)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(), LogOfRelu(),
                              torch.nn.Flatten(), torch.nn.Linear(6 * 8 * 8, 3)).eval()
    with torch.no_grad():
        net[0].bias.copy_(torch.tensor([-1.0, -1.5, -2.0, 0.0, -1.2, -1.8]))
    wrapped = fl.wrap(net, input_shape=(8, 8, 3), normalization=NORM)
    pictures = np.random.default_rng(2).integers(0, 256, (20, 8, 8, 3)).astype(np.uint8)
    maxima = wrapped.feature_maps(pictures, "2")["2"].max(axis=(1, 2))
    assert np.isneginf(maxima).any() and np.isfinite(maxima).any()  # the case this test is about
    for batch_size in (3, 20):
        found = dataset_examples(wrapped, pictures, "2", top=5, batch_size=batch_size)["2"]
        indices, values = brute_force(wrapped, pictures, "2", 5)
        np.testing.assert_array_equal(found.indices, indices)
        np.testing.assert_array_equal(found.values, values)
