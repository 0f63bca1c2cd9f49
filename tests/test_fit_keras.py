"""Users' own Keras models trained by featurelens's trainer, saved without pickle, loaded back."""

import json

import numpy as np
import pytest
from conftest import short_cpu_config as config

import featurelens as fl

pytestmark = pytest.mark.keras
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install 'featurelens[keras]')")


def sequential(softmax=True):
    """Written as the seed's learner wrote it: no Input, built on its first call."""
    return keras.Sequential([
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"), keras.layers.BatchNormalization(),
        keras.layers.MaxPooling2D(4), keras.layers.Flatten(), keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax" if softmax else None)])


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(4, 3, padding="same", activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.out = keras.layers.Dense(10)

    def call(self, x):
        return self.out(self.pool(self.conv(x)))


@pytest.mark.parametrize("softmax", [True, False], ids=["probabilities", "logits"])
def test_an_unbuilt_sequential_trains_saves_and_rebuilds(fit_data, tmp_path, softmax):
    x, y = fit_data
    model = fl.fit(sequential(softmax), x, y, config(augment=True), progress=False)
    assert model.backend.name == "keras" and isinstance(model, fl.WrappedModel)
    h = model.history
    assert len(h.epochs) == 3 and h.best_epoch is not None and h.epochs[-1].val_accuracy > 0.3
    assert model.evaluate(x, y).accuracy > 0.3
    folder = model.save(tmp_path / "seq")
    assert json.loads((folder / "featurelens.json").read_text())["architecture"]["keras_config"]
    rebuilt = fl.load_model(folder)  # Keras's own config, safe mode: no code from the folder
    np.testing.assert_allclose(rebuilt.predict(x[:16]), model.predict(x[:16]), atol=1e-6)
    again = fl.load_model(folder, model=lambda: sequential(softmax))
    np.testing.assert_allclose(again.predict(x[:16]), model.predict(x[:16]), atol=1e-6)


def test_a_subclassed_model_trains_and_loads_with_its_class(fit_data, tmp_path):
    x, y = fit_data
    model = fl.fit(Subclassed(), x, y, config(epochs=2), progress=False)
    folder = model.save(tmp_path / "sub")
    with pytest.raises(fl.BackendError, match="pass the model"):
        fl.load_model(folder)
    loaded = fl.load_model(folder, model=Subclassed)
    np.testing.assert_allclose(loaded.predict(x[:8]), model.predict(x[:8]), atol=1e-6)
    with pytest.raises(fl.InputError, match="4 tensors were saved but this model has 8 weights"):
        fl.load_model(folder, model=lambda: sequential())
