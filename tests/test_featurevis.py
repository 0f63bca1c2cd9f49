"""Feature visualization (featurelens.atlas): exact adjoints, the chain rule, determinism, errors,
and that the images really excite their own channel on a trained model (torch backend)."""

from __future__ import annotations

import numpy as np
import pytest

import featurelens as fl
from featurelens import BackendError, InputError, LayerNotFoundError
from featurelens.atlas import featurevis as fv
from featurelens.atlas import param, transforms
from featurelens.backends import Capability, ChannelMean, ClassScore, get_backend

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'featurelens[torch]')")
pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and on a shared CPU two threads can be ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _dot_test(forward, adjoint, x, y, rtol=1e-5):
    """``<A x, y> == <x, A^T y>`` (complex x as pairs of reals)."""
    ax, aty = forward(x), adjoint(y)
    assert ax.shape == y.shape and aty.shape == x.shape
    lhs = float(np.sum(ax.astype(np.float64) * y))
    if np.iscomplexobj(x):
        rhs = float(np.sum(x.real.astype(np.float64) * aty.real + x.imag.astype(np.float64) * aty.imag))
    else:
        rhs = float(np.sum(x.astype(np.float64) * aty))
    assert abs(lhs - rhs) <= rtol * max(abs(lhs), 1e-3), (lhs, rhs)


# -- every piece is linear (or elementwise) with an exact adjoint ------------------------------------


@pytest.mark.parametrize("size", [(8, 8), (7, 9), (6, 5), (32, 32)])
def test_fourier_adjoint(size):
    rng = np.random.default_rng(0)
    f = param.Fourier(size)
    shape = (2, 3, *f.spectrum_shape)
    x = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    _dot_test(f.forward, f.adjoint, x, rng.normal(size=(2, *size, 3)).astype(np.float32))


def test_fourier_scale_falls_as_one_over_frequency():
    scale = param.frequency_scale((32, 32))
    assert scale[0, 0] == 1 and scale[0, 1] == 1  # the coarsest patterns
    np.testing.assert_allclose(scale[0, 4], 0.25)  # 4 cycles per image
    np.testing.assert_allclose(scale[3, 4], 0.2)  # 5 cycles per image (3-4-5)


def test_colour_and_transform_adjoints():
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(3, 3)).astype(np.float32)
    x, y = rng.normal(size=(2, 5, 4, 3)).astype(np.float32), rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
    _dot_test(lambda v: param.colour_forward(matrix, v), lambda v: param.colour_adjoint(matrix, v), x, y)
    for size in [(8, 8), (7, 11), (32, 32)]:
        shape = (3, *size, 3)
        a = transforms.affine(size, np.array([0.85, 1.0, 1.2]), np.array([0.3, 0.0, -0.1]),
                              np.array([[0.4, -2.0], [0.0, 0.0], [3.0, 1.5]]))
        _dot_test(a.forward, a.adjoint, rng.normal(size=shape).astype(np.float32),
                  rng.normal(size=shape).astype(np.float32))
        drawn = fv.DEFAULT_TRANSFORMS.draw(np.array([4, 0, 2]), size, np.random.default_rng(3))
        _dot_test(drawn.forward, drawn.adjoint, rng.normal(size=shape).astype(np.float32),
                  rng.normal(size=shape).astype(np.float32))


def test_transforms_move_pixels_as_described():
    image = np.zeros((1, 9, 9, 1), np.float32)
    image[0, 4, 4, 0] = 1.0
    identity = transforms.affine((9, 9), np.array([1.0]))
    np.testing.assert_allclose(identity.forward(image), image)
    shifted = transforms.affine((9, 9), np.array([1.0]), shift=np.array([[2.0, -1.0]])).forward(image)
    assert shifted[0, 6, 3, 0] == pytest.approx(1.0) and shifted.sum() == pytest.approx(1.0)
    edge = np.ones((1, 9, 9, 1), np.float32)
    moved = transforms.affine((9, 9), np.array([1.0]), shift=np.array([[0.0, 2.0]])).forward(edge)
    assert (moved[0, :, :2] == 0).all() and (moved[0, :, 2:] == 1).all()  # exposed border: zero (mean colour)
    with pytest.raises(InputError, match="scale"):
        transforms.TransformSettings(scale=(1.2, 1.0))
    with pytest.raises(InputError, match="jitter"):
        transforms.TransformSettings(jitter=-1)
    with pytest.raises(InputError, match="input"):
        identity.forward(np.zeros((2, 9, 9, 1), np.float32))


def test_a_transform_depends_on_the_image_key_not_the_batch():
    settings = fv.DEFAULT_TRANSFORMS
    together = settings.draw(np.array([0, 1, 2, 3]), (8, 8), np.random.default_rng([0, 1, 5]))
    alone = settings.draw(np.array([2]), (8, 8), np.random.default_rng([0, 1, 5]))
    np.testing.assert_array_equal(together.weight[2], alone.weight[0])
    np.testing.assert_array_equal(together.index[2], alone.index[0])


def test_colour_correlation_is_the_square_root_of_the_covariance():
    rng = np.random.default_rng(2)
    mixing = np.array([[40.0, 0, 0], [30, 20, 0], [25, 15, 10]])
    pixels = rng.normal(size=(20000, 3)) @ mixing.T + 120
    images = pixels.reshape(20, 1000, 1, 3)
    root = param.colour_correlation(images)
    assert root.shape == (3, 3) and np.allclose(root, root.T)
    covariance = np.cov(pixels.reshape(-1, 3) / 255, rowvar=False)
    np.testing.assert_allclose(root.astype(np.float64) @ root, covariance, rtol=1e-3, atol=1e-6)
    matrix = param.colour_matrix(images, 3)
    assert np.linalg.norm(matrix, axis=0).max() == pytest.approx(1.0)
    np.testing.assert_allclose(param.colour_matrix(root, 3), matrix, rtol=1e-5)
    np.testing.assert_array_equal(param.colour_matrix(None, 3), np.eye(3))
    with pytest.raises(InputError, match="colour must be"):
        param.colour_matrix(np.eye(2), 3)
    with pytest.raises(InputError, match="channel"):
        param.colour_matrix(np.zeros((2, 4, 4, 1)), 3)
    with pytest.raises(InputError, match="single colour"):
        param.colour_matrix(np.full((2, 4, 4, 3), 7.0), 3)


def test_regularizer_gradients_match_finite_differences():
    rng = np.random.default_rng(4)
    images = rng.uniform(size=(2, 5, 6, 3))
    centre = np.array([0.4, 0.5, 0.6])
    direction = rng.normal(size=images.shape)
    for name, f in [("tv", fv.total_variation), ("l2", lambda x: fv.l2_penalty(x, centre))]:
        _, grad = f(images)
        eps = 1e-6
        numeric = (f(images + eps * direction)[0] - f(images - eps * direction)[0]) / (2 * eps)
        analytic = (grad * direction).reshape(2, -1).sum(1)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-3, err_msg=name)


# -- the whole chain on a tiny model ----------------------------------------------------------------


def _tiny_model(input_shape=(10, 10, 3), seed=0):
    spec = fl.ModelSpec(blocks=(fl.ConvBlock(4, convs=1), fl.ConvBlock(6, convs=1)), num_classes=3,
                        input_shape=input_shape)
    channels = input_shape[2]
    normalization = fl.Normalization((120.0, 110.0, 100.0)[:channels], (60.0, 55.0, 65.0)[:channels])
    model = fl.build_model(spec, normalization, ["a", "b", "c"], backend="torch", seed=seed)
    rng = np.random.default_rng(seed)
    weights = {k: (v + rng.normal(0, 0.1, v.shape)).astype(np.float32) if "moving" not in k
               else np.abs(v + rng.normal(0, 0.3, v.shape)).astype(np.float32) + 0.3
               for k, v in model.backend.get_weights(model.native).items()}
    model.backend.set_weights(model.native, weights)
    return model


def test_the_chain_rule_matches_finite_differences():
    """d(objective - tv TV - l2 L2)/d(coefficients) through transform, normalization, sigmoid,
    colour and Fourier, against central differences of the whole float64-free pipeline."""
    model = _tiny_model()
    colour = param.colour_matrix(np.random.default_rng(5).uniform(0, 255, (4, 10, 10, 3)), 3)
    setup = fv._setup(model, colour, fv.DEFAULT_TRANSFORMS, 0.3, 0.2, 0.05, 1.0, 255.0, 0.3)
    keys = np.array([0, 3, 1])
    coefficients = fv._initial(keys, 3, setup.param.fourier.spectrum_shape, 0.3, seed=1)
    transform = setup.transforms.draw(keys, (10, 10), np.random.default_rng(7))
    objective = ChannelMean("block1_bn1", keys)
    values, grad, display = fv._objective_and_gradient(model, setup, coefficients, objective, transform, 64)
    assert values.shape == (3,) and grad.shape == coefficients.shape and display.shape == (3, 10, 10, 3)
    rng = np.random.default_rng(8)
    for _ in range(3):
        direction = (rng.normal(size=coefficients.shape) + 1j * rng.normal(size=coefficients.shape))
        direction = direction.astype(np.complex64)
        eps = 1e-2
        plus = fv._objective_and_gradient(model, setup, coefficients + eps * direction, objective, transform, 64)[0]
        minus = fv._objective_and_gradient(model, setup, coefficients - eps * direction, objective, transform, 64)[0]
        numeric = (plus.astype(np.float64) - minus) / (2 * eps)
        analytic = (grad.real * direction.real + grad.imag * direction.imag).reshape(3, -1).sum(1)
        np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-2 * np.abs(analytic).max())


def test_the_same_seed_gives_the_same_images():
    model = _tiny_model()
    kwargs = dict(steps=4, progress=False, batch_size=3)
    a = fv.feature_visualization(model, "block2_conv1", [0, 5, 2, 1], **kwargs)
    b = fv.feature_visualization(model, "block2_conv1", [0, 5, 2, 1], **kwargs)
    c = fv.feature_visualization(model, "block2_conv1", [0, 5, 2, 1], seed=1, **kwargs)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.activations, b.activations)
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (4, 10, 10, 3) and a.images.dtype == np.float32
    assert a.images.min() >= 0 and a.images.max() <= 1
    assert a.layer == "block2_conv1" and a.objective_layer == "block2_bn1" and a.steps == 4
    np.testing.assert_array_equal(a.channels, [0, 5, 2, 1])
    one = fv.feature_visualization(model, "block2_conv1", 5, **kwargs)  # an image depends on its channel only
    np.testing.assert_allclose(one.images[0], a.images[1], atol=1e-4)
    raw = fv.feature_visualization(model, "block2_conv1", [5], after_batch_norm=False, **kwargs)
    assert raw.objective_layer == "block2_conv1"
    assert model.backend.attachments(model.native) == []


def test_grayscale_models_give_one_channel_images_and_classes_work():
    model = _tiny_model((8, 8, 1))
    result = fv.feature_visualization(model, "block1_relu1", steps=3, progress=False, colour=np.full((1, 1), 0.2))
    assert result.images.shape == (4, 8, 8, 1) and result.objective_layer == "block1_relu1"
    classes = fv.class_visualization(model, steps=3, progress=False, transforms=None)
    assert classes.images.shape == (3, 8, 8, 1) and classes.layer is None
    np.testing.assert_array_equal(classes.channels, [0, 1, 2])
    logits = model.backend.value_and_grad(model.native, model.normalization.apply(classes.images * 255),
                                          ClassScore((0, 1, 2)), wrt_input=False).values
    np.testing.assert_allclose(classes.activations, logits, rtol=1e-5)


def test_bad_requests_get_clear_errors():
    model = _tiny_model()
    with pytest.raises(LayerNotFoundError, match="no layer named 'nope'"):
        fv.feature_visualization(model, "nope", progress=False)
    with pytest.raises(InputError, match="channel 4 does not exist: layer 'block1_conv1' has 4"):
        fv.feature_visualization(model, "block1_conv1", [0, 4], progress=False)
    with pytest.raises(InputError, match="channel"):
        fv.feature_visualization(model, "block1_conv1", [0.5], progress=False)
    with pytest.raises(InputError, match="steps must be a positive int"):
        fv.feature_visualization(model, "block1_conv1", steps=0, progress=False)
    with pytest.raises(InputError, match="lr"):
        fv.feature_visualization(model, "block1_conv1", lr=-1, progress=False)
    with pytest.raises(InputError, match="class 3 does not exist"):
        fv.class_visualization(model, [3], progress=False)
    with pytest.raises(InputError, match="score"):
        fv.class_visualization(model, score="probability", progress=False)
    with pytest.raises(InputError, match="transforms"):
        fv.feature_visualization(model, "block1_conv1", transforms="jitter", progress=False)  # type: ignore[arg-type]

    base = type(get_backend("torch"))
    blind = type("NoGradients", (base,), {"capabilities": base.capabilities - {Capability.GRADIENTS}})()
    other = fl.Model(blind, model.native, model.normalization, model.class_names, model.input_shape)
    with pytest.raises(BackendError, match="'gradients' capability"):
        fv.feature_visualization(other, "block1_conv1", progress=False)


# -- it maximizes what it claims ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    """A small CNN trained for a few epochs on coloured stripes (each class its own colour,
    orientation and frequency), so its channels detect colours and oriented edges."""
    rng = np.random.default_rng(0)
    labels = np.arange(600) % 6
    yy, xx = np.mgrid[0:16, 0:16]
    colours = rng.uniform(30, 225, (6, 3))
    images = np.empty((600, 16, 16, 3))
    for i, label in enumerate(labels):
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin((xx, yy, xx + yy, xx - yy, xx, yy)[label] * (0.6 + 0.25 * (label // 2)) + phase)
        images[i] = colours[label] + 60 * wave[..., None] * (1 - 2 * (label % 2) * np.array([0, 1, 0]))
    images = np.clip(images + rng.normal(0, 15, images.shape), 0, 255).astype(np.uint8)
    spec = fl.ModelSpec(blocks=(fl.ConvBlock(12, convs=1), fl.ConvBlock(16, convs=1)),
                        dense=(fl.DenseBlock(16),), num_classes=6, input_shape=(16, 16, 3))
    config = fl.TrainConfig(epochs=3, batch_size=32, learning_rate=3e-3, validation_split=0.0,
                            early_stopping=None, reduce_lr=None, seed=0, device="cpu")
    model = fl.train(spec, images, labels, config, backend="torch", class_names=[str(i) for i in range(6)],
                     progress=False)
    return model, images


def test_each_image_excites_its_own_channel_most(trained):
    """The issue's must-hold: for >= 90% of a layer's channels, channel i's mean activation is higher
    on its own image than on the average of the other channels' images."""
    model, images = trained
    for layer in ("block1_conv1", "block2_conv1"):
        result = fv.feature_visualization(model, layer, steps=48, progress=False, colour=images)
        maps = model.feature_maps(result.images * 255, result.objective_layer)[result.objective_layer]
        means = maps.mean(axis=(1, 2))  # (image, channel)
        k = len(result.channels)
        own = means[np.arange(k), result.channels]
        others = (means[:, result.channels].sum(axis=0) - own) / (k - 1)
        assert np.mean(own > others) >= 0.9, (layer, own - others)
        np.testing.assert_allclose(result.activations, own, rtol=1e-4, atol=1e-5)
        before = fv.feature_visualization(model, layer, steps=1, progress=False, colour=images, lr=1e-6)
        assert (result.activations > before.activations).mean() >= 0.9  # the optimization raised them
