"""Experiment logs on the Keras backend (JAX or torch underneath): TensorBoard files without
TensorFlow, read back with TensorBoard's own event reader, and the CSV file, against the History."""

import numpy as np
import pytest
from conftest import synthetic_images
from logs_check import assert_csv_matches, assert_tensorboard_matches, decoded, event_reader, read_jsonl, text

import featurelens as fl
from featurelens import ConvBlock, DenseBlock, ModelSpec, TrainConfig
from featurelens.loggers import pictures

pytestmark = pytest.mark.keras
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install 'featurelens[keras]')")

SMALL = ModelSpec(name="small", input_shape=(32, 32, 3),
                  blocks=(ConvBlock(4, convs=1, dropout=0.1), ConvBlock(8, convs=1)),
                  dense=(DenseBlock(16, dropout=0.2),))


def test_keras_runs_log_to_tensorboard_csv_and_jsonl(tmp_path):
    labels = np.tile(np.arange(10), 10)
    config = TrainConfig(epochs=2, batch_size=32, validation_split=0.2, device="cpu", early_stopping=None,
                         reduce_lr=None)
    model = fl.train(SMALL, synthetic_images(labels, seed=5), labels, config, backend="keras", progress=False,
                     loggers=["tensorboard", "csv", "jsonl"], log_dir=tmp_path)
    history = model.history
    assert_tensorboard_matches(tmp_path, history, {"block1_conv1": (4, 32, 3), "block2_conv1": (8, 16, 3)})
    assert_csv_matches(tmp_path / "metrics.csv", history)
    train = event_reader(tmp_path / "train")
    # the last epoch's filters picture is the returned model's: the Keras weights of that epoch
    np.testing.assert_array_equal(decoded(train.Images("filters/block1_conv1")[-1]),
                                  pictures.filters_pixels(model.filters("block1_conv1")))
    assert "on the keras backend" in text(train, "run/description")
    events = read_jsonl(tmp_path / "run.jsonl")
    assert [e["event"] for e in events] == ["begin", "epoch", "epoch", "end"] and events[0]["backend"] == "keras"
    assert events[-1]["stop_reason"] == "max_epochs" and events[-1]["error"] is None
