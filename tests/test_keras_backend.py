"""The Keras 3 backend, and parity with the PyTorch backend through canonical weights.

Keras picks its own backend once per process (KERAS_BACKEND): the test command runs this file
once on JAX and once on PyTorch.
"""

import os
import sys

import numpy as np
import pytest
from conftest import synthetic_images

import featurelens as fl
from featurelens import ConvBlock, DenseBlock, ModelSpec, TrainConfig
from featurelens.convert import convert_model

pytestmark = [pytest.mark.keras, pytest.mark.torch]
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install 'featurelens[keras]')")
torch = pytest.importorskip("torch")

# Parity means fp32 on both sides: no TF32 shortcuts on GPUs (JAX's and cuDNN's defaults allow them).
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
if keras.backend.backend() == "jax":
    import jax

    jax.config.update("jax_default_matmul_precision", "highest")

SPEC = ModelSpec(name="parity", blocks=(ConvBlock(6, dropout=0.2), ConvBlock(10, convs=1, kernel_size=5)),
                 dense=(DenseBlock(12, dropout=0.5),))
CLASSES = [f"c{i}" for i in range(10)]
NORM = fl.Normalization((120.0, 110.0, 100.0), (60.0, 55.0, 50.0))


@pytest.fixture(scope="module")
def images():
    return synthetic_images(np.tile(np.arange(10), 3), seed=4)


def randomized_torch_model():
    model = fl.build_model(SPEC, NORM, CLASSES, backend="torch", seed=3)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial batch-norm statistics, so parity covers them too
        for module in model.native.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.normal_(0, 0.5, generator=gen)
                module.running_var.uniform_(0.5, 2.0, generator=gen)
                module.weight.uniform_(0.5, 1.5, generator=gen)
                module.bias.normal_(0, 0.3, generator=gen)
    return model


def test_keras_backend_is_reported():
    backend = fl.get_backend("keras")
    versions = backend.versions()
    assert versions["keras_backend"] == keras.backend.backend() in ("jax", "torch", "tensorflow")
    assert versions["keras"] == keras.__version__


def test_layer_names_and_parameter_count_match_the_spec():
    model = fl.build_model(fl.get_preset("seed"), NORM, CLASSES, backend="keras")
    assert [layer.name for layer in model.native.layers[1:]] == fl.get_preset("seed").layer_names()
    assert model.native.count_params() == fl.get_preset("seed").parameter_count() == 552_874
    assert [i.output_shape for i in model.layers()] == [s.output_shape for s in fl.get_preset("seed").layers()]


@pytest.mark.parametrize("direction", ["torch->keras", "keras->torch"])
def test_parity_logits_and_every_feature_map(images, direction):
    source = randomized_torch_model()
    if direction == "keras->torch":
        source = convert_model(source, "keras")
    target = convert_model(source, "keras" if direction == "torch->keras" else "torch")
    assert target.backend.name != source.backend.name
    a, b = source.feature_maps(images), target.feature_maps(images)
    assert list(a) == list(b) == SPEC.layer_names()
    np.testing.assert_allclose(a["head_dense"], b["head_dense"], atol=1e-4, rtol=1e-4)  # the logits
    for name in SPEC.layer_names():
        np.testing.assert_allclose(a[name], b[name], atol=1e-4, rtol=1e-4, err_msg=name)
    np.testing.assert_allclose(source.predict(images), target.predict(images), atol=1e-5)
    np.testing.assert_array_equal(source.filters("block1_conv1"), target.filters("block1_conv1"))


def test_a_torch_model_folder_loads_in_keras(images, tmp_path):
    model = randomized_torch_model()
    folder = model.save(tmp_path / "torch-model")
    in_keras = fl.load_model(folder, backend="keras")
    assert in_keras.backend.name == "keras"
    np.testing.assert_allclose(in_keras.predict(images), model.predict(images), atol=1e-5)


def test_training_maps_the_config_onto_keras_callbacks(images):
    labels = np.tile(np.arange(10), 3)
    config = TrainConfig(epochs=4, batch_size=8, validation_split=0.2, early_stopping=None,
                         reduce_lr=fl.ReduceLROnPlateau(patience=1, factor=0.1, min_delta=100.0))
    model = fl.train(SPEC, images, labels, config, backend="keras", class_names=CLASSES, progress=False)
    h = model.history
    assert h.backend == "keras" and len(h.epochs) == 4
    assert [r.learning_rate for r in h.epochs] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5])
    assert all(r.val_loss is not None and r.seconds > 0 for r in h.epochs)


def test_early_stopping_is_reported(images):
    labels = np.tile(np.arange(10), 3)
    config = TrainConfig(epochs=30, batch_size=8, validation_split=0.2, learning_rate=0.5, optimizer="sgd",
                         early_stopping=fl.EarlyStopping(patience=1), reduce_lr=None)
    h = fl.train(SPEC, images, labels, config, backend="keras", class_names=CLASSES, progress=False).history
    assert h.stop_reason == "early_stopping" and len(h.epochs) < 30
    assert h.best_epoch == int(np.nanargmin(np.array(h.metric("val_loss"), float))) + 1
    assert h.restored_best_weights


def test_save_and_load_round_trip(images, tmp_path):
    labels = np.tile(np.arange(10), 3)
    model = fl.train(SPEC, images, labels, TrainConfig(epochs=1, batch_size=8, augment=True, validation_split=0.34),
                     backend="keras",
                     class_names=CLASSES, progress=False)
    loaded = fl.load_model(model.save(tmp_path / "m"))
    assert loaded.backend.name == "keras"
    np.testing.assert_allclose(loaded.predict(images), model.predict(images), atol=1e-6)
    assert loaded.history.metric("loss") == model.history.metric("loss")


def test_a_users_sequential_and_functional_models():
    seq = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, name="c1"),
                            keras.layers.ReLU(name="r1"), keras.layers.GlobalAveragePooling2D(name="gap"),
                            keras.layers.Dense(10, name="logits")])
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(5, 3, padding="same", name="conv")(inputs)
    outputs = keras.layers.Dense(10, activation="softmax", name="out")(keras.layers.Flatten(name="flat")(x))
    func = keras.Model(inputs, outputs)
    x_img = np.random.default_rng(0).random((3, 32, 32, 3)).astype(np.float32)
    for native, conv, shape in ((seq, "c1", (30, 30, 4)), (func, "conv", (32, 32, 5))):
        m = fl.wrap(native)
        assert m.backend.name == "keras"
        assert m.conv_layers() == [conv]
        assert m.filters(conv).shape == (shape[2], 3, 3, 3)
        maps = m.feature_maps(x_img, [conv])
        assert maps[conv].shape == (3, *shape)
        np.testing.assert_allclose(m.predict(x_img).sum(1), 1, atol=1e-5)
    with pytest.raises(fl.LayerNotFoundError, match="no layer named 'nope'"):
        fl.wrap(func).feature_maps(x_img, ["nope"])


def test_keras_backend_is_never_changed_after_import(monkeypatch):
    from featurelens_keras.plugin import choose_keras_backend

    assert "keras" in sys.modules
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    choose_keras_backend()
    assert "KERAS_BACKEND" not in os.environ


def test_cli_convert_then_compare(cifar_root, tmp_path, capsys, isolated_env):
    import json

    from featurelens.cli import main

    src = tmp_path / "torch-model"
    assert main(["train", "--preset", "tiny", "--backend", "torch", "--data-dir", str(cifar_root), "--epochs", "2",
                 "--batch-size", "16", "--device", "cpu", "--out", str(src), "--no-progress"]) == 0
    assert main(["convert", str(src), "--to", "keras"]) == 0
    converted = tmp_path / "torch-model-keras"
    meta = json.loads((converted / "featurelens.json").read_text())
    assert meta["backend"] == "keras" and "keras_backend" in meta["versions"]
    capsys.readouterr()
    accuracies = []
    for folder in (src, converted):
        assert main(["evaluate", str(folder), "--data-dir", str(cifar_root), "--json"]) == 0
        accuracies.append(json.loads(capsys.readouterr().out)["accuracy"])
    assert accuracies[0] == accuracies[1]
    out = tmp_path / "cmp"
    assert main(["compare", str(src), str(converted), "--data-dir", str(cifar_root), "--out", str(out)]) == 0
    assert {"histories.png", "filters.png", "feature_maps.png", "differences.png", "index.html",
            "differences.json"} <= {p.name for p in out.iterdir()}
    diffs = json.loads((out / "differences.json").read_text())["layers"]
    assert len(diffs) == len(fl.get_preset("tiny").layer_names())
    assert max(d["relative_difference"] for d in diffs) < 1e-5  # same weights, two backends
