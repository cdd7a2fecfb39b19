"""Fault injection: 1,050 requests through the real engine and LiteLLM's HTTP path against the
FAKE OpenAI-compatible server of ``fake_openai_server.py`` failing at random (500, 429,
stalled bodies past the client timeout, malformed JSON, missing logprobs, empty content,
truncation, and on streams a stall after the first token), with the API key echoed back in
its error bodies.

Why: these are the responses real providers send on bad days, and the engine promises that
none of them escapes as an unexpected exception, overspends the hard cap, or leaks a key.
So, for every request, across all four drivers (``run`` from threads, ``arun`` under bounded
concurrency, ``stream`` from threads, ``astream``):

* it returns a result or raises exactly ``AllModelsFailedError`` (streams may also raise the
  documented ``CascadeStreamError``, only when a model broke after part of its answer was
  sent, which only the ``midstream_stall`` fault causes);
* ``trace.cost_usd <= budget.max_cost_usd``;
* the key is on the wire (the fake saw it) but in no trace, exception message or log line
  (caplog and capfd at DEBUG for LiteLLM, the OpenAI client, httpx and our loggers);
* a stream's text deltas are exactly the final answer (no draft leaked into them).

No timing is asserted. Retries are 0 or 1 and timeouts short, so the module runs in well under
a minute on two cores.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from fake_openai_server import (
    FAULTS,
    STREAM_ONLY_FAULTS,
    FakeModel,
    FakeOpenAIServer,
    FaultPlan,
)
from stream_drain import drain_answer

from cascade_core.engine import (
    CascadeEngine,
    CascadeResult,
    CascadeStreamError,
)
from cascade_core.errors import AllModelsFailedError

SECRET = "sk-test-SECRET123456"
SECRET_CORE = "SECRET123456"  # also catches a key that was only partly masked
KEY_ENV = "CASCADE_FAKE_PROVIDER_KEY"
CLIENT_TIMEOUT_S = 0.3
STALL_S = 0.8  # a "timeout" fault stalls this long: beyond the client timeout
COST_CAP_USD = 0.0015
DEBUG_REQUESTS = 100  # per phase; see _debug_then_info
LABELS = ("fake-small", "fake-nolp", "fake-large")
LOGGERS = (
    "",
    "LiteLLM",
    "LiteLLM Router",
    "LiteLLM Proxy",
    "litellm",
    "openai",
    "httpx",
    "httpcore",
    "cascade_core",
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
WORDS = (
    *("what", "is", "the", "capital", "of", "france", "and", "why"),
    *("does", "the", "river", "flow", "north", "in", "spring"),
)


@dataclass
class Tally:
    """Outcomes of one phase; unhandled exceptions are kept, not raised, so all are shown."""

    answered: int = 0
    all_failed: int = 0
    stream_broken: int = 0
    unhandled: list[str] | None = None
    texts: list[str] | None = None
    cap_skips: int = 0

    def __post_init__(self) -> None:
        self.unhandled = []
        self.texts = []


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    models = {
        # Unsure and confident answers (jitter per prompt); its tool arguments do not parse.
        "fake-small": FakeModel(
            tokens=tuple(f" w{i}" for i in range(12)),
            logprob=-0.6,
            logprob_jitter=0.55,
            tool_arguments='{"city": ',
        ),
        # A provider that never returns logprobs: the engine keeps its ex-ante estimate.
        "fake-nolp": FakeModel(
            tokens=tuple(f" m{i}" for i in range(12)),
            logprobs=False,
            tool_arguments='{"city": "Paris"}',
        ),
        "fake-large": FakeModel(
            tokens=tuple(f" L{i}" for i in range(12)),
            logprob=-0.05,
            logprob_jitter=0.04,
            tool_arguments='{"city": "Paris"}',
        ),
    }
    plan = FaultPlan(
        rate=0.45,
        kinds=FAULTS + STREAM_ONLY_FAULTS,
        seed=20261122,
        stall_s=STALL_S,
        echo_key_in_errors=True,
    )
    with FakeOpenAIServer(models, plan) as server:
        yield server


def _engine(fake: FakeOpenAIServer, strategy: dict[str, Any], num_retries: int) -> CascadeEngine:
    def rung(name: str, price: float, key: bool, logprobs: bool) -> dict[str, Any]:
        return {
            "name": name,
            "model": f"openai/{name}",
            "api_base": fake.base_url,
            "api_key_env": KEY_ENV if key else None,
            "input_cost_per_token": price,
            "output_cost_per_token": 2 * price,
            "supports_logprobs": logprobs,
            "expected_output_tokens": 12,
        }

    return CascadeEngine(
        models=[
            rung("fake-small", 1e-6, key=True, logprobs=True),
            rung("fake-nolp", 5e-6, key=False, logprobs=False),
            rung("fake-large", 2.5e-5, key=True, logprobs=True),
        ],
        strategy=strategy,
        budget={"lambda": 200.0, "max_cost_usd": COST_CAP_USD},
        num_retries=num_retries,
        timeout_s=CLIENT_TIMEOUT_S,
    )


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every library a request passes through logs at DEBUG into caplog, whatever its
    ``propagate`` setting (LiteLLM installs its own stderr handlers)."""
    attached = []
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
        logger = logging.getLogger(name)
        if name and caplog.handler not in logger.handlers:
            logger.addHandler(caplog.handler)
            attached.append(logger)
    yield caplog
    for logger in attached:
        logger.removeHandler(caplog.handler)


def _debug_then_info(requests: list[Any]) -> Iterator[list[Any]]:
    """The first ``DEBUG_REQUESTS`` of a phase run with every logger at DEBUG (where LiteLLM
    prints request details), the rest at INFO: DEBUG formatting doubles LiteLLM's CPU time,
    and a leak would show in any request, so a sample at DEBUG keeps the suite fast."""
    yield requests[:DEBUG_REQUESTS]
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    yield requests[DEBUG_REQUESTS:]


def _request(i: int, rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A varied request: prompt length (so the cap shrinks or skips), max_tokens, tools."""
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 70)))
    messages = [{"role": "user", "content": f"Question {i}: {words}?"}]
    params: dict[str, Any] = {"max_tokens": rng.choice([None, None, 4, 64])}
    if rng.random() < 0.15:
        params["tools"] = TOOLS
    if rng.random() < 0.3:
        params["temperature"] = 0.0
    return messages, params


def _check_result(result: CascadeResult, tally: Tally) -> None:
    trace = result.trace
    assert trace.cost_usd <= COST_CAP_USD + 1e-12, trace.as_dict()
    assert result.model in LABELS
    assert trace.runs[-1].status in {"ok", "unusable", "failed", "skipped", "aborted"}
    assert any(r.model == result.model and r.status == "ok" for r in trace.runs)
    tally.cap_skips += sum(r.status == "skipped" and "cost cap" in r.reason for r in trace.runs)
    tally.texts.append(json.dumps(trace.as_dict()))
    tally.texts.append(repr(result))
    tally.answered += 1


def _classify(tally: Tally, attempt: Callable[[], CascadeResult]) -> None:
    """Run one request and file its outcome; anything unexpected is recorded as unhandled."""
    try:
        result = attempt()
    except AllModelsFailedError as error:
        assert set(error.errors) <= set(LABELS)
        tally.texts += [str(error), repr(error), json.dumps(error.errors)]
        tally.all_failed += 1
        return
    except CascadeStreamError as error:
        tally.texts += [str(error), repr(error), repr(error.__cause__)]
        tally.stream_broken += 1
        return
    except Exception as error:  # the failure this suite exists to catch
        tally.unhandled.append(f"{type(error).__name__}: {error}")
        return
    _check_result(result, tally)


def _assert_clean(
    tally: Tally,
    expected: int,
    fake: FakeOpenAIServer,
    faults_before: Counter[str],
    kinds: tuple[str, ...],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    assert tally.unhandled == [], tally.unhandled[:5]
    assert tally.answered + tally.all_failed + tally.stream_broken == expected
    # The faults really happened in this phase, every kind of them.
    injected = fake.stats.faults - faults_before
    assert all(injected[kind] > 0 for kind in kinds), injected
    if tally.stream_broken:
        assert injected["midstream_stall"] > 0
    # The key was really used...
    assert f"Bearer {SECRET}" in fake.stats.authorizations
    # ...and is nowhere a caller or an operator can see.
    captured = capfd.readouterr()
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert len(logged) > 0  # the capture works (LiteLLM logs at DEBUG)
    for text in (*tally.texts, logged, captured.out, captured.err):
        assert SECRET_CORE not in text


def test_sync_runs_from_threads_survive_random_faults(
    fake: FakeOpenAIServer, secret_env: None, debug_logs: pytest.LogCaptureFixture, capfd
) -> None:
    engine = _engine(fake, {"name": "cascade_routing"}, num_retries=1)
    rng = random.Random(1)
    requests = [_request(i, rng) for i in range(300)]
    before = Counter(fake.stats.faults)
    tally = Tally()

    def one(messages: list[dict[str, Any]], params: dict[str, Any]) -> None:
        _classify(tally, lambda: engine.run(messages, **params))

    with ThreadPoolExecutor(8) as pool:
        for chunk in _debug_then_info(requests):
            list(pool.map(lambda req: one(*req), chunk))
    _assert_clean(tally, 300, fake, before, FAULTS, debug_logs, capfd)
    assert tally.cap_skips > 0  # the cap was tight enough to matter


async def test_async_runs_without_retries_survive_random_faults(
    fake: FakeOpenAIServer, secret_env: None, debug_logs: pytest.LogCaptureFixture, capfd
) -> None:
    # No retries: provider failures reach the strategy directly, so models do fail.
    engine = _engine(fake, {"name": "threshold_cascade", "threshold": 0.6}, num_retries=0)
    rng = random.Random(2)
    requests = [_request(i, rng) for i in range(400)]
    before = Counter(fake.stats.faults)
    tally = Tally()
    limit = asyncio.Semaphore(32)

    async def one(messages: list[dict[str, Any]], params: dict[str, Any]) -> None:
        async with limit:
            try:
                result = await engine.arun(messages, **params)
            except Exception as error:
                _classify(tally, _raiser(error))
                return
            _classify(tally, lambda: result)

    for chunk in _debug_then_info(requests):
        await asyncio.gather(*(one(m, p) for m, p in chunk))
    _assert_clean(tally, 400, fake, before, FAULTS, debug_logs, capfd)
    failed_runs = sum(t.count('"status": "failed"') for t in tally.texts)
    assert failed_runs > 0  # failures were absorbed by the strategy, not raised


def test_sync_streams_from_threads_survive_random_faults(
    fake: FakeOpenAIServer, secret_env: None, debug_logs: pytest.LogCaptureFixture, capfd
) -> None:
    engine = _engine(fake, {"name": "cascade_routing"}, num_retries=1)
    rng = random.Random(3)
    requests = [_request(i, rng) for i in range(150)]
    before = Counter(fake.stats.faults)
    tally = Tally()

    def one(messages: list[dict[str, Any]], params: dict[str, Any]) -> None:
        _classify(tally, lambda: drain_answer(engine.stream(messages, **params)))

    with ThreadPoolExecutor(8) as pool:
        for chunk in _debug_then_info(requests):
            list(pool.map(lambda req: one(*req), chunk))
    _assert_clean(tally, 150, fake, before, FAULTS, debug_logs, capfd)


async def test_async_streams_survive_random_faults(
    fake: FakeOpenAIServer, secret_env: None, debug_logs: pytest.LogCaptureFixture, capfd
) -> None:
    engine = _engine(fake, {"name": "optimal_cascade"}, num_retries=1)
    rng = random.Random(4)
    requests = [_request(i, rng) for i in range(200)]
    before = Counter(fake.stats.faults)
    tally = Tally()
    limit = asyncio.Semaphore(16)

    async def one(messages: list[dict[str, Any]], params: dict[str, Any]) -> None:
        async with limit:
            try:
                events = [event async for event in engine.astream(messages, **params)]
            except Exception as error:
                _classify(tally, _raiser(error))
                return
            _classify(tally, lambda: drain_answer(events))

    for chunk in _debug_then_info(requests):
        await asyncio.gather(*(one(m, p) for m, p in chunk))
    _assert_clean(tally, 200, fake, before, FAULTS + STREAM_ONLY_FAULTS, debug_logs, capfd)


def test_when_every_model_fails_the_documented_error_names_each_without_the_key(
    secret_env: None, debug_logs: pytest.LogCaptureFixture, capfd
) -> None:
    """Deterministic: every model always fails (one of them echoing the key in its 500
    body), so the random phases need not be lucky to reach ``AllModelsFailedError``."""
    models = {
        "fake-small": FakeModel(fault="http_500"),
        "fake-nolp": FakeModel(fault="malformed_json"),
        "fake-large": FakeModel(fault="http_429"),
    }
    plan = FaultPlan(echo_key_in_errors=True)
    with FakeOpenAIServer(models, plan) as server:
        engine = _engine(server, {"name": "cascade_routing"}, num_retries=0)
        for driver in ("run", "stream"):
            with pytest.raises(AllModelsFailedError) as caught:
                if driver == "run":
                    engine.run([{"role": "user", "content": "hi"}])
                else:
                    list(engine.stream([{"role": "user", "content": "hi"}]))
            error = caught.value
            assert set(error.errors) == set(LABELS)
            assert "fake internal error" in error.errors["fake-small"]  # provider text kept
            for text in (str(error), repr(error), json.dumps(error.errors)):
                assert SECRET_CORE not in text
        assert f"Bearer {SECRET}" in server.stats.authorizations
    captured = capfd.readouterr()
    for text in (debug_logs.text, captured.out, captured.err):
        assert SECRET_CORE not in text


def _raiser(error: BaseException) -> Callable[[], CascadeResult]:
    """Re-raise an exception caught in async code inside ``_classify``'s try block."""

    def attempt() -> CascadeResult:
        raise error

    return attempt
