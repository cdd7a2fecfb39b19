"""`local start` is the proof that the models answer: tests against FAKE servers that list their
models and then crash, fail or drop the connection on the first completion (tests/
fake_llama_server.py), the way llama.cpp built for another CPU died with a GPF while `start`
reported "running".

The fakes stand in for the llama_cpp.server program only; `start`, `status`, `stop` and the CLI
are the real code. Model packages are fake too (a directory with a .gguf file on sys.path), so
these tests need neither llama-cpp-python nor the model wheels.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cascade_core.cli.app import app
from cascade_core.errors import InvalidInputError
from cascade_core.local import server as local_server

FAKE_SERVER = Path(__file__).resolve().parent / "fake_llama_server.py"
ALIASES = [m.alias for m in local_server.LADDER]


def fake_command(mode: str) -> tuple[str, ...]:
    return (sys.executable, str(FAKE_SERVER), "--on-completion", mode)


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A state dir of its own, and no server left behind whatever the test did."""
    monkeypatch.setenv(local_server.STATE_DIR_ENV, str(tmp_path / "state"))
    yield tmp_path / "state"
    local_server.stop(grace=2.0)


@pytest.fixture
def fake_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple:
    """The ladder's aliases backed by fake model packages, each holding a (fake) .gguf file."""
    site = tmp_path / "site"
    models = []
    for model in local_server.LADDER:
        package = f"fake_{model.alias.replace('-', '_')}_gguf"
        (site / package).mkdir(parents=True)
        (site / package / "__init__.py").write_text("")
        (site / package / "model.gguf").write_bytes(b"GGUF fake")
        models.append(
            local_server.LocalModel(model.alias, package, "pip install x", None, "model.gguf")
        )
    monkeypatch.syspath_prepend(str(site))
    return tuple(models)


@pytest.fixture
def port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(mode: str, port: int, models: tuple, timeout: float = 60.0) -> local_server.ServerStatus:
    return local_server.start(port, timeout, models=models, command=fake_command(mode))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _pid_named_in(message: str) -> int:
    match = re.search(r"\bpid (\d+)\b", message)
    assert match, f"no pid in {message!r}"
    return int(match.group(1))


def _assert_nothing_left(message: str) -> None:
    """The failed server is dead, its pid file removed, and status says so."""
    pid = _pid_named_in(message)
    assert _gone(pid)
    assert not local_server.state_paths(local_server.state_dir())[0].exists()
    st = local_server.status()
    assert not st.running and st.stale_pid is None


# --- the server crashes on its first completion ------------------------------------------


@pytest.mark.parametrize(
    ("mode", "how"),
    [
        ("segv", "was killed by SIGSEGV (signal 11; a crash"),
        ("exit-139", "exited with code 139 (128 + SIGSEGV; a crash"),
    ],
)
def test_start_reports_a_server_that_dies_on_its_first_completion(
    mode: str, how: str, port: int, fake_models: tuple
) -> None:
    with pytest.raises(local_server.LocalModelError) as info:
        _start(mode, port, fake_models)
    message = str(info.value)
    first, *rest = message.splitlines()
    log_file = local_server.state_paths(local_server.state_dir())[1]
    assert how in first
    assert f"first completion from model {ALIASES[0]!r}" in first
    assert f"log {log_file}" in first
    assert rest[0] == "Last lines of the server log:"
    assert any("general protection fault in ldtilecfg (fake)" in line for line in rest)
    assert "completion 2 for" not in message  # it died on the first, unanswered
    assert "Traceback" not in message
    _assert_nothing_left(message)


def test_cli_start_exits_1_naming_the_crash_with_the_log_tail(
    port: int, fake_models: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real CLI and the real `start`, with only the server program replaced by the fake."""
    real_start = local_server.start
    monkeypatch.setattr(
        local_server,
        "start",
        functools.partial(real_start, models=fake_models, command=fake_command("segv")),
    )
    result = CliRunner().invoke(app, ["local", "start", "--port", str(port)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: Local server was killed by SIGSEGV")
    assert "ggml_backend_amx_mul_mat" in result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert result.output.rstrip().splitlines()[-1].startswith("fake_llama_server: ")  # log tail
    assert not local_server.state_paths(local_server.state_dir())[0].exists()
    after = CliRunner().invoke(app, ["local", "status"])
    assert after.exit_code == 0
    assert "not running" in after.output


# --- the server lives but does not answer ------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("http-500", 'HTTP 500: {"error": {"message": "fake internal error"'),
        ("html-200", "HTTP 200 but not a chat completion: <html><body>Welcome to nginx!"),
    ],
)
def test_start_stops_a_live_server_whose_completion_fails(
    mode: str, reason: str, port: int, fake_models: tuple
) -> None:
    with pytest.raises(local_server.LocalModelError) as info:
        _start(mode, port, fake_models)
    message = str(info.value)
    first = message.splitlines()[0]
    assert f"lists model {ALIASES[0]!r} but it did not answer a one-token completion" in first
    assert reason in first
    assert "stopped it" in first
    assert "completion 1 for 'smollm2-135m'" in message  # the log tail
    _assert_nothing_left(message)


def test_start_gives_up_on_a_server_that_keeps_dropping_the_connection(
    port: int, fake_models: tuple
) -> None:
    """Alive, so retried until the deadline, then stopped and reported."""
    with pytest.raises(local_server.LocalModelError) as info:
        _start("drop", port, fake_models, timeout=8.0)
    first = str(info.value).splitlines()[0]
    assert f"model {ALIASES[0]!r} but it did not answer a one-token completion within 8s" in first
    assert "connection failed: RemoteDisconnected" in first
    _assert_nothing_left(str(info.value))


def test_start_gives_up_on_a_server_that_never_answers(port: int, fake_models: tuple) -> None:
    with pytest.raises(local_server.LocalModelError) as info:
        _start("hang", port, fake_models, timeout=6.0)
    first = str(info.value).splitlines()[0]
    assert (
        "did not answer a one-token completion within 6s (no answer before the deadline)" in first
    )
    _assert_nothing_left(str(info.value))


def test_a_dropped_connection_of_a_live_server_is_retried(port: int, fake_models: tuple) -> None:
    st = _start("drop-once", port, fake_models)
    assert st.running and st.answering
    log = Path(st.log_file).read_text()
    assert "completion 2 for 'smollm2-135m'" in log  # the retry that got the answer


# --- a server that answers ---------------------------------------------------------------


def test_start_asks_every_model_and_status_stays_honest(port: int, fake_models: tuple) -> None:
    st = _start("ok", port, fake_models)
    assert st.running and st.answering and st.port == port and st.models == ALIASES
    log = Path(st.log_file).read_text()
    assert all(f"for {alias!r}, mode ok" in log for alias in ALIASES)

    again = _start("ok", port, fake_models)  # idempotent, and proves the running server again
    assert again.pid == st.pid
    assert Path(st.log_file).read_text().count("mode ok") == 2 * len(ALIASES)

    assert st.pid is not None
    os.kill(st.pid, signal.SIGSTOP)  # alive, but answers nothing
    try:
        frozen = local_server.status()
        assert frozen.running and frozen.answering is False
        shown = CliRunner().invoke(app, ["local", "status"])
        assert "does not list its models" in shown.output
    finally:
        os.kill(st.pid, signal.SIGCONT)

    os.kill(st.pid, signal.SIGSEGV)  # crashes later: status sees a dead pid, not "running"
    local_server._Server(st.pid).ended(wait=30.0)
    after = local_server.status()
    assert not after.running and after.stale_pid == st.pid


def test_status_does_not_claim_a_process_started_with_another_config() -> None:
    """The pid-reuse guard: a live process without our --config_file is not our server."""
    pid_file = local_server.state_paths(local_server.state_dir())[0]
    pid_file.write_text(str(os.getpid()))
    st = local_server.status()
    assert not st.running and st.stale_pid == os.getpid()
    assert not _gone(os.getpid())


# --- the answer check, fuzzed -------------------------------------------------------------


class _FakeAnswers(http.server.BaseHTTPRequestHandler):
    """A fake endpoint answering every POST with the (status, body) last put in `reply`."""

    reply: tuple[int, bytes] = (200, b"")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, body = type(self).reply
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
CHAT_SHAPED = st.fixed_dictionaries(
    {"choices": st.lists(st.fixed_dictionaries({"message": JSON}) | JSON, max_size=2)}
)
BODIES = (
    st.binary(max_size=200)
    | JSON.map(lambda v: json.dumps(v).encode())
    | CHAT_SHAPED.map(lambda v: json.dumps(v).encode())
)


@settings(max_examples=200, deadline=None)
@given(status=st.sampled_from([200, 201, 204, 400, 404, 429, 500, 503]), body=BODIES)
def test_any_answer_is_accepted_only_as_a_chat_completion(status: int, body: bytes) -> None:
    """Whatever comes back, the check accepts a 2xx chat completion and refuses the rest with
    its own failure (never another exception); only "try again later" codes are retried."""
    if status == 204:
        body = b""
    _FakeAnswers.reply = (status, body)
    server = _fake_answers_server()
    port = server.server_address[1]
    try:
        local_server._complete_one_token(port, "m", time.monotonic() + 30)
    except local_server._Unanswered as failure:
        assert "\n" not in failure.reason
        assert failure.transient == (status in local_server.RETRY_STATUSES)
        accepted = False
    else:
        accepted = True
    document = None
    with contextlib.suppress(ValueError):
        document = json.loads(body)
    choices = document.get("choices") if isinstance(document, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    is_chat = isinstance(first, dict) and isinstance(first.get("message"), dict)
    assert accepted == (200 <= status < 300 and is_chat)


@functools.cache
def _fake_answers_server() -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeAnswers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- input and wording -------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0.0, -1.0, math.inf, math.nan])
def test_start_refuses_a_timeout_that_is_not_a_positive_number(timeout: float) -> None:
    with pytest.raises(InvalidInputError, match="timeout"):
        local_server.start(timeout=timeout)


@pytest.mark.parametrize("value", ["0", "inf", "nan", "-5"])
def test_cli_refuses_a_bad_timeout_in_one_line_with_exit_2(value: str) -> None:
    result = CliRunner().invoke(app, ["local", "start", "--timeout", value])
    assert result.exit_code == 2, result.output
    assert "timeout" in result.output
    assert "Traceback" not in result.output


@given(st.integers(min_value=-(2**31), max_value=2**31))
def test_describe_exit_is_one_line_for_any_status(returncode: int) -> None:
    text = local_server.describe_exit(returncode)
    assert "\n" not in text
    assert str(abs(returncode) if returncode < 0 else returncode) in text


def test_describe_exit_names_signals_and_crashes() -> None:
    assert local_server.describe_exit(-signal.SIGILL).startswith("was killed by SIGILL (signal 4;")
    assert "crash" not in local_server.describe_exit(-signal.SIGTERM)
    assert local_server.describe_exit(1) == "exited with code 1"
    assert local_server.describe_exit(200) == "exited with code 200"  # 128 + 72: no such signal
