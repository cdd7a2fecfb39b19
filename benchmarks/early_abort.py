"""Time and tokens saved by aborting hopeless drafts early, on the real local ladder.

Every prompt is streamed through the cascade twice, with early abort on and off, against the
same llama.cpp server (started here on a free port, stopped at the end). A draft is aborted
when its streamed logprobs make escalation certain even if every remaining token were
certain. An aborted draft is no longer an answer candidate, so the script also counts the
requests whose accepted answer differs between the two runs.

    python benchmarks/early_abort.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from cascade_core.engine import CascadeEngine, Finished, RouterConfig
from cascade_core.local import server as local_server

LADDER = Path(__file__).resolve().parent.parent / "examples" / "local-ladder.yaml"
PROMPTS = (
    "Write a haiku about the sea.",
    "Explain photosynthesis to a child.",
    "List three uses of copper.",
    "Describe the water cycle.",
    "What is a prime number? Give an example.",
    "Tell me a fun fact about octopuses.",
    "How do vaccines work?",
    "Summarise the plot of Romeo and Juliet.",
    "What causes the seasons on Earth?",
    "Give two tips for learning a language.",
)
MAX_TOKENS = 64


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ladder_config(port: int, early_abort: bool) -> RouterConfig:
    config = RouterConfig.from_file(LADDER)
    models = [
        spec.model_copy(update={"api_base": f"http://127.0.0.1:{port}/v1"})
        for spec in config.models
    ]
    return config.model_copy(update={"models": models, "early_abort": early_abort})


def stream_all(engine: CascadeEngine) -> dict:
    tokens, aborted, seconds, answers = 0, 0, 0.0, []
    for prompt in PROMPTS:
        started = time.perf_counter()
        messages = [{"role": "user", "content": prompt}]
        events = list(engine.stream(messages, max_tokens=MAX_TOKENS, temperature=0.0))
        seconds += time.perf_counter() - started
        result = next(e.result for e in events if isinstance(e, Finished))
        tokens += result.trace.completion_tokens
        aborted += sum(run.status == "aborted" for run in result.trace.runs)
        answers.append((result.model, result.content))
    return {"completion_tokens": tokens, "aborted": aborted, "seconds": seconds, "answers": answers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("CASCADE_ROUTER_STATE_DIR", tempfile.mkdtemp(prefix="cr-abort-"))
    port = free_port()
    local_server.start(port=port)
    try:
        stream_all(CascadeEngine(ladder_config(port, True)))  # warm both models' caches
        with_abort = stream_all(CascadeEngine(ladder_config(port, True)))
        without = stream_all(CascadeEngine(ladder_config(port, False)))
    finally:
        local_server.stop()
    report = {
        "requests": len(PROMPTS),
        "max_tokens": MAX_TOKENS,
        "drafts_aborted": with_abort["aborted"],
        "completion_tokens_with_abort": with_abort["completion_tokens"],
        "completion_tokens_without_abort": without["completion_tokens"],
        "tokens_saved": without["completion_tokens"] - with_abort["completion_tokens"],
        "seconds_with_abort": round(with_abort["seconds"], 2),
        "seconds_without_abort": round(without["seconds"], 2),
        "seconds_saved": round(without["seconds"] - with_abort["seconds"], 2),
        # An aborted draft is no answer candidate: where the finished draft would have beaten
        # the escalated model's answer, the accepted answer differs.
        "answers_differing": sum(
            a != b for a, b in zip(with_abort["answers"], without["answers"], strict=True)
        ),
    }
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:>32}: {value}")


if __name__ == "__main__":
    main()
