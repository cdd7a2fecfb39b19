"""Engine behaviour, one promise per test, through LiteLLM's real HTTP path against the FAKE
OpenAI-compatible server of ``fake_openai_server.py`` (scripted answers, no faults unless
asked).

Configuration and request validation are mostly covered in ``test_engine_config.py``; the
few here add nested unknown keys, key-shaped values and the engine's own file loader. The
rest proves what only a live call can: rejected drafts never reach a stream, hopeless drafts
are aborted early, skips (context window, cost cap) never call the model, tool calls are
judged by their schema, missing logprobs are not invented, and concurrent requests on one
engine do not share state.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fake_openai_server import FakeModel, FakeOpenAIServer
from stream_drain import adrain, drain

from cascade_core.engine import CascadeEngine, RouterConfig
from cascade_core.errors import InvalidInputError

HI = [{"role": "user", "content": "What is the answer?"}]
WRONG = tuple(["WRONG"] + [" WRONG"] * 5)
RIGHT = ("RIGHT", " answer", ".")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def rung(fake: FakeOpenAIServer, name: str, price: float, **extra: Any) -> dict[str, Any]:
    """One ladder entry served by the fake under ``name``."""
    return {
        "name": name,
        "model": f"openai/{name}",
        "api_base": fake.base_url,
        "input_cost_per_token": price,
        "output_cost_per_token": 2 * price,
        "supports_logprobs": True,
        **extra,
    }


def wrong_then_right(fake: FakeOpenAIServer, **wrong: Any) -> CascadeEngine:
    """A cheap model answering unsure 'WRONG' tokens, a dear one answering sure 'RIGHT'.

    A threshold cascade makes the order certain: the cheap model runs first and, at
    exp(-3) ~ 0.05 mean token probability, is below the 0.5 threshold.
    """
    fake.models["wrong"] = FakeModel(tokens=WRONG, logprob=-3.0, **wrong)
    fake.models["right"] = FakeModel(tokens=RIGHT, logprob=-0.01)
    return CascadeEngine(
        models=[rung(fake, "wrong", 1e-7), rung(fake, "right", 1e-5)],
        strategy={"name": "threshold_cascade", "threshold": 0.5},
        num_retries=0,
        timeout_s=5,
    )


# -- configuration and requests ----------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"strategy": {"name": "cascade_routing", "depth": 2}}, "strategy.depth"),
        ({"budget": {"lambda": 1, "maximum": 2}}, "budget.maximum"),
        ({"budget": {"max_cost_usd": -1}}, "budget.max_cost_usd"),
        ({"num_retries": -1}, "num_retries"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"prior_std": 2}, "prior_std"),
        ({"strategy": {"threshold": 1.5}}, "strategy.threshold"),
        ({"models": [{"model": "openai/x", "prior_quality": 2}]}, "models.0.prior_quality"),
        ({"models": [{"model": "openai/x", "context_window": 0}]}, "models.0.context_window"),
    ],
)
def test_nested_unknown_keys_and_bad_values_name_the_field(change: dict, field: str) -> None:
    data = {"models": [{"model": "openai/x"}], **change}
    with pytest.raises(InvalidInputError) as caught:
        RouterConfig.from_dict(data)
    assert field in str(caught.value)


@pytest.mark.parametrize(
    "value",
    ["sk-proj-abcdefghijklmnop", "my key", "OPENAI-API-KEY", "1PASSWORD", "Bearer abc"],
)
def test_api_key_env_takes_only_a_variable_name(value: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        RouterConfig.from_dict({"models": [{"model": "openai/x", "api_key_env": value}]})
    assert "api_key_env" in str(caught.value)
    assert value not in str(caught.value)  # a pasted key is not echoed into logs
    assert RouterConfig.from_dict({"models": [{"model": "openai/x", "api_key_env": "MY_KEY_2"}]})


def test_engine_loads_yaml_and_json_files(tmp_path, fake: FakeOpenAIServer) -> None:
    config = {
        "models": [rung(fake, "fake-a", 1e-6)],
        "budget": {"lambda": 50, "max_cost_usd": 0.01},
        "strategy": {"name": "cascade_routing", "variant": "greedy"},
    }
    (tmp_path / "ladder.json").write_text(json.dumps(config))
    yaml_text = "\n".join(
        [
            "models:",
            "  - name: fake-a",
            "    model: openai/fake-a",
            f"    api_base: {fake.base_url}",
            "    input_cost_per_token: 1.0e-6",
            "    output_cost_per_token: 2.0e-6",
            "    supports_logprobs: true",
            "budget: {lambda: 50, max_cost_usd: 0.01}",
            "strategy: {name: cascade_routing, variant: greedy}",
        ]
    )
    (tmp_path / "ladder.yml").write_text(yaml_text)
    from_json = CascadeEngine.from_config(tmp_path / "ladder.json")
    from_yaml = CascadeEngine.from_config(tmp_path / "ladder.yml")
    assert from_json.config == from_yaml.config
    assert from_yaml.run(HI).content == "The answer is 42."
    (tmp_path / "bad.yaml").write_text("models:\n  - model: openai/x\n    colour: red\n")
    with pytest.raises(InvalidInputError, match=r"models\.0\.colour"):
        CascadeEngine.from_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize(
    ("messages", "params", "field"),
    [
        ("hello", {}, "messages"),
        ([], {}, "messages"),
        ([{"content": "no role"}], {}, r"messages\[0\]"),
        (HI, {"max_tokens": -5}, "max_tokens"),
        (HI, {"max_tokens": 2.5}, "max_tokens"),
        (HI, {"tools": {"name": "x"}}, "tools"),
        (HI, {"temperatur": 0.1}, "temperatur"),
    ],
)
def test_bad_requests_are_refused_before_any_call(
    fake: FakeOpenAIServer, messages: Any, params: dict, field: str
) -> None:
    engine = CascadeEngine(models=[rung(fake, "fake-a", 1e-6)])
    with pytest.raises(InvalidInputError, match=field):
        engine.run(messages, **params)
    assert fake.stats.requests == 0


# -- streaming: drafts never leak, hopeless drafts stop early ------------------------------


def test_stream_never_emits_a_rejected_draft(fake: FakeOpenAIServer) -> None:
    engine = wrong_then_right(fake)
    events = list(engine.stream(HI))
    text, result = drain(events)
    assert text == "RIGHT answer."
    assert not any("WRONG" in e.text for e in events[:-1])
    assert [(r.model, r.status) for r in result.trace.runs] == [("wrong", "ok"), ("right", "ok")]
    assert result.trace.runs[0].post_hoc_quality < 0.5  # the draft ran and was rejected
    assert result.model == "right"
    # the streamed tokens carry their logprobs
    assert all(e.logprobs for e in events[:-1])


async def test_astream_never_emits_a_rejected_draft(fake: FakeOpenAIServer) -> None:
    engine = wrong_then_right(fake)
    text, result = await adrain(engine.astream(HI))
    assert text == "RIGHT answer." and result.model == "right"
    assert "WRONG" not in text


def test_hopeless_draft_is_aborted_early_with_fewer_tokens(fake: FakeOpenAIServer) -> None:
    """A 400-token draft at logprob -3 cannot reach the threshold once its logprob sum is
    below 100 * ln(0.5) even if every remaining token were certain, so it is cut there."""
    engine = wrong_then_right(fake)
    fake.models["wrong"] = FakeModel(tokens=("WRONG",) * 400, logprob=-3.0, chunk_delay_s=0.001)
    text, result = drain(engine.stream(HI, max_tokens=100))
    draft = result.trace.runs[0]
    assert draft.model == "wrong" and draft.status == "aborted"
    assert 0 < draft.completion_tokens < 100
    assert draft.cost_usd > 0  # an aborted draft is still paid for, and counted
    assert text == "RIGHT answer." and result.model == "right"
    assert "WRONG" not in text


def test_without_max_tokens_a_draft_is_never_aborted(fake: FakeOpenAIServer) -> None:
    """The abort bound needs a length limit: with none, any draft could still recover."""
    engine = wrong_then_right(fake)
    fake.models["wrong"] = FakeModel(tokens=("WRONG",) * 40, logprob=-3.0)
    _, result = drain(engine.stream(HI))
    assert result.trace.runs[0].status == "ok"
    assert result.trace.runs[0].completion_tokens == 40


# -- skips: context window and cost cap ---------------------------------------------------


def test_prompt_beyond_a_context_window_skips_that_model_without_calling_it(
    fake: FakeOpenAIServer,
) -> None:
    engine = CascadeEngine(
        models=[rung(fake, "tiny", 1e-7, context_window=8), rung(fake, "roomy", 1e-5)],
        num_retries=0,
    )
    result = engine.run([{"role": "user", "content": "word " * 200}])
    assert result.model == "roomy"
    skipped = result.trace.runs[0]
    assert (skipped.model, skipped.status) == ("tiny", "skipped")
    assert "context window" in skipped.reason
    assert fake.stats.by_model == {"roomy": 1}


def test_cost_cap_skips_an_unaffordable_model_and_shrinks_max_tokens(
    fake: FakeOpenAIServer,
) -> None:
    fake.models["cheap"] = FakeModel(tokens=tuple(f" t{i}" for i in range(30)), logprob=-0.01)
    dear = rung(fake, "dear", 1e-3, prior_quality=0.99)
    cheap = rung(fake, "cheap", 1e-6, prior_quality=0.2)
    # lambda 0: the strategy wants the dear model; the cap cannot pay even its prompt.
    cap = 0.001
    engine = CascadeEngine(
        models=[cheap, dear], budget={"lambda": 0, "max_cost_usd": cap}, num_retries=0
    )
    result = engine.run(HI, max_tokens=10_000)
    runs = {r.model: r for r in result.trace.runs}
    assert runs["dear"].status == "skipped" and "cost cap" in runs["dear"].reason
    assert fake.stats.by_model == {"cheap": 1}  # never called
    (sent,) = fake.stats.max_tokens_seen
    assert sent < 10_000  # shrunk to what the cap affords
    assert result.trace.cost_usd <= cap


# -- tool calls and providers without logprobs --------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "valid"),
    [
        ('{"city": "Paris"}', True),
        ('{"city": 7}', False),  # wrong type
        ('{"town": "Paris"}', False),  # missing required, unknown property
        ('{"city": "Par', False),  # not JSON
    ],
)
def test_tool_call_quality_comes_from_schema_validity(
    fake: FakeOpenAIServer, arguments: str, valid: bool
) -> None:
    fake.models["caller"] = FakeModel(tool_arguments=arguments)
    engine = CascadeEngine(models=[rung(fake, "caller", 1e-6, prior_quality=0.7)], num_retries=0)
    result = engine.run(HI, tools=TOOLS)
    run = result.trace.runs[0]
    assert result.answer.tool_calls[0]["function"]["arguments"] == arguments
    assert result.answer.logprobs is None  # tool arguments come without logprobs
    assert run.quality_basis == "tool-call checks"
    assert run.post_hoc_quality == (pytest.approx(0.7) if valid else 0.0)


def test_invalid_tool_call_escalates_to_a_valid_one(fake: FakeOpenAIServer) -> None:
    fake.models["sloppy"] = FakeModel(tool_arguments='{"city": 7}')
    fake.models["careful"] = FakeModel(tool_arguments='{"city": "Paris"}')
    engine = CascadeEngine(
        models=[rung(fake, "sloppy", 1e-7), rung(fake, "careful", 1e-5)],
        strategy={"name": "threshold_cascade", "threshold": 0.5},
        num_retries=0,
    )
    result = engine.run(HI, tools=TOOLS)
    assert result.model == "careful"
    first = result.trace.runs[0]
    assert (first.model, first.post_hoc_quality) == ("sloppy", 0.0)


@pytest.mark.parametrize("declared", [False, True])
def test_missing_logprobs_keep_the_ex_ante_estimate(fake: FakeOpenAIServer, declared: bool) -> None:
    """Declared unsupported, or supported but absent from the reply: either way the post-hoc
    estimate is 'unknown' and the prior stays; nothing is made up."""
    fake.models["mute"] = FakeModel(logprobs=False)
    spec = rung(fake, "mute", 1e-6, prior_quality=0.6, supports_logprobs=declared)
    result = CascadeEngine(models=[spec], num_retries=0).run(HI)
    run = result.trace.runs[0]
    assert result.content == "The answer is 42."
    assert result.answer.logprobs is None
    assert run.post_hoc_quality is None
    assert "no logprobs" in run.quality_basis
    assert not any(name.startswith("lp_") for name in run.features)
    assert run.ex_ante_quality == pytest.approx(0.6)
    streamed = list(CascadeEngine(models=[spec], num_retries=0).stream(HI))
    assert all(e.logprobs is None for e in streamed[:-1])


# -- concurrency --------------------------------------------------------------------------


def _fingerprint(result: Any) -> list[tuple]:
    """What a trace decided, without timings: must depend on its own request only."""
    return [
        (r.model, r.status, r.post_hoc_quality, r.completion_tokens, r.cost_usd)
        for r in result.trace.runs
    ] + [tuple(result.trace.decisions), result.model, result.content]


async def test_concurrent_requests_on_one_engine_have_independent_traces(
    fake: FakeOpenAIServer,
) -> None:
    # Each prompt gets its own confidence (fixed per prompt), so traces differ by request.
    fake.models["small"] = FakeModel(tokens=("s",) * 5, logprob=-1.0, logprob_jitter=0.95)
    fake.models["large"] = FakeModel(tokens=("L",) * 3, logprob=-0.02)
    engine = CascadeEngine(
        models=[rung(fake, "small", 1e-7), rung(fake, "large", 1e-5)],
        strategy={"name": "threshold_cascade", "threshold": 0.5},
        num_retries=0,
    )
    prompts = [[{"role": "user", "content": f"question number {i}"}] for i in range(60)]
    sequential = [_fingerprint(await engine.arun(p)) for p in prompts]
    concurrent = await asyncio.gather(*(engine.arun(p) for p in prompts))
    assert [_fingerprint(r) for r in concurrent] == sequential
    assert len({id(r.trace) for r in concurrent}) == len(prompts)
    escalated = sum(r.model == "large" for r in concurrent)
    assert 0 < escalated < len(prompts)  # both outcomes occur, so mixing would show
