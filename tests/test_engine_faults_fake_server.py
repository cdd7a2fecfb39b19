"""Fault injection: >= 1,000 requests through the real engine and LiteLLM's HTTP path against
a FAKE OpenAI-compatible server that fails at random (500, 429, timeouts, malformed JSON,
missing logprobs, empty or truncated answers), and echoes the API key in its error bodies.

Every request must end in an answer or in the one documented error, the cost cap must hold,
and the key must never appear in a trace, an exception or a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading

import pytest

from cascade_core.engine import CascadeEngine, Finished, RouterConfig
from cascade_core.errors import AllModelsFailedError
from tests.scripted_openai_server import Fault, Reply, ScriptedServer

SECRET = "sk-fake-SECRET-0123456789abcdef"
KEY_VARIABLE = "FAKE_PROVIDER_API_KEY"
CLIENT_TIMEOUT_S = 0.5
COST_CAP_USD = 0.004
FAULTS = (
    ("ok", 0.40),
    ("status_500", 0.12),
    ("status_429", 0.10),
    ("timeout", 0.03),
    ("malformed", 0.10),
    ("no_logprobs", 0.10),
    ("empty", 0.08),
    ("truncated", 0.07),
)


class FakeFaultyScript:
    """Seeded random faults; thread-safe because the fake server answers on many threads."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {name: 0 for name, _ in FAULTS}

    def __call__(self, model: str, body: dict) -> Reply | Fault:
        with self._lock:
            kind = self._random.choices([n for n, _ in FAULTS], [w for _, w in FAULTS])[0]
            confidence = self._random.uniform(-2.0, -0.01)
            self.counts[kind] += 1
        answer = Reply(content=f"{model} says forty two", logprob=confidence)
        return {
            "ok": answer,
            "status_500": Fault(status=500),
            "status_429": Fault(status=429),
            "timeout": Fault(delay_s=CLIENT_TIMEOUT_S + 0.3, reply=answer),
            "malformed": Fault(malformed=True),
            "no_logprobs": Reply(content=answer.content, with_logprobs=False),
            "empty": Reply(content=""),
            "truncated": Reply(content=answer.content, logprob=confidence, finish_reason="length"),
        }[kind]


@pytest.fixture
def fake_server():
    script = FakeFaultyScript(seed=7)
    with ScriptedServer(script) as server:
        yield server, script


@pytest.fixture
def engine(fake_server, monkeypatch):
    server, _ = fake_server
    monkeypatch.setenv(KEY_VARIABLE, SECRET)
    models = [
        {
            "name": name,
            "model": f"openai/{name}",
            "api_base": server.api_base,
            "api_key_env": KEY_VARIABLE,
            "input_cost_per_token": price,
            "output_cost_per_token": 2 * price,
            "prior_quality": prior,
        }
        for name, price, prior in (
            ("fake-small", 1e-6, 0.5),
            ("fake-medium", 5e-6, 0.65),
            ("fake-large", 2.5e-5, 0.8),
        )
    ]
    config = RouterConfig.from_dict(
        {
            "models": models,
            "budget": {"lambda": 100.0, "max_cost_usd": COST_CAP_USD},
            "num_retries": 1,
            "timeout_s": CLIENT_TIMEOUT_S,
        }
    )
    return CascadeEngine(config)


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question {i}: what is six times seven?"}]


def _check(outcome, cost_cap: float) -> dict:
    """One request's outcome: an answer within the cap, or the documented error."""
    if isinstance(outcome, AllModelsFailedError):
        text = str(outcome) + json.dumps(outcome.errors)
        assert SECRET not in text
        return {"kind": "all_failed", "text": text}
    assert not isinstance(outcome, BaseException), repr(outcome)
    trace = outcome.trace
    assert trace.cost_usd <= cost_cap + 1e-15
    assert outcome.model in {"fake-small", "fake-medium", "fake-large"}
    dumped = json.dumps(trace.as_dict())
    assert SECRET not in dumped
    return {"kind": "answered", "text": dumped}


def test_a_thousand_faulty_requests_are_each_answered_or_refused_cleanly(
    engine, fake_server, caplog, capfd
):
    outcomes: list = []
    for i in range(500):  # blocking; provider libraries log at DEBUG for the first 100
        caplog.set_level(logging.DEBUG if i < 100 else logging.INFO)
        try:
            outcomes.append(engine.run(_messages(i), max_tokens=16))
        except AllModelsFailedError as error:
            outcomes.append(error)

    async def many() -> list:
        limit = asyncio.Semaphore(25)

        async def one(i: int):
            async with limit:
                try:
                    return await engine.arun(_messages(i), max_tokens=16)
                except AllModelsFailedError as error:
                    return error

        return await asyncio.gather(*(one(i) for i in range(500, 900)))

    outcomes += asyncio.run(many())
    for i in range(900, 1000):  # streamed
        try:
            events = list(engine.stream(_messages(i), max_tokens=16))
            finished = events[-1]
            assert isinstance(finished, Finished)
            streamed = "".join(e.text for e in events[:-1])
            assert streamed == finished.result.content
            outcomes.append(finished.result)
        except AllModelsFailedError as error:
            outcomes.append(error)

    assert len(outcomes) == 1000
    checked = [_check(outcome, COST_CAP_USD) for outcome in outcomes]
    answered = sum(c["kind"] == "answered" for c in checked)
    assert answered > 900  # three models failing together is rare at these fault rates
    _, script = fake_server
    assert all(count > 0 for count in script.counts.values()), script.counts
    captured = capfd.readouterr()
    assert SECRET not in caplog.text
    assert SECRET not in captured.out + captured.err


def test_errors_echoing_the_key_are_redacted(fake_server, monkeypatch):
    server, _ = fake_server
    monkeypatch.setenv(KEY_VARIABLE, SECRET)
    server.script = lambda model, body: Fault(status=500)
    engine = CascadeEngine(
        models=[
            {
                "model": "openai/fake-only",
                "api_base": server.api_base,
                "api_key_env": KEY_VARIABLE,
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 1e-6,
            }
        ],
        num_retries=0,
        timeout_s=CLIENT_TIMEOUT_S,
    )
    with pytest.raises(AllModelsFailedError) as caught:
        engine.run(_messages(0), max_tokens=8)
    assert "fake failure" in str(caught.value)  # the provider's message is kept...
    assert SECRET not in str(caught.value)  # ...without the key
    assert SECRET not in repr(engine) and SECRET not in repr(engine.config)
