"""The streaming-latency benchmark runs end to end on the FAKE latency provider pair and its
JSON says what it claims (no timing thresholds: structure, ordering and ranges only)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import litellm
from fake_latency_provider import PAIR, FakeLatencyProvider, answers_right, question

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ("low", "high")


def test_the_fake_pair_streams_its_scripted_answers() -> None:
    prompt, answer = question(3)
    with FakeLatencyProvider() as provider:
        for name, profile in PAIR.items():
            chunks = list(
                litellm.completion(
                    model=f"openai/{name}",
                    api_base=provider.base_url,
                    api_key="fake",
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=5,
                    stream=True,
                )
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            right = answers_right(name, prompt, profile.accuracy)
            assert text.split(".")[0].strip() == str(answer if right else answer + 1)
            assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 5


def test_benchmark_reports_every_mode_that_exists() -> None:
    command = ["benchmarks/stream_latency.py", "--json", "--setups", "fake", "--questions", "3"]
    done = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    fake = json.loads(done.stdout)["setups"]["fake"]
    assert set(fake["modes"]) == {
        "cascade_today",
        "cascade_priors",
        *(
            f"{mode}@{weight}"
            for mode in ("hedge_priors", "hedge", "early_commit", "both")
            for weight in WEIGHTS
        ),
        "alone:fake-small",
        "alone:fake-large",
    }
    for key in ("ttft_ratio", "total_ratio", "accuracy", "accuracy_cascade_today"):
        assert fake[key] > 0
    assert 0 <= fake["extra_cost_share"] < 1
    assert set(fake["by_weight"]) == set(WEIGHTS)
    assert fake["mode"] == "both@low" and fake["by_weight"]["high"]["mode"] == "both@high"
    assert 0 <= fake["commit_rate"] <= 1
    for mode, summary in fake["modes"].items():
        assert summary["requests"] == 3
        assert 0 <= summary["ttft_p50_s"] <= summary["ttft_p95_s"]
        assert 0 <= summary["total_p50_s"] <= summary["total_p95_s"]
        assert summary["ttft_p50_s"] <= summary["total_p95_s"]
        assert 0 <= summary["accuracy"] <= 1 and summary["cost_usd_per_request"] > 0
        if mode.startswith(("alone:", "cascade_")):
            assert summary["hedge_rate"] == 0 and summary["hedge_cost_usd_per_request"] == 0
        if mode.startswith("alone:"):
            assert summary["escalation_rate"] == 0
        if not mode.startswith(("early_commit", "both")):
            assert summary["commit_rate"] == 0 and summary["committed_would_have_escalated"] is None
        elif summary["commit_rate"] > 0:
            assert 0 <= summary["committed_would_have_escalated"] <= 1


def test_an_unknown_setup_is_one_line_and_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/stream_latency.py", "--setups", "cloud"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "--setups: unknown ['cloud']" in done.stderr
