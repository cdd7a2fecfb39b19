"""Real parts for the gateway tests: `cascade-router serve` and `redis-server` as processes.

Each server gets a free port on 127.0.0.1 and is stopped (by its own pid) when the test
ends. Waiting for a server to come up is bounded but is not a test assertion: a slow,
shared machine only makes the wait longer.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

TESTS_DIR = Path(__file__).resolve().parent
STARTUP_LIMIT_S = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def ladder_file(path: Path, config: Any) -> Path:
    """A RouterConfig (or a plain mapping) written as a ladder YAML file."""
    data = config if isinstance(config, dict) else config.model_dump(mode="json", by_alias=True)
    return write_yaml(path, data)


class Proxy:
    """`python -m cascade_core.cli.serve` on a free port, with a fresh master key."""

    def __init__(
        self,
        ladder: Path,
        log_path: Path,
        *args: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.master_key = "sk-master-" + secrets.token_hex(16)
        self.log_path = log_path
        self.base_url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "cascade_core.cli.serve",
            "--config",
            str(ladder),
            "--port",
            str(self.port),
            *args,
        ]
        environment = {
            **os.environ,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_MASTER_KEY": self.master_key,
            # Test-only callbacks (the spend recorder) import from the tests folder.
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])
            ),
            **(env or {}),
        }
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            command, env=environment, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self) -> Proxy:
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"proxy exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/health/liveliness", timeout=2).status_code == 200:
                    return self
            time.sleep(0.5)
        raise RuntimeError(f"proxy did not start within {STARTUP_LIMIT_S} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    @property
    def v1(self) -> str:
        return f"{self.base_url}/v1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@contextlib.contextmanager
def running_proxy(
    ladder: Path, log_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[Proxy]:
    proxy = Proxy(ladder, log_path, *args, env=env)
    try:
        yield proxy.wait_ready()
    finally:
        proxy.stop()


@contextlib.contextmanager
def proxy_with_callback(
    work: Path, callback: str, log_env: str, ladder_config: Any
) -> Iterator[tuple[Proxy, Path]]:
    """`cascade-router serve` on ``ladder_config`` with a user proxy config that adds one test
    callback (``module.object``, a file of tests/) writing JSON lines to the file the
    environment variable ``log_env`` names; yields the proxy and that file."""
    events = work / "events.jsonl"
    user_config = write_yaml(
        work / "user_proxy.yaml", {"litellm_settings": {"callbacks": [callback]}}
    )
    path = ladder_file(work / "ladder.yaml", ladder_config)
    env = {log_env: str(events)}
    with running_proxy(
        path, work / "proxy.log", "--proxy-config", str(user_config), env=env
    ) as proxy:
        yield proxy, events


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The JSON lines a test callback wrote so far (none when it has written nothing)."""
    try:
        with open(path, encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def running_proxies(
    count: int, ladder: Path, logs: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[list[Proxy]]:
    """``count`` replicas of one config started together (they boot in parallel)."""
    proxies = [Proxy(ladder, logs / f"proxy-{i}.log", *args, env=env) for i in range(count)]
    try:
        yield [proxy.wait_ready() for proxy in proxies]
    finally:
        for proxy in proxies:
            proxy.stop()


class Redis:
    """A private `redis-server` (Debian's) on a free port, no persistence."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
