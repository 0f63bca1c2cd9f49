"""Early stopping and LR reduction on scripted metric sequences, and agreement with Keras."""

import importlib.util

import numpy as np
import pytest

from featurelens import EarlyStopping, ReduceLROnPlateau
from featurelens.callbacks import EarlyStopper, LRReducer


def run_stopper(values, monitor="val_loss", **kwargs):
    stopper = EarlyStopper(EarlyStopping(monitor=monitor, **kwargs))
    for epoch, value in enumerate(values):
        _, stop = stopper.update(epoch, {monitor: value})
        if stop:
            return epoch, stopper.best_epoch
    return None, stopper.best_epoch


def run_reducer(values, lr=1.0, monitor="val_loss", **kwargs):
    reducer = LRReducer(ReduceLROnPlateau(monitor=monitor, **kwargs))
    lrs = []
    for epoch, value in enumerate(values):
        lrs.append(lr)
        lr = reducer.update(epoch, {monitor: value}, lr)
    return lrs


def test_stops_after_patience_epochs_without_improvement():
    # best at epoch 1; epochs 2, 3, 4 do not improve; patience 3 stops at epoch 4 (0-based)
    assert run_stopper([1.0, 0.5, 0.6, 0.7, 0.55, 0.4], patience=3) == (4, 1)


def test_min_delta_requires_a_large_enough_improvement():
    # 0.95 is not better than 1.0 by more than 0.1, so it does not reset the patience counter
    assert run_stopper([1.0, 0.95, 0.92, 0.5], patience=2, min_delta=0.1) == (2, 0)


def test_patience_zero_still_never_stops_after_the_first_epoch():
    assert run_stopper([1.0], patience=0) == (None, 0)
    assert run_stopper([1.0, 1.0], patience=0) == (1, 0)


def test_accuracy_is_maximised():
    assert run_stopper([0.1, 0.3, 0.2, 0.25], monitor="val_accuracy", patience=2) == (3, 1)


def test_nan_never_counts_as_improvement():
    assert run_stopper([1.0, float("nan"), float("nan")], patience=2) == (2, 0)


def test_lr_is_reduced_after_patience_then_cooldown():
    values = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert run_reducer(values, patience=2, factor=0.5, cooldown=0, min_lr=0) == [1, 1, 1, 0.5, 0.5, 0.25, 0.25]
    assert run_reducer(values, patience=1, factor=0.5, cooldown=2, min_lr=0) == [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_lr_never_goes_below_min_lr():
    lrs = run_reducer([1.0] * 8, patience=1, factor=0.1, min_lr=0.05)
    assert lrs[-1] == 0.05 and min(lrs) == 0.05


def test_improvement_resets_the_plateau_counter():
    assert run_reducer([1.0, 1.0, 0.5, 0.5, 0.5], patience=2, factor=0.5, min_lr=0) == [1, 1, 1, 1, 1]


# -- agreement with Keras's own callbacks ---------------------------------------------------------

HAS_KERAS = importlib.util.find_spec("keras") is not None and (
    importlib.util.find_spec("torch") is not None or importlib.util.find_spec("jax") is not None)


class _Optimizer:
    def __init__(self, lr):
        self.learning_rate = lr


class _Model:
    """The little of a Keras model that EarlyStopping and ReduceLROnPlateau touch."""

    def __init__(self, lr):
        self.optimizer = _Optimizer(lr)
        self.stop_training = False
        self.epoch = 0
        self.restored = None

    def get_weights(self):
        return [self.epoch]

    def set_weights(self, weights):
        self.restored = weights[0]


def _keras():
    import keras  # conftest made sure Keras starts on an installed framework

    return keras


def scripted_sequences(count=40, seed=0):
    # Steps are multiples of 1e-4 and the min_delta values used with them are not, so no comparison
    # is a tie (Keras compares in float32, featurelens in float64; ties could round differently).
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.integers(3, 30))
        steps = rng.choice([-0.2, -0.05, -0.0001, 0.0, 0.0001, 0.05, 0.1], size=n)
        yield np.round(2.0 + np.cumsum(steps), 6).tolist()


@pytest.mark.keras
@pytest.mark.skipif(not HAS_KERAS, reason="Keras 3 is not installed")
@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
def test_early_stopping_matches_keras(monitor):
    keras = _keras()
    for values in scripted_sequences():
        for patience, min_delta in [(0, 0.0), (2, 0.0), (3, 0.01234), (5, 0.0777)]:
            model = _Model(0.1)
            cb = keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, min_delta=min_delta,
                                               restore_best_weights=True,
                                               mode="max" if "accuracy" in monitor else "min")
            cb.set_model(model)
            cb.on_train_begin()
            keras_stop = None
            for epoch, value in enumerate(values):
                model.epoch = epoch
                cb.on_epoch_end(epoch, {monitor: value})
                if model.stop_training:
                    keras_stop = epoch
                    break
            cb.on_train_end()
            ours = run_stopper(values, monitor=monitor, patience=patience, min_delta=min_delta)
            assert ours == (keras_stop, model.restored), (values, patience, min_delta)


@pytest.mark.keras
@pytest.mark.skipif(not HAS_KERAS, reason="Keras 3 is not installed")
def test_reduce_lr_matches_keras():
    keras = _keras()
    for values in scripted_sequences(seed=1):
        for patience, factor, cooldown, min_lr, min_delta in [(1, 0.5, 0, 0.0, 1e-4), (2, 0.2, 1, 0.01, 0.0),
                                                              (3, 0.5, 2, 0.1, 0.0777)]:
            model = _Model(1.0)
            cb = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=patience, factor=factor,
                                                   cooldown=cooldown, min_lr=min_lr, min_delta=min_delta)
            cb.set_model(model)
            cb.on_train_begin()
            keras_lrs = []
            for epoch, value in enumerate(values):
                keras_lrs.append(float(model.optimizer.learning_rate))
                cb.on_epoch_end(epoch, {"val_loss": value})
            ours = run_reducer(values, patience=patience, factor=factor, cooldown=cooldown,
                               min_lr=min_lr, min_delta=min_delta)
            np.testing.assert_allclose(ours, keras_lrs, rtol=1e-6, err_msg=str(values))
