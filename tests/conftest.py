"""Shared test helpers: random estimate instances, and the real local ladder fixture."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# No per-example time limit: hypothesis's default 200 ms deadline is a timing threshold, and
# on a loaded two-core CI machine a first example that imports a module or starts a thread
# pool exceeds it and fails a correct test. Properties are about values, never speed.
settings.register_profile("cascade-router", deadline=None)
settings.load_profile("cascade-router")

EXAMPLE_LADDER = Path(__file__).resolve().parent.parent / "examples" / "local-ladder.yaml"


def _shared_data():
    from cascade_core.replay import default_data_dir

    return default_data_dir()


DATA = _shared_data()
needs_data = pytest.mark.skipif(
    DATA is None,
    reason="replay data not found at ../shared/data (set CASCADE_ROUTER_DATA to its folder)",
)


def random_covariance(rng: np.random.Generator, n_models: int, scale: float) -> np.ndarray:
    """A random PSD covariance with correlations, as an estimator's error would have."""
    factor = rng.normal(size=(n_models, n_models)) * scale / np.sqrt(n_models)
    return factor @ factor.T


def _local_models_missing() -> str | None:
    """Why the real local ladder cannot run here, or None when it can."""
    import importlib.util

    from cascade_core.local import server as local_server

    for module in ("llama_cpp", "fastapi", "uvicorn", "sse_starlette"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'cascade-router[local]')"
    for model in local_server.LADDER:
        try:
            local_server.gguf_path(model)
        except local_server.LocalModelError as error:
            return str(error)
    return None


@pytest.fixture(scope="session")
def local_ladder(tmp_path_factory: pytest.TempPathFactory):
    """The real local ladder (SmolLM2-135M, Gemma-3-270M on llama.cpp), served once per test
    session on a free port with a private state dir; yields its RouterConfig."""
    import socket

    from cascade_core.engine import RouterConfig
    from cascade_core.local import server as local_server

    reason = _local_models_missing()
    if reason is not None:
        pytest.skip(f"real local models unavailable: {reason}")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    state = tmp_path_factory.mktemp("local-state")
    previous = os.environ.get(local_server.STATE_DIR_ENV)
    os.environ[local_server.STATE_DIR_ENV] = str(state)
    local_server.start(port=port)
    config = RouterConfig.from_file(EXAMPLE_LADDER)
    models = [
        spec.model_copy(update={"api_base": f"http://127.0.0.1:{port}/v1"})
        for spec in config.models
    ]
    try:
        yield config.model_copy(update={"models": models})
    finally:
        os.environ[local_server.STATE_DIR_ENV] = str(state)
        local_server.stop()
        if previous is None:
            os.environ.pop(local_server.STATE_DIR_ENV, None)
        else:
            os.environ[local_server.STATE_DIR_ENV] = previous


# -- strict mode (CI) ---------------------------------------------------------------------
# Tests skip where an optional part is missing (no ../shared/data, no local models, an extra
# not installed), which is right on a user's machine and wrong in CI: there a missing part
# must fail the run instead of hiding the tests that need it. `.ci/run` sets this variable.
# Skips raised by the frameworks' own standard suites (a capability the model does not
# claim, such as PDF input) are theirs to make and stay skips.
STRICT = os.environ.get("CASCADE_ROUTER_STRICT") == "1"
TESTS_DIR = Path(__file__).resolve().parent
_own_skips: list[str] = []


def _note_skip(report) -> None:
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return
    path, _line, reason = report.longrepr
    if Path(path).resolve().is_relative_to(TESTS_DIR):
        _own_skips.append(f"{report.nodeid}: {reason}")


def pytest_runtest_logreport(report) -> None:
    _note_skip(report)


def pytest_collectreport(report) -> None:
    _note_skip(report)


def pytest_sessionfinish(session, exitstatus) -> None:
    if STRICT and _own_skips:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    if STRICT and _own_skips:
        terminalreporter.section("strict mode: these skips fail the run")
        for line in _own_skips:
            terminalreporter.line(line)
