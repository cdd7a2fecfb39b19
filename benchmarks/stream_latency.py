"""What streaming through today's cascade costs in latency, against each model alone.

Every question is streamed through the cascade and through each of its models pinned alone,
and the caller's time to first token (request sent -> first text delta) and total time
(-> the final event) are measured, with accuracy, cost and escalation rate. Two set-ups:

- ``fake``: the FAKE latency-faithful pair of `tests/fake_latency_provider.py` (the TTFT and
  output speed of a typical small and large API model, scripted answers with known truth);
- ``local``: the real local ladder (`cascade-router local`), started here on a free port as
  `benchmarks/early_abort.py` does, when its models are installed (else reported as skipped).
  Its questions have no checked answers, so its accuracy is not reported.

    python benchmarks/stream_latency.py --json [--setups fake,local] [--questions 16]

Modes, all through the async stream driver: ``cascade_today`` (no latency priced),
``hedge@low`` / ``hedge@high`` (latency priced at the two `WEIGHTS`, so the strategy trades
time and the driver hedges when the objective says so), and each model alone. Early commit
(``early_commit``, ``both``) is not built yet and is reported as such. Each cascade engine is
warmed with `WARMUP` requests first (its latency model learns the models' speeds; LiteLLM's
one-off set-up is not a model's latency). Each set-up's top-level figures (``ttft_ratio``,
``total_ratio``, ``accuracy``, ...) compare the hedged cascade at the high weight with the
big model alone (``extra_cost_share``: the share of its
cost spent on cancelled hedges).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fake_latency_provider import (  # noqa: E402
    PAIR,
    FakeLatencyProvider,
    ladder_models,
    question,
)

from cascade_core.engine import CascadeEngine, Finished, RouterConfig, TextDelta  # noqa: E402
from cascade_core.errors import CascadeError  # noqa: E402

LADDER = ROOT / "examples" / "local-ladder.yaml"
MAX_TOKENS = 24
# Published list prices per token of a GPT-4o-mini-class and a GPT-4o-class model (USD per
# million: 0.15 / 0.60 and 2.50 / 10.00), so the cost column is in realistic units.
PRICES = {"fake-small": (0.15e-6, 0.60e-6), "fake-large": (2.5e-6, 10e-6)}
# Quality points one USD is worth: a large answer (about 2.5e-4 USD here) costs 0.05 points.
FAKE_LAMBDA = 200.0
# USD one second of waiting is worth (time to first token, total): a low and a high price.
WEIGHTS = {
    "low": {"ttft_usd_per_s": 1e-5, "total_usd_per_s": 1e-5},
    "high": {"ttft_usd_per_s": 1e-4, "total_usd_per_s": 1e-4},
}
WARMUP = 4
NOT_BUILT = {"early_commit": "not built yet", "both": "not built yet (early commit missing)"}
LOCAL_PROMPTS = (
    "What is the capital of France?",
    "Name a primary colour.",
    "How many legs does a spider have?",
    "What is 12 times 3?",
    "Give a synonym of happy.",
    "What gas do plants absorb?",
    "Which planet is closest to the sun?",
    "What is the boiling point of water in Celsius?",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def stream_one(engine: CascadeEngine, prompt: str) -> dict[str, Any]:
    """One streamed request as the caller sees it."""
    started = time.perf_counter()
    first: float | None = None
    result = None
    try:
        async for event in engine.astream(
            [{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS
        ):
            if isinstance(event, TextDelta) and event.text and first is None:
                first = time.perf_counter() - started
            if isinstance(event, Finished):
                result = event.result
    except CascadeError as error:  # no answer: counted, and wrong, but not timed
        return {"error": f"{type(error).__name__}: {error}"[:300]}
    total = time.perf_counter() - started
    assert result is not None
    ran = [r for r in result.trace.runs if r.status not in ("skipped", "cancelled")]
    return {
        "ttft_s": first if first is not None else total,
        "total_s": total,
        "content": result.content,
        "cost_usd": result.cost_usd,
        "hedge_cost_usd": sum(r.cost_usd for r in result.trace.runs if r.status == "cancelled"),
        "hedged": any(r.hedged for r in result.trace.runs),
        "escalated": len(ran) > 1,
    }


def summarise(all_rows: list[dict[str, Any]], truth: list[int] | None) -> dict[str, Any]:
    """Percentiles over the requests that got an answer; accuracy over all of them."""
    rows = [r for r in all_rows if "error" not in r]
    if not rows:
        return {"requests": len(all_rows), "errors": [r["error"] for r in all_rows]}
    ttft = np.array([r["ttft_s"] for r in rows])
    total = np.array([r["total_s"] for r in rows])
    summary: dict[str, Any] = {
        "requests": len(all_rows),
        "errors": [r["error"] for r in all_rows if "error" in r],
        "ttft_p50_s": round(float(np.percentile(ttft, 50)), 3),
        "ttft_p95_s": round(float(np.percentile(ttft, 95)), 3),
        "total_p50_s": round(float(np.percentile(total, 50)), 3),
        "total_p95_s": round(float(np.percentile(total, 95)), 3),
        "cost_usd_per_request": float(np.mean([r["cost_usd"] for r in rows])),
        "escalation_rate": round(float(np.mean([r["escalated"] for r in rows])), 3),
        "hedge_rate": round(float(np.mean([r["hedged"] for r in rows])), 3),
        "hedge_cost_usd_per_request": float(np.mean([r["hedge_cost_usd"] for r in rows])),
    }
    if truth is not None:
        right = [
            "error" not in r and bool(re.search(rf"\b{answer}\b", r["content"]))
            for r, answer in zip(all_rows, truth, strict=True)
        ]
        summary["accuracy"] = round(float(np.mean(right)), 3)
    return summary


def measure(
    config: RouterConfig, prompts: list[str], truth: list[int] | None, warmup: list[str]
) -> dict[str, Any]:
    """Every mode, interleaved per prompt so that a slow moment of the machine hits every
    mode alike, and the summary of the hedged cascade at the high weight."""
    today = CascadeEngine(config)
    modes = {"cascade_today": today} | {
        f"hedge@{name}": CascadeEngine(config.replace(latency_weights=weights))
        for name, weights in WEIGHTS.items()
    }
    modes |= {f"alone:{m.label}": today.pinned(m.label) for m in today.ladder}

    async def run_all() -> dict[str, list[dict[str, Any]]]:
        for target in modes.values():  # LiteLLM's set-up, the latency models: not measured
            for prompt in warmup:
                await stream_one(target, prompt)
        rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for prompt in prompts:
            for mode, target in modes.items():
                rows[mode].append(await stream_one(target, prompt))
        return rows

    rows = asyncio.run(run_all())
    summaries = {mode: summarise(r, truth) for mode, r in rows.items()}
    big = f"alone:{today.ladder[-1].label}"
    return {
        **summary_against(summaries["hedge@high"], summaries[big], summaries),
        "by_weight": {
            name: summary_against(summaries[f"hedge@{name}"], summaries[big], summaries)
            for name in WEIGHTS
        },
        "modes": summaries | {mode: {"skipped": why} for mode, why in NOT_BUILT.items()},
    }


def summary_against(
    mode: dict[str, Any], big: dict[str, Any], summaries: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The issue's per-set-up summary: the hedged cascade (early commit is not built, so
    hedging alone stands in for "both") against the big model alone."""
    if "ttft_p50_s" not in mode or "ttft_p50_s" not in big:
        return {"skipped": "a mode got no answers"}
    today = summaries["cascade_today"]
    cost = mode["cost_usd_per_request"]
    return {
        "mode": "hedged cascade (early commit not built)",
        "ttft_ratio": round(mode["ttft_p50_s"] / big["ttft_p50_s"], 3),
        "total_ratio": round(mode["total_p50_s"] / big["total_p50_s"], 3),
        "accuracy": mode.get("accuracy"),
        "accuracy_cascade_today": today.get("accuracy"),
        "extra_cost_share": round(mode["hedge_cost_usd_per_request"] / cost, 4) if cost else 0.0,
        "cost_ratio_vs_today": (
            round(cost / today["cost_usd_per_request"], 3)
            if today.get("cost_usd_per_request")
            else None
        ),
    }


def fake_setup(n_questions: int) -> dict[str, Any]:
    questions = [question(i) for i in range(n_questions)]
    with FakeLatencyProvider() as provider:
        models = ladder_models(provider, {name: PRICES[name] for name in PAIR})
        config = RouterConfig.from_dict(
            {"models": models, "budget": {"lambda": FAKE_LAMBDA}, "num_retries": 0}
        )
        warmup = [question(1000 + i)[0] for i in range(WARMUP)]
        measured = measure(config, [q for q, _ in questions], [a for _, a in questions], warmup)
    return {
        "models": {
            name: {"ttft_s": p.ttft_s, "tokens_per_s": p.tokens_per_s, "accuracy": p.accuracy}
            for name, p in PAIR.items()
        },
        "lambda": FAKE_LAMBDA,
        "weights": WEIGHTS,
        **measured,
    }


def local_setup() -> dict[str, Any]:
    from cascade_core.local import server as local_server

    os.environ.setdefault("CASCADE_ROUTER_STATE_DIR", tempfile.mkdtemp(prefix="cr-latency-"))
    port = free_port()
    try:
        local_server.start(port=port)
    except Exception as error:  # models not installed, server cannot start: say so
        return {"skipped": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
    try:
        config = RouterConfig.from_file(LADDER)
        models = [
            spec.model_copy(update={"api_base": f"http://127.0.0.1:{port}/v1"})
            for spec in config.models
        ]
        config = config.model_copy(update={"models": models})
        warmup = ["Say hello.", "Name a fruit."][: max(1, WARMUP // 2)]
        return {"weights": WEIGHTS, **measure(config, list(LOCAL_PROMPTS), None, warmup)}
    finally:
        local_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--setups", default="fake,local", help="comma-separated: fake, local")
    parser.add_argument("--questions", type=int, default=16, help="fake set-up questions")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.setups.split(",") if s.strip()]
    unknown = sorted(set(chosen) - {"fake", "local"})
    if unknown or args.questions < 1:
        parser.error(f"--setups: unknown {unknown}" if unknown else "--questions: at least 1")
    report: dict[str, Any] = {"max_tokens": MAX_TOKENS, "setups": {}}
    if "fake" in chosen:
        report["setups"]["fake"] = fake_setup(args.questions)
    if "local" in chosen:
        report["setups"]["local"] = local_setup()
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for name, setup in report["setups"].items():
        if "skipped" in setup:
            print(f"{name}: skipped ({setup['skipped']})")
            continue
        print(f"{name}:")
        for mode, s in setup["modes"].items():
            if "skipped" in s:
                print(f"  {mode:28} {s['skipped']}")
                continue
            if "ttft_p50_s" not in s:
                print(f"  {mode:28} no answers: {s['errors'][0]}")
                continue
            accuracy = f"  accuracy {s['accuracy']:.2f}" if "accuracy" in s else ""
            print(
                f"  {mode:28} TTFT p50 {s['ttft_p50_s']:.3f}s p95 {s['ttft_p95_s']:.3f}s  "
                f"total p50 {s['total_p50_s']:.3f}s p95 {s['total_p95_s']:.3f}s  "
                f"cost {s['cost_usd_per_request']:.3g}  escalated {s['escalation_rate']:.2f}"
                f"{accuracy}"
            )


if __name__ == "__main__":
    main()
