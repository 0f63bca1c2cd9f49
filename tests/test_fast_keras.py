"""GELU specs in Keras (parity with torch) and the Keras trainer's fast-path TrainConfig fields.

Run once per Keras backend (KERAS_BACKEND=jax and KERAS_BACKEND=torch).
"""

import inspect

import numpy as np
import pytest
from conftest import synthetic_images

import featurelens as fl
from featurelens import ConvBlock, DenseBlock, ModelSpec, TrainConfig
from featurelens.convert import convert_model

pytestmark = [pytest.mark.keras, pytest.mark.torch]
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install 'featurelens[keras]')")
torch = pytest.importorskip("torch")

from featurelens_keras import train as ktrain  # noqa: E402  (needs Keras)

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
if keras.backend.backend() == "jax":
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")

GELU_SPEC = ModelSpec(name="gelu", blocks=(ConvBlock(6, activation="gelu"), ConvBlock(8, convs=1)),
                      dense=(DenseBlock(12, activation="gelu"),))
CLASSES = [f"c{i}" for i in range(10)]
NORM = fl.Normalization((120.0, 110.0, 100.0), (60.0, 55.0, 50.0))


@pytest.fixture(scope="module")
def images():
    return synthetic_images(np.tile(np.arange(10), 3), seed=4)


def test_keras_gelu_is_the_exact_erf_form():
    # Pinned: the build uses Activation("gelu") = keras.activations.gelu, whose default is exact.
    assert inspect.signature(keras.activations.gelu).parameters["approximate"].default is False
    x = np.linspace(-4, 4, 101).astype(np.float32)
    want = torch.nn.GELU()(torch.from_numpy(x)).numpy()
    got = keras.ops.convert_to_numpy(keras.layers.Activation("gelu")(x))
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("direction", ["torch->keras", "keras->torch"])
def test_gelu_model_parity_and_layer_kinds(images, direction):
    source = fl.build_model(GELU_SPEC, NORM, CLASSES, backend=direction.split("->")[0], seed=3)
    target = convert_model(source, direction.split("->")[1])
    np.testing.assert_allclose(source.predict(images), target.predict(images), atol=1e-5)
    for model in (source, target):
        kinds = {info.name: info.kind for info in model.layers()}
        assert kinds["block1_gelu1"] == kinds["dense1_gelu"] == "gelu" and kinds["block2_relu1"] == "relu"
    maps = target.feature_maps(images[:2], ["block1_gelu2"])
    np.testing.assert_allclose(maps["block1_gelu2"], source.feature_maps(images[:2], ["block1_gelu2"])["block1_gelu2"],
                               atol=1e-5)


def test_smoothed_crossentropy_matches_a_hand_computation():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    labels = np.array([0, 1])
    s = 0.2
    target = np.eye(3)[labels] * (1 - s) + s / 3
    want = -(target * np.log(probs)).sum(1)
    got = keras.ops.convert_to_numpy(ktrain.smoothed_crossentropy(s, False)(labels, probs))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    logits = np.log(probs) + 1.5  # the same softmax
    got = keras.ops.convert_to_numpy(ktrain.smoothed_crossentropy(s, True)(labels, logits))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # torch's definition gives the same numbers
    t = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels), label_smoothing=s,
                                          reduction="none")
    np.testing.assert_allclose(got, t.numpy(), rtol=1e-5)


def test_lr_factor_agrees_with_the_torch_trainer():
    fastpath = pytest.importorskip("featurelens_torch.fastpath")
    for schedule in ("warmup_linear", "warmup_cosine"):
        config = TrainConfig(epochs=3, lr_schedule=schedule, warmup_epochs=0.5)
        got = [float(keras.ops.convert_to_numpy(ktrain.lr_factor(config, i, 10, 3))) for i in range(30)]
        want = [fastpath.lr_factor(schedule, i, 30, 5.0) for i in range(30)]
        np.testing.assert_allclose(got, want, atol=1e-6)
        assert got[-1] == pytest.approx(0.0, abs=1e-7)


def _fit(config, images, spec=GELU_SPEC):
    x = images.astype(np.float32) / 255.0
    y = np.tile(np.arange(10), 3)
    model = fl.build_model(spec, NORM, CLASSES, backend="keras", seed=0).native
    history = ktrain.fit(model, (x[:20], y[:20]), (x[20:], y[20:]), config, progress=False)
    return model, history


def test_schedule_steps_the_rate_and_plateau_reduction_acts_on_the_base(images):
    config = TrainConfig(epochs=4, batch_size=10, optimizer="sgd", learning_rate=0.1, device="cpu",
                         lr_schedule="warmup_linear", warmup_epochs=1.0, early_stopping=None,
                         reduce_lr=fl.ReduceLROnPlateau(monitor="loss", patience=0, min_delta=1e9, factor=0.5))
    model, history = _fit(config, images)
    # after the first epoch (which sets Keras's "best") every epoch is a plateau (min_delta is huge):
    # the base rate, not the scheduled one, halves each time, as Keras does without a schedule
    assert [e.learning_rate for e in history.epochs] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    optimizer = model.optimizer
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(0.0125)
    assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 8


def test_the_schedule_reaches_the_compiled_step(images):
    # the factor is computed inside the (jit-compiled) step: scheduled and constant runs differ
    base = dict(epochs=2, batch_size=10, optimizer="sgd", learning_rate=0.05, device="cpu",
                early_stopping=None, reduce_lr=None)
    a, _ = _fit(TrainConfig(**base), images)
    b, _ = _fit(TrainConfig(**base, lr_schedule="warmup_linear", warmup_epochs=1.0), images)
    assert not np.allclose(a.get_weights()[0], b.get_weights()[0])


def test_weight_averaging_returns_and_validates_the_average(images):
    config = TrainConfig(epochs=2, batch_size=10, optimizer="sgd", learning_rate=0.05, device="cpu",
                         early_stopping=None, reduce_lr=None, weight_averaging=0.9)
    model, history = _fit(config, images)
    optimizer = model.optimizer
    assert optimizer.use_ema and optimizer.ema_momentum == pytest.approx(0.9)
    averages = [keras.ops.convert_to_numpy(v) for v in optimizer._model_variables_moving_average]
    for w, avg in zip(model.trainable_weights, averages):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(w), avg)
    x = images[20:].astype(np.float32) / 255.0
    loss = model.evaluate(x, np.tile(np.arange(10), 3)[20:], verbose=0)[0]
    assert history.epochs[-1].val_loss == pytest.approx(loss, rel=1e-4)


def test_label_smoothing_trains_and_raises_the_loss_floor(images):
    base = dict(epochs=1, batch_size=10, device="cpu", early_stopping=None, reduce_lr=None)
    _, plain = _fit(TrainConfig(**base), images)
    _, smooth = _fit(TrainConfig(**base, label_smoothing=0.2), images)
    assert np.isfinite(smooth.epochs[0].loss) and smooth.epochs[0].loss != plain.epochs[0].loss


@pytest.mark.parametrize("compile_mode", ["off", "on"])
def test_bf16_precision_is_restored_after_fit(images, compile_mode):
    if compile_mode == "on" and keras.backend.backend() == "torch":
        pytest.skip("torch.compile of Keras's torch backend is slow on the CPU")
    config = TrainConfig(epochs=1, batch_size=10, device="cpu", early_stopping=None, reduce_lr=None,
                         precision="bf16", compile=compile_mode)
    model, history = _fit(config, images)
    assert np.isfinite(history.epochs[0].loss)
    assert all(layer.dtype_policy.name == "float32" for layer in model.layers)
    assert model.jit_compile is (compile_mode == "on")


def test_fast_preset_trains_one_epoch_in_keras(images, monkeypatch):
    monkeypatch.setenv("FEATURELENS_MAX_EPOCHS", "1")
    from featurelens.presets import preset_recipe

    config = preset_recipe("fast").replace(device="cpu", batch_size=10, validation_split=0.34)
    spec = fl.get_preset("fast")
    model = fl.train(spec, images, np.tile(np.arange(10), 3), config, backend="keras", class_names=CLASSES,
                     progress=False)
    assert len(model.history.epochs) == 1 and np.isfinite(model.history.epochs[0].loss)
    assert "block3_gelu2" in [info.name for info in model.layers()]
