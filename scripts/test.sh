#!/usr/bin/env bash
# The test command: install everything (scripts/setup.sh), lint, then run the whole suite, with
# Keras on JAX, and the Keras tests once more with Keras on PyTorch (Keras picks its backend once
# per process). Backend tests may not be skipped here: FEATURELENS_REQUIRE_ALL_BACKENDS turns a
# skip for a missing backend into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src plugins tests benchmarks
export FEATURELENS_REQUIRE_ALL_BACKENDS=1
KERAS_BACKEND=jax .venv/bin/python -m pytest -q -rs "$@"
KERAS_BACKEND=torch .venv/bin/python -m pytest -q -rs -m keras "$@"
