#!/usr/bin/env bash
# The main job on the embedded default: install, serve the two local models, run the live
# demo through the cascade, stop the models. Extra arguments go to `cascade-router demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# shellcheck disable=SC1091
. "${CASCADE_ROUTER_VENV:-.venv}/bin/activate"
export LITELLM_LOCAL_MODEL_COST_MAP=True
cascade-router local start --config examples/local-ladder.yaml
trap 'cascade-router local stop >/dev/null' EXIT
cascade-router demo --config examples/local-ladder.yaml "$@"
