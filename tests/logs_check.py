"""Reading experiment logs back for the logger tests: TensorBoard's own event reader, csv, json."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featurelens.history import History
from featurelens.loggers import pictures

TB_MISSING = "tensorboard is not installed (pip install 'featurelens[tensorboard]')"


def event_reader(folder: Path):
    """TensorBoard's EventAccumulator over ``folder``, loaded, keeping every event."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator", reason=TB_MISSING)
    reader = accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    reader.Reload()
    return reader


def scalars(reader, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in reader.Scalars(tag)]


def text(reader, tag: str) -> str:
    return reader.Tensors(tag)[-1].tensor_proto.string_val[0].decode("utf-8")


def decoded(event) -> np.ndarray:
    """An image event's PNG as an (H, W, 3) uint8 array, checked against the event's stated size."""
    pixels = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))
    assert pixels.shape == (event.height, event.width, 3)
    return pixels


def mosaic_side(count: int, tile: int, cols: int | None = None) -> tuple[int, int]:
    """Pixels (rows, cols) of ``count`` square tiles on the mosaic grid, 1-pixel gaps, enlarged to
    about pictures.TARGET_SIDE by a whole factor."""
    cols = cols or math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    height, width = 1 + rows * (tile + 1), 1 + cols * (tile + 1)
    factor = max(1, pictures.TARGET_SIDE // max(height, width))
    return height * factor, width * factor


def assert_tensorboard_matches(log_dir: Path, history: History, conv_layers: dict[str, tuple[int, int, int]]) -> None:
    """Scalars per epoch equal the History's (as float32, TensorBoard's scalar type); every epoch has
    the first layer's filters and each conv layer's maps as images of the expected size.
    ``conv_layers``: layer -> (channels, map side, kernel side), first layer first."""
    train, validation = event_reader(log_dir / "train"), event_reader(log_dir / "validation")
    epochs = [r.epoch for r in history.epochs]
    for reader, tag, metric in [(train, "epoch_loss", "loss"), (train, "epoch_accuracy", "accuracy"),
                                (train, "epoch_learning_rate", "learning_rate"), (train, "epoch_seconds", "seconds"),
                                (validation, "epoch_loss", "val_loss"), (validation, "epoch_accuracy", "val_accuracy")]:
        assert scalars(reader, tag) == [(e, float(np.float32(v))) for e, v in zip(epochs, history.metric(metric))], tag
    first, (channels, _, kernel) = next(iter(conv_layers.items()))
    filters = train.Images(f"filters/{first}")
    assert [e.step for e in filters] == epochs
    assert {(e.height, e.width) for e in filters} == {mosaic_side(channels, kernel)}
    for layer, (channels, side, _) in conv_layers.items():
        maps = train.Images(f"feature_maps/{layer}")
        assert [e.step for e in maps] == epochs, layer
        assert {(e.height, e.width) for e in maps} == {mosaic_side(channels, side)}, layer
        assert len(np.unique(decoded(maps[-1]))) > 8, f"the {layer} maps picture is nearly blank"
    assert [e.step for e in train.Images("probe/image")] == [0]
    assert {"run/description", "run/config", "model/layers", "run/outcome"} <= set(train.Tags()["tensors"])
    assert validation.Tags()["images"] == []


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def assert_csv_matches(path: Path, history: History) -> None:
    rows = read_csv(path)
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"]
    assert len(rows) == len(history.epochs)
    for row, record in zip(rows, history.epochs):
        for name, value in row.items():
            expected = getattr(record, name)
            assert (value == "" if expected is None else float(value) == expected), (name, value, expected)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
