#!/usr/bin/env bash
# The test command: every tox environment (lint, core, torch, keras-torch, keras-jax, docs).
# tox itself lives in .venv-tox; each environment installs what it needs (CPU PyTorch pinned by
# constraints/cpu.txt). The docs environment builds the site with the gallery executed on
# CIFAR-10 and checks it in headless Chromium, installed here from Debian's packages if missing.
# Extra arguments go to `tox run` (e.g. -e torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "Debian's chromium is needed for the docs check: sudo apt-get install chromium" >&2
  fi
fi
[ -x .venv-tox/bin/tox ] || { "$PYTHON" -m venv .venv-tox && .venv-tox/bin/pip install -q --disable-pip-version-check "tox>=4.11"; }
.venv-tox/bin/tox run "$@"
