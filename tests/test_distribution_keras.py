"""Keras on JAX across devices (``keras.distribution.DataParallel``), on two simulated CPU devices.

XLA shows two CPU devices with ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` set before JAX
is imported, so the two-device run is a subprocess. Data parallelism over the global batch (batch
norm over the whole batch, dropout masks drawn for the whole batch) computes what one device does,
up to float rounding: every weight within ``rtol=1e-4, atol=1e-5`` after 2 epochs of SGD.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import write_cifar_folder
from safetensors.numpy import load_file

import featurelens as fl
from featurelens.cli import main

pytestmark = [pytest.mark.keras, pytest.mark.skipif(keras.backend.backend() != "jax", reason=(
    "Keras runs on torch here; keras.distribution needs JAX (the keras-jax environment runs this)"))]

TWO_DEVICES = """
import json, sys
import keras
from featurelens.cli import main

code = main(sys.argv[1:])
mesh = keras.distribution.distribution().device_mesh
print(json.dumps({"code": code, "devices": [str(d) for d in mesh.devices.flatten()]}))
"""


def test_two_devices_train_as_one(tmp_path, isolated_env, capsys):
    root = write_cifar_folder(tmp_path / "data").parent
    args = ["train", "--backend", "keras", "--preset", "tiny", "--epochs", "2", "--batch-size", "16",
            "--validation-split", "0.2", "--augment", "--optimizer", "sgd", "--lr", "0.05", "--no-progress",
            "--data-dir", str(root)]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    two = subprocess.run([sys.executable, "-c", TWO_DEVICES, *args, "--out", str(tmp_path / "two"), "--devices", "2"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert two.returncode == 0, two.stderr
    assert "with the keras backend on 2 devices" in two.stdout
    result = json.loads(two.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "devices": ["cpu:0", "cpu:1"]}
    a, b = (load_file(str(tmp_path / name / "weights.safetensors")) for name in ("one", "two"))
    far = {k: float(np.abs(a[k] - b[k]).max()) for k in a if not np.allclose(a[k], b[k], rtol=1e-4, atol=1e-5)}
    assert not far, far
    assert np.allclose(fl.History.load(tmp_path / "one" / "history.json").metric("loss"),
                       fl.History.load(tmp_path / "two" / "history.json").metric("loss"), rtol=1e-5)


def test_more_devices_than_there_are_is_a_clear_error(tmp_path, isolated_env, capsys):
    assert main(["train", "--backend", "keras", "--preset", "tiny", "--devices", "3", "--data-dir", str(tmp_path),
                 "--out", str(tmp_path / "x")]) == 2
    assert "3 devices were asked for but Keras sees 1" in capsys.readouterr().err
