"""Experiment logs on the PyTorch backend: the built-in TensorBoard, CSV and JSON-lines loggers read
back (TensorBoard's own event reader), a third-party logger and the docs' MLflow plugin through the
hook, failures before and during training, the main process only, and ``featurelens train --log``."""

from __future__ import annotations

import importlib.machinery
import json
import os
import subprocess
import sys
import textwrap
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_images
from logs_check import (
    TB_MISSING,
    assert_csv_matches,
    assert_tensorboard_matches,
    decoded,
    event_reader,
    read_csv,
    read_jsonl,
    text,
)

import featurelens as fl
from featurelens import ConvBlock, DenseBlock, ModelSpec, TrainConfig
from featurelens.backends import LayerInfo, Logger, LoggerEntry, RunStart, hookimpl, registry
from featurelens.errors import BackendError, LoggerError
from featurelens.loggers import LoggerWarning, available_loggers, is_main_process, pictures

ROOT = Path(__file__).resolve().parent.parent
SMALL = ModelSpec(name="small", input_shape=(32, 32, 3),
                  blocks=(ConvBlock(4, convs=1, dropout=0.1), ConvBlock(8, convs=1)),
                  dense=(DenseBlock(16, dropout=0.2),))
CONVS = {"block1_conv1": (4, 32, 3), "block2_conv1": (8, 16, 3)}  # channels, map side, kernel side
EPOCHS = 3


def quick(**changes):
    """3 CPU epochs, no early stopping (the model returned holds the last epoch's weights) and an LR
    halved from the third epoch on (val_loss never improves by 10 after the first), so the logged LR changes."""
    base = dict(epochs=EPOCHS, batch_size=32, validation_split=0.2, device="cpu", early_stopping=None,
                reduce_lr=fl.ReduceLROnPlateau(patience=0, min_delta=10.0, min_lr=0.0))
    return TrainConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def arrays():
    labels = np.tile(np.arange(10), 10)
    return synthetic_images(labels, seed=4), labels


class Recorder(Logger):
    """A third-party logger keeping every event it receives (copies of the view's arrays)."""

    made: list[Recorder] = []

    def __init__(self) -> None:
        self.events: list[tuple] = []
        Recorder.made.append(self)

    def begin(self, run):
        self.events.append(("begin", run))

    def epoch(self, record, view):
        self.events.append(("epoch", record, view.epoch, {k: v.copy() for k, v in view.filters().items()},
                            {k: v.copy() for k, v in view.feature_maps().items()}))

    def end(self, run):
        self.events.append(("end", run))


class RecorderPlugin:
    @hookimpl
    def featurelens_register_loggers(self, register):
        register(LoggerEntry("recording", Recorder, description="keeps every event (tests)"))


class Flaky(Logger):
    """Fails at epoch 2."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def epoch(self, record, view):
        if record.epoch == 2:
            raise OSError("No space left on device")
        self.epochs.append(record.epoch)


# -- the docs' MLflow plugin, run against a stand-in mlflow module with MLflow's signatures --------


def fake_mlflow() -> types.ModuleType:
    mlflow = types.ModuleType("mlflow")
    mlflow.__spec__ = importlib.machinery.ModuleSpec("mlflow", None)
    calls: list[tuple[str, dict]] = []

    def start_run(run_id=None, experiment_id=None, run_name=None, nested=False, tags=None, description=None,
                  log_system_metrics=None):
        calls.append(("start_run", {"run_name": run_name}))

    def log_params(params, synchronous=None, run_id=None):
        calls.append(("log_params", dict(params)))

    def log_text(text, artifact_file, run_id=None):
        calls.append(("log_text", {"text": text, "artifact_file": artifact_file}))

    def log_metrics(metrics, step=None, synchronous=None, run_id=None, timestamp=None, model_id=None, dataset=None):
        calls.append(("log_metrics", {"metrics": dict(metrics), "step": step}))

    def log_image(image, artifact_file=None, key=None, step=None, timestamp=None, synchronous=None):
        image = np.asarray(image)
        assert image.dtype.kind != "f" or (image.min() >= 0 and image.max() <= 1), "mlflow wants floats in [0, 1]"
        calls.append(("log_image", {"shape": image.shape, "key": key, "step": step}))

    def log_metric(key, value, step=None, synchronous=None, timestamp=None, run_id=None, model_id=None, dataset=None):
        calls.append(("log_metric", {key: value}))

    def set_tag(key, value, synchronous=None):
        calls.append(("set_tag", {key: value}))

    def end_run(status="FINISHED"):
        calls.append(("end_run", {"status": status}))

    for function in (start_run, log_params, log_text, log_metrics, log_image, log_metric, set_tag, end_run):
        setattr(mlflow, function.__name__, function)
    mlflow.calls = calls
    return mlflow


def docs_mlflow_plugin() -> types.ModuleType:
    """The ``featurelens_mlflow.py`` code block of docs/guide/training.rst, as a module."""
    lines = (ROOT / "docs" / "guide" / "training.rst").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("# featurelens_mlflow.py"))
    end = next(i for i in range(start, len(lines)) if lines[i] and not lines[i].startswith("   "))
    module = types.ModuleType("featurelens_mlflow")
    exec(compile(textwrap.dedent("\n".join(lines[start:end])), "featurelens_mlflow.py", "exec"), module.__dict__)
    return module


# -- one run with every kind of logger ---------------------------------------------------------


@pytest.fixture(scope="module")
def run(arrays, tmp_path_factory):
    folder = tmp_path_factory.mktemp("logs") / "small-logs"
    mlflow, flaky = fake_mlflow(), Flaky()
    Recorder.made.clear()
    registry.register_plugin(RecorderPlugin(), name="recorder-plugin")
    registry.register_plugin(docs_mlflow_plugin(), name="mlflow-plugin")
    try:
        with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LoggerWarning)
            mp.setitem(sys.modules, "mlflow", mlflow)  # "importable" now, so the entry's requires= is met
            loggers = ["tensorboard", "csv", "jsonl", "recording", "mlflow", flaky]
            model = fl.train(SMALL, *arrays, quick(), backend="torch", progress=False, loggers=loggers,
                             log_dir=folder)
    finally:
        registry.unregister_plugin("recorder-plugin")
        registry.unregister_plugin("mlflow-plugin")
    return types.SimpleNamespace(model=model, folder=folder, recorder=Recorder.made[-1], mlflow=mlflow.calls,
                                 flaky=flaky, warnings=[w for w in caught if issubclass(w.category, LoggerWarning)])


def test_the_builtin_loggers_register_through_the_hook():
    loggers = available_loggers()
    assert {"tensorboard", "csv", "jsonl"} <= set(loggers)
    assert loggers["tensorboard"].requires == ("tensorboard",)
    assert "featurelens[tensorboard]" in loggers["tensorboard"].install
    with pytest.raises(BackendError, match="lower-case"):
        LoggerEntry("Bad Name", Logger)


@pytest.mark.torch
def test_tensorboard_files_read_back_with_tensorboards_reader(run):
    history = run.model.history
    assert [r.learning_rate for r in history.epochs] == [1e-3, 1e-3, 5e-4]
    assert_tensorboard_matches(run.folder, history, CONVS)
    train = event_reader(run.folder / "train")
    # the last epoch's filters picture is the returned model's filters (no early-stopping restore)
    expected = pictures.filters_pixels(run.model.filters("block1_conv1"))
    np.testing.assert_array_equal(decoded(train.Images("filters/block1_conv1")[-1]), expected)
    table = text(train, "model/layers")
    assert "block2_conv1" in table and f"total parameters: {SMALL.parameter_count():,}" in table
    assert '"epochs": 3' in text(train, "run/config") and "small-torch" in text(train, "run/description")
    assert "3 epochs" in text(train, "run/outcome")


@pytest.mark.torch
def test_csv_and_jsonl_match_the_history(run):
    history = run.model.history
    assert_csv_matches(run.folder / "metrics.csv", history)
    events = read_jsonl(run.folder / "run.jsonl")
    assert [e["event"] for e in events] == ["begin", "epoch", "epoch", "epoch", "end"]
    begin, end = events[0], events[-1]
    assert begin["name"] == "small-torch" and begin["spec"] == json.loads(SMALL.to_json())
    assert begin["config"] == json.loads(json.dumps(quick().to_dict()))
    assert [layer["name"] for layer in begin["layers"]][:2] == ["block1_conv1", "block1_bn1"]
    assert begin["train_size"] == 80 and begin["validation_size"] == 20
    for event, record in zip(events[1:-1], history.epochs):
        assert {k: v for k, v in event.items() if k not in ("event", "time")} == record.__dict__
    assert end["stop_reason"] == "max_epochs" and end["best_epoch"] == history.best_epoch and end["error"] is None


@pytest.mark.torch
def test_a_plugin_logger_receives_every_event(run):
    events, history = run.recorder.events, run.model.history
    assert [e[0] for e in events] == ["begin", "epoch", "epoch", "epoch", "end"]
    start: RunStart = events[0][1]
    assert (start.name, start.backend, start.device, start.spec) == ("small-torch", "torch", "cpu", SMALL)
    assert start.class_names == tuple(str(i) for i in range(10)) and start.input_shape == (32, 32, 3)
    assert start.layers[0] == LayerInfo("block1_conv1", "conv2d", (32, 32, 4), 112)
    assert start.parameter_count == SMALL.parameter_count() and start.log_dir == run.folder
    assert start.probe_images.shape == (1, 32, 32, 3) and 0 <= start.probe_images.min() <= start.probe_images.max() <= 1
    assert [e[1] for e in events[1:-1]] == history.epochs and [e[2] for e in events[1:-1]] == [1, 2, 3]
    filters, maps = events[-2][3], events[-2][4]
    np.testing.assert_array_equal(filters["block1_conv1"], run.model.filters("block1_conv1"))
    assert {k: v.shape for k, v in maps.items()} == {"block1_conv1": (1, 32, 32, 4), "block2_conv1": (1, 16, 16, 8)}
    assert min(float(v.min()) for v in maps.values()) >= 0  # read at the ReLU
    assert not np.array_equal(events[1][3]["block1_conv1"], filters["block1_conv1"])  # each epoch its own weights
    end = events[-1][1]
    assert end.history is history and end.error is None and end.stop_reason == "max_epochs"


@pytest.mark.torch
def test_the_docs_mlflow_plugin_works_against_mlflows_api(run):
    calls = run.mlflow
    names = [name for name, _ in calls]
    assert names[:3] == ["start_run", "log_params", "log_text"] and names[-3:] == ["log_metric", "set_tag", "end_run"]
    assert calls[0][1] == {"run_name": "small-torch"}
    assert calls[1][1]["backend"] == "torch" and calls[1][1]["epochs"] == EPOCHS
    assert calls[2][1]["artifact_file"] == "layers.txt" and "block1_conv1" in calls[2][1]["text"]
    metrics = [c for name, c in calls if name == "log_metrics"]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert [m["metrics"]["val_loss"] for m in metrics] == run.model.history.metric("val_loss")
    images = [c for name, c in calls if name == "log_image"]
    assert [(i["key"], i["step"]) for i in images] == [("filters/block1_conv1", e) for e in (1, 2, 3)]
    assert calls[-1][1] == {"status": "FINISHED"} and calls[-2][1] == {"stop_reason": "max_epochs"}


@pytest.mark.torch
def test_a_logger_failing_in_training_is_reported_once_and_switched_off(run):
    assert len(run.warnings) == 1
    message = str(run.warnings[0].message)
    assert "'Flaky' logger failed at epoch 2" in message and "No space left on device" in message
    assert run.flaky.epochs == [1]  # switched off after the failure
    assert len(read_csv(run.folder / "metrics.csv")) == EPOCHS  # the others went on


# -- failures before and during training -------------------------------------------------------


class FailsToBegin(Logger):
    def begin(self, run):
        raise PermissionError("the tracking server refused the token")


@pytest.mark.torch
def test_a_logger_that_cannot_start_stops_the_run_before_training(arrays, tmp_path):
    trained = []
    Recorder.made.clear()
    registry.register_plugin(RecorderPlugin(), name="recorder-plugin")
    try:
        with pytest.raises(LoggerError, match="'FailsToBegin' logger failed to start: PermissionError: the tracking"):
            fl.train(SMALL, *arrays, quick(), backend="torch", progress=False, log_dir=tmp_path,
                     loggers=["recording", FailsToBegin()], observers=[lambda *args: trained.append(args)])
    finally:
        registry.unregister_plugin("recorder-plugin")
    assert trained == []
    events = Recorder.made[-1].events  # the logger that had begun was ended, with the reason
    assert [e[0] for e in events] == ["begin", "end"] and "FailsToBegin" in events[-1][1].error


class BrokenPlugin:
    @hookimpl
    def featurelens_register_loggers(self, register):
        register(LoggerEntry("needs-module", Logger, requires=("featurelens_no_such_module",),
                             install="pip install featurelens-needs-module"))
        register(LoggerEntry("explodes", lambda: 1 / 0))
        register(LoggerEntry("not-a-logger", lambda: "a string"))


@pytest.mark.torch
@pytest.mark.parametrize(("loggers", "message"), [
    (["tensorbored"], r"unknown logger 'tensorbored'; choose one of: .*csv.*tensorboard"),
    (["needs-module"], r"needs featurelens_no_such_module, which is not installed; install it with: pip install "
                       r"featurelens-needs-module"),
    (["explodes"], r"'explodes' logger could not be created: ZeroDivisionError"),
    (["not-a-logger"], r"returned 'a string', not a featurelens.backends.Logger"),
    (["csv", "csv"], r"'csv' is asked for twice"),
    ([42], r"registered names or featurelens.backends.Logger objects, not 42"),
])
def test_loggers_that_cannot_be_made_are_clear_errors(arrays, tmp_path, loggers, message):
    registry.register_plugin(BrokenPlugin(), name="broken-plugin")
    try:
        with pytest.raises(LoggerError, match=message):
            fl.train(SMALL, *arrays, quick(epochs=1), backend="torch", progress=False, loggers=loggers,
                     log_dir=tmp_path / "logs")
    finally:
        registry.unregister_plugin("broken-plugin")
    assert not (tmp_path / "logs").exists()


@pytest.mark.torch
def test_a_run_that_fails_ends_its_loggers_with_the_error(arrays, tmp_path):
    def boom(epoch, record, native):
        if epoch == 2:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fl.train(SMALL, *arrays, quick(), backend="torch", progress=False, observers=[boom],
                 loggers=["csv", "jsonl"], log_dir=tmp_path)
    assert len(read_csv(tmp_path / "metrics.csv")) == 1  # the observer before the loggers failed at epoch 2
    end = read_jsonl(tmp_path / "run.jsonl")[-1]
    assert end == end | {"event": "end", "stop_reason": "error", "error": "RuntimeError: boom", "epochs": 1,
                         "best_epoch": None}


@pytest.mark.torch
def test_only_the_main_process_logs(arrays, tmp_path, monkeypatch):
    from featurelens.loggers import session

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not is_main_process()
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setattr(session, "is_main_process", lambda: False)  # rank 1, without starting a process group
    model = fl.train(SMALL, *arrays, quick(epochs=1), backend="torch", progress=False, loggers=["csv"],
                     log_dir=tmp_path / "logs")
    assert len(model.history.epochs) == 1 and not (tmp_path / "logs").exists()


@pytest.mark.torch
def test_fit_logs_a_users_model_into_the_default_folder(arrays, tmp_path, monkeypatch):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 10))
    monkeypatch.chdir(tmp_path)
    model = fl.fit(net, *arrays, quick(epochs=1), progress=False, loggers=["jsonl"])
    events = read_jsonl(tmp_path / "runs" / "Sequential-torch-logs" / "run.jsonl")
    assert [e["event"] for e in events] == ["begin", "epoch", "end"]
    assert events[0]["spec"] is None and events[0]["layers"][0]["name"] == "0"
    assert events[1]["loss"] == model.history.epochs[0].loss


# -- TensorBoard without TensorFlow ------------------------------------------------------------

WRITER = """
import builtins, sys
from pathlib import Path
import numpy as np
import featurelens as fl
from featurelens.backends import EpochRecord, EpochView, History, LayerInfo, RunEnd, RunStart
from featurelens.loggers.tensorboard import TensorBoardLogger

folder = Path(sys.argv[1])
logger = TensorBoardLogger()
logger.begin(RunStart("run", folder, "numpy", "cpu", None, (LayerInfo("conv", "conv2d", (8, 8, 4), 112),),
                      fl.TrainConfig(), ("a", "b"), (8, 8, 3), 10, 0, np.zeros((1, 8, 8, 3), np.float32)))
record = EpochRecord(1, 0.5, 0.75, None, None, 0.001, 1.5)
maps = {"conv": np.random.default_rng(0).random((1, 8, 8, 4), np.float32)}
logger.epoch(record, EpochView(1, lambda: {"conv": np.ones((4, 3, 3, 3), np.float32)}, lambda: maps))
logger.end(RunEnd(History([record])))
print(getattr(builtins, "TENSORFLOW_IMPORTED", False), "tensorflow" in sys.modules)
"""


def test_tensorboard_files_are_written_without_tensorflow(tmp_path):
    pytest.importorskip("tensorboard", reason=TB_MISSING)
    fake = tmp_path / "site" / "tensorflow"  # an installed "TensorFlow" that tells when it is imported
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("import builtins\nbuiltins.TENSORFLOW_IMPORTED = True\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "site"),
                                                                     os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path / "logs")], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.split() == ["False", "False"], out.stderr
    train = event_reader(tmp_path / "logs" / "train")
    assert [(e.step, e.value) for e in train.Scalars("epoch_accuracy")] == [(1, 0.75)]
    assert [e.step for e in train.Images("feature_maps/conv")] == [1]
    assert not (tmp_path / "logs" / "validation").exists()  # no validation split, no validation run


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.torch
def test_cli_train_log_writes_beside_the_model_folder(cifar_root, tmp_path, capsys, isolated_env):
    from featurelens.cli import main

    pytest.importorskip("tensorboard", reason=TB_MISSING)
    out = tmp_path / "model"
    argv = ["train", "--preset", "tiny", "--data-dir", str(cifar_root), "--epochs", "1", "--batch-size", "16",
            "--device", "cpu", "--no-progress", "--log", "tensorboard", "--log", "csv"]
    assert main([*argv, "--out", str(out)]) == 0
    logs = tmp_path / "model-logs"
    assert f"Logs (tensorboard, csv): {logs}; view them with: tensorboard --logdir {logs}" in capsys.readouterr().out
    history = fl.load_model(out).history
    assert_csv_matches(logs / "metrics.csv", history)
    assert [e.step for e in event_reader(logs / "train").Images("filters/block1_conv1")] == [1]
    # a second run into the same log folder needs --overwrite; bad names stop before any training
    assert main([*argv, "--out", str(tmp_path / "other"), "--log-dir", str(logs)]) == 2
    assert "already holds logs; pass --overwrite" in capsys.readouterr().err
    assert main([*argv[:-1], "nope", "--out", str(tmp_path / "third")]) == 2
    err = capsys.readouterr().err
    assert "unknown logger 'nope'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "third").exists() and not (tmp_path / "third-logs").exists()


def test_cli_lists_the_loggers(capsys):
    from featurelens.cli import main

    assert main(["loggers"]) == 0
    printed = capsys.readouterr().out
    assert all(any(line.startswith(name) for line in printed.splitlines()) for name in ("tensorboard", "csv", "jsonl"))
