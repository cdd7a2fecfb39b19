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


def test_the_fake_pair_errs_independently() -> None:
    """Each model's right answers are its own draw per question: neither pair member's
    errors nest inside the other's, so running both can beat the better one alone, as with
    real models (a pair whose errors nested would give a calibrated cascade nothing to gain
    beyond cost, and a latency benchmark on it would measure a degenerate cascade)."""
    n = 2000
    prompts = [question(i)[0] for i in range(n, 2 * n)]  # the calibration rows of the benchmark
    small, large = ([answers_right(name, p, PAIR[name].accuracy) for p in prompts] for name in PAIR)
    for name, rights in zip(PAIR, (small, large), strict=True):
        assert abs(sum(rights) / n - PAIR[name].accuracy) < 0.05
    both = {
        (s, b): sum(1 for x in zip(small, large, strict=True) if x == (s, b))
        for s in (0, 1)
        for b in (0, 1)
    }
    expected = {
        (s, b): n
        * (PAIR["fake-small"].accuracy if s else 1 - PAIR["fake-small"].accuracy)
        * (PAIR["fake-large"].accuracy if b else 1 - PAIR["fake-large"].accuracy)
        for s, b in both
    }
    for cell, count in both.items():  # every cell within 4 binomial standard deviations
        assert abs(count - expected[cell]) < 4 * (expected[cell] ** 0.5) + 1, (cell, both)


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
