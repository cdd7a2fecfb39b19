"""Tooling that serves the embedded local ladder with llama-cpp-python (`server`).

It monkeypatches `llama_cpp` inside the server process it starts, so it lives apart from the
library: only the command line (`cascade-router local ...`) and the tests import it, never the
engine or the adapters (an import-linter contract in pyproject.toml keeps it so).
"""
