"""What the engine tells frameworks about itself, in one place: the ladder's display name, its
smallest context window, one-model (pinned) engines and token usage summed over a request.

Both adapters and the gateway read these instead of walking the ladder themselves, so the
tests here pin the values, and the adapter tests check that the adapters pass them through
unchanged (no second derivation that could drift).
"""

from __future__ import annotations

from typing import Any

import pytest
from fake_openai_server import FakeModel, FakeOpenAIServer
from hypothesis import given
from hypothesis import strategies as st

from cascade_core.engine import CascadeEngine, CascadeTrace, ModelRun, TokenUsage
from cascade_core.errors import InvalidInputError

HI = [{"role": "user", "content": "What is the answer?"}]
WRONG = tuple(["WRONG"] + [" WRONG"] * 5)
RIGHT = ("RIGHT", " answer", ".")


def rung(name: str, price: float, base: str = "http://127.0.0.1:9/v1", **extra: Any) -> dict:
    return {
        "name": name,
        "model": f"openai/{name}",
        "api_base": base,
        "input_cost_per_token": price,
        "output_cost_per_token": 2 * price,
        "supports_logprobs": True,
        **extra,
    }


def test_name_lists_the_ladder_cheapest_first() -> None:
    engine = CascadeEngine(models=[rung("small", 1e-7), rung("large", 1e-5)])
    assert engine.name == "cascade:small>large"
    assert [m.label for m in engine.ladder] == ["small", "large"]


@pytest.mark.parametrize(
    ("windows", "expected"),
    [((8000, 4000, None), 4000), ((None, 32000), 32000), ((None, None), None)],
)
def test_context_window_is_the_smallest_known_one(windows: tuple, expected: int | None) -> None:
    models = [
        rung(f"m{i}", 1e-7 * (i + 1), **({} if w is None else {"context_window": w}))
        for i, w in enumerate(windows)
    ]
    # Unknown models: LiteLLM's map has no window for them, so None means "not known".
    assert CascadeEngine(models=models).context_window == expected


def test_pinned_engine_runs_one_rung_with_the_same_caps_and_sessions() -> None:
    engine = CascadeEngine(
        models=[rung("small", 1e-7), rung("large", 1e-5)],
        budget={"lambda": 10.0, "max_cost_usd": 0.5, "max_cost_usd_per_session": 2.0},
    )
    pinned = engine.pinned("large")
    assert [m.label for m in pinned.ladder] == ["large"]
    assert pinned.strategy.name == "routing"
    assert pinned.parts.max_cost_usd == 0.5
    assert pinned.parts.max_cost_usd_per_session == 2.0
    assert pinned.sessions is engine.sessions
    assert engine.pinned("large") is pinned  # built once
    assert engine.pinned("openai/large").ladder[0].label == "large"  # by model name too
    assert engine.pinned(engine.name) is engine


def test_pinning_a_model_outside_the_ladder_names_the_ladder() -> None:
    engine = CascadeEngine(models=[rung("small", 1e-7), rung("large", 1e-5)])
    with pytest.raises(InvalidInputError, match=r"'medium' is not in the ladder \['small', "):
        engine.pinned("medium")


def _run(prompt: int, completion: int, cached: int) -> ModelRun:
    return ModelRun(
        model="m",
        index=0,
        status="ok",
        reason="answered",
        ex_ante_quality=0.5,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
    )


tokens = st.integers(min_value=0, max_value=10**9)


@given(st.lists(st.tuples(tokens, tokens, tokens), max_size=6))
def test_request_usage_sums_every_run(runs: list[tuple[int, int, int]]) -> None:
    trace = CascadeTrace(runs=[_run(*r) for r in runs])
    usage = trace.usage
    assert usage.prompt_tokens == sum(r[0] for r in runs)
    assert usage.completion_tokens == sum(r[1] for r in runs)
    assert usage.cached_tokens == sum(r[2] for r in runs)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.as_openai() == {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    assert trace.as_dict()["prompt_tokens"] == usage.prompt_tokens


def test_usage_of_an_escalated_request_counts_the_draft() -> None:
    with FakeOpenAIServer() as fake:
        fake.models["small"] = FakeModel(tokens=WRONG, logprob=-3.0, prompt_tokens=11)
        fake.models["large"] = FakeModel(tokens=RIGHT, logprob=-0.01, prompt_tokens=13)
        engine = CascadeEngine(
            models=[rung("small", 1e-7, fake.base_url), rung("large", 1e-5, fake.base_url)],
            strategy={"name": "threshold_cascade", "threshold": 0.5},
            num_retries=0,
            timeout_s=5,
        )
        result = engine.run(HI, max_tokens=8, logprobs=True)
    assert [r.model for r in result.trace.runs] == ["small", "large"]
    assert [r.usage.prompt_tokens for r in result.trace.runs] == [11, 13]
    assert [r.usage.completion_tokens for r in result.trace.runs] == [len(WRONG), len(RIGHT)]
    assert result.usage == TokenUsage(24, len(WRONG) + len(RIGHT), 0)


def test_building_an_engine_turns_litellm_banners_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one place that does it (CLI jobs rely on it: a banner would corrupt their JSON)."""
    import litellm

    from cascade_core.engine import RouterConfig
    from cascade_core.jobs.runner import make_engine

    monkeypatch.setattr(litellm, "suppress_debug_info", False)
    make_engine(RouterConfig.from_dict({"models": [rung("small", 1e-7)]}, source="test"))
    assert litellm.suppress_debug_info is True
