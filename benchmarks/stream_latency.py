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
``cascade_priors`` / ``hedge_priors@<weight>`` (the same without a calibrated profile: the
config's priors),
``hedge@low`` / ``hedge@high`` (latency priced at the two `WEIGHTS`, so the strategy trades
time and the driver hedges when the objective says so), ``early_commit@<weight>`` (a first
draft whose prefix makes acceptance likely streams from there on; no hedging),
``both@<weight>`` (early commit and hedging), and each model alone.

Every cascade mode serves a profile fitted the way a user would: `run_calibration` on
separate training prompts (never the measured ones), once per latency weight (early
commit's labels are the engine's own decisions, which the weights change; the responses are
cached, so the models answer each training prompt once). Each cascade engine is warmed with
`WARMUP` requests first (its latency model learns the models' speeds; LiteLLM's one-off
set-up is not a model's latency). Each set-up's top-level figures (``ttft_ratio``,
``total_ratio``, ``accuracy``, ...) compare early commit plus hedging at the low weight
(``both@low``, the chat-UI setting) with the big model alone; ``by_weight`` has both weights.
``extra_cost_share`` is the share of its cost spent on cancelled hedges, and
``committed_would_have_escalated`` the share of its early commits whose whole draft the
cascade would have escalated.
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

from cascade_core.calibrate import run_calibration  # noqa: E402
from cascade_core.engine import CascadeEngine, Finished, RouterConfig, TextDelta  # noqa: E402
from cascade_core.errors import CascadeError, InvalidInputError  # noqa: E402

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
# Fake set-up: calibration questions (question(TRAIN_OFFSET + i)), apart from the measured
# (0..) and the warm-up (1000..) ones.
TRAIN_QUESTIONS = 48
TRAIN_OFFSET = 2000
# Local set-up: the example dev set, minus rows asking what a measured prompt asks.
LOCAL_DEV_SET = ROOT / "examples" / "dev-set.jsonl"
LOCAL_MEASURED_IDS = {"capital-france"}
EARLY_COMMIT = {"enabled": True}  # the defaults: min_tokens 8, p_accept 0.95
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
    would = result.trace.would_have_escalated
    return {
        "ttft_s": first if first is not None else total,
        "total_s": total,
        "content": result.content,
        "cost_usd": result.cost_usd,
        "hedge_cost_usd": sum(r.cost_usd for r in result.trace.runs if r.status == "cancelled"),
        "hedged": any(r.hedged for r in result.trace.runs),
        "escalated": len(ran) > 1,
        "committed": any(d.startswith("early commit:") for d in result.trace.decisions),
        "would_have_escalated": bool(would),
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
        "commit_rate": round(float(np.mean([r["committed"] for r in rows])), 3),
    }
    committed = [r for r in rows if r["committed"]]
    summary["committed_would_have_escalated"] = (
        round(float(np.mean([r["would_have_escalated"] for r in committed])), 3)
        if committed
        else None
    )
    if truth is not None:
        right = [
            "error" not in r and bool(re.search(rf"\b{answer}\b", r["content"]))
            for r, answer in zip(all_rows, truth, strict=True)
        ]
        summary["accuracy"] = round(float(np.mean(right)), 3)
        picked = [ok for ok, r in zip(right, all_rows, strict=True) if r.get("committed")]
        summary["committed_accuracy"] = round(float(np.mean(picked)), 3) if picked else None
    return summary


def calibrated_profiles(
    config: RouterConfig, dev_rows: list[dict[str, Any]], folder: Path, grader: str
) -> tuple[dict[str, Path], dict[str, Any]]:
    """A profile per latency weight (``none``: time is free), fitted by `run_calibration` on
    ``dev_rows`` as a user would (one response cache, so each model answers a row once),
    and per weight the gist of calibrate's report on P(accept | prefix)."""
    dev = folder / "train.jsonl"
    dev.write_text("".join(json.dumps(row) + "\n" for row in dev_rows), encoding="utf-8")
    cache = folder / "train.cache.sqlite"
    profiles, fits = {}, {}
    for name, weights in {"none": {}, **WEIGHTS}.items():
        profiles[name] = folder / f"profile-{name}.json"
        report = run_calibration(
            config.replace(latency_weights=weights),
            profiles[name],
            data=dev,
            cache_path=cache,
            grader=grader,
            progress=False,
        )
        fits[name] = {
            model: {
                key: entry.get(key)
                for key in ("kind", "reason", "drafts", "accept_rate", "p_accept", "cv")
                if key in entry
            }
            | {
                key: (entry.get("commit_rule") or {}).get(key)
                for key in ("committed_share", "would_have_escalated_share", "quality_cost")
            }
            for model, entry in report.early_commit.get("models", {}).items()
        }
    return profiles, fits


def measure(
    config: RouterConfig,
    prompts: list[str],
    truth: list[int] | None,
    warmup: list[str],
    profiles: dict[str, Path],
) -> dict[str, Any]:
    """Every mode, interleaved per prompt so that a slow moment of the machine hits every
    mode alike, and the summary of early commit plus hedging at each weight."""
    today = CascadeEngine(config.replace(profile=str(profiles["none"])))
    # The same ladder without a profile (the config's priors): what an uncalibrated user
    # runs; it can hedge, but not commit early (no P(accept | prefix) without calibration).
    modes: dict[str, CascadeEngine] = {"cascade_priors": CascadeEngine(config)}
    modes |= {
        f"hedge_priors@{name}": CascadeEngine(config.replace(latency_weights=weights))
        for name, weights in WEIGHTS.items()
    }
    modes["cascade_today"] = today
    for name, weights in WEIGHTS.items():
        priced = config.replace(profile=str(profiles[name]), latency_weights=weights)
        modes[f"hedge@{name}"] = CascadeEngine(priced)
        modes[f"early_commit@{name}"] = CascadeEngine(
            priced.replace(hedge=False, early_commit=EARLY_COMMIT)
        )
        modes[f"both@{name}"] = CascadeEngine(priced.replace(early_commit=EARLY_COMMIT))
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
        **summary_against("both@low", summaries[big], summaries),
        "by_weight": {
            name: summary_against(f"both@{name}", summaries[big], summaries) for name in WEIGHTS
        },
        "modes": summaries,
    }


def summary_against(
    name: str, big: dict[str, Any], summaries: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The issue's per-set-up summary: early commit plus hedging against the big model alone."""
    mode = summaries[name]
    if "ttft_p50_s" not in mode or "ttft_p50_s" not in big:
        return {"skipped": "a mode got no answers"}
    today = summaries["cascade_today"]
    cost = mode["cost_usd_per_request"]
    return {
        "mode": name,
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
        "commit_rate": mode["commit_rate"],
        "committed_would_have_escalated": mode["committed_would_have_escalated"],
    }


def fake_setup(n_questions: int) -> dict[str, Any]:
    questions = [question(i) for i in range(n_questions)]
    with FakeLatencyProvider() as provider:
        models = ladder_models(provider, {name: PRICES[name] for name in PAIR})
        config = RouterConfig.from_dict(
            {"models": models, "budget": {"lambda": FAKE_LAMBDA}, "num_retries": 0}
        )
        warmup = [question(1000 + i)[0] for i in range(WARMUP)]
        train = []
        for i in range(TRAIN_QUESTIONS):
            prompt, answer = question(TRAIN_OFFSET + i)
            row = {"id": f"train-{i}", "prompt": prompt, "reference": rf"\b{answer}\b"}
            train.append({**row, "params": {"max_tokens": MAX_TOKENS}})
        with tempfile.TemporaryDirectory(prefix="cr-latency-fit-") as folder:
            profiles, fits = calibrated_profiles(config, train, Path(folder), grader="regex")
            measured = measure(
                config, [q for q, _ in questions], [a for _, a in questions], warmup, profiles
            )
    return {
        "models": {
            name: {"ttft_s": p.ttft_s, "tokens_per_s": p.tokens_per_s, "accuracy": p.accuracy}
            for name, p in PAIR.items()
        },
        "lambda": FAKE_LAMBDA,
        "weights": WEIGHTS,
        "training_questions": TRAIN_QUESTIONS,
        "prefix_model": fits,
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
        train = []
        for line in LOCAL_DEV_SET.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row["id"] not in LOCAL_MEASURED_IDS:  # answers as long as the measured ones
                train.append({**row, "params": {**row.get("params", {}), "max_tokens": MAX_TOKENS}})
        with tempfile.TemporaryDirectory(prefix="cr-latency-fit-") as folder:
            try:
                profiles, fits = calibrated_profiles(config, train, Path(folder), grader="exact")
            except InvalidInputError as error:  # too few rows to fit, no logprobs: say so
                return {"skipped": f"calibration failed: {str(error)[:200]}"}
            measured = measure(config, list(LOCAL_PROMPTS), None, warmup, profiles)
        return {
            "weights": WEIGHTS,
            "training_prompts": len(train),
            "prefix_model": fits,
            **measured,
        }
    finally:
        local_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--setups", default="fake,local", help="comma-separated: fake, local")
    parser.add_argument("--questions", type=int, default=32, help="fake set-up questions")
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
