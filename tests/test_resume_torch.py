"""Long runs on the torch backend, through the command line: a run killed mid-epoch resumes
bit-identical, Ctrl-C keeps the last epoch, a diverging loss stops with the last good checkpoint kept."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import write_cifar_folder
from safetensors.numpy import load_file

import featurelens as fl
from featurelens.checkpoint import folder_kind, open_run
from featurelens.cli import main
from featurelens.testing.resume_checks import comparable

pytestmark = pytest.mark.torch

#: 80 training images (batch 16: 5 steps an epoch), augmentation and dropout on, the LR halved after epochs 2
#: and 3 (a --config file: LR reduction on the training loss, which never improves by 1e9).
TRAIN = ["train", "--preset", "tiny", "--epochs", "3", "--batch-size", "16", "--validation-split", "0.2",
         "--augment", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = write_cifar_folder(tmp_path_factory.mktemp("data")).parent
    (root / "config.json").write_text(json.dumps({"reduce_lr": {"monitor": "loss", "patience": 1, "min_delta": 1e9,
                                                                "min_lr": 0}}))
    TRAIN.extend(["--config", str(root / "config.json")])
    return root


@pytest.fixture(scope="module")
def whole(data_dir, tmp_path_factory):
    """The uninterrupted run's model folder."""
    out = tmp_path_factory.mktemp("whole") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("FEATURELENS_MAX_EPOCHS", raising=False)
        assert main([*TRAIN, "--data-dir", str(data_dir), "--out", str(out)]) == 0
    return out


def same_model(a, b):
    wa, wb = load_file(str(a / "weights.safetensors")), load_file(str(b / "weights.safetensors"))
    assert sorted(wa) == sorted(wb)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa), [k for k in wa if not np.array_equal(wa[k], wb[k])]
    ha = fl.History.load(a / "history.json")
    hb = fl.History.load(b / "history.json")
    assert comparable(ha) == comparable(hb)
    return ha


def assert_damaged_states_are_refused(run, work, capsys):
    """Copies of the interrupted ``run`` with a hand-edited or mismatched training state: each resume ends
    in one line saying the run folder is damaged or the checkpoint another model's (exit 2), never another
    exception."""
    from safetensors.numpy import save_file

    def edit_values(values):
        values["stopper"] = 5

    def reshape_a_tensor(arrays):
        name = next(name for name in sorted(arrays) if name.startswith("model/") and arrays[name].size > 1)
        arrays[name] = arrays[name].reshape(-1)[:-1]

    for i, (what, damage) in enumerate([("values", edit_values), ("arrays", reshape_a_tensor)]):
        copy = work / f"damaged-{i}"
        shutil.copytree(run, copy)
        current = copy / open_run(copy).current
        if what == "values":
            record = json.loads((current / "checkpoint.json").read_text())
            damage(record["values"])
            (current / "checkpoint.json").write_text(json.dumps(record))
        else:
            arrays = load_file(str(current / "state.safetensors"))
            damage(arrays)
            save_file(arrays, str(current / "state.safetensors"))
        capsys.readouterr()
        assert main(["train", "--resume", str(copy), "--no-progress"]) == 2, what
        err = capsys.readouterr().err.strip()
        assert err.startswith("featurelens train: error: ") and len(err.splitlines()) == 1, err
        assert "the run folder is damaged" in err or "the checkpoint belongs to another model" in err, err


DRIVER = """
import os, signal, sys
from featurelens_torch import train as torch_train
from featurelens.cli import main

original = torch_train._Run.step
calls = 0

def step(self, xb, yb):  # the 7th step is epoch 2's second batch
    global calls
    calls += 1
    if calls == 7:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, xb, yb)

torch_train._Run.step = step
sys.exit(main({args!r}))
"""


def test_a_run_killed_mid_epoch_resumes_bit_identical(whole, data_dir, tmp_path, isolated_env, capsys):
    out = tmp_path / "run"
    args = [*TRAIN, "--data-dir", str(data_dir), "--out", str(out)]
    killed = subprocess.run([sys.executable, "-c", DRIVER.format(args=args)], capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -9, killed.stderr
    assert folder_kind(out) == "run" and open_run(out).describe().endswith("(checkpoint of epoch 1 of 3)")
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"Resuming {out} (checkpoint of epoch 1 of 3)" in printed and f"Model folder: {out}" in printed
    history = same_model(whole, out)
    assert history.lr_reductions and sorted(p.name for p in out.iterdir()) == [
        "evaluation.json", "featurelens.json", "history.json", "weights.safetensors"]


def _step_that(action, at=7):
    from featurelens_torch import train as torch_train

    original = torch_train._Run.step
    calls = []

    def step(self, xb, yb):
        calls.append(1)
        if len(calls) == at:
            action(self)
        return original(self, xb, yb)

    return step


def test_ctrl_c_keeps_the_last_epoch_and_says_how_to_resume(whole, data_dir, tmp_path, isolated_env, capsys,
                                                            monkeypatch):
    from featurelens_torch import train as torch_train

    def interrupt(run):
        raise KeyboardInterrupt

    out = tmp_path / "run"
    monkeypatch.setattr(torch_train._Run, "step", _step_that(interrupt))
    assert main([*TRAIN, "--data-dir", str(data_dir), "--out", str(out), "--log", "csv"]) == 130
    err = capsys.readouterr().err
    assert f"Interrupted; the run is kept in {out} (checkpoint of epoch 1 of 3)" in err
    assert f"featurelens train --resume {out}" in err and folder_kind(out) == "run"
    assert main([*TRAIN, "--data-dir", str(data_dir), "--out", str(out)]) == 2
    assert "holds an unfinished run; continue it with --resume" in capsys.readouterr().err
    monkeypatch.undo()
    assert_damaged_states_are_refused(out, tmp_path, capsys)
    assert main(["train", "--resume", str(out), "--no-progress", "--log", "csv"]) == 0
    same_model(whole, out)
    # the resumed epochs are logged beside the first part's logs, which stay
    assert f"Logs (csv): {tmp_path / 'run-from-0001-logs'}" in capsys.readouterr().out
    epochs = [[row["epoch"] for row in csv.DictReader((tmp_path / folder / "metrics.csv").open())]
              for folder in ("run-logs", "run-from-0001-logs")]
    assert epochs == [["1"], ["2", "3"]]


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(data_dir, tmp_path, isolated_env, capsys,
                                                                      monkeypatch):
    import torch
    from featurelens_torch import train as torch_train

    def poison(run):
        with torch.no_grad():
            next(run.net.parameters()).fill_(float("nan"))

    out = tmp_path / "run"
    monkeypatch.setattr(torch_train._Run, "step", _step_that(poison))
    assert main([*TRAIN, "--data-dir", str(data_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("featurelens train: error: training diverged at epoch 2, batch 1: the training loss is nan")
    assert f"the last good checkpoint, {out} (checkpoint of epoch 1 of 3), is kept" in err
    assert "try a lower learning rate" in err
    assert folder_kind(out) == "run" and json.loads((out / "run.json").read_text())["status"] == "diverged"


def test_an_exploding_loss_is_not_saved_as_a_model(data_dir, tmp_path, isolated_env, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--lr", "10", "--data-dir", str(data_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "training diverged at epoch 1: the epoch's mean training loss" in err
    assert "no checkpoint was written before it" in err and folder_kind(out) == "run"


def test_resume_refuses_what_it_cannot_continue(whole, data_dir, tmp_path, isolated_env, capsys):
    assert main(["train", "--resume", str(whole)]) == 2
    assert "holds a finished model, so there is nothing to resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "is not a featurelens run folder" in capsys.readouterr().err
    with pytest.raises(fl.RunFolderError, match="finished model"):
        fl.resume(whole, *arrays())
    assert main(["train", "--resume", str(whole), "--preset", "seed", "--epochs", "5"]) == 2
    assert "drop --preset, --epochs" in capsys.readouterr().err
    assert main(["train", "--resume", str(whole), "--backend", "keras"]) == 2
    assert "holds a finished model" in capsys.readouterr().err


def arrays():
    labels = np.tile(np.arange(10), 10)
    return np.random.default_rng(0).integers(0, 255, (100, 32, 32, 3)).astype(np.uint8), labels


def test_the_python_api_resumes_with_the_snapshots_and_checks_the_data(tmp_path, monkeypatch):
    from featurelens_torch import train as torch_train

    def interrupt(run):
        raise KeyboardInterrupt

    images, labels = arrays()
    config = fl.TrainConfig(epochs=2, batch_size=16, device="cpu", snapshot_every=1)  # 90 images: 6 steps an epoch
    whole = fl.train(fl.get_preset("tiny"), images, labels, config, backend="torch", progress=False)
    monkeypatch.setattr(torch_train._Run, "step", _step_that(interrupt, at=8))
    model = fl.train(fl.get_preset("tiny"), images, labels, config, backend="torch", progress=False,
                     run_dir=tmp_path / "run")
    assert model.history.stop_reason == "interrupted" and folder_kind(tmp_path / "run") == "run"
    monkeypatch.undo()
    with pytest.raises(fl.RunFolderError, match="differ from those"):
        fl.resume(tmp_path / "run", images[:-1], labels[:-1])
    with pytest.raises(fl.FeaturelensError, match="trained with the torch backend"):
        fl.resume(tmp_path / "run", images, labels, backend=type("Other", (type(fl.get_backend("torch")),),
                                                                  {"name": "other"})())
    resumed = fl.resume(tmp_path / "run", images, labels, progress=False)
    assert comparable(resumed.history) == comparable(whole.history) and folder_kind(tmp_path / "run") == "model"
    saved = fl.load_model(tmp_path / "run")
    assert saved.snapshots.epochs == whole.snapshots.epochs == [0, 1, 2]
    mine, theirs = saved.snapshots.to_arrays(), whole.snapshots.to_arrays()
    assert sorted(mine) == sorted(theirs) and all(np.array_equal(mine[k], theirs[k]) for k in mine)


def test_the_loss_watch_reads_a_lagging_flag_without_waiting_for_each_step():
    """The GPU semantics on the CPU: with a lag of 2 the NaN of step 3 stops training at step 5."""
    import torch
    from featurelens_torch.parallel import Parallel
    from featurelens_torch.watch import LossWatch, first_bad

    losses = [torch.tensor(v) for v in (1.0, 0.9, 0.8, float("nan"), 0.7, 0.6, 0.5)]
    watch = LossWatch(torch.device("cpu"), Parallel(), lag=2)
    stops = [watch.bad(loss) for loss in losses]
    assert stops.index(True) == 5 and watch.flush()
    assert first_bad(losses, 6)[0] == 3 and np.isnan(first_bad(losses, 6)[1])
    immediate = LossWatch(torch.device("cpu"), Parallel())
    assert [immediate.bad(loss) for loss in losses[:4]] == [False, False, False, True]
    assert first_bad(torch.tensor([1.0, 2.0]), 2)[0] is None
