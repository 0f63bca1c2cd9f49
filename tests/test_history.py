import math

from featurelens import EpochRecord, History


def make(values, monitor="val_loss", lrs=None):
    h = History(monitor=monitor, backend="torch", device="cpu")
    for i, v in enumerate(values, 1):
        lr = lrs[i - 1] if lrs else 1e-3
        h.append(EpochRecord(i, 1.0 / i, 0.1 * i, v, None if v is None else 1 - v, lr, 2.0))
    return h


def test_best_epoch_by_monitor_skips_missing_and_nan():
    assert make([0.9, 0.5, float("nan"), 0.7]).best_epoch_by_monitor() == 2
    assert make([None, None]).best_epoch_by_monitor() is None
    assert make([0.9, 0.5, 0.7], monitor="val_accuracy").best_epoch_by_monitor() == 2  # accuracy 0.5 is max


def test_json_round_trip_and_derived_fields(tmp_path):
    h = make([0.9, 0.8, 0.85], lrs=[1e-3, 1e-3, 5e-4])
    h.best_epoch, h.stop_reason, h.restored_best_weights = 2, "early_stopping", True
    h.save(tmp_path / "history.json")
    again = History.load(tmp_path / "history.json")
    assert again == h
    assert again.lr_reductions == [3]
    assert math.isclose(again.total_seconds, 6.0)
    text = again.describe()
    assert "3 epochs" in text and "early stopping" in text and "best epoch 2" in text and "restored" in text
