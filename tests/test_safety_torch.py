"""Model folders with a backend: folders written before hashes load and predict as before, a model
whose outputs are not finite says so, a damaged history costs only the history figure, and the
commands that need a model answer bad arguments and bad data with one line and status 2."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import strip_hashes, synthetic_images, write_cifar_folder, write_model_folder
from safetensors.numpy import load_file, save_file

import featurelens as fl
from featurelens.cli import main

pytestmark = pytest.mark.torch

IMAGES = synthetic_images(np.arange(10))


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("safety")
    write_cifar_folder(root / "data", per_batch=10)
    return write_model_folder(root / "model"), root / "data"


def test_a_folder_written_as_today_without_hashes_loads_and_predicts_the_same(tmp_path):
    hashed = fl.load_model(write_model_folder(tmp_path / "new"))
    legacy_folder = strip_hashes(write_model_folder(tmp_path / "old"))
    with pytest.warns(fl.ModelFolderWarning, match="before featurelens recorded content hashes"):
        legacy = fl.load_model(legacy_folder)
    np.testing.assert_array_equal(legacy.predict(IMAGES), hashed.predict(IMAGES))
    assert legacy.history.metric("loss") == hashed.history.metric("loss")


def test_a_model_whose_probabilities_are_not_finite_says_so(tmp_path):
    folder = strip_hashes(write_model_folder(tmp_path / "m"))
    arrays = load_file(str(folder / "weights.safetensors"))
    arrays["block1_conv1.kernel"][:] = 3e38  # finite, but every activation overflows
    save_file(arrays, str(folder / "weights.safetensors"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fl.ModelFolderWarning)
        model = fl.load_model(folder)
    with pytest.raises(fl.NonFiniteError, match="NaN or infinite probabilities for 10 of 10 images"):
        model.predict(IMAGES)
    with pytest.raises(fl.InputError, match="1 of the images hold NaN"):
        fl.load_model(write_model_folder(tmp_path / "ok")).predict(np.where(np.arange(10)[:, None, None, None] == 3,
                                                                             np.nan, IMAGES.astype(np.float32)))


def test_a_damaged_history_leaves_evaluate_working_and_the_figure_says_why(setup, tmp_path, capsys, isolated_env):
    from featurelens.backends import registry
    from featurelens.data import load_dataset
    from featurelens.report import write_report

    model_dir, data = setup
    folder = write_model_folder(tmp_path / "m")
    (folder / "history.json").write_text('{"epochs": [{"epoch": 1, "loss": "low"}]}')
    assert main(["evaluate", str(folder), "--data-dir", str(data)]) == 0
    captured = capsys.readouterr()
    assert "test loss" in captured.out
    assert re.fullmatch(r"featurelens evaluate: warning: .*history\.json is damaged: epochs\[0\]\.accuracy is missing"
                        r".*the model loads without it\n", captured.err)
    with pytest.warns(fl.ModelFolderWarning):
        model = fl.load_model(folder)
    assert model.history is None and "history.json" in model.folder_problems
    figures = write_report(model, load_dataset("cifar10", data), tmp_path / "fig",
                           figures=[registry.figures["history"]])
    assert [f.filename for f in figures] == ["history.png"]


CASES = [
    (["explain", "{model}", "--images", "5:3"], r"--images 5:3 selects none of the 10 test images"),
    (["explain", "{model}", "--images", "a:b"], "--images must be START:STOP"),
    (["explain", "{model}", "--images", "99999999999999999999"], "index outside the 10 test images"),
    (["explain", "{model}", "--target", "unicorn"], "--target 'unicorn' is not a class of the model"),
    (["explain", "{model}", "--method", "magic"], "unknown method 'magic'"),
    (["explain", "{model}", "--mistakes", "0"], "--mistakes must be a positive number"),
    (["explain", "{model}", "--layer", "block9_conv1"], "block9_conv1"),
    (["atlas", "{model}", "--layer", "dense1"], "--layer 'dense1' is not a conv layer"),
    (["visualize", "{model}", "--image-index", "1000"], "image index 1000 is outside the 10 test images"),
    (["visualize", "{model}", "--image-index", "-1"], "image index -1 is outside"),
    (["evaluate", "{model}", "--test-per-class", "0"], "per_class=0 must be >= 1"),
    (["evaluate", "{model}", "--dataset", "mnist", "--no-download"], "no MNIST found"),
    (["evaluate", "{model}", "--dataset", "image-folder", "--data-dir", "{data}"], "class folder"),
    (["evaluate", "{model}", "--data-dir", "{broken}"], "truncated or corrupted"),
    (["convert", "{model}", "--to", "nope"], "unknown backend 'nope'"),
]


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_commands_on_a_model_answer_bad_input_with_one_line(argv, message, setup, tmp_path, capsys, isolated_env):
    model_dir, data = setup
    broken = tmp_path / "broken"
    write_cifar_folder(broken, per_batch=10)
    batch = broken / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:500])
    args = [part.format(model=model_dir, data=data, broken=broken) for part in argv]
    if "--data-dir" not in args and args[0] != "convert":
        args += ["--data-dir", str(data)]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(message, err), err
