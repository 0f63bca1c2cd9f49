"""Property-based tests: damaged specs, configs, model folders and dataset files end in a featurelens
error or a valid, finite result, never another exception and never a hang.

Each input kind starts from valid examples and lets :mod:`fuzzing`'s strategies break them. CI
runs the derandomized ``ci`` profile (the counts below); the ``fuzz`` tox env runs 25 times as
many random cases (``FEATURELENS_HYPOTHESIS_PROFILE=fuzz``). The model-folder cases that need a
backend (load and predict) are in ``test_properties_torch.py``.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import math
import shutil
import tarfile
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import batch_bytes, strip_hashes, synthetic_images, write_cifar_folder, write_model_folder
from fuzzing import cases, damaged_bytes, hard_limit, mutated, outcome
from hypothesis import given
from hypothesis import strategies as st

import featurelens as fl
from featurelens.data import cifar, idx
from featurelens.data.archive import extract_tar
from featurelens.errors import DataError
from featurelens.integrity import with_hashes
from featurelens.modeldir import read_folder
from featurelens.presets import fast_recipe
from featurelens.spec import MAX_ACTIVATIONS, MAX_PARAMETERS
from featurelens.visualize import history_figure


def as_json(value) -> object:
    """``value`` as JSON reads it back: lists, not tuples."""
    return json.loads(json.dumps(value))


SPECS = [as_json(fl.get_preset(name).to_dict()) for name in ("seed", "tiny", "fast")] + [as_json(
    fl.ModelSpec(blocks=(fl.ConvBlock(4, convs=1, kernel_size=5, pool_size=4, activation="gelu"),),
                 dense=(fl.DenseBlock(8, batch_norm=False),), num_classes=3, input_shape=(16, 16, 1),
                 name="gray").to_dict())]


@cases(300)
@given(data=st.sampled_from(SPECS).flatmap(mutated))
def test_any_spec_object_is_a_spec_or_a_spec_error(data):
    with hard_limit(10):
        spec = outcome(fl.SpecError, lambda: fl.ModelSpec.from_dict(data))
        if spec is None:
            return
        assert spec.parameter_count() <= MAX_PARAMETERS
        assert sum(math.prod(layer.output_shape) for layer in spec.layers()) <= MAX_ACTIVATIONS
        assert fl.ModelSpec.from_json(spec.to_json()) == spec


@cases(100)
@given(text=st.sampled_from([json.dumps(s) for s in SPECS]).flatmap(
    lambda t: damaged_bytes(t.encode())).map(lambda b: b.decode("utf-8", "replace")))
def test_any_spec_text_is_a_spec_or_a_spec_error(text):
    with hard_limit(10):
        outcome(fl.SpecError, lambda: fl.ModelSpec.from_json(text))


CONFIGS = [as_json(c.to_dict()) for c in (
    fl.TrainConfig(), fast_recipe(),
    fl.TrainConfig(epochs=5, early_stopping=None, snapshot_epochs=(1, 3), lr_schedule="warmup_cosine",
                   warmup_epochs=1.5, validation_split=0.0, reduce_lr=fl.ReduceLROnPlateau(monitor="loss"),
                   device="cuda:1"))]


@cases(300)
@given(data=st.sampled_from(CONFIGS).flatmap(mutated))
def test_any_config_object_is_a_config_or_a_config_error(data):
    with hard_limit(10):
        config = outcome(fl.ConfigError, lambda: fl.TrainConfig.from_dict(data))
        if config is None:
            return
        numbers = [v for v in config.to_dict().values() if isinstance(v, float)]
        assert all(math.isfinite(v) for v in numbers)
        assert fl.TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
        assert 1 <= config.effective_epochs() <= config.epochs


# -- model folders (no backend: reading and checking) ---------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A valid folder with snapshots, written once; every case works on a copy."""
    return write_model_folder(tmp_path_factory.mktemp("template") / "m", snapshots=True)


def copy_of(template: Path, workdir: str) -> Path:
    return Path(shutil.copytree(template, Path(workdir) / "m"))


def check_contents(contents) -> None:
    """What a folder that reads must hold: fitting, finite parts."""
    assert np.isfinite(contents.normalization.mean).all() and min(contents.normalization.std) > 0
    assert len(contents.normalization.mean) == contents.input_shape[2]
    assert len(contents.class_names) == contents.spec.num_classes
    assert all(np.isfinite(w).all() for w in contents.weights.values())
    if contents.history is not None:
        contents.history.describe()


def read_quietly(folder: Path, verify: bool = True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fl.ModelFolderWarning)
        return read_folder(folder, verify=verify)


@cases(200, deadline_s=5)
@given(data=st.data())
def test_any_edit_of_featurelens_json_reads_or_is_a_folder_error(template, data):
    meta = json.loads((template / "featurelens.json").read_text())
    edited = data.draw(mutated(meta))
    rehash = data.draw(st.booleans())  # rehashed: the edit is checked in depth; else the hash catches it
    with tempfile.TemporaryDirectory() as work, hard_limit(20):
        folder = copy_of(template, work)
        if rehash and isinstance(edited, dict):
            edited = with_hashes(edited, folder, [n for n in ("weights.safetensors", "history.json",
                                                               "snapshots.safetensors") if (folder / n).exists()])
        (folder / "featurelens.json").write_text(json.dumps(edited))
        contents = outcome(fl.ModelFolderError, lambda: read_quietly(folder))
        if contents is None:
            return
        check_contents(contents)
        assert rehash or edited == meta or "integrity" not in edited  # without hashes: an older folder


FILES = ["weights.safetensors", "history.json", "snapshots.safetensors", "featurelens.json", "evaluation.json"]


@cases(200, deadline_s=5)
@given(data=st.data())
def test_any_damaged_file_of_a_folder_reads_or_is_a_folder_error(template, data):
    name = data.draw(st.sampled_from(FILES))
    hashed = data.draw(st.booleans())
    with tempfile.TemporaryDirectory() as work, hard_limit(20):
        folder = copy_of(template, work)
        if not hashed:
            strip_hashes(folder)
        path = folder / name
        path.write_bytes(data.draw(damaged_bytes(path.read_bytes())))
        contents = outcome(fl.ModelFolderError, lambda: read_quietly(folder))
        if contents is None:
            assert name in ("weights.safetensors", "featurelens.json"), f"damage to {name} must not stop the model"
            return
        check_contents(contents)
        if hashed and name in ("history.json", "snapshots.safetensors"):
            assert name in contents.problems  # changed: left out, with the reason
        if hashed and name == "weights.safetensors":
            raise AssertionError("changed weights passed the hash check")
        for check in fl.verify_folder(folder):
            assert check.status in ("ok", "not hashed", "no hash recorded", "changed", "damaged", "missing")


HISTORY = {"epochs": [{"epoch": 1, "loss": 2.3, "accuracy": 0.1, "val_loss": 2.2, "val_accuracy": 0.12,
                       "learning_rate": 1e-3, "seconds": 1.5},
                      {"epoch": 2, "loss": float("nan"), "accuracy": 0.2, "val_loss": None, "val_accuracy": None,
                       "learning_rate": 5e-4, "seconds": 1.4}],
           "monitor": "loss", "best_epoch": 1, "stop_reason": "early_stopping", "restored_best_weights": True,
           "backend": "torch", "device": "cpu", "compile_seconds": 0.0, "lr_reductions": [2]}


@cases(200)
@given(data=mutated(HISTORY))
def test_any_history_is_a_history_or_a_folder_error(data):
    with hard_limit(10):
        history = outcome(fl.ModelFolderError, lambda: fl.History.from_dict(data))
        if history is None:
            return
        history.describe()
        again = fl.History.from_dict(json.loads(json.dumps(history.to_dict())))
        assert json.dumps(again.to_dict()) == json.dumps(history.to_dict())  # NaN losses compare unequal


@cases(20, deadline_s=10)
@given(data=mutated(HISTORY))
def test_any_readable_history_draws(data):
    with hard_limit(20):
        history = outcome(fl.ModelFolderError, lambda: fl.History.from_dict(data))
        if history is not None and history.epochs:
            history_figure(history)


EVALUATION = {"loss": 1.5, "accuracy": 0.5, "count": 4, "per_class_accuracy": {"a": 1.0, "b": 0.0},
              "confusion": [[2, 0], [2, 0]], "tta": None}


@cases(100)
@given(data=mutated(EVALUATION))
def test_any_evaluation_is_an_evaluation_or_a_folder_error(data):
    with hard_limit(10):
        evaluation = outcome(fl.ModelFolderError, lambda: fl.Evaluation.from_dict(data))
        if evaluation is not None:
            evaluation.describe()


# -- dataset files ------------------------------------------------------------------------------


def check_split(images: np.ndarray, labels: np.ndarray, classes: int) -> None:
    assert images.dtype == np.uint8 and len(images) == len(labels)
    assert len(labels) == 0 or (labels.min() >= 0 and labels.max() < classes)


BATCH = batch_bytes(synthetic_images(np.arange(10)), np.arange(10), "data_batch_1")


@cases(200)
@given(data=damaged_bytes(BATCH))
def test_any_damaged_cifar_batch_is_read_or_a_data_error(data):
    with tempfile.TemporaryDirectory() as work, hard_limit(10):
        path = Path(work) / "data_batch_1"
        path.write_bytes(data)
        read = outcome(DataError, lambda: cifar.read_batch(cifar.CIFAR10, path))
        if read is not None:
            check_split(*read, 10)
            assert read[0].shape[1:] == (32, 32, 3)


@functools.cache
def cifar_archive() -> bytes:
    """A CIFAR-10 archive as the official one is laid out (4 images per batch), as bytes."""
    with tempfile.TemporaryDirectory() as root:
        write_cifar_folder(Path(root), per_batch=4)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(Path(root) / cifar.CIFAR10.files.folder, arcname=cifar.CIFAR10.files.folder)
    return buffer.getvalue()


@cases(100, deadline_s=5)
@given(data=st.data())
def test_any_damaged_cifar_archive_extracts_to_a_dataset_or_is_a_data_error(data):
    damaged = data.draw(damaged_bytes(cifar_archive()))
    with tempfile.TemporaryDirectory() as work, hard_limit(20):
        archive = Path(work) / "cifar-10-python.tar.gz"
        archive.write_bytes(damaged)
        dataset = outcome(DataError, lambda: cifar.CIFAR10.read(
            extract_tar(archive, Path(work) / "out", cifar.CIFAR10.files.folder)))
        if dataset is not None:
            check_split(dataset.train_images, dataset.train_labels, 10)
            check_split(dataset.test_images, dataset.test_labels, 10)


def idx_file(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


IDX_IMAGES = idx_file(np.random.default_rng(0).integers(0, 256, (6, 28, 28)))
IDX_LABELS = idx_file(np.arange(6) % 10)


@cases(200)
@given(which=st.sampled_from(["images", "labels"]), data=st.data())
def test_any_damaged_idx_file_is_read_or_a_data_error(which, data):
    original = IDX_IMAGES if which == "images" else IDX_LABELS
    damaged = data.draw(damaged_bytes(original))
    with tempfile.TemporaryDirectory() as work, hard_limit(10):
        images, labels = Path(work) / "images.gz", Path(work) / "labels.gz"
        images.write_bytes(damaged if which == "images" else IDX_IMAGES)
        labels.write_bytes(damaged if which == "labels" else IDX_LABELS)
        read = outcome(DataError, lambda: idx.read_split(idx.MNIST, images, labels))
        if read is not None:
            check_split(*read, 10)
            assert read[0].shape[1:] == (28, 28, 1)


@pytest.fixture(scope="module")
def run_template(tmp_path_factory):
    """A run folder (no framework: test_checkpoint's stand-in backend) with one checkpoint."""
    from test_checkpoint import start, state

    run = start(tmp_path_factory.mktemp("run") / "run")
    run.save(state(2))
    return run.path


@cases(200, deadline_s=5)
@given(data=st.data())
def test_any_edit_of_a_run_folder_resumes_or_is_a_run_folder_error(run_template, data):
    """Hand-edited run.json and checkpoint.json: a run that can be resumed, or a RunFolderError."""
    from test_checkpoint import Named
    from test_checkpoint import data as run_data

    from featurelens.checkpoint import open_run

    which = data.draw(st.sampled_from(["run.json", "checkpoint-0002/checkpoint.json"]))
    edited = data.draw(mutated(json.loads((run_template / which).read_text())))
    with tempfile.TemporaryDirectory() as work, hard_limit(20), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "checkpointed by N processes": a resumable edit
        folder = Path(work) / "run"
        shutil.copytree(run_template, folder)
        (folder / which).write_text(json.dumps(edited))

        def resume_it():
            run = open_run(folder)
            run.describe()
            run.check_data(*run_data())
            return run, run.load_state(Named())

        read = outcome(fl.RunFolderError, resume_it)
        if read is None:
            return
        run, (state, _) = read
        assert len(run.class_names) == run.spec.num_classes
        assert state is None or state.epoch >= 0
