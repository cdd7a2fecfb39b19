"""Prompt-cache-aware cost and the per-session budget, against the FAKE caching provider.

The fake counts tokens and bills with its own rules (tests/fake_caching_provider.py): the
engine's actual cost must equal the fake's bill, in all four drivers and in both usage styles
(OpenAI's cached_tokens, Anthropic's cache read/creation counts); expected costs must use the
cached price for the prefix a model was already sent; and a session cap must hold, with the
fake's own bill as the judge, across many concurrent turns of one session.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import session_fixtures
from fake_caching_provider import FakeCachingProvider
from hypothesis import given
from hypothesis import strategies as st
from scripted_openai_server import Reply
from session_fixtures import PRICES, SYSTEM, TOOLS, agent_script, make_engine
from stream_drain import adrain, drain

from cascade_core.engine import CascadeEngine
from cascade_core.engine.ladder import INPUT_TOKEN_MARGIN
from cascade_core.errors import AllModelsFailedError
from cascade_core.sessions import InMemorySessionStore

fake = session_fixtures.fake


def _conversation(n_turns: int) -> list[list[dict[str, Any]]]:
    """Growing prompts of one agent conversation (each turn appends two messages)."""
    messages: list[dict[str, Any]] = [SYSTEM]
    prompts = []
    for i in range(n_turns):
        messages = [*messages, {"role": "user", "content": f"question {i} " * 20}]
        prompts.append(messages)
        messages = [*messages, {"role": "assistant", "content": f"answer {i} " * 20}]
    return prompts


async def _drive(engine: CascadeEngine, driver: str, messages, session: str):
    kwargs = {"session_id": session, "tools": TOOLS, "max_tokens": 40}
    if driver == "run":
        return engine.run(messages, **kwargs)
    if driver == "arun":
        return await engine.arun(messages, **kwargs)
    if driver == "stream":
        return drain(engine.stream(messages, **kwargs))[1]
    return (await adrain(engine.astream(messages, **kwargs)))[1]


@pytest.mark.parametrize("style", ["openai", "anthropic"])
@pytest.mark.parametrize("driver", ["run", "arun", "stream", "astream"])
async def test_actual_cost_is_what_the_provider_billed(style: str, driver: str) -> None:
    with FakeCachingProvider(agent_script, PRICES, style=style) as server:
        engine = make_engine(server.api_base)
        total, cached = 0.0, 0
        for i, messages in enumerate(_conversation(4)):
            if style == "anthropic" and i % 2:  # ask for a cache write on some turns
                messages = [
                    *messages[:-1],
                    {**messages[-1], "cache_control": {"type": "ephemeral"}},
                ]
            result = await _drive(engine, driver, messages, f"{style}-{driver}")
            total += result.cost_usd
            cached += result.trace.cached_tokens
        assert total == pytest.approx(server.total_billed(), rel=1e-12)
        assert cached == sum(bill.cached_tokens for bill in server.ledger) > 0
        if style == "anthropic":
            written = sum(run.cache_write_tokens for run in result.trace.runs)
            assert sum(b.written_tokens for b in server.ledger) > 0 and written >= 0


def test_expected_cost_uses_the_cached_price_for_what_a_model_was_sent(fake) -> None:
    engine = make_engine(fake.api_base)
    first, second = _conversation(2)
    start = engine.start(first, tools=TOOLS, max_tokens=40)
    engine.run(first, session_id="warm", tools=TOOLS, max_tokens=40)  # small is sent turn 1
    warm = engine.start(second, session=engine.sessions.load("warm"), tools=TOOLS, max_tokens=40)
    cold = engine.start(second, tools=TOOLS, max_tokens=40)
    small = 0
    assert warm.expected_cached[small] == pytest.approx(start.input_tokens[small], rel=0.05)
    saved = warm.expected_cached[small] * (PRICES["small"].input - PRICES["small"].cached)
    assert cold.cost[small] - warm.cost[small] == pytest.approx(saved)
    assert warm.expected_cached[1] == 0 and warm.cost[1] == cold.cost[1]  # big was never sent it


def test_the_hard_cap_assumes_no_cache_hit(fake) -> None:
    """A warm cache lowers the expected cost, never the worst case the cap checks."""
    engine = make_engine(fake.api_base, budget={"lambda": 300.0, "max_cost_usd": 2e-4})
    first, second = _conversation(2)
    engine.run(first, session_id="capped", tools=TOOLS, max_tokens=40)
    warm = engine.start(second, session=engine.sessions.load("capped"), tools=TOOLS)
    cold = engine.start(second, tools=TOOLS)
    assert warm.expected_cached[0] > 0
    assert warm.next_call().params["max_tokens"] == cold.next_call().params["max_tokens"]
    model = engine.parts.ladder[0]
    affordable = model.affordable_output_tokens(cold.input_tokens[0], 2e-4)
    assert cold.input_tokens[0] * INPUT_TOKEN_MARGIN * PRICES["small"].input < 2e-4
    assert cold.next_call().params["max_tokens"] == affordable


def test_the_session_trace_shows_spend_before_and_after(fake) -> None:
    engine = make_engine(fake.api_base, budget={"lambda": 300.0, "max_cost_usd_per_session": 1.0})
    costs = []
    for messages in _conversation(3):
        result = engine.run(messages, session_id="spend", tools=TOOLS, max_tokens=40)
        session = result.trace.session
        assert session.spend_before_usd == pytest.approx(sum(costs))
        costs.append(result.cost_usd)
        assert session.spend_after_usd == pytest.approx(sum(costs))
        assert session.cap_usd == 1.0
    assert result.trace.as_dict()["session"]["session_id"] == "spend"


def _hard_turns(n: int) -> list[list[dict[str, Any]]]:
    return [[SYSTEM, {"role": "user", "content": f"hard question {i}"}] for i in range(n)]


def test_concurrent_turns_of_one_session_never_pass_its_cap(fake) -> None:
    """Forty hard turns of one session at once from eight threads and as many event-loop
    tasks: the fake's bill for the session stays within the cap, and calls the budget could
    not cover were not made (turns answered without escalating, or refused)."""
    cap = 0.01
    engine = make_engine(fake.api_base, budget={"lambda": 300.0, "max_cost_usd_per_session": cap})
    outcomes: list[str] = []
    lock = threading.Lock()

    def note(result_or_error: Any) -> None:
        """What happened to one turn: escalated, or kept from escalating by the cap."""
        if isinstance(result_or_error, AllModelsFailedError):
            outcome = "refused"
        elif any("session cost cap" in r.reason for r in result_or_error.trace.runs):
            outcome = "capped"
        else:
            outcome = result_or_error.model
        with lock:
            outcomes.append(outcome)

    def worker(turns) -> None:
        for messages in turns:
            try:
                note(engine.run(messages, session_id="one-run", tools=TOOLS, max_tokens=40))
            except AllModelsFailedError as error:
                note(error)

    async def tasks() -> None:
        async def one(messages):
            try:
                note(await engine.arun(messages, session_id="one-run", tools=TOOLS, max_tokens=40))
            except AllModelsFailedError as error:
                note(error)

        await asyncio.gather(*(one(m) for m in _hard_turns(20)))

    threads = [threading.Thread(target=worker, args=(_hard_turns(3),)) for _ in range(8)]
    for thread in threads:
        thread.start()
    asyncio.run(tasks())
    for thread in threads:
        thread.join()
    assert len(outcomes) == 44
    assert "big" in outcomes and {"capped", "refused"} & set(outcomes)
    assert 0 < fake.total_billed() <= cap * (1 + 1e-9)
    snapshot = engine.sessions.load("one-run")
    assert snapshot.spent_usd == pytest.approx(fake.total_billed())
    assert snapshot.reserved_usd == 0.0


def test_a_refused_turn_says_which_cap_and_how_much_was_spent(fake) -> None:
    engine = make_engine(fake.api_base, budget={"lambda": 300.0, "max_cost_usd_per_session": 1e-4})
    first = engine.run(_hard_turns(1)[0], session_id="tiny", tools=TOOLS, max_tokens=40)
    skipped = [run.reason for run in first.trace.runs if run.status == "skipped"]
    assert skipped and skipped[0].startswith("session cost cap: 0.0001 USD per session")
    with pytest.raises(AllModelsFailedError, match="session cost cap"):
        for messages in _hard_turns(5):
            engine.run(messages, session_id="tiny", tools=TOOLS, max_tokens=40)
    assert fake.total_billed() <= 1e-4 * (1 + 1e-9)


async def test_a_call_cancelled_midway_counts_its_reservation_as_spent() -> None:
    """The provider may have billed a call whose outcome never arrived: the cap keeps it."""
    arrived = threading.Event()
    release = threading.Event()

    def slow(model: str, body: dict[str, Any]) -> Reply:
        arrived.set()
        release.wait(30)
        return agent_script(model, body)

    store = InMemorySessionStore()
    with FakeCachingProvider(slow, PRICES) as server:
        engine = make_engine(
            server.api_base,
            budget={"lambda": 300.0, "max_cost_usd_per_session": 1.0},
            session_store=store,
        )
        task = asyncio.ensure_future(
            engine.arun(_hard_turns(1)[0], session_id="cut", tools=TOOLS, max_tokens=40)
        )
        while not arrived.is_set():
            await asyncio.sleep(0.01)
        call = engine.start(_hard_turns(1)[0], tools=TOOLS, max_tokens=40).next_call()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
    snapshot = store.load("cut")
    assert snapshot.reserved_usd == 0.0
    worst = call.model.worst_case_cost(
        engine.start(_hard_turns(1)[0], tools=TOOLS).input_tokens[0], call.params["max_tokens"]
    )
    assert snapshot.spent_usd == pytest.approx(worst)


# -- reading cache counts from usage ---------------------------------------------------------


def test_cache_counts_of_every_usage_shape_litellm_normalises() -> None:
    from litellm import Usage

    from cascade_core.engine.cache_usage import CacheUsage, cache_usage

    openai = Usage(
        prompt_tokens=100, completion_tokens=5, prompt_tokens_details={"cached_tokens": 80}
    )
    anthropic = Usage(
        prompt_tokens=100,
        completion_tokens=5,
        cache_read_input_tokens=60,
        cache_creation_input_tokens=30,
    )
    deepseek = Usage(prompt_tokens=100, completion_tokens=5, prompt_cache_hit_tokens=70)
    assert cache_usage(openai) == CacheUsage(read=80)
    assert cache_usage(anthropic) == CacheUsage(read=60, written=30)
    assert cache_usage(deepseek) == CacheUsage(read=70)
    raw = {"prompt_tokens": 50, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 5}
    assert cache_usage(raw) == CacheUsage(read=10, written=5)
    assert cache_usage(None) == CacheUsage() == cache_usage({"prompt_tokens": 9})


@given(
    st.dictionaries(
        st.sampled_from(
            ["prompt_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "x"]
        ),
        st.one_of(st.integers(-5, 10**6), st.none(), st.booleans(), st.text(max_size=3)),
    ),
    st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["cached_tokens", "cache_write_tokens"]), st.integers(-5, 10**6)
        ),
    ),
)
def test_cache_counts_never_exceed_the_prompt(usage: dict, details: dict | None) -> None:
    from cascade_core.engine.cache_usage import cache_usage

    if details is not None:
        usage = {**usage, "prompt_tokens_details": details}
    counts = cache_usage(usage)
    prompt = usage.get("prompt_tokens")
    prompt = (
        prompt if isinstance(prompt, int) and not isinstance(prompt, bool) and prompt > 0 else 0
    )
    assert counts.read >= 0 and counts.written >= 0 and counts.read + counts.written <= prompt
