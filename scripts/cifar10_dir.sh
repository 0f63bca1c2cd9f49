#!/usr/bin/env bash
# Print a folder holding an extracted cifar-10-batches-py for offline runs: $FEATURELENS_DATA_DIR
# when set; else .data/, built once from ../shared/data/cifar10 when that folder is beside the
# checkout; else nothing (featurelens then downloads the official archive).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${FEATURELENS_DATA_DIR:-}" ]; then
  echo "$FEATURELENS_DATA_DIR"
elif [ -f ../shared/data/cifar10/build.py ]; then
  if [ ! -f .data/cifar-10-batches-py/batches.meta ]; then
    "${PYTHON:-.venv/bin/python}" ../shared/data/cifar10/build.py .data >&2
  fi
  echo "$PWD/.data"
fi
