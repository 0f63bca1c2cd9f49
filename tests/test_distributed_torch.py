"""Data-parallel training on the CPU: two processes with gloo, launched by ``--devices 2`` and by torchrun.

With SyncBatchNorm, no dropout (each process draws its own masks) and the same global batch, two
processes compute what one does up to float rounding: after 3 epochs of SGD every weight is within
``rtol=1e-4, atol=1e-5`` of single-process training (Adam is compared by the loss only: it turns the
rounding noise of gradients that are exactly zero in theory -- the bias of a conv followed by batch
norm -- into steps of the learning rate).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_cifar_folder
from safetensors.numpy import load_file
from test_resume_torch import same_model

import featurelens as fl
from featurelens.checkpoint import folder_kind, open_run
from featurelens.cli import main

pytestmark = pytest.mark.torch

RTOL, ATOL = 1e-4, 1e-5

KILL_RANK0 = """
import os, signal, sys
from featurelens_torch import train as torch_train
from featurelens.cli import main

original = torch_train._Run.parallel_step
calls = 0

def step(self, xb, yb, size):  # the 7th step is epoch 2's second batch
    global calls
    calls += 1
    if calls == 7 and os.environ["RANK"] == "0":
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, xb, yb, size)

torch_train._Run.parallel_step = step
sys.exit(main(sys.argv[1:]))
"""


GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide" / "long_runs.rst"


def guide_command(start: str) -> list[str]:
    """The console command of docs/guide/long_runs.rst that starts with ``start``, split."""
    lines = [line.strip()[2:] for line in GUIDE.read_text().splitlines() if line.strip().startswith(f"$ {start}")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def guide_rendezvous(train_args: list[str]) -> list[list[str]]:
    """The guide's several-machines command, for two machines of one process each on localhost: its
    endpoint, process count and training arguments replaced, torchrun run as ``python -m``."""
    command = guide_command("torchrun --nnodes")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command[command.index("--rdzv-endpoint") + 1] = f"127.0.0.1:{port}"
    command[command.index("--nproc-per-node") + 1] = "1"
    assert command[command.index("--nnodes") + 1] == "2" and command[0] == "torchrun"
    tail = command.index("featurelens") + 2  # "-m featurelens train": the featurelens arguments follow
    return [[sys.executable, "-m", "torch.distributed.run", *command[1:tail], *train_args] for _ in range(2)]


def test_devices_launches_the_guides_torchrun_command(monkeypatch):
    from featurelens import cli_run

    ran = []
    monkeypatch.setattr(cli_run, "run_in_foreground", lambda command: ran.append(command) or 0)
    assert main(["train", "--preset", "seed", "--devices", "4", "--sync-batchnorm", "--out", "/nonexistent/x"]) == 0
    documented = guide_command("torchrun --standalone")
    assert ran == [[sys.executable, "-m", "torch.distributed.run", *documented[1:], "--out", "/nonexistent/x"]]


def close(a, b):
    wa, wb = load_file(str(a / "weights.safetensors")), load_file(str(b / "weights.safetensors"))
    far = {k: float(np.abs(wa[k] - wb[k]).max()) for k in wa if not np.allclose(wa[k], wb[k], rtol=RTOL, atol=ATOL)}
    assert not far, far
    ha, hb = fl.History.load(a / "history.json"), fl.History.load(b / "history.json")
    assert np.allclose(ha.metric("loss"), hb.metric("loss"), rtol=1e-5)
    assert np.allclose(ha.metric("val_loss"), hb.metric("val_loss"), rtol=1e-4)


def test_two_processes_train_as_one_and_resume(tmp_path, isolated_env, capfd):
    root = write_cifar_folder(tmp_path / "data").parent
    spec = fl.get_preset("tiny").to_dict()
    for block in (*spec["blocks"], *spec["dense"]):
        block["dropout"] = 0.0
    (root / "spec.json").write_text(json.dumps(spec))
    args = ["train", "--spec", str(root / "spec.json"), "--epochs", "3", "--batch-size", "16", "--validation-split",
            "0.2", "--augment", "--optimizer", "sgd", "--lr", "0.05", "--sync-batchnorm", "--device", "cpu",
            "--no-progress", "--data-dir", str(root)]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}  # as torchrun sets it for several processes per machine
    agents = [subprocess.Popen(command, env=one_thread)
              for command in guide_rendezvous(args[1:] + ["--out", str(tmp_path / "two")])]
    assert [agent.wait(timeout=600) for agent in agents] == [0, 0]  # two "machines" of one process each
    printed = capfd.readouterr().out
    assert printed.count("with the torch backend on 2 processes") == 1 and printed.count("Model folder") == 2
    close(tmp_path / "one", tmp_path / "two")

    (tmp_path / "kill.py").write_text(KILL_RANK0)
    killed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             str(tmp_path / "kill.py"), *args, "--out", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode != 0
    run = open_run(tmp_path / "run")
    assert run.describe().endswith("(checkpoint of epoch 1 of 3)") and run.info["devices"] == 2
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    assert main(["train", "--resume", str(tmp_path / "run"), "--no-progress"]) == 0  # 2 processes again
    assert "on 2 processes" in capfd.readouterr().out
    same_model(tmp_path / "two", tmp_path / "run")

    assert main(["train", "--resume", str(tmp_path / "copy"), "--devices", "1", "--no-progress"]) == 0
    assert re.search(r"featurelens train: warning: .* was checkpointed by 2 process\(es\) and continues on 1",
                     capfd.readouterr().err)  # the CLI's one-line warning
    assert folder_kind(tmp_path / "copy") == "model"
    close(tmp_path / "one", tmp_path / "copy")
