"""Shared pieces of the session tests: a real Redis server, a scripted two-model agent ladder
on the FAKE caching provider, and an engine factory. Import the fixtures by name into a test
module (``from session_fixtures import redis_url``) to use them there."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_caching_provider import FakeCachingProvider, Prices
from scripted_openai_server import Reply

from cascade_core.engine import CascadeEngine

PRICES = {
    "small": Prices(input=1e-7, cached=2.5e-8, output=4e-7),
    "big": Prices(input=2e-6, cached=5e-7, output=8e-6),
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a fact up.",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}},
                "required": ["q"],
            },
        },
    }
]
SYSTEM = {"role": "system", "content": "You are a careful assistant. " * 40}


def _last_user(body: dict[str, Any]) -> str:
    for message in reversed(body["messages"]):
        if message["role"] == "user":
            return str(message["content"])
    return ""


def agent_script(model: str, body: dict[str, Any]) -> Reply:
    """A scripted agent: a user turn gets a tool call, a tool result gets the answer.

    "small" cannot do turns marked "hard": its tool call has broken JSON arguments (a
    detectable failure, so a cascade escalates). Ids are unique per request and model.
    """
    messages = body["messages"]
    if messages[-1]["role"] == "tool":
        return Reply(f"Done: {messages[-1]['content']}", logprob=-0.05)
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:8]
    call_id = f"call_{model}_{len(messages)}_{digest}"
    if model == "small" and "hard" in _last_user(body):
        return Reply(tool_calls=[{"name": "lookup", "arguments": '{"q": ', "id": call_id}])
    return Reply(tool_calls=[{"name": "lookup", "arguments": '{"q": "x"}', "id": call_id}])


def ladder(api_base: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "model": f"openai/{name}",
            "api_base": api_base,
            "input_cost_per_token": price.input,
            "cache_read_input_cost_per_token": price.cached,
            "output_cost_per_token": price.output,
            "supports_logprobs": True,
            "prior_quality": prior,
        }
        for (name, price), prior in zip(PRICES.items(), (0.7, 0.8), strict=True)
    ]


def make_engine(api_base: str, **settings: Any) -> CascadeEngine:
    """The scripted ladder behind cascade routing; ``settings`` override config sections."""
    config: dict[str, Any] = {
        "models": ladder(api_base),
        "strategy": {"name": "cascade_routing"},
        "budget": {"lambda": 300.0},
        "num_retries": 0,
        **settings,
    }
    store = config.pop("session_store", None)
    return CascadeEngine(session_store=store, **config)


@pytest.fixture
def fake() -> Iterator[FakeCachingProvider]:
    with FakeCachingProvider(agent_script, PRICES) as server:
        yield server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (Debian's) on a free port, no persistence, for this test session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    pytest.importorskip("redis", reason="needs the sessions extra (pip install redis)")
    import redis

    port = _free_port()
    work: Path = tmp_path_factory.mktemp("redis")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(work)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(500):  # wait for the server to accept connections (up to ~10 s)
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None:
                    pytest.fail(f"redis-server exited with {process.returncode}")
                time.sleep(0.02)
        else:
            pytest.fail("redis-server did not start")
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def engine_env() -> dict[str, str]:
    """Environment for engine subprocesses: this interpreter's, with the tests importable."""
    env = dict(os.environ)
    tests = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (tests, env.get("PYTHONPATH", "")) if p)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return env
