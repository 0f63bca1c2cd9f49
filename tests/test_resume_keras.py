"""Long runs on the Keras backend: a run killed mid-epoch resumes bit-identical (Keras on JAX; on Keras's
torch backend the conformance kit's ``resume_bit_identical`` check resumes in one process)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import write_cifar_folder
from test_resume_torch import assert_damaged_states_are_refused, same_model

from featurelens.checkpoint import folder_kind, open_run
from featurelens.cli import main

pytestmark = [pytest.mark.keras, pytest.mark.skipif(
    __import__("keras").backend.backend() != "jax", reason="run under Keras on JAX (the keras-jax environment); on "
    "Keras's torch backend the conformance kit's resume check covers resuming, in one process")]

DRIVER = """
import os, signal, sys
from featurelens_keras import data
from featurelens.cli import main

original = data.TrainingBatches.__getitem__
calls = 0

def getitem(self, index):  # call 1 is Keras's look at the data before training; 8 is epoch 2's second batch
    global calls
    calls += 1
    if calls == 8:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, index)

data.TrainingBatches.__getitem__ = getitem
sys.exit(main({args!r}))
"""


def test_a_keras_run_killed_mid_epoch_resumes_bit_identical(tmp_path, isolated_env, capsys):
    root = write_cifar_folder(tmp_path / "data").parent
    (root / "config.json").write_text(json.dumps({"reduce_lr": {"monitor": "loss", "patience": 1, "min_delta": 1e9,
                                                                "min_lr": 0}}))
    args = ["train", "--backend", "keras", "--preset", "tiny", "--epochs", "3", "--batch-size", "16",
            "--validation-split", "0.2", "--augment", "--device", "cpu", "--no-progress", "--config",
            str(root / "config.json"), "--data-dir", str(root)]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    out = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", DRIVER.format(args=[*args, "--out", str(out)])],
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr
    assert folder_kind(out) == "run" and open_run(out).describe().endswith("(checkpoint of epoch 1 of 3)")
    assert_damaged_states_are_refused(out, tmp_path, capsys)
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert f"Resuming {out} (checkpoint of epoch 1 of 3)" in capsys.readouterr().out
    assert same_model(tmp_path / "whole", out).lr_reductions == [3]
