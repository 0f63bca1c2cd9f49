#!/usr/bin/env bash
# The main job on a fresh machine: install, find CIFAR-10, run `featurelens demo`.
# CIFAR-10 comes from $FEATURELENS_DATA_DIR when set; otherwise, offline, the extracted copy is
# built once into .data/ from ../shared/data/cifar10 when that folder is there; otherwise the
# official archive is downloaded. Extra arguments go to `featurelens demo` (e.g. --full).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${FEATURELENS_DATA_DIR:-}" ] && [ -f ../shared/data/cifar10/build.py ]; then
  if [ ! -f .data/cifar-10-batches-py/batches.meta ]; then
    .venv/bin/python ../shared/data/cifar10/build.py .data
  fi
  export FEATURELENS_DATA_DIR="$PWD/.data"
fi
.venv/bin/featurelens demo "$@"
