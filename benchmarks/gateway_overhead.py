"""What serving a model as a cascade costs inside LiteLLM Proxy.

One `cascade-router serve` process serves the same upstream model twice: as a one-model
cascade (``cascade1``: LiteLLM Proxy -> cascade provider -> engine -> LiteLLM -> upstream) and
directly (``fast``, from ``--expose-models``: LiteLLM Proxy -> LiteLLM -> upstream). The
upstream is the FAKE server of ``tests/fake_openai_server.py --fast`` (one prebuilt answer),
in its own process. So the difference between the two is the cascade's own work in the proxy:
the provider, the engine and the engine's own LiteLLM call.

Two measurements, each in ABBA rounds (direct, cascade, cascade, direct, ...) in one run so
that drift on a shared machine falls on both sides alike, after a warm-up of both:

- throughput: ``--requests`` requests per phase at ``--concurrency``; median over phases;
- latency: ``--latency-requests`` sequential requests per phase (no queueing), p50 and p95
  over all of a side's requests, and the cascade's added p50/p95.

    python benchmarks/gateway_overhead.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "Say hello."}]
STARTUP_LIMIT_S = 180.0


def start_fake() -> tuple[subprocess.Popen[str], str]:
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fake_openai_server.py"), "--fast"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fake.stdout is not None
    return fake, fake.stdout.readline().strip()


def start_proxy(base_url: str, work: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    ladder = {
        "models": [
            {
                "name": "fast",
                "model": "openai/fast",
                "api_base": base_url,
                "input_cost_per_token": 1e-7,
                "output_cost_per_token": 2e-7,
                "supports_logprobs": False,
                "prior_quality": 0.9,
            }
        ],
        "budget": {"lambda": 1.0},
        "num_retries": 0,
    }
    path = work / "cascade1.yaml"
    path.write_text(yaml.safe_dump(ladder), encoding="utf-8")
    port = free_port()
    key = "sk-bench-" + secrets.token_hex(16)
    env = {**os.environ, "LITELLM_MASTER_KEY": key, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    log = (work / "proxy.log").open("wb")
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cascade_core.cli.serve",
            "--config",
            str(path),
            "--port",
            str(port),
            "--expose-models",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < deadline:
        if proxy.poll() is not None:
            raise SystemExit(f"proxy exited; see {work / 'proxy.log'}")
        try:
            if httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                return proxy, url, key
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("proxy did not start")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def one(client: httpx.AsyncClient, model: str) -> float:
    started = time.perf_counter()
    response = await client.post(
        "/v1/chat/completions", json={"model": model, "messages": MESSAGES, "max_tokens": 8}
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"{model}: HTTP {response.status_code}: {response.text[:300]}")
    return elapsed


async def phase(client: httpx.AsyncClient, model: str, requests: int, concurrency: int):
    """(requests per second, per-request latencies) of one phase."""
    queue = list(range(requests))
    latencies: list[float] = []

    async def worker() -> None:
        while queue:
            queue.pop()
            latencies.append(await one(client, model))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started), latencies


async def measure(url: str, key: str, args: argparse.Namespace) -> dict[str, object]:
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60, limits=limits
    ) as client:
        for model in ("fast", "cascade1"):
            await phase(client, model, 50, 4)  # warm-up
        order = ["fast", "cascade1", "cascade1", "fast"] * args.rounds
        rps: dict[str, list[float]] = {"fast": [], "cascade1": []}
        latency: dict[str, list[float]] = {"fast": [], "cascade1": []}
        for model in order:
            rate, _ = await phase(client, model, args.requests, args.concurrency)
            rps[model].append(rate)
        for model in order:
            _, times = await phase(client, model, args.latency_requests, 1)
            latency[model].extend(times)
    ms = {m: np.array(v) * 1000 for m, v in latency.items()}
    direct_rps, cascade_rps = float(np.median(rps["fast"])), float(np.median(rps["cascade1"]))
    p = {m: (float(np.percentile(v, 50)), float(np.percentile(v, 95))) for m, v in ms.items()}
    return {
        "direct_rps": round(direct_rps, 1),
        "cascade_rps": round(cascade_rps, 1),
        "throughput_ratio": round(cascade_rps / direct_rps, 3),
        "direct_p50_ms": round(p["fast"][0], 2),
        "direct_p95_ms": round(p["fast"][1], 2),
        "cascade_p50_ms": round(p["cascade1"][0], 2),
        "cascade_p95_ms": round(p["cascade1"][1], 2),
        "added_p50_ms": round(p["cascade1"][0] - p["fast"][0], 2),
        "added_p95_ms": round(p["cascade1"][1] - p["fast"][1], 2),
        "rps_by_phase": {m: [round(r, 1) for r in v] for m, v in rps.items()},
        "requests_per_phase": args.requests,
        "concurrency": args.concurrency,
        "latency_requests_per_phase": args.latency_requests,
        "rounds": args.rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-requests", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fake, base_url = start_fake()
    proxy = None
    try:
        with tempfile.TemporaryDirectory(prefix="gateway-bench-") as work:
            proxy, url, key = start_proxy(base_url, Path(work))
            report = asyncio.run(measure(url, key, args))
            proxy.send_signal(signal.SIGTERM)
            proxy.wait(30)
    finally:
        if proxy is not None and proxy.poll() is None:
            proxy.kill()
        fake.terminate()
        fake.wait(10)
    if args.json:
        print(json.dumps(report))
    else:
        for name, value in report.items():
            print(f"{name:>28}: {value}")


if __name__ == "__main__":
    main()
