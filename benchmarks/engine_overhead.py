"""The engine's throughput against raw ``litellm.acompletion`` on the same fast fake server.

A fake OpenAI-compatible server (tests/scripted_openai_server.py, answering a fixed short
reply with logprobs) runs in its own process so it does not share the client's GIL. Both
sides send the same 500 requests at concurrency 50: raw ``litellm.acompletion`` with the same
arguments the engine sends (logprobs included), and ``CascadeEngine.arun`` on a one-model
ladder, so each request is one HTTP call either way and the difference is the engine's own
work (validation, token counting, the decision, the trace). Both are measured in one run,
alternating order to share warm-up fairly.

    python benchmarks/engine_overhead.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import litellm
import numpy as np

from cascade_core.engine import CascadeEngine

REQUESTS = 500
CONCURRENCY = 50
MESSAGES = [{"role": "user", "content": "Say hello."}]


def serve(port_queue: multiprocessing.Queue) -> None:
    from tests.scripted_openai_server import Reply, ScriptedServer

    with ScriptedServer(lambda model, body: Reply(content="Hello there!")) as server:
        server.requests = _Discard()
        port_queue.put(server.api_base)
        while True:
            time.sleep(3600)


class _Discard(list):
    """The benchmark does not need the fake server's request log."""

    def append(self, item) -> None:
        pass


async def measure(call) -> tuple[float, list[float]]:
    limit = asyncio.Semaphore(CONCURRENCY)
    latencies: list[float] = []

    async def one() -> None:
        async with limit:
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(REQUESTS)))
    return REQUESTS / (time.perf_counter() - started), latencies


async def run(api_base: str) -> dict:
    engine = CascadeEngine(
        models=[
            {
                "model": "openai/fake-fast",
                "api_base": api_base,
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 2e-6,
                "supports_logprobs": True,
            }
        ],
        num_retries=0,
    )
    raw_kwargs = engine.start(MESSAGES, max_tokens=16).next_call().kwargs(stream=False)

    async def raw() -> None:
        await litellm.acompletion(**raw_kwargs)

    async def routed() -> None:
        await engine.arun(MESSAGES, max_tokens=16)

    await measure(raw)  # warm both paths (connection pools, imports)
    await measure(routed)
    raw_rps, raw_latency = await measure(raw)
    engine_rps, engine_latency = await measure(routed)
    raw_rps_2, raw_latency_2 = await measure(raw)
    engine_rps_2, engine_latency_2 = await measure(routed)
    raw_rps, engine_rps = (raw_rps + raw_rps_2) / 2, (engine_rps + engine_rps_2) / 2
    added = np.median(engine_latency + engine_latency_2) - np.median(raw_latency + raw_latency_2)
    return {
        "requests": REQUESTS,
        "concurrency": CONCURRENCY,
        "raw_rps": round(raw_rps, 1),
        "engine_rps": round(engine_rps, 1),
        "ratio": round(engine_rps / raw_rps, 3),
        "added_p50_ms": round(float(added), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    queue: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(queue,), daemon=True)
    server.start()
    try:
        report = asyncio.run(run(queue.get(timeout=30)))
    finally:
        server.terminate()
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:>14}: {value}")


if __name__ == "__main__":
    main()
