"""Backend.value_and_grad: gradients of declarative objectives, on torch and Keras."""

import importlib.util

import numpy as np
import pytest

from featurelens import InputError
from featurelens.backends import Capability, ChannelMean, ClassScore, Gradients, LayerNotFoundError, Unit, get_backend
from featurelens.testing import fixtures

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_KERAS = importlib.util.find_spec("keras") is not None


def _finite_difference(f, images, i, y, x, c, eps=1e-2):
    plus, minus = images.copy(), images.copy()
    plus[i, y, x, c] += eps
    minus[i, y, x, c] -= eps
    return (f(plus)[i] - f(minus)[i]) / (2 * eps)


# -- the objectives are plain, validated data --------------------------------------------------------


def test_objectives_are_validated_on_creation():
    with pytest.raises(InputError, match="kind"):
        ClassScore((0, 1), kind="probability")
    with pytest.raises(InputError, match="non-negative class indices"):
        ClassScore((0, -1))
    with pytest.raises(InputError, match="1-D"):
        ClassScore(np.zeros((2, 2), np.int64))
    with pytest.raises(InputError, match="layer name"):
        ChannelMean("", 0)
    with pytest.raises(InputError, match="channel"):
        Unit("conv", -1, 0, 0)
    with pytest.raises(InputError, match="both y and x"):
        Unit("conv", 0, y=1)
    assert ClassScore(np.array([1, 2])) == ClassScore((1, 2))
    assert hash(ClassScore((1, 2))) == hash(ClassScore(np.array([1, 2])))
    assert Capability.GRADIENTS.value == "gradients"


def test_channel_mean_takes_one_channel_per_image():
    per_image = ChannelMean("conv", (3, 0, 2))
    assert per_image.per_image and not ChannelMean("conv", 3).per_image
    assert ChannelMean("conv", np.array([3, 0, 2])) == per_image
    assert hash(ChannelMean("conv", np.array([3, 0, 2]))) == hash(per_image)
    assert ChannelMean("conv", 3) != ChannelMean("conv", (3,))  # one for all vs one image's
    assert ChannelMean("conv", np.int64(3)) == ChannelMean("conv", 3)
    np.testing.assert_array_equal(per_image.channels_for(1, 2), [0, 2])
    np.testing.assert_array_equal(ChannelMean("conv", 4).channels_for(5, 3), [4, 4, 4])
    with pytest.raises(InputError, match="3 channel.*for 2 image"):
        per_image.channels_for(0, 0, total=2)
    with pytest.raises(InputError, match="non-negative ints"):
        ChannelMean("conv", (1, -2))
    with pytest.raises(InputError, match="1-D sequence"):
        ChannelMean("conv", np.zeros((2, 2), np.int64))
    with pytest.raises(InputError, match="1-D sequence"):
        ChannelMean("conv", (0.5, 1.0))
    with pytest.raises(InputError, match="non-negative int"):
        ChannelMean("conv", True)
    with pytest.raises(InputError, match="channel 7 does not exist"):
        ChannelMean("conv", (1, 7)).check_output((4, 4, 6))
    ChannelMean("conv", (1, 5)).check_output((4, 4, 6))


def test_the_base_backend_does_not_compute_gradients():
    from featurelens.backends import Backend

    class Minimal(Backend):
        name = "minimal"
        versions = build = predict = get_weights = set_weights = lambda *args, **kwargs: None

    with pytest.raises(NotImplementedError, match="'gradients' capability"):
        Minimal().value_and_grad(None, np.zeros((1, 2, 2, 3), np.float32), ClassScore((0,)))


# -- torch ------------------------------------------------------------------------------------------


@pytest.fixture
def torch_spec_model():
    backend = get_backend("torch")
    spec = fixtures.kit_spec()
    native = backend.build(spec)
    backend.set_weights(native, fixtures.random_weights(spec, seed=11))
    return backend, spec, native


@pytest.mark.torch
def test_torch_residual_module_gradients_match_finite_differences():
    import torch
    from torch import nn

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, padding=1)
            self.f = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Tanh())
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            h = self.stem(x)
            h = h + self.f(h)  # the residual branch
            return self.head(self.pool(h).flatten(1))

    torch.manual_seed(0)
    net = Residual().train()  # value_and_grad runs in eval mode and restores this
    backend = get_backend("torch")
    images = np.random.default_rng(0).normal(size=(2, 6, 5, 3)).astype(np.float32)
    g = backend.value_and_grad(net, images, ChannelMean("f.1", 2), layer="stem")
    assert isinstance(g, Gradients) and g.values.dtype == np.float32 and g.input_grad.shape == images.shape
    assert g.activations.shape == g.layer_grad.shape == (2, 6, 5, 4)
    maps = next(backend.feature_maps(net, images, ["stem", "f.1"]))
    np.testing.assert_allclose(g.activations, maps["stem"], rtol=1e-6)
    np.testing.assert_allclose(g.values, maps["f.1"][..., 2].mean(axis=(1, 2)), rtol=1e-5)

    def value(x):
        return next(backend.feature_maps(net, x, ["f.1"]))["f.1"][..., 2].mean(axis=(1, 2)).astype(np.float64)

    for i, y, x, c in [(0, 1, 2, 0), (1, 4, 3, 2), (0, 5, 0, 1)]:
        assert abs(g.input_grad[i, y, x, c] - _finite_difference(value, images, i, y, x, c)) <= \
            2e-2 * np.abs(g.input_grad[i]).max()
    scores = backend.value_and_grad(net, images, ClassScore((2, 0)))
    logits = net.eval()(torch.from_numpy(images).permute(0, 3, 1, 2)).detach().numpy()
    np.testing.assert_allclose(scores.values, logits[[0, 1], [2, 0]], rtol=1e-5)
    net.train()
    assert net.training and all(p.requires_grad for p in net.parameters())
    assert all(p.grad is None for p in net.parameters())
    assert backend.attachments(net) == []


@pytest.mark.torch
def test_torch_probability_outputs_use_the_log_probability_as_logit():
    import torch
    from torch import nn

    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.LazyLinear(3), nn.Softmax(dim=1))
    images = np.random.default_rng(1).normal(size=(3, 5, 5, 3)).astype(np.float32)
    backend = get_backend("torch")
    probs = backend.predict(net, images)
    logit = backend.value_and_grad(net, images, ClassScore((0, 1, 2)))
    logp = backend.value_and_grad(net, images, ClassScore((0, 1, 2), "log_probability"))
    np.testing.assert_allclose(logit.values, np.log(probs[[0, 1, 2], [0, 1, 2]]), rtol=1e-5)
    np.testing.assert_allclose(logp.values, logit.values, rtol=1e-5, atol=1e-6)


@pytest.mark.torch
def test_torch_repeated_calls_are_layers(torch_spec_model):
    import torch
    from torch import nn

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.head = nn.Linear(3, 2)

        def forward(self, x):
            return self.head(self.conv(torch.relu(self.conv(x))).mean(dim=(2, 3)))

    net = Twice()
    backend = get_backend("torch")
    images = np.random.default_rng(2).normal(size=(2, 4, 4, 3)).astype(np.float32)
    g = backend.value_and_grad(net, images, ClassScore((0, 1)), layer="conv#2")
    maps = next(backend.feature_maps(net, images, ["conv#2"]))["conv#2"]
    np.testing.assert_allclose(g.activations, maps, rtol=1e-6)
    # the head averages conv#2 over 16 positions: d logit_k / d act[..., c] = W[k, c] / 16
    weight = net.head.weight.detach().numpy()
    np.testing.assert_allclose(g.layer_grad[0], np.broadcast_to(weight[0] / 16, (4, 4, 3)), rtol=1e-5)
    np.testing.assert_allclose(g.layer_grad[1], np.broadcast_to(weight[1] / 16, (4, 4, 3)), rtol=1e-5)


@pytest.mark.torch
def test_torch_batching_gives_the_same_result(torch_spec_model):
    backend, spec, native = torch_spec_model
    images = fixtures.images(spec, 7, seed=3)
    objective = ClassScore(tuple(i % 3 for i in range(7)), "log_probability")
    one = backend.value_and_grad(native, images, objective, layer="block1_conv2", batch_size=64)
    many = backend.value_and_grad(native, images, objective, layer="block1_conv2", batch_size=3)
    for name in ("values", "input_grad", "activations", "layer_grad"):
        np.testing.assert_allclose(getattr(many, name), getattr(one, name), rtol=1e-5, atol=1e-7)
    no_input = backend.value_and_grad(native, images, objective, wrt_input=False)
    assert no_input.input_grad is None and no_input.layer is None and no_input.layer_grad is None
    np.testing.assert_allclose(no_input.values, one.values, rtol=1e-6)


@pytest.mark.torch
def test_torch_per_image_channels_equal_one_channel_at_a_time(torch_spec_model):
    backend, spec, native = torch_spec_model
    images = fixtures.images(spec, 5, seed=6)
    channels = np.array([2, 0, 3, 3, 1])
    for name, layer in [("block1_bn2", None), ("block1_conv2", "block2_conv1"), ("dense1", "block1_relu1")]:
        together = backend.value_and_grad(native, images, ChannelMean(name, channels), layer=layer, batch_size=2)
        for i, channel in enumerate(channels):
            alone = backend.value_and_grad(native, images[i:i + 1], ChannelMean(name, int(channel)), layer=layer)
            np.testing.assert_allclose(together.values[i], alone.values[0], rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(together.input_grad[i], alone.input_grad[0], rtol=1e-5, atol=1e-8)
            if layer is not None:
                np.testing.assert_allclose(together.activations[i], alone.activations[0], rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(together.layer_grad[i], alone.layer_grad[0], rtol=1e-5, atol=1e-8)
    later = backend.value_and_grad(native, images, ChannelMean("block1_conv2", channels), layer="block2_conv1")
    maps = next(backend.feature_maps(native, images, ["block2_conv1"]))["block2_conv1"]
    np.testing.assert_allclose(later.activations, maps, rtol=1e-5, atol=1e-6)  # a later layer: the pass went on to it
    assert not later.layer_grad.any()  # ... and cannot change an earlier objective
    with pytest.raises(InputError, match="2 channel"):
        backend.value_and_grad(native, images, ChannelMean("block1_bn2", (0, 1)))
    with pytest.raises(InputError, match="channel 4 does not exist"):
        backend.value_and_grad(native, images[:2], ChannelMean("block1_bn2", (0, 4)))
    assert backend.attachments(native) == []


@pytest.mark.torch
def test_torch_stops_the_forward_pass_after_the_objective(torch_spec_model):
    backend, spec, native = torch_spec_model
    images = fixtures.images(spec, 3, seed=7)
    ran = []
    hook = dict(native.named_modules())["block2_conv1"].register_forward_hook(
        lambda module, inputs, output: ran.append(len(output)) if len(output) == 3 else None)  # not the layout pass
    try:
        backend.value_and_grad(native, images, ChannelMean("block1_bn2", 1))
        assert not ran  # the objective is known after block 1: block 2 never ran
        backend.value_and_grad(native, images, ChannelMean("block1_bn2", 1), layer="block2_conv1")
        assert ran  # a gradient layer later in the network: the pass goes on to it
        ran.clear()
        backend.value_and_grad(native, images, ClassScore((0, 1, 2)))
        assert ran
    finally:
        hook.remove()
    assert backend.attachments(native) == []


@pytest.mark.torch
def test_torch_bad_input_gets_clear_errors(torch_spec_model):
    backend, spec, native = torch_spec_model
    images = fixtures.images(spec, 2, seed=3)
    with pytest.raises(LayerNotFoundError, match="no layer named 'nope'"):
        backend.value_and_grad(native, images, ClassScore((0, 1)), layer="nope")
    with pytest.raises(LayerNotFoundError):
        backend.value_and_grad(native, images, ChannelMean("nope", 0))
    with pytest.raises(InputError, match="1 target"):
        backend.value_and_grad(native, images, ClassScore((0,)))
    with pytest.raises(InputError, match="not a class of the model"):
        backend.value_and_grad(native, images, ClassScore((0, 3)))
    with pytest.raises(InputError, match="shape"):
        backend.value_and_grad(native, images[0], ClassScore((0, 1)))
    with pytest.raises(InputError, match="could not run images"):
        backend.value_and_grad(native, np.zeros((2, 9, 9, 3), np.float32), ClassScore((0, 1)))
    with pytest.raises(InputError, match="channel 9"):
        backend.value_and_grad(native, images, ChannelMean("block1_conv1", 9))
    with pytest.raises(InputError, match="outside"):
        backend.value_and_grad(native, images, Unit("block1_conv1", 0, 40, 0))
    with pytest.raises(InputError, match="objective"):
        backend.value_and_grad(native, images, "logit")
    assert backend.attachments(native) == []


# -- Keras ------------------------------------------------------------------------------------------


@pytest.mark.keras
def test_keras_functional_two_branches_gradients_match_finite_differences():
    keras = pytest.importorskip("keras")

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 5, 3))
    left = keras.layers.Conv2D(4, 3, padding="same", name="left")(inputs)
    right = keras.layers.Conv2D(4, 1, name="right", activation="tanh")(inputs)
    merged = keras.layers.Add(name="merge")([left, right])
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(merged)
    outputs = keras.layers.Dense(3, name="head")(pooled)
    model = keras.Model(inputs, outputs)
    backend = get_backend("keras")
    images = np.random.default_rng(0).normal(size=(3, 6, 5, 3)).astype(np.float32)
    g = backend.value_and_grad(model, images, Unit("merge", 1, 2, 3), layer="right", batch_size=2)
    maps = next(backend.feature_maps(model, images, ["merge", "right"]))
    np.testing.assert_allclose(g.values, maps["merge"][:, 2, 3, 1], rtol=1e-5)
    np.testing.assert_allclose(g.activations, maps["right"], rtol=1e-5)
    expected = np.zeros_like(g.layer_grad)
    expected[:, 2, 3, 1] = 1.0  # merge = left + right
    np.testing.assert_allclose(g.layer_grad, expected, atol=1e-6)

    def value(x):
        return next(backend.feature_maps(model, x, ["merge"]))["merge"][:, 2, 3, 1].astype(np.float64)

    for i, y, x, c in [(0, 2, 3, 0), (1, 1, 2, 2), (2, 3, 4, 1)]:
        assert abs(g.input_grad[i, y, x, c] - _finite_difference(value, images, i, y, x, c)) <= \
            2e-2 * np.abs(g.input_grad[i]).max()
    scores = backend.value_and_grad(model, images, ClassScore((0, 1, 2)))
    outputs = keras.ops.convert_to_numpy(model(images))
    np.testing.assert_allclose(scores.values, outputs[[0, 1, 2], [0, 1, 2]], rtol=1e-5)
    assert backend.attachments(model) == []


@pytest.mark.keras
def test_keras_sequential_and_bad_input():
    keras = pytest.importorskip("keras")

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((5, 5, 3)), keras.layers.Conv2D(2, 3, name="conv"),
                              keras.layers.Flatten(name="flat"), keras.layers.Dense(3, name="dense"),
                              keras.layers.Softmax(name="softmax")])
    backend = get_backend("keras")
    images = np.random.default_rng(1).normal(size=(2, 5, 5, 3)).astype(np.float32)
    g = backend.value_and_grad(model, images, ClassScore((1, 2)), layer="conv")
    dense = next(backend.feature_maps(model, images, ["dense"]))["dense"]
    np.testing.assert_allclose(g.values, dense[[0, 1], [1, 2]], rtol=1e-5)  # a final Softmax: its input
    with pytest.raises(LayerNotFoundError):
        backend.value_and_grad(model, images, ClassScore((1, 2)), layer="nope")
    with pytest.raises(InputError, match="target"):
        backend.value_and_grad(model, images, ClassScore((1, 2, 0)))
    with pytest.raises(InputError, match="not a class"):
        backend.value_and_grad(model, images, ClassScore((1, 5)))
    with pytest.raises(InputError, match="shape"):
        backend.value_and_grad(model, np.zeros((2, 7, 7, 3), np.float32), ClassScore((1, 2)))
    assert backend.attachments(model) == []


@pytest.mark.keras
@pytest.mark.torch
def test_torch_spec_model_and_its_keras_conversion_agree():
    import featurelens as fl
    from featurelens.convert import convert_model

    spec = fixtures.kit_spec()
    model = fl.build_model(spec, fl.Normalization((0.0,) * 3, (1.0,) * 3), ["a", "b", "c"], backend="torch")
    model.backend.set_weights(model.native, fixtures.random_weights(spec, seed=11))
    other = convert_model(model, "keras")
    images = fixtures.images(spec, 5, seed=4)
    for objective, layer in [(ClassScore((0, 1, 2, 0, 1)), "block2_conv1"),
                             (ChannelMean("block1_bn2", 3), "dense1"), (Unit("block2_relu1", 2, 1, 4), None)]:
        a = model.backend.value_and_grad(model.native, images, objective, layer=layer)
        b = other.backend.value_and_grad(other.native, images, objective, layer=layer, batch_size=2)
        for name in ("values", "input_grad") + (("activations", "layer_grad") if layer else ()):
            x, y = getattr(a, name), getattr(b, name)
            assert np.abs(x - y).max() <= 1e-4 * max(np.abs(x).max(), 1e-6), (objective, name)
