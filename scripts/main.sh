#!/usr/bin/env bash
# The main job on the embedded default: installs first, then runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# shellcheck disable=SC1091
. "${CASCADE_ROUTER_VENV:-.venv}/bin/activate"
export LITELLM_LOCAL_MODEL_COST_MAP=True
python benchmarks/decision_latency.py "$@"
