"""Cascading inside agents: session policies on scripted tool-using conversations.

50 scripted conversations of 8 user turns each go through a LangChain ``create_agent``
(LangGraph) agent whose model is ``CascadeRouterChatModel``, with the conversation's id as the
graph's ``thread_id``, once per session configuration. Every user turn needs 2 or 3 tool calls
(``lookup``) before the agent can answer, so a turn is 3 or 4 model requests.

The ladder is gpt-4.1-nano -> gpt-4.1 at LiteLLM's prices (cached input 75% off), served by
the FAKE caching provider (tests/fake_caching_provider.py) in this process: it caches prompt
prefixes per model, reports ``prompt_tokens_details.cached_tokens`` like OpenAI and bills every
call with its own token count. Its scripted models: on a turn marked hard, the small model's
first tool call has broken JSON arguments (a detectable failure: the cascade escalates); every
other step both models do right. A turn succeeds when its final answer reports every value the
tools returned.

Two workloads: ``homogeneous`` (difficulty is a property of the task: 30 easy conversations,
20 hard ones) and ``mixed`` (each turn is hard with probability 0.3, independently). Per
configuration: total cost (the engine's, checked against the fake's bill), cached-token share,
model switches inside tool loops (an answer to a tool result given by another model than the
one that called the tool), sessions over their cap, decision overhead (the wall time of each
model request minus its provider calls), model calls and escalations, task success.

    python benchmarks/agent_sessions.py --json
    python benchmarks/agent_sessions.py --workload mixed --conversations 20
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import litellm  # noqa: E402
from fake_caching_provider import FakeCachingProvider, Prices  # noqa: E402
from langchain.agents import create_agent  # noqa: E402
from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.messages import AIMessage, ToolMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from scripted_openai_server import Reply  # noqa: E402

from cascade_core.engine import CascadeEngine  # noqa: E402
from cascade_core.errors import CascadeError  # noqa: E402
from langchain_cascade import CascadeRouterChatModel  # noqa: E402

SMALL, BIG = "gpt-4.1-nano", "gpt-4.1"
TURNS = 8
SYSTEM_PROMPT = (
    "You are a research agent. Use the lookup tool for every fact you report; never guess. "
    "Report each value exactly as the tool returned it, in the order it was asked for. "
) * 12
# Settings of the strategy for this ladder: lambda prices cost in quality points per USD; the
# priors (and their spread) stand in for a fitted profile. At these values a valid tool call
# of the small model is kept, a broken one escalates, and a passing big answer is not
# second-guessed by the small model.
STRATEGY = {"name": "cascade_routing"}
LAMBDA = 150.0
PRIOR_STD = 0.1
PRIORS = {SMALL: 0.7, BIG: 0.8}
GENEROUS_CAP = 0.5  # USD per session: far above any conversation here
TIGHT_CAP = 0.01  # USD per session: binding for the hard conversations

CONFIGS: dict[str, dict[str, Any]] = {
    "per_turn": {"session": {"policy": "per_turn"}},
    "sticky": {"session": {"policy": "sticky"}},
    "escalate_only": {"session": {"policy": "escalate_only"}},
    "per_turn+tool_loop=decide": {"session": {"policy": "per_turn", "tool_loop": "decide"}},
    "sticky+tight_cap": {"session": {"policy": "sticky"}, "cap": TIGHT_CAP},
}
_KEY = re.compile(r"k\d+_\d+_\d+")
_VALUE = re.compile(r"is (V[0-9a-f]{8})")


def value_of(key: str) -> str:
    return "V" + hashlib.sha256(key.encode()).hexdigest()[:8]


@tool
def lookup(key: str) -> str:
    """Look up the value stored under a key."""
    filler = "The archive record was checked against two independent sources. " * 6
    return f"The value of {key} is {value_of(key)}. {filler}"


# -- the scripted models ----------------------------------------------------------------------


def _turn_state(messages: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """The last user turn's text and the tool results given since it."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "user":
            results = [str(m["content"]) for m in messages[i + 1 :] if m["role"] == "tool"]
            return str(messages[i]["content"]), results
    return "", []


def script(model: str, body: dict[str, Any]) -> Reply:
    text, results = _turn_state(body["messages"])
    keys = _KEY.findall(text)
    step = len(results)
    if step < len(keys):
        digest = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode())
        call_id = f"call_{model[-4:]}{digest.hexdigest()[:16]}"
        arguments = json.dumps({"key": keys[step]})
        if model == SMALL and step == 0 and "[hard]" in text:
            arguments = arguments[: len(arguments) // 2]  # broken JSON: fails schema checks
        return Reply(tool_calls=[{"name": "lookup", "arguments": arguments, "id": call_id}])
    values = [v for r in results for v in _VALUE.findall(r)]
    return Reply("Values: " + ", ".join(values) + ".", logprob=-0.05)


def conversations(workload: str, n: int, seed: int) -> list[list[tuple[str, list[str]]]]:
    """Per conversation, its user turns: (prompt, keys whose values the answer must give)."""
    rng = random.Random(seed)
    hard_conversations = set(rng.sample(range(n), k=round(n * 0.4)))
    out = []
    for c in range(n):
        turns = []
        for t in range(TURNS):
            keys = [f"k{c}_{t}_{j}" for j in range(rng.choice((2, 3)))]
            hard = c in hard_conversations if workload == "homogeneous" else rng.random() < 0.3
            tag = " [hard]" if hard else ""
            prompt = f"Task {c}.{t}{tag}: look up {', '.join(keys)} and report their values."
            turns.append((prompt, keys))
        out.append(turns)
    return out


# -- measuring ----------------------------------------------------------------------------------


class RequestClock(BaseCallbackHandler):
    """Wall time of each model request as LangChain sees it, start to end."""

    def __init__(self) -> None:
        self.started: dict[Any, float] = {}
        self.durations: list[float] = []

    def on_chat_model_start(self, serialized, messages, *, run_id, **kwargs) -> None:
        self.started[run_id] = time.perf_counter()

    def on_llm_end(self, response, *, run_id, **kwargs) -> None:
        self.durations.append(time.perf_counter() - self.started.pop(run_id))


def _prices() -> dict[str, Prices]:
    prices = {}
    for name in (SMALL, BIG):
        info = litellm.get_model_info(f"openai/{name}")
        prices[name] = Prices(
            info["input_cost_per_token"],
            info["cache_read_input_token_cost"],
            info["output_cost_per_token"],
        )
    return prices


def _engine(api_base: str, config: dict[str, Any]) -> CascadeEngine:
    models = [
        {"model": f"openai/{name}", "name": name, "api_base": api_base,
         "supports_logprobs": True, "prior_quality": PRIORS[name]}
        for name in (SMALL, BIG)
    ]  # fmt: skip
    return CascadeEngine(
        models=models,
        strategy=STRATEGY,
        budget={"lambda": LAMBDA, "max_cost_usd_per_session": config.get("cap", GENEROUS_CAP)},
        prior_std=PRIOR_STD,
        num_retries=0,
        session=config["session"],
    )


def _switches(messages: list[Any]) -> tuple[int, int]:
    """Answers to a tool result given by another model than the one that called the tool:
    all of them, and those where a cost cap left the issuer no room (its run was skipped for
    the cap, so continuity was released and the history converted for the other model)."""
    switches = forced = 0
    issuer = None
    for message in messages:
        if isinstance(message, AIMessage):
            model = message.response_metadata.get("model_name")
            if issuer is not None and model != issuer:
                switches += 1
                runs = message.response_metadata["cascade"]["runs"]
                forced += any(
                    r["model"] == issuer and r["status"] == "skipped" and "cap" in r["reason"]
                    for r in runs
                )
            issuer = model if message.tool_calls else None
        elif not isinstance(message, ToolMessage):
            issuer = None
    return switches, forced


def run_config(
    name: str, config: dict[str, Any], workload: list[list[tuple[str, list[str]]]]
) -> dict[str, Any]:
    fake = FakeCachingProvider(script, _prices())
    with fake:
        engine = _engine(fake.api_base, config)
        model = CascadeRouterChatModel(engine=engine, max_tokens=64, temperature=0.0)
        agent = create_agent(model, tools=[lookup], system_prompt=SYSTEM_PROMPT,
                             checkpointer=InMemorySaver())  # fmt: skip
        clock = RequestClock()
        cost = calls = requests = escalations = switches = forced = 0
        succeeded = refused = 0
        overheads: list[float] = []
        per_turn_overhead: list[float] = []
        session_spend: dict[str, float] = {}
        for c, turns in enumerate(workload):
            thread = f"conversation-{c}"
            config_lc = {"configurable": {"thread_id": thread}, "callbacks": [clock]}
            messages: list[Any] = []
            for prompt, keys in turns:
                before = len(clock.durations)
                try:
                    state = agent.invoke({"messages": [{"role": "user", "content": prompt}]},
                                         config_lc)  # fmt: skip
                except CascadeError:  # the session cap left nothing for this turn
                    refused += 1
                    continue
                new = state["messages"][len(messages) :]
                messages = state["messages"]
                answers = [m for m in new if isinstance(m, AIMessage)]
                turn_overhead = 0.0
                for answer, wall in zip(answers, clock.durations[before:], strict=True):
                    trace = answer.response_metadata["cascade"]
                    ran = [r for r in trace["runs"] if r["status"] != "skipped"]
                    own = wall - sum(r["latency_ms"] for r in ran) / 1000
                    overheads.append(own)
                    turn_overhead += own
                    cost += answer.response_metadata["cost_usd"]
                    calls += len(ran)
                    requests += 1
                    escalations += len(ran) > 1
                per_turn_overhead.append(turn_overhead)
                final = answers[-1].content if answers else ""
                succeeded += all(value_of(k) in final for k in keys)
                turn_switches, turn_forced = _switches(new)
                switches += turn_switches
                forced += turn_forced
            session_spend[thread] = engine.sessions.load(thread).spent_usd
        cap = config.get("cap", GENEROUS_CAP)
        prompt_tokens = sum(b.prompt_tokens for b in fake.ledger)
        n_turns = sum(len(t) for t in workload)
        return {
            "config": name,
            "policy": config["session"]["policy"],
            "tool_loop": config["session"].get("tool_loop", "continue"),
            "cap_usd_per_session": cap,
            "total_cost_usd": round(cost, 6),
            "provider_billed_usd": round(fake.total_billed(), 6),
            "cost_equals_provider_bill": abs(cost - fake.total_billed())
            <= 1e-9 * max(1.0, fake.total_billed()),
            "cached_token_share": round(
                sum(b.cached_tokens for b in fake.ledger) / max(1, prompt_tokens), 4
            ),
            "tool_loop_switches": switches,
            "tool_loop_switches_forced_by_cap": forced,
            "sessions_over_cap": sum(s > cap * (1 + 1e-9) for s in session_spend.values()),
            "max_session_spend_usd": round(max(session_spend.values()), 6),
            "turns": n_turns,
            "turns_refused_by_cap": refused,
            "task_success": round(succeeded / n_turns, 4),
            "model_requests": requests,
            "model_calls": calls,
            "escalated_requests": escalations,
            "decision_overhead_ms_per_request_median": round(
                1000 * statistics.median(overheads), 2
            ),
            "decision_overhead_ms_per_turn_mean": round(
                1000 * statistics.fmean(per_turn_overhead), 2
            ),
        }


def acceptance(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue #16's acceptance on one workload: ``sticky`` cheaper than ``per_turn`` at the
    same task success; no model switch inside a tool loop unless the configuration opts out
    (``tool_loop=decide``) or a cost cap left the issuer no room; no session over its cap; the
    engine's cost equal to the provider's bill."""
    by_name = {row["config"]: row for row in rows}
    out: dict[str, Any] = {}
    if "per_turn" in by_name and "sticky" in by_name:
        per_turn, sticky = by_name["per_turn"], by_name["sticky"]
        out["sticky_vs_per_turn_cost"] = round(
            sticky["total_cost_usd"] / per_turn["total_cost_usd"], 4
        )
        out["sticky_cheaper_with_same_success"] = (
            sticky["total_cost_usd"] < per_turn["total_cost_usd"]
            and sticky["task_success"] == per_turn["task_success"]
        )
    out["unforced_tool_loop_switches_without_opt_out"] = sum(
        row["tool_loop_switches"] - row["tool_loop_switches_forced_by_cap"]
        for row in rows
        if row["tool_loop"] == "continue"
    )
    out["sessions_over_cap"] = sum(row["sessions_over_cap"] for row in rows)
    out["cost_equals_provider_bill"] = all(row["cost_equals_provider_bill"] for row in rows)
    return out


def _line(row: dict[str, Any]) -> str:
    return (
        f"  {row['config']:<28} cost ${row['total_cost_usd']:.4f}  "
        f"cached {row['cached_token_share']:.0%}  switches {row['tool_loop_switches']} "
        f"({row['tool_loop_switches_forced_by_cap']} forced by cap)  "
        f"over cap {row['sessions_over_cap']}  success {row['task_success']:.0%}  "
        f"overhead {row['decision_overhead_ms_per_turn_mean']:.1f} ms/turn"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--workload", choices=["homogeneous", "mixed", "both"], default="both")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--configs", nargs="*", choices=sorted(CONFIGS), default=list(CONFIGS))
    args = parser.parse_args()
    litellm.suppress_debug_info = True
    workloads = ["homogeneous", "mixed"] if args.workload == "both" else [args.workload]
    report: dict[str, Any] = {
        "conversations": args.conversations,
        "turns_per_conversation": TURNS,
        "ladder": [SMALL, BIG],
        "lambda": LAMBDA,
        "workloads": {},
    }
    for workload in workloads:
        convs = conversations(workload, args.conversations, args.seed)
        # One discarded conversation first, so the first configuration does not pay for
        # imports and LiteLLM's lazy set-up in its overhead figures.
        run_config("warm-up", CONFIGS["per_turn"], convs[:1])
        rows = [run_config(name, CONFIGS[name], convs) for name in args.configs]
        summary: dict[str, Any] = {"results": rows, "acceptance": acceptance(rows)}
        report["workloads"][workload] = summary
        if not args.json:
            print(f"\n{workload}:")
            for row in rows:
                print(_line(row))
            print(f"  acceptance: {json.dumps(summary['acceptance'])}")
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
