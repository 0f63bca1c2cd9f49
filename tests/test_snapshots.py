"""Training snapshots on the PyTorch backend: the epoch observers, what is recorded and when, the
folder round trip, the size bound, the config, the figures, and CKA in ``featurelens compare``."""

import json

import numpy as np
import pytest
from conftest import synthetic_images
from PIL import Image

import featurelens as fl
from featurelens import ConvBlock, DenseBlock, ModelSpec, TrainConfig
from featurelens.atlas import snapshots as snapshots_module
from featurelens.atlas.cka import cka_over_training
from featurelens.atlas.snapshots import pool_maps
from featurelens.backends import Backend, Capability, History
from featurelens.compare import feature_map_differences
from featurelens.modeldir import read_snapshots
from featurelens.visualize.comparison import comparison_differences_figure
from featurelens.visualize.drift import cka_heatmap_figure, filters_over_epochs_figure, write_filters_gif

SMALL = ModelSpec(name="small", input_shape=(32, 32, 3),
                  blocks=(ConvBlock(4, convs=1, dropout=0.1), ConvBlock(8, convs=1)),
                  dense=(DenseBlock(16, dropout=0.2),))
CONVS = ("block1_conv1", "block2_conv1")


def quick(**changes):
    base = dict(epochs=5, batch_size=32, validation_split=0.2, device="cpu", snapshot_every=2, snapshot_epochs=(5,),
                snapshot_probe=16, early_stopping=fl.EarlyStopping(patience=5), reduce_lr=None)
    return TrainConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def arrays():
    labels = np.tile(np.arange(10), 20)
    return synthetic_images(labels, seed=2), labels


# -- the config -------------------------------------------------------------------------------------


def test_config_fields_validate_and_round_trip():
    config = TrainConfig(epochs=10, snapshot_every=3, snapshot_epochs=[7, 1, 7], snapshot_probe=8)
    assert config.snapshot_epochs == (1, 7) and config.snapshots
    assert config.snapshot_schedule() == (1, 3, 6, 7, 9)
    assert config.snapshot_schedule(5) == (1, 3)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["snapshot_epochs"] == [1, 7]
    assert TrainConfig.from_dict(data) == config
    older = {k: v for k, v in TrainConfig().to_dict().items() if not k.startswith("snapshot")}
    assert not TrainConfig.from_dict(older).snapshots  # folders written before snapshots existed
    for changes, message in [({"snapshot_every": -1}, "snapshot_every: -1 is invalid: must be >= 0"),
                             ({"snapshot_every": 1.5}, "snapshot_every: 1.5 is invalid: expected an integer"),
                             ({"snapshot_epochs": (2, 0)}, r"snapshot_epochs\[1\]: 0 is invalid: must be >= 1"),
                             ({"snapshot_epochs": (11,)}, r"snapshot_epochs\[0\]: 11 is invalid: .*<= 10"),
                             ({"snapshot_epochs": "5"}, "snapshot_epochs: '5' is invalid: expected a list"),
                             ({"snapshot_probe": 0}, "snapshot_probe: 0 is invalid"),
                             ({"snapshot_probe": 10_000}, "snapshot_probe: 10000 is invalid: must be >= 1 and <= 256")]:
        with pytest.raises(fl.ConfigError, match=message):
            TrainConfig(epochs=10, **changes)


# -- backends that cannot take observers ----------------------------------------------------------


class OldTrainer(Backend):
    """A third-party backend written before observers: its fit has no such parameter."""

    name = "old"
    capabilities = frozenset({Capability.TRAIN})
    calls = 0

    def versions(self):
        return {}

    def build(self, spec, seed=0):
        return object()

    def predict(self, native, images, batch_size=256):
        return np.full((len(images), 10), 0.1, np.float32)

    def get_weights(self, native):
        return {}

    def set_weights(self, native, weights):
        pass

    def fit(self, native, spec, train, validation, config, progress=True):
        OldTrainer.calls += 1
        history = History(monitor="loss")
        history.finish(stopped_early=False)
        return history


def test_backends_without_observers_still_train_and_refuse_snapshots_clearly(arrays):
    x, y = arrays
    model = fl.train(SMALL, x, y, TrainConfig(epochs=1, device="cpu"), backend=OldTrainer(), progress=False)
    assert OldTrainer.calls == 1 and model.snapshots is None
    with pytest.raises(fl.BackendError, match="'old' backend cannot record training snapshots: its fit"):
        fl.train(SMALL, x, y, quick(), backend=OldTrainer(), progress=False)
    with pytest.raises(fl.BackendError, match="cannot call epoch observers"):
        fl.train(SMALL, x, y, TrainConfig(epochs=1), backend=OldTrainer(), progress=False,
                 observers=[lambda *a: None])
    assert OldTrainer.calls == 1

    class NoIntrospection(OldTrainer):
        name = "blind"

        def fit(self, native, spec, train, validation, config, progress=True, observers=()):
            return super().fit(native, spec, train, validation, config, progress)

    with pytest.raises(fl.BackendError, match="cannot record training snapshots: .*'introspect'"):
        fl.train(SMALL, x, y, quick(), backend=NoIntrospection(), progress=False)


# -- recording with the torch backend ---------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(arrays):
    pytest.importorskip("torch")
    x, y = arrays
    seen = []

    def observer(epoch, record, native):  # a copy of what the recorder saw, epoch by epoch
        seen.append((epoch, record, native, fl.get_backend("torch").filters(native, "block1_conv1").copy()))

    model = fl.train(SMALL, x, y, quick(), backend="torch", progress=False, observers=[observer])
    return model, seen


@pytest.mark.torch
def test_snapshots_are_recorded_at_the_scheduled_epochs(trained, arrays):
    model, seen = trained
    snaps = model.snapshots
    assert snaps.layers == CONVS and snaps.epochs == [0, 2, 4, 5]
    assert snaps.final_epoch == model.history.best_epoch and model.history.restored_best_weights
    for epoch, _, _, kernels in seen:  # each epoch's own weights, not the restored best ones
        if epoch in snaps.epochs:
            np.testing.assert_array_equal(snaps.filters[epoch]["block1_conv1"], kernels.astype(np.float16))
    for layer in CONVS:
        np.testing.assert_array_equal(snaps.final_filters[layer], model.filters(layer).astype(np.float16))
        assert snaps.maps[2][layer].shape == (16, 4, 4, model.filters(layer).shape[0])
        assert snaps.maps[2][layer].dtype == np.float16
    # the probe: held-out images picked with the seed, normalized as in training
    _, _, val_x, _ = fl.train_val_split(*arrays, 0.2, 0)
    assert snaps.probe_source == "validation" and len(snaps.probe_indices) == 16
    np.testing.assert_allclose(snaps.probe, model.normalization.apply(val_x)[list(snaps.probe_indices)], rtol=1e-6)
    assert snaps.read_at == {"block1_conv1": "block1_relu1", "block2_conv1": "block2_relu1"}  # what is passed on
    final = next(model.backend.feature_maps(model.native, snaps.probe, ["block2_relu1"]))
    np.testing.assert_allclose(snaps.final_maps["block2_conv1"], pool_maps(final["block2_relu1"]), atol=2e-2)
    cka = cka_over_training(snaps)
    assert cka.shape == (4, 2) and np.isfinite(cka).all()
    if snaps.final_epoch in snaps.epochs:
        np.testing.assert_allclose(cka[snaps.epochs.index(snaps.final_epoch)], 1.0, atol=1e-6)


@pytest.mark.torch
def test_observers_run_once_per_epoch_and_snapshots_change_nothing(trained, arrays):
    model, seen = trained
    assert [s[0] for s in seen] == [1, 2, 3, 4, 5]
    assert [s[1] for s in seen] == model.history.epochs and all(s[2] is model.native for s in seen)
    plain = fl.train(SMALL, *arrays, quick(snapshot_every=0, snapshot_epochs=()), backend="torch", progress=False)
    assert plain.snapshots is None
    assert plain.history.metric("loss") == model.history.metric("loss")  # same training, bit for bit

    calls = []
    stop = fl.EarlyStopping(monitor="loss", patience=1, min_delta=1e9, restore_best_weights=True)
    stopped = fl.train(SMALL, *arrays, quick(epochs=6, snapshot_every=1, snapshot_epochs=(), early_stopping=stop),
                       backend="torch", progress=False, observers=[lambda e, r, n: calls.append(e)])
    assert calls == [1, 2] and stopped.history.stop_reason == "early_stopping"
    assert stopped.snapshots.epochs == [0, 1, 2] and stopped.snapshots.final_epoch == 1


@pytest.mark.torch
def test_the_folder_stores_and_loads_the_snapshots(trained, tmp_path):
    model, _ = trained
    folder = model.save(tmp_path / "m")
    meta = json.loads((folder / "featurelens.json").read_text())
    assert meta["snapshots"]["file"] == "snapshots.safetensors" and meta["snapshots"]["epochs"] == [0, 2, 4, 5]
    assert meta["snapshots"]["bytes"] == model.snapshots.nbytes < snapshots_module.MAX_BYTES
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # written atomically
    loaded = fl.load_model(folder)
    assert loaded.snapshots.epochs == model.snapshots.epochs and loaded.snapshots.layers == CONVS
    assert loaded.snapshots.read_at == model.snapshots.read_at
    np.testing.assert_array_equal(cka_over_training(loaded.snapshots), cka_over_training(model.snapshots))
    np.testing.assert_array_equal(loaded.snapshots.filters[4]["block2_conv1"],
                                  model.snapshots.filters[4]["block2_conv1"])

    untrained = fl.build_model(SMALL, model.normalization, model.class_names, "torch")
    plain = fl.load_model(untrained.save(tmp_path / "plain"))
    assert plain.snapshots is None and not (tmp_path / "plain" / "snapshots.safetensors").exists()
    (folder / "snapshots.safetensors").unlink()
    with pytest.raises(fl.ModelFolderError, match="has no snapshots.safetensors"):
        read_snapshots(folder)
    with pytest.warns(fl.ModelFolderWarning, match="snapshots.safetensors is missing"):
        without = fl.load_model(folder)  # the snapshots cost only themselves: the model still loads
    assert without.snapshots is None and "missing" in without.folder_problems["snapshots.safetensors"]


@pytest.mark.torch
def test_users_models_record_snapshots_too(arrays, tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(),
                        nn.Linear(4 * 8 * 8, 10))
    model = fl.fit(net, *arrays, quick(epochs=2, snapshot_every=1, snapshot_epochs=(), validation_split=0.0,
                                       early_stopping=None), progress=False)
    snaps = model.snapshots
    assert snaps.layers == ("0",) and snaps.epochs == [0, 1, 2] and snaps.probe_source == "training"
    folder = model.save(tmp_path / "mine")
    torch.manual_seed(1)
    loaded = fl.load_model(folder, model=net)
    assert loaded.snapshots.epochs == [0, 1, 2] and loaded.snapshots.final_epoch == 2


@pytest.mark.torch
def test_the_size_bound_is_checked_before_training(arrays, monkeypatch):
    calls = []
    monkeypatch.setattr(snapshots_module, "MAX_BYTES", 20_000)
    with pytest.raises(fl.ConfigError, match=r"snapshot_every: 1 is invalid: it records 7 snapshots .* over the "
                                             r"0.0191 MB bound on snapshots; record at most \d+ epochs"):
        fl.train(SMALL, *arrays, quick(snapshot_every=1), backend="torch", progress=False,
                 observers=[lambda e, r, n: calls.append(e)])
    with pytest.raises(fl.ConfigError, match=r"snapshot_epochs: \[1, 2, 3\] is invalid"):
        fl.train(SMALL, *arrays, quick(snapshot_every=0, snapshot_epochs=(1, 2, 3)), backend="torch", progress=False)
    assert calls == []


# -- figures and compare ---------------------------------------------------------------------------


@pytest.mark.torch
def test_drift_figures_build(trained, tmp_path):
    model, _ = trained
    snaps = model.snapshots
    labels, kernels = snaps.layer_filters("block1_conv1")
    fig = filters_over_epochs_figure(kernels, labels, "block1_conv1")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == labels
    fig.savefig(tmp_path / "rgb.png")
    deeper = filters_over_epochs_figure(*reversed(snaps.layer_filters("block2_conv1")), "block2_conv1",
                                        scaling="shared")
    assert len(deeper.axes) == 2  # the image and its colour bar
    gif = write_filters_gif(kernels, labels, tmp_path / "filters.gif")
    with Image.open(gif) as image:
        assert image.n_frames == len(labels) and image.is_animated
    assert sorted(p.name for p in tmp_path.iterdir()) == ["filters.gif", "rgb.png"]
    cka = cka_over_training(snaps)
    heat = cka_heatmap_figure(cka, snaps.epochs, snaps.layers, probe=len(snaps.probe))
    assert len(heat.axes[0].texts) == cka.size
    with pytest.raises(fl.InputError, match="one label per epoch"):
        filters_over_epochs_figure(kernels, labels[:-1])
    with pytest.raises(fl.InputError, match=r"shape \(epochs, layers\) = \(4, 2\)"):
        cka_heatmap_figure(cka.T, snaps.epochs, snaps.layers)


@pytest.mark.torch
def test_compare_reports_cka_beside_the_relative_difference(trained, arrays):
    model, _ = trained
    untrained = fl.build_model(SMALL, model.normalization, model.class_names, "torch", seed=5)
    same = feature_map_differences(model, model, arrays[0][:24], list(CONVS))
    assert all(d.relative_difference == 0 and d.cka == pytest.approx(1.0) for d in same)
    other = feature_map_differences(model, untrained, arrays[0][:24], list(CONVS))
    assert all(0 <= d.cka < 0.999 for d in other) and other[0].to_dict()["cka"] == other[0].cka
    fig = comparison_differences_figure(other)
    assert len(fig.axes) == 2 and "CKA" in fig.axes[1].get_xlabel()
    assert len(comparison_differences_figure([d.__class__(d.layer, 0.1, 0.2) for d in other]).axes) == 1


@pytest.mark.torch
def test_cli_train_snapshot_every_and_compare_table(cifar_root, tmp_path, capsys, isolated_env):
    from featurelens.cli import main

    out = tmp_path / "model"
    assert main(["train", "--preset", "tiny", "--data-dir", str(cifar_root), "--no-download", "--epochs", "2",
                 "--batch-size", "16", "--validation-split", "0.2", "--device", "cpu", "--snapshot-every", "1",
                 "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "Snapshots: epochs 0, 1, 2 and the final model" in printed and (out / "snapshots.safetensors").is_file()
    assert json.loads((out / "featurelens.json").read_text())["train_config"]["snapshot_every"] == 1
    assert main(["compare", str(out), str(out), "--data-dir", str(cifar_root), "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out
    assert "linear CKA" in printed and "block1_conv1" in printed and "1.0000" in printed
    layers = json.loads((tmp_path / "cmp" / "differences.json").read_text())["layers"]
    assert all(d["cka"] == pytest.approx(1.0) for d in layers)
    assert main(["train", "--preset", "tiny", "--data-dir", str(cifar_root), "--snapshot-every", "-2",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "snapshot_every: -2 is invalid" in capsys.readouterr().err


def test_the_report_shows_the_drift_figures_and_convert_keeps_the_snapshots(trained, arrays, tmp_path):
    from featurelens.backends.figures import ReportFigure
    from featurelens.convert import convert_model
    from featurelens.report import write_report
    from featurelens.report_figures import filters_over_training, similarity_over_training

    model, _ = trained
    images, labels = arrays
    data = fl.Dataset(images[:40], labels[:40], images[40:60], labels[40:60], tuple(model.class_names), "", "synthetic")
    figures = [ReportFigure("filters_over_training", "How the filters formed", "", filters_over_training),
               ReportFigure("similarity_over_training", "When each layer settled", "", similarity_over_training)]
    written = [f.filename for f in write_report(model, data, tmp_path / "report", figures=figures)]
    assert written == ["filters_over_training.png", "filters_over_training.gif", "similarity_over_training.png"]
    assert Image.open(tmp_path / "report" / "filters_over_training.gif").n_frames == len(model.snapshots.epochs) + 1
    assert "filters_over_training.gif" in (tmp_path / "report" / "index.html").read_text()

    plain = fl.build_model(SMALL, model.normalization, model.class_names, "torch")
    assert write_report(plain, data, tmp_path / "plain", figures=figures) == []  # no snapshots, no figures
    assert convert_model(model, "torch").snapshots is model.snapshots
