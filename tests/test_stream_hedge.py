"""Hedged escalation in the async stream driver, against the FAKE latency provider over real
HTTP: the next model starts alongside a likely-escalated draft, the loser's HTTP stream is
really closed (the fake counts the tokens it wrote before the connection ended), its tokens
are paid, the cost cap holds both calls' worst cases, and no rejected draft is ever streamed.

No timing thresholds: the pairs below are shaped (a fast small model, a slow big one) so that
the order of events holds on any machine; what is asserted is what happened, not how fast.
"""

from __future__ import annotations

import asyncio
from typing import Any

import litellm
import pytest
from fake_latency_provider import FakeLatencyProvider, LatencyProfile, ladder_models, question
from stream_drain import adrain, drain

from cascade_core.engine import CascadeEngine, CascadeResult

# The big model is slow to finish (60 tokens at 20 per second): a hedge of it is always still
# streaming when the small draft (fast, 21 tokens at 400 per second) has been judged.
FAST = LatencyProfile(ttft_s=0.02, tokens_per_s=400.0, accuracy=1.0)
WRONG = LatencyProfile(ttft_s=0.02, tokens_per_s=400.0, accuracy=0.0)
SLOW = LatencyProfile(ttft_s=0.02, tokens_per_s=20.0, accuracy=1.0, repeat=3)
MAX_TOKENS = 60
# Big output is dear, so the order of the ladder never flips whatever latency is priced.
PRICES = {"small": (1e-7, 1e-7), "big": (1e-6, 1e-4)}
WEIGHTS = {"ttft_usd_per_s": 1e-3, "total_usd_per_s": 1e-3}


def _engine(provider: FakeLatencyProvider, **settings: Any) -> CascadeEngine:
    models = ladder_models(provider, PRICES)
    # A threshold cascade always tries the small model first and escalates below 0.7:
    # ex ante (prior 0.5 +- 0.2) that is likely, so the big model is worth hedging.
    settings = {"strategy": {"name": "threshold_cascade", "threshold": 0.7}, **settings}
    return CascadeEngine(models=models, num_retries=0, **settings)


async def _astream(engine: CascadeEngine, prompt: str, **params: Any) -> tuple[str, CascadeResult]:
    return await adrain(
        engine.astream([{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS, **params)
    )


def _warm(engine: CascadeEngine, provider: FakeLatencyProvider) -> None:
    """Both models observed once (a request whose draft is wrong, so it escalates), so
    their latency is expected from the next request on."""
    small = provider.profiles["small"]
    provider.profiles["small"] = WRONG
    asyncio.run(_astream(engine, question(90)[0], latency_weights={}))
    provider.profiles["small"] = small
    provider.served.clear()


@pytest.fixture(autouse=True)
def _first_call_done() -> None:
    """LiteLLM's first call in a process sets itself up for a second or more; not a model's
    latency, so it is paid here, before any engine learns from a call."""
    with FakeLatencyProvider({"small": FAST}) as provider:
        litellm.completion(
            model="openai/small",
            api_base=provider.base_url,
            api_key="fake",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=1,
        )


def _hedged(result: CascadeResult) -> list[tuple[str, str]]:
    return [(r.model, r.status) for r in result.trace.runs if r.hedged]


def test_an_escalated_draft_is_hedged_and_its_text_never_streams() -> None:
    with FakeLatencyProvider({"small": WRONG, "big": SLOW}) as provider:
        engine = _engine(provider, latency_weights=WEIGHTS)
        _warm(engine, provider)
        prompt, answer = question(3)
        text, result = asyncio.run(_astream(engine, prompt))
    assert result.model == "big"
    assert _hedged(result) == [("big", "ok")]
    assert any(d.startswith("hedge: start big alongside small") for d in result.trace.decisions)
    # Only the accepted answer reached the caller: the big model's, all of it, and not one
    # piece of the small model's wrong draft.
    assert text == result.answer.content
    assert text.split(".")[0].strip() == str(answer)
    assert str(answer + 1) not in text
    # Both calls started at once: the big one was already streaming when the draft ended.
    small, big = (next(r for r in result.trace.runs if r.model == m) for m in ("small", "big"))
    assert small.status in ("ok", "aborted") and not small.hedged
    assert big.ttft_s is not None and big.completion_tokens == len(result.answer.logprobs or ())


def test_an_accepted_draft_cancels_the_hedge_and_its_http_stream() -> None:
    with FakeLatencyProvider({"small": FAST, "big": SLOW}) as provider:
        engine = _engine(provider, latency_weights=WEIGHTS)
        _warm(engine, provider)
        prompt, answer = question(4)
        text, result = asyncio.run(_astream(engine, prompt))
        served = {s.model: s for s in provider.served}
    assert result.model == "small" and text.split(".")[0].strip() == str(answer)
    assert _hedged(result) == [("big", "cancelled")]
    cancelled = next(r for r in result.trace.runs if r.status == "cancelled")
    # The fake stopped writing when the client closed the connection, long before the end.
    big = served["big"]
    assert not big.completed and big.tokens_sent < big.tokens_total
    # What was paid: the prompt and the output received before the close (no usage came on
    # the closed stream, so the engine bills its re-count of the text), not a whole answer.
    assert 0 < cancelled.completion_tokens < big.tokens_total
    assert cancelled.cost_usd > 0
    assert cancelled.cost_usd < engine.ladder[1].actual_cost(20, big.tokens_total)
    assert result.trace.cost_usd == pytest.approx(sum(r.cost_usd for r in result.trace.runs))
    assert cancelled.reason.startswith("cancelled: not needed")


@pytest.mark.parametrize("room", [1.02, 0.98])
def test_the_cost_cap_holds_both_worst_cases_before_a_hedge(room: float) -> None:
    """A cap that holds both calls' worst cases allows the hedge; one just short does not
    (the cascade then escalates in sequence). The cap is never exceeded either way."""
    with FakeLatencyProvider({"small": WRONG, "big": SLOW}) as provider:
        probe = _engine(provider)
        run = probe.start([{"role": "user", "content": question(5)[0]}], max_tokens=MAX_TOKENS)
        both = sum(m.worst_case_cost(run.input_tokens[m.index], MAX_TOKENS) for m in probe.ladder)
        engine = _engine(provider, latency_weights=WEIGHTS, budget={"max_cost_usd": both * room})
        _warm(engine, provider)
        _, result = asyncio.run(_astream(engine, question(5)[0]))
    assert result.trace.cost_usd <= both * room
    assert not any(r.cap_overrun for r in result.trace.runs)
    if room > 1:
        assert _hedged(result) == [("big", "ok")]
    else:
        assert _hedged(result) == []
        assert result.model == "big"  # escalated after the draft, as without latency


def test_zero_weights_and_the_sync_stream_never_hedge() -> None:
    with FakeLatencyProvider({"small": WRONG, "big": SLOW}) as provider:
        engine = _engine(provider, latency_weights=WEIGHTS)
        _warm(engine, provider)
        prompt = question(6)[0]
        _, free = asyncio.run(_astream(engine, prompt, latency_weights={}))
        _, synced = drain(
            engine.stream([{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS)
        )
        off = _engine(provider, latency_weights=WEIGHTS, hedge=False)
        _warm(off, provider)
        _, disabled = asyncio.run(_astream(off, prompt))
    assert _hedged(free) == [] and free.model == "big"
    assert _hedged(synced) == []
    assert _hedged(disabled) == []
    assert [r.model for r in free.trace.runs] == [r.model for r in synced.trace.runs]


def test_a_caller_that_stops_reading_closes_the_hedge() -> None:
    """The caller gives up before the first token: the draft and the hedge both end."""
    with FakeLatencyProvider({"small": FAST, "big": SLOW}) as provider:
        engine = _engine(provider, latency_weights=WEIGHTS)
        _warm(engine, provider)
        slow_small = LatencyProfile(ttft_s=30.0, tokens_per_s=1.0, accuracy=1.0)
        provider.profiles["small"] = slow_small  # the draft will not answer in time

        async def give_up() -> None:
            stream = engine.astream(
                [{"role": "user", "content": question(7)[0]}], max_tokens=MAX_TOKENS
            )
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(stream.__anext__(), timeout=1.0)
            await stream.aclose()

        asyncio.run(give_up())
        served = list(provider.served)
    big = [s for s in served if s.model == "big"]
    assert big, "the hedge never started"
    assert not big[0].completed and big[0].tokens_sent < big[0].tokens_total
