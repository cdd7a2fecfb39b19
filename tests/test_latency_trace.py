"""Every driver times every call into the trace, against the FAKE OpenAI server over HTTP.

No timing thresholds: the tests assert that the times are there, non-negative and ordered
(first token no later than the whole call), that a whole call's first token is its answer,
and that the engine's latency model turns the first request's trace into the second
request's expectations.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import pytest
from fake_openai_server import FakeModel, FakeOpenAIServer
from stream_drain import adrain, drain

from cascade_core.engine import CascadeEngine, CascadeResult, ModelRun

MESSAGES = [{"role": "user", "content": "What is the answer?"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    models = {
        "fake-small": FakeModel(tokens=tuple(f" s{i}" for i in range(10)), logprob=-1.5),
        "fake-large": FakeModel(tokens=tuple(f" L{i}" for i in range(10)), logprob=-0.05),
        "fake-down": FakeModel(fault="http_500"),
    }
    with FakeOpenAIServer(models) as server:
        yield server


def _engine(fake: FakeOpenAIServer, *names: str) -> CascadeEngine:
    rungs = [
        {
            "name": name,
            "model": f"openai/{name}",
            "api_base": fake.base_url,
            "input_cost_per_token": 1e-6 * (i + 1),
            "output_cost_per_token": 2e-6 * (i + 1),
            "supports_logprobs": True,
        }
        for i, name in enumerate(names)
    ]
    # lambda 0: cost is free, so every model runs (and a streamed draft is aborted early)
    return CascadeEngine(models=rungs, budget={"lambda": 0}, num_retries=0, timeout_s=30)


def _run_all(engine: CascadeEngine, driver: str) -> CascadeResult:
    if driver == "run":
        return engine.run(MESSAGES, max_tokens=10)
    if driver == "arun":
        return asyncio.run(engine.arun(MESSAGES, max_tokens=10))
    if driver == "stream":
        return drain(engine.stream(MESSAGES, max_tokens=10))[1]
    return asyncio.run(adrain(engine.astream(MESSAGES, max_tokens=10)))[1]


def _assert_timed(run: ModelRun, streamed: bool) -> None:
    assert run.streamed is streamed
    assert math.isfinite(run.total_s) and run.total_s > 0
    assert run.latency_ms == run.total_s * 1000
    if run.status == "failed":
        assert run.ttft_s is None
        return
    assert run.ttft_s is not None and 0 <= run.ttft_s <= run.total_s
    if not streamed:
        assert run.ttft_s == run.total_s  # the first token arrives with the whole answer


DRIVERS = [("run", False), ("arun", False), ("stream", True), ("astream", True)]


@pytest.mark.parametrize(("driver", "streamed"), DRIVERS)
def test_every_call_is_timed_and_learned(
    fake: FakeOpenAIServer, driver: str, streamed: bool
) -> None:
    engine = _engine(fake, "fake-small", "fake-large")
    first = _run_all(engine, driver)
    ran = [r for r in first.trace.runs if r.status != "skipped"]
    assert [r.model for r in ran] == ["fake-small", "fake-large"]
    for run in ran:
        _assert_timed(run, streamed)
        assert run.expected_ttft_s is None and run.expected_total_s is None  # nothing seen yet
    if streamed:
        assert ran[0].status == "aborted"  # a stopped draft still has its first token timed

    second = _run_all(engine, driver)
    for run in (r for r in second.trace.runs if r.status != "skipped"):
        _assert_timed(run, streamed)
        assert run.expected_ttft_s is not None and run.expected_total_s is not None
        assert 0 <= run.expected_ttft_s <= run.expected_total_s
    learned = engine.parts.latency.snapshot()  # type: ignore[union-attr]
    assert all(m.observations == 2 for m in learned.values())


@pytest.mark.parametrize(("driver", "streamed"), DRIVERS)
def test_a_failed_call_is_timed_but_not_learned(
    fake: FakeOpenAIServer, driver: str, streamed: bool
) -> None:
    engine = _engine(fake, "fake-down", "fake-large")
    result = _run_all(engine, driver)
    down = result.trace.runs[0]
    assert down.model == "fake-down" and down.status == "failed"
    _assert_timed(down, streamed)
    assert engine.parts.latency.snapshot()["fake-down"].observations == 0  # type: ignore[union-attr]
    assert result.trace.as_dict()["runs"][0]["latency_ms"] == down.latency_ms
