"""The ``fast`` preset (GELU, its recipe) on the torch backend, and ``train --preset fast``."""

import json

import numpy as np
import pytest
from conftest import synthetic_images

import featurelens as fl
from featurelens import ConvBlock, DenseBlock, ModelSpec
from featurelens.atlas.examples import measured_layer
from featurelens.cli import _train_config, build_parser
from featurelens.explain.inputs import default_cam_layer
from featurelens.presets import preset_recipe, recipe_config
from featurelens.training import TrainingWarning

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

CLASSES = [f"c{i}" for i in range(10)]


def test_gelu_spec_builds_exact_gelu_in_torch():
    spec = ModelSpec(blocks=(ConvBlock(4, activation="gelu"),), dense=(DenseBlock(6, activation="gelu"),))
    model = fl.build_model(spec, fl.Normalization((0.0,) * 3, (1.0,) * 3), CLASSES, backend="torch")
    modules = dict(model.native.named_children())
    assert isinstance(modules["block1_gelu1"], torch.nn.GELU) and modules["block1_gelu1"].approximate == "none"
    kinds = {info.name: info.kind for info in model.layers()}
    assert kinds["block1_gelu2"] == kinds["dense1_gelu"] == "gelu"


@pytest.fixture(scope="module")
def fast_model():
    labels = np.tile(np.arange(10), 20)  # 200 images
    images = synthetic_images(labels, seed=1)
    config = preset_recipe("fast").replace(device="cpu", batch_size=50)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEATURELENS_MAX_EPOCHS", "1")
        # 4 steps cannot move a 0.99 average away from the initial weights: said, not silent
        with pytest.warns(TrainingWarning, match=r"weight_averaging=0.99 averages over about 100 steps, but this "
                                                 r"run has only 4: .* still 96% the initial ones"):
            model = fl.train(fl.get_preset("fast"), images, labels, config, backend="torch", class_names=CLASSES,
                             progress=False)
    return model, images


def test_long_enough_averaging_runs_do_not_warn(recwarn):
    labels = np.tile(np.arange(10), 4)
    config = fl.TrainConfig(epochs=2, batch_size=4, device="cpu", weight_averaging=0.5, early_stopping=None,
                            reduce_lr=None, validation_split=0.0)
    fl.train(fl.get_preset("tiny"), synthetic_images(labels), labels, config, backend="torch", progress=False)
    assert not [w for w in recwarn if issubclass(w.category, TrainingWarning)]


def test_fast_preset_trains_an_epoch_on_the_cpu(fast_model, tmp_path):
    model, images = fast_model
    assert len(model.history.epochs) == 1 and np.isfinite(model.history.epochs[0].loss)
    model.save(tmp_path / "fast")
    loaded = fl.load_model(tmp_path / "fast")
    np.testing.assert_allclose(loaded.predict(images[:4]), model.predict(images[:4]), atol=1e-5)


def test_fast_preset_introspection_atlas_and_cam_layers(fast_model):
    model, images = fast_model
    infos = model.layers()
    assert [i.name for i in infos] == fl.get_preset("fast").layer_names()
    maps = model.feature_maps(images[:2], ["block1_gelu1", "block3_gelu2"])
    assert maps["block1_gelu1"].shape == (2, 32, 32, 64) and maps["block3_gelu2"].shape == (2, 8, 8, 256)
    assert measured_layer(infos, "block2_conv1") == "block2_gelu1"
    assert default_cam_layer(infos) == "block3_gelu2"  # the last conv with maps of at least 8x8


def _args(*argv):
    return build_parser().parse_args(["train", *argv])


def test_train_preset_fast_uses_its_recipe_and_flags_override_it(tmp_path):
    config = _train_config(_args("--preset", "fast"))
    assert config == preset_recipe("fast")
    config = _train_config(_args("--preset", "fast", "--epochs", "5", "--lr", "0.1", "--batch-size", "256"))
    assert (config.epochs, config.learning_rate, config.batch_size) == (5, 0.1, 256)
    assert config.label_smoothing == 0.2 and config.optimizer == "sgd"
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"label_smoothing": 0.1, "epochs": 8}))
    config = _train_config(_args("--preset", "fast", "--config", str(path)))
    assert (config.label_smoothing, config.epochs, config.lr_schedule) == (0.1, 8, "warmup_linear")
    assert _train_config(_args("--preset", "seed")) == fl.TrainConfig()
    assert _train_config(_args()) == fl.TrainConfig()


def test_recipe_config_rejects_a_non_object():
    with pytest.raises(fl.ConfigError, match="expected a JSON object"):
        recipe_config("fast", [1, 2])  # type: ignore[arg-type]


def test_flip_test_time_augmentation_averages_the_mirror():
    model = fl.build_model(fl.get_preset("tiny"), fl.Normalization((120.0,) * 3, (60.0,) * 3),
                           [str(i) for i in range(10)], backend="torch", seed=2)
    images = np.random.default_rng(4).integers(0, 256, (6, 32, 32, 3)).astype(np.uint8)
    plain = model.predict(images)
    mirrored = model.predict(images[:, :, ::-1])
    both = model.predict(images, tta="flip")
    np.testing.assert_allclose(both, (plain + mirrored) / 2, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(both.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(model.predict(images[:, :, ::-1], tta="flip"), both, rtol=1e-5, atol=1e-7)
    assert model.evaluate(images, np.zeros(6, np.int64), tta="flip").accuracy == \
        float((both.argmax(axis=1) == 0).mean())
    with pytest.raises(fl.InputError, match="tta"):
        model.predict(images, tta="rotate")
