#!/usr/bin/env bash
# The main job on a fresh machine: install, find CIFAR-10, run `featurelens demo`.
# CIFAR-10 comes from $FEATURELENS_DATA_DIR when set; otherwise, offline, the extracted copy is
# built once into .data/ from ../shared/data/cifar10 when that folder is there; otherwise the
# official archive is downloaded. Extra arguments go to `featurelens demo` (e.g. --full).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
data=$(bash scripts/cifar10_dir.sh)
if [ -n "$data" ]; then export FEATURELENS_DATA_DIR="$data"; fi
.venv/bin/featurelens demo "$@"
