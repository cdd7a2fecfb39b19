#!/usr/bin/env bash
# Run the whole test suite (lint included) on a fresh machine: installs first, then tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# shellcheck disable=SC1091
. "${CASCADE_ROUTER_VENV:-.venv}/bin/activate"
export LITELLM_LOCAL_MODEL_COST_MAP=True
ruff check .
ruff format --check .
lint-imports --no-cache  # the layer contracts in pyproject.toml (0.3 s; no cache dir left)
python -m pytest "$@"
