"""Users' own torch modules trained by featurelens's trainer, saved without pickle, loaded back."""

import json

import numpy as np
import pytest
from conftest import short_cpu_config as config

import featurelens as fl

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
nn = torch.nn


class SmallNet(nn.Module):
    """A CNN as users write it: a Sequential body, a functional flatten, logits or probabilities out."""

    def __init__(self, softmax: bool = False, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(4))
        self.head = nn.Linear(8 * 8 * 8, classes)
        self.softmax = softmax

    def forward(self, x):
        out = self.head(torch.flatten(self.features(x), 1))
        return out.softmax(1) if self.softmax else out


def test_a_users_module_trains_with_the_full_recipe(fit_data):
    torch.manual_seed(0)
    x, y = fit_data
    model = fl.fit(SmallNet(), x, y, config(augment=True), class_names=[f"c{i}" for i in range(10)], progress=False)
    assert isinstance(model, fl.WrappedModel) and model.backend.name == "torch"
    h = model.history
    assert len(h.epochs) == 3 and h.monitor == "val_loss" and h.best_epoch is not None
    assert h.epochs[-1].val_accuracy > 0.5
    assert model.normalization.mean != (0.0, 0.0, 0.0)  # computed from the training images
    assert model.evaluate(x, y).accuracy > 0.5
    assert [i.name for i in model.layers()][:2] == ["features.0", "features.1"]


def test_logits_and_probabilities_train_alike(fit_data):
    x, y = fit_data
    results = []
    for softmax in (False, True):
        torch.manual_seed(0)
        results.append(fl.fit(SmallNet(softmax), x, y, config(), progress=False).history.metric("loss"))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4)


def test_early_stopping_and_lr_reduction_hold_for_user_models(fit_data):
    x, y = fit_data
    stop = fl.EarlyStopping(monitor="loss", patience=1, min_delta=1e9, restore_best_weights=True)
    h = fl.fit(SmallNet(), x, y, config(epochs=5, early_stopping=stop), progress=False).history
    assert len(h.epochs) == 2 and h.stop_reason == "early_stopping" and h.restored_best_weights
    reduce = fl.ReduceLROnPlateau(monitor="loss", patience=1, min_delta=1e9, factor=0.5, min_lr=0)
    h = fl.fit(SmallNet(), x, y, config(epochs=3, early_stopping=None, reduce_lr=reduce), progress=False).history
    assert h.lr_reductions == [3]


def test_save_and_load_with_the_users_class(fit_data, tmp_path):
    x, y = fit_data
    torch.manual_seed(1)
    model = fl.fit(SmallNet(), x, y, config(), progress=False)
    folder = model.save(tmp_path / "mine")
    meta = json.loads((folder / "featurelens.json").read_text())
    assert meta["kind"] == "wrapped" and meta["architecture"]["class"].endswith("SmallNet")
    assert meta["input_shape"] == [32, 32, 3]
    loaded = fl.load_model(folder, model=SmallNet)  # a class, a function or an instance
    np.testing.assert_array_equal(loaded.predict(x[:16]), model.predict(x[:16]))
    assert loaded.history.best_epoch == model.history.best_epoch
    assert loaded.normalization == model.normalization
    with pytest.raises(fl.BackendError, match="pass the model"):
        fl.load_model(folder)
    with pytest.raises(fl.InputError, match="do not fit this model: .*shapes differ"):
        fl.load_model(folder, model=SmallNet(classes=4))
    if "keras" in fl.available_backends():
        with pytest.raises(fl.ModelFolderError, match="loads only in the torch backend"):
            fl.load_model(folder, backend="keras")


def test_bad_arguments_are_explained(fit_data):
    x, y = fit_data
    with pytest.raises(fl.InputError, match="returns 10 scores per image but 3 class names"):
        fl.fit(SmallNet(), x, y, config(), class_names=["a", "b", "c"], progress=False)
    with pytest.raises(fl.InputError, match="labels must be in 0..3"):
        fl.fit(SmallNet(classes=4), x, y, config(), progress=False)
    with pytest.raises(fl.InputError, match="look channels-first"):
        fl.fit(SmallNet(), x.transpose(0, 3, 1, 2).copy(), y, config(), progress=False)


def test_spec_folders_refuse_a_model_argument(tmp_path):
    spec = fl.get_preset("tiny")
    model = fl.build_model(spec, fl.Normalization((0.0,) * 3, (1.0,) * 3), [str(i) for i in range(10)], "torch")
    folder = model.save(tmp_path / "spec")
    with pytest.raises(fl.InputError, match="drop model="):
        fl.load_model(folder, model=SmallNet)
