"""The run folder without a framework: atomic checkpoints, a kill while writing one, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import featurelens as fl
from featurelens import checkpoint, distributed
from featurelens.backends import Backend, TrainingState, stream_seed
from featurelens.errors import ConfigError, OutputExistsError, RunFolderError, TrainingDivergedError
from featurelens.history import EpochRecord, History


class Named(Backend):
    """Just enough backend for the run folder: a name and versions."""

    name = "named"

    def versions(self):
        return {"named": "1"}

    def build(self, spec, seed=0):
        raise NotImplementedError

    def predict(self, native, images, batch_size=256):
        raise NotImplementedError

    def get_weights(self, native):
        raise NotImplementedError

    def set_weights(self, native, weights):
        raise NotImplementedError


def data():
    return np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3), np.array([0, 1])


def start(path, **changes):
    images, labels = data()
    options = dict(overwrite=False, backend=Named(), spec=fl.get_preset("tiny"), config=fl.TrainConfig(epochs=5),
                   class_names=tuple(str(i) for i in range(10)), normalization=fl.Normalization((0.0,) * 3, (1.0,) * 3),
                   images=images, labels=labels, info={"dataset": {"name": "x"}})
    return checkpoint.start_run(path, **{**options, **changes})


def state(epoch, finished=False):
    history = History(epochs=[EpochRecord(e, 1.0 / e, 0.5, None, None, 1e-3, 0.1) for e in range(1, epoch + 1)])
    return TrainingState(epoch, finished, history, {"model/w": np.full((3, 2), epoch, np.float32),
                                                    "optimizer/step": np.array(epoch * 10, np.int64)},
                         {"base_lr": 1e-3 / epoch}, backend="named")


def test_checkpoints_replace_each_other_and_load_back(tmp_path):
    run = start(tmp_path / "run")
    assert checkpoint.folder_kind(tmp_path / "run") == "run"
    assert run.load_state(Named()) == (None, None)
    run.save(state(1))
    run.save(state(2))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint-0002", "run.json"]
    again = checkpoint.open_run(tmp_path / "run")
    loaded, snapshots = again.load_state(Named())
    assert loaded.epoch == 2 and snapshots is None and loaded.values == {"base_lr": 5e-4}
    assert loaded.arrays["optimizer/step"].shape == () and int(loaded.arrays["optimizer/step"]) == 20
    assert np.array_equal(loaded.group("model")["w"], np.full((3, 2), 2, np.float32))
    assert [r.epoch for r in loaded.history.epochs] == [1, 2]
    assert again.describe().endswith("(checkpoint of epoch 2 of 5)")
    assert again.info == {"dataset": {"name": "x"}} and again.spec == fl.get_preset("tiny")


KILL_WHILE_WRITING = """
import os, signal, sys
import numpy as np
sys.path.insert(0, {tests!r})
from featurelens import checkpoint
from test_checkpoint import Named, start, state

run = checkpoint.open_run({run!r})
target = {target!r}
original = getattr(checkpoint, target)
def killing(*args, **kwargs):
    original(*args, **kwargs) if target != "write_json" else None
    os.kill(os.getpid(), signal.SIGKILL)
setattr(checkpoint, target, killing)
run.save(state(2))
"""


@pytest.mark.parametrize("target", ["_fsync_file", "_fsync_dir", "write_json"])
def test_a_kill_while_writing_a_checkpoint_leaves_a_complete_one(tmp_path, target):
    """SIGKILL after the new state file is written, after the new folder is renamed into place, and
    while run.json is replaced: run.json names a complete checkpoint each time (the old, or the new)."""
    run = start(tmp_path / "run")
    run.save(state(1))
    code = KILL_WHILE_WRITING.format(tests=str(__import__("pathlib").Path(__file__).parent), run=str(run.path),
                                     target=target)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    again = checkpoint.open_run(tmp_path / "run")
    loaded, _ = again.load_state(Named())
    assert loaded.epoch == 1, "the kill came before run.json named the new checkpoint"
    assert np.array_equal(loaded.arrays["model/w"], np.full((3, 2), 1, np.float32))
    again.save(state(2))  # the next save tidies what the killed one left
    assert sorted(p.name for p in run.path.iterdir()) == ["checkpoint-0002", "run.json"]


def test_new_run_folders_refuse_what_exists(tmp_path):
    start(tmp_path / "run").save(state(3))
    with pytest.raises(OutputExistsError, match=r"unfinished run; continue it with --resume .* or start again with "
                       r"--overwrite"):
        start(tmp_path / "run")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "featurelens.json").write_text("{}")
    with pytest.raises(OutputExistsError, match="holds a finished model"):
        checkpoint.check_new_run_folder(tmp_path / "model", overwrite=False)
    (tmp_path / "other").mkdir()
    with pytest.raises(OutputExistsError, match="already exists"):
        checkpoint.check_new_run_folder(tmp_path / "other", overwrite=False)
    fresh = start(tmp_path / "run", overwrite=True)
    assert fresh.current is None and sorted(p.name for p in fresh.path.iterdir()) == ["run.json"]


def test_resuming_what_is_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(RunFolderError, match="does not exist"):
        checkpoint.open_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError, match="not a featurelens run folder"):
        checkpoint.open_run(tmp_path / "empty")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "featurelens.json").write_text("{}")
    with pytest.raises(RunFolderError, match="finished model, so there is nothing to resume"):
        checkpoint.open_run(tmp_path / "model")
    run = start(tmp_path / "run")
    run.save(state(1))
    other = type("Other", (Named,), {"name": "other"})()
    with pytest.raises(RunFolderError, match="trained with the named backend.*--backend named"):
        run.load_state(other)
    with pytest.raises(RunFolderError, match="differ from those"):
        run.check_data(np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1]))
    meta = json.loads((run.path / "run.json").read_text())
    (run.path / "run.json").write_text(json.dumps({**meta, "checkpoint": "checkpoint-0009"}))
    with pytest.raises(RunFolderError, match="checkpoint-0009, which is missing"):
        checkpoint.open_run(run.path)
    (run.path / "run.json").write_text("{not json")
    with pytest.raises(RunFolderError, match="damaged"):
        checkpoint.open_run(run.path)


def test_the_rank_comes_from_torchruns_variables(monkeypatch):
    assert (distributed.world_size(), distributed.process_rank(), distributed.is_main_process()) == (1, 0, True)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert (distributed.world_size(), distributed.process_rank(), distributed.local_rank()) == (4, 2, 0)
    assert not distributed.is_main_process() and distributed.is_distributed()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ConfigError, match="RANK='x'"):
        distributed.process_rank()


def test_only_the_main_process_writes_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    run = start(tmp_path / "run")
    assert not run.writer and not (tmp_path / "run").exists()
    assert not run.checkpointer(1).due(1, True)


def test_stream_seeds_differ_by_key_and_fit_torch():
    seeds = {stream_seed(0, e, s) for e in range(50) for s in range(3)}
    assert len(seeds) == 150 and all(0 <= s < 2**63 for s in seeds)
    assert stream_seed(1, 0, 0) != stream_seed(0, 1, 0) and stream_seed(7, 3) == stream_seed(7, 3)


def test_the_divergence_guard_stops_an_exploding_loss():
    from featurelens.divergence import DivergenceGuard

    guard = DivergenceGuard(fl.TrainConfig(), num_classes=10)
    guard(1, EpochRecord(1, 2.2, 0.1, None, None, 1e-3, 1.0), None)  # a fresh model: about ln 10 = 2.30
    with pytest.raises(TrainingDivergedError, match=r"epoch 2: the epoch's mean training loss 3\.7e\+12 is over 3 "
                       r"times .*try a lower learning rate") as caught:
        guard(2, EpochRecord(2, 3.7e12, 0.1, None, None, 1e6, 1.0), None)
    assert caught.value.history.stop_reason == "diverged" and len(caught.value.history.epochs) == 2
    with pytest.raises(TrainingDivergedError, match="the training loss is nan"):
        DivergenceGuard(fl.TrainConfig(divergence_factor=0), 10)(1, EpochRecord(1, float("nan"), 0, None, None, 1, 1),
                                                                 None)
    DivergenceGuard(fl.TrainConfig(divergence_factor=0), 10)(1, EpochRecord(1, 1e9, 0, None, None, 1, 1), None)
    with pytest.raises(ConfigError, match="divergence_factor"):
        fl.TrainConfig(divergence_factor=0.5)


def test_the_new_config_fields_validate_and_round_trip():
    config = fl.TrainConfig(checkpoint_every=5, sync_batchnorm=True, divergence_factor=10.0)
    assert fl.TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    for field, value, why in (("checkpoint_every", -1, "must be >= 0"), ("checkpoint_every", 1.5, "integer"),
                              ("sync_batchnorm", "yes", "true or false"), ("divergence_factor", -1, ">= 0"),
                              ("divergence_factor", 0.5, "0 \\(off\\) or >= 1")):
        with pytest.raises(ConfigError, match=f"{field}.*{why}"):
            fl.TrainConfig(**{field: value})


def test_a_failed_launch_says_how_to_continue_the_run(tmp_path, capsys):
    from featurelens import cli_run

    run = start(tmp_path / "run")
    run.save(state(2))
    assert cli_run.launched(1, tmp_path / "run") == 1
    assert f"featurelens train --resume {tmp_path / 'run'}" in capsys.readouterr().err
    run.mark("diverged")
    assert cli_run.launched(1, tmp_path / "run") == 1 and capsys.readouterr().err == ""
    argv = ["train", "--devices", "2", "--devices=3", "--seed", "1"]
    assert cli_run.without_devices(argv) == ["train", "--seed", "1"]


def test_a_flipped_byte_in_a_checkpoint_is_caught_before_resuming(tmp_path):
    run = start(tmp_path / "run")
    folder = run.save(state(2))
    assert checkpoint.open_run(run.path).load_state(Named())[0].epoch == 2
    data = bytearray((folder / "state.safetensors").read_bytes())
    data[-3] ^= 0x10  # inside a tensor: safetensors itself would read it without a word
    (folder / "state.safetensors").write_bytes(bytes(data))
    with pytest.raises(RunFolderError, match=r"state.safetensors differs from the checkpoint that was written"):
        checkpoint.open_run(run.path).load_state(Named())
    record = json.loads((folder / "checkpoint.json").read_text())
    record["sha256"] = {"../run.json": "0" * 64}
    (folder / "checkpoint.json").write_text(json.dumps(record))
    with pytest.raises(RunFolderError, match="not a file of the checkpoint"):
        checkpoint.open_run(run.path).load_state(Named())
