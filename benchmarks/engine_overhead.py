"""The engine's throughput against raw ``litellm.acompletion`` on the same fast fake server.

A fake OpenAI-compatible server (tests/scripted_openai_server.py, answering a fixed short
reply with logprobs) runs in its own process so it does not share the client's GIL. Both
sides send the same 500 requests at concurrency 50: raw ``litellm.acompletion`` with the same
arguments the engine sends (logprobs included), and ``CascadeEngine.arun`` on a one-model
ladder, so each request is one HTTP call either way and the difference is the engine's own
work (validation, token counting, the decision, the trace). Both are measured in one run:
after a warm-up of each, ``--rounds`` rounds of 500 requests per side in ABBA order (raw,
engine, engine, raw, ...) so that drift on a shared machine falls on both sides alike; the
event loop is drained of LiteLLM's background logging tasks and garbage is collected between
phases, so no phase pays for the one before. Throughput is the median over rounds; the
client's CPU time per request is reported too. Throughput at concurrency 50 on a shared 2-core
VM varies by +-10% between runs, so the engine's own work is also measured alone:
``engine_own_cpu_ms_per_request`` drives the engine's request state machine (``engine.start``:
ex-ante estimates, token counting, decisions, post-hoc features of a real response recorded
from the server, the trace) with no HTTP call, next to ``raw_cpu_ms_per_request``, LiteLLM's
CPU per call.

    python benchmarks/engine_overhead.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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
from cascade_core.engine.answers import ModelAnswer

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


async def settle() -> None:
    """Let LiteLLM's fire-and-forget logging tasks finish, then collect garbage."""
    current = asyncio.current_task()
    for _ in range(200):
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not pending:
            break
        await asyncio.sleep(0.01)
    gc.collect()


async def measure(call) -> tuple[float, list[float], float]:
    """Requests per second, per-request latencies (ms), client CPU ms per request."""
    await settle()
    limit = asyncio.Semaphore(CONCURRENCY)
    latencies: list[float] = []

    async def one() -> None:
        async with limit:
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(REQUESTS)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return REQUESTS / elapsed, latencies, cpu * 1000 / REQUESTS


async def run(api_base: str, rounds: int) -> dict:
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
    sides = {"raw": raw, "engine": routed}
    rps: dict[str, list[float]] = {"raw": [], "engine": []}
    latency: dict[str, list[float]] = {"raw": [], "engine": []}
    cpu: dict[str, list[float]] = {"raw": [], "engine": []}
    for round_ in range(rounds):
        order = ("raw", "engine") if round_ % 2 == 0 else ("engine", "raw")
        for side in order:
            side_rps, side_latency, side_cpu = await measure(sides[side])
            rps[side].append(side_rps)
            latency[side].extend(side_latency)
            cpu[side].append(side_cpu)
    raw_rps, engine_rps = float(np.median(rps["raw"])), float(np.median(rps["engine"]))
    added = np.median(latency["engine"]) - np.median(latency["raw"])
    own = own_cpu_ms(engine, await litellm.acompletion(**raw_kwargs))
    return {
        "requests": REQUESTS,
        "concurrency": CONCURRENCY,
        "rounds": rounds,
        "raw_rps": round(raw_rps, 1),
        "engine_rps": round(engine_rps, 1),
        "ratio": round(engine_rps / raw_rps, 3),
        "added_p50_ms": round(float(added), 2),
        "raw_cpu_ms_per_request": round(float(np.median(cpu["raw"])), 2),
        "engine_cpu_ms_per_request": round(float(np.median(cpu["engine"])), 2),
        "engine_own_cpu_ms_per_request": round(own, 3),
        "rps_by_round": {side: [round(v, 1) for v in values] for side, values in rps.items()},
    }


def own_cpu_ms(engine: CascadeEngine, response, repeats: int = 2000) -> float:
    """CPU ms per request of the engine's own work: one request's state machine, fed a
    recorded response instead of awaiting the network."""
    answer_from = ModelAnswer.from_response
    started = time.process_time()
    for _ in range(repeats):
        run = engine.start(MESSAGES, max_tokens=16)
        while (call := run.next_call()) is not None:
            run.record_answer(call, answer_from(response), 0.0)
        run.result()
    return (time.process_time() - started) * 1000 / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of 500 requests per side")
    args = parser.parse_args()
    queue: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(queue,), daemon=True)
    server.start()
    try:
        report = asyncio.run(run(queue.get(timeout=30), args.rounds))
    finally:
        server.terminate()
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:>14}: {value}")


if __name__ == "__main__":
    main()
