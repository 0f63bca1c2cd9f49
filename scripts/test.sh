#!/usr/bin/env bash
# The test command: install everything (scripts/setup.sh), then run the whole suite.
# Backend tests may not be skipped here: FEATURELENS_REQUIRE_ALL_BACKENDS turns a skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
FEATURELENS_REQUIRE_ALL_BACKENDS=1 .venv/bin/python -m pytest -q -rs "$@"
