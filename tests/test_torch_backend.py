"""The PyTorch backend: build, train, save/load, reproducibility."""

import numpy as np
import pytest
from conftest import synthetic_images

import featurelens as fl
from featurelens import ConvBlock, DenseBlock, ModelSpec, TrainConfig

pytestmark = pytest.mark.torch

SMALL = ModelSpec(name="small", input_shape=(32, 32, 3),
                  blocks=(ConvBlock(4, convs=1, dropout=0.1), ConvBlock(8, convs=1)),
                  dense=(DenseBlock(16, dropout=0.2),))
CLASSES = [f"c{i}" for i in range(10)]


@pytest.fixture(scope="module")
def arrays():
    labels = np.tile(np.arange(10), 30)
    return synthetic_images(labels, seed=1), labels


def quick_config(**changes):
    base = dict(epochs=3, batch_size=32, validation_split=0.2, device="cpu",
                early_stopping=fl.EarlyStopping(patience=5), reduce_lr=fl.ReduceLROnPlateau(patience=1))
    return TrainConfig(**{**base, **changes})


def test_module_names_and_parameter_count_match_the_spec():
    backend = fl.get_backend("torch")
    for spec in (SMALL, fl.get_preset("seed")):
        net = backend.build(spec)
        assert [name for name, _ in net.named_children()] == spec.layer_names()
        counted = sum(p.numel() for p in net.parameters()) + sum(
            b.numel() for name, b in net.named_buffers() if not name.endswith("num_batches_tracked"))
        assert counted == spec.parameter_count()


def test_output_shapes_match_the_spec():
    import torch

    net = fl.get_backend("torch").build(SMALL)
    net.eval()
    x = torch.zeros(2, 3, 32, 32)
    for layer, (name, module) in zip(SMALL.layers(), net.named_children()):
        x = module(x)
        shape = tuple(x.shape[1:]) if x.dim() == 2 else (x.shape[2], x.shape[3], x.shape[1])
        assert shape == layer.output_shape, name


def test_training_learns_and_records_history(arrays):
    images, labels = arrays
    model = fl.train(SMALL, images, labels, quick_config(epochs=6), backend="torch",
                     class_names=CLASSES, progress=False)
    h = model.history
    assert len(h.epochs) >= 2 and h.backend == "torch" and h.device == "cpu"
    assert all(r.val_loss is not None and r.seconds > 0 for r in h.epochs)
    assert h.epochs[-1].loss < h.epochs[0].loss
    assert model.evaluate(images, labels).accuracy > 0.5


def test_cpu_training_is_reproducible(arrays):
    images, labels = arrays
    runs = [fl.train(SMALL, images, labels, quick_config(augment=True), backend="torch",
                     class_names=CLASSES, progress=False) for _ in range(2)]
    a, b = (r.history.metric("loss") + r.history.metric("val_loss") for r in runs)
    assert a == b
    np.testing.assert_array_equal(runs[0].predict(images[:16]), runs[1].predict(images[:16]))
    other = fl.train(SMALL, images, labels, quick_config(seed=5), backend="torch", class_names=CLASSES,
                     progress=False)
    assert other.history.metric("loss") != runs[0].history.metric("loss")


def test_early_stopping_stops_and_restores_the_best_epoch(arrays):
    images, labels = arrays
    # A huge learning rate makes validation loss erratic, so patience 1 stops long before 30.
    config = quick_config(epochs=30, learning_rate=0.5, optimizer="sgd",
                          early_stopping=fl.EarlyStopping(patience=1), reduce_lr=None)
    model = fl.train(SMALL, images, labels, config, backend="torch", class_names=CLASSES, progress=False)
    h = model.history
    assert h.stop_reason == "early_stopping" and len(h.epochs) < 30
    val = h.metric("val_loss")
    assert h.best_epoch == int(np.argmin(val)) + 1
    assert h.restored_best_weights


def test_learning_rate_is_reduced_on_plateau(arrays):
    images, labels = arrays
    config = quick_config(epochs=4, early_stopping=None,
                          reduce_lr=fl.ReduceLROnPlateau(patience=1, factor=0.1, min_delta=100.0))
    h = fl.train(SMALL, images, labels, config, backend="torch", class_names=CLASSES, progress=False).history
    # min_delta=100 means nothing after the first epoch counts as an improvement
    # so from the second epoch on every epoch is a plateau of patience 1: reduce after each
    assert [r.learning_rate for r in h.epochs] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5])
    assert h.lr_reductions == [3, 4]


def test_save_load_round_trip_gives_identical_predictions(arrays, tmp_path):
    images, labels = arrays
    model = fl.train(SMALL, images, labels, quick_config(epochs=1), backend="torch",
                     class_names=CLASSES, progress=False)
    folder = model.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["featurelens.json", "history.json", "weights.safetensors"]
    loaded = fl.load_model(folder)
    assert loaded.spec == SMALL and loaded.class_names == tuple(CLASSES)
    assert loaded.normalization == model.normalization
    assert loaded.history.metric("loss") == model.history.metric("loss")
    np.testing.assert_array_equal(loaded.predict(images), model.predict(images))
    probs = loaded.predict(images)
    assert probs.dtype == np.float32 and probs.shape == (len(images), 10)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_saving_over_an_existing_folder_needs_overwrite(arrays, tmp_path):
    images, labels = arrays
    model = fl.build_model(SMALL, fl.Normalization((0.0,) * 3, (1.0,) * 3), CLASSES, backend="torch")
    model.save(tmp_path / "m")
    with pytest.raises(FileExistsError, match="overwrite"):
        model.save(tmp_path / "m")
    model.save(tmp_path / "m", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def saved_with_edited_metadata(tmp_path, old: str, new: str):
    """A saved untrained model whose featurelens.json had ``old`` replaced by ``new``."""
    model = fl.build_model(SMALL, fl.Normalization((0.0,) * 3, (1.0,) * 3), CLASSES, backend="torch")
    folder = model.save(tmp_path / "m")
    meta = folder / "featurelens.json"
    assert old in meta.read_text()
    meta.write_text(meta.read_text().replace(old, new))
    return folder


def test_weights_that_do_not_fit_the_spec_are_refused(tmp_path):
    folder = saved_with_edited_metadata(tmp_path, '"filters": 8', '"filters": 12')
    with pytest.raises(fl.ModelFolderError, match="featurelens.json changed after the model was saved"):
        fl.load_model(folder)
    with pytest.raises(fl.ModelFolderError, match="do not match"):
        fl.load_model(folder, verify=False)


def test_a_damaged_folder_is_explained(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(fl.ModelFolderError, match="not a featurelens model folder"):
        fl.load_model(tmp_path / "m")
    (tmp_path / "m" / "featurelens.json").write_text("{oops")
    with pytest.raises(fl.ModelFolderError, match="not valid JSON"):
        fl.load_model(tmp_path / "m")


def test_wrong_image_layout_is_explained():
    model = fl.build_model(SMALL, fl.Normalization((0.0,) * 3, (1.0,) * 3), CLASSES, backend="torch")
    with pytest.raises(ValueError, match="channels-first"):
        model.predict(np.zeros((2, 3, 32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"images\[None\]"):
        model.predict(np.zeros((32, 32, 3), np.uint8))


def test_flip_and_crop_keeps_shape_and_content_scale():
    import torch
    from featurelens_torch.augment import flip_and_crop

    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    out = flip_and_crop(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape
    # every output pixel is either padding (0) or one of the input values of the same image
    for i in range(2):
        values = set(x[i].flatten().tolist()) | {0.0}
        assert set(out[i].flatten().tolist()) <= values


def test_a_folder_from_an_older_format_is_explained(tmp_path):
    folder = saved_with_edited_metadata(tmp_path, '"format_version": 2', '"format_version": 1')
    with pytest.raises(fl.ModelFolderError, match="pre-release"):
        fl.load_model(folder)
