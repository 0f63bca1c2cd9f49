#!/usr/bin/env bash
# Create .venv (once) and install featurelens with the PyTorch backend and the dev tools into it
# (Pillow among them, which building the offline CIFAR-10 copy needs). CPU PyTorch is pinned
# through constraints/cpu.txt so no multi-GB CUDA build is downloaded. The tests use tox instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints/cpu.txt -e ".[torch,dev]"
