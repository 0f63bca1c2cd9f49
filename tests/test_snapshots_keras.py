"""Training snapshots and epoch observers on the Keras backend (JAX or torch underneath)."""

import json

import numpy as np
import pytest
from conftest import synthetic_images

import featurelens as fl
from featurelens import ConvBlock, DenseBlock, ModelSpec, TrainConfig
from featurelens.atlas.cka import cka_over_training

pytestmark = pytest.mark.keras
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install 'featurelens[keras]')")

SMALL = ModelSpec(name="small", input_shape=(32, 32, 3),
                  blocks=(ConvBlock(4, convs=1, dropout=0.1), ConvBlock(8, convs=1)),
                  dense=(DenseBlock(16, dropout=0.2),))


def quick(**changes):
    base = dict(epochs=4, batch_size=32, validation_split=0.2, device="cpu", snapshot_every=2, snapshot_probe=12,
                early_stopping=fl.EarlyStopping(patience=5), reduce_lr=None)
    return TrainConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def arrays():
    labels = np.tile(np.arange(10), 16)
    return synthetic_images(labels, seed=3), labels


def test_observers_and_snapshots_follow_the_epochs(arrays, tmp_path):
    seen = []
    backend = fl.get_backend("keras")

    def observer(epoch, record, native):
        seen.append((epoch, record, native, backend.filters(native, "block1_conv1").copy()))

    model = fl.train(SMALL, *arrays, quick(), backend="keras", progress=False, observers=[observer])
    assert [s[0] for s in seen] == [1, 2, 3, 4] and [s[1] for s in seen] == model.history.epochs
    assert all(s[2] is model.native for s in seen)
    snaps = model.snapshots
    assert snaps.layers == ("block1_conv1", "block2_conv1") and snaps.epochs == [0, 2, 4]
    assert snaps.final_epoch == model.history.best_epoch
    for epoch, _, _, kernels in seen:  # the epoch's weights, synced from the trainer's state
        if epoch in snaps.epochs:
            np.testing.assert_array_equal(snaps.filters[epoch]["block1_conv1"], kernels.astype(np.float16))
    np.testing.assert_array_equal(snaps.final_filters["block2_conv1"],
                                  model.filters("block2_conv1").astype(np.float16))
    assert snaps.maps[2]["block2_conv1"].shape == (12, 4, 4, 8)

    folder = model.save(tmp_path / "keras-model")
    assert json.loads((folder / "featurelens.json").read_text())["snapshots"]["epochs"] == [0, 2, 4]
    loaded = fl.load_model(folder)
    np.testing.assert_array_equal(cka_over_training(loaded.snapshots), cka_over_training(snaps))
    if "torch" in fl.available_backends():  # a spec folder's snapshots load in any backend
        assert fl.load_model(folder, backend="torch").snapshots.epochs == [0, 2, 4]


def test_early_stopping_calls_observers_for_the_epochs_that_ran(arrays):
    calls = []
    stop = fl.EarlyStopping(monitor="loss", patience=1, min_delta=1e9, restore_best_weights=True)
    model = fl.train(SMALL, *arrays, quick(epochs=6, snapshot_every=1, early_stopping=stop), backend="keras",
                     progress=False, observers=[lambda e, r, n: calls.append(e)])
    assert calls == [1, 2] and model.history.stop_reason == "early_stopping"
    assert model.snapshots.epochs == [0, 1, 2] and model.snapshots.final_epoch == 1
    np.testing.assert_array_equal(model.snapshots.final_filters["block1_conv1"],
                                  model.snapshots.filters[1]["block1_conv1"])  # the best weights, restored


def test_users_keras_models_record_snapshots(arrays):
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, padding="same", name="conv"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    wrapped = fl.fit(model, *arrays, quick(epochs=2, snapshot_every=1, early_stopping=None), progress=False)
    assert wrapped.snapshots.layers == ("conv",) and wrapped.snapshots.epochs == [0, 1, 2]
    assert wrapped.snapshots.maps[1]["conv"].shape == (12, 4, 4, 4)
