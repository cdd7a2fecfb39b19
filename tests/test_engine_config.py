"""Router configuration and request validation: bad input is refused naming the field."""

from __future__ import annotations

import json

import pytest

from cascade_core.engine import CascadeEngine, RouterConfig
from cascade_core.errors import InvalidInputError

MODEL = {
    "model": "openai/my-model",
    "api_base": "http://127.0.0.1:9/v1",
    "input_cost_per_token": 1e-6,
    "output_cost_per_token": 2e-6,
}


def test_yaml_and_json_files_load_the_same_config(tmp_path):
    data = {"models": [MODEL], "strategy": {"name": "cascade_routing", "max_depth": 2}}
    (tmp_path / "ladder.json").write_text(json.dumps(data))
    (tmp_path / "ladder.yaml").write_text(
        "models:\n"
        "  - model: openai/my-model\n"
        "    api_base: http://127.0.0.1:9/v1\n"
        "    input_cost_per_token: 1.0e-6\n"
        "    output_cost_per_token: 2.0e-6\n"
        "strategy: {name: cascade_routing, max_depth: 2}\n"
    )
    assert RouterConfig.from_file(tmp_path / "ladder.json") == RouterConfig.from_file(
        tmp_path / "ladder.yaml"
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"modles": []}, "modles"),
        ({"models": []}, "models"),
        ({"models": [{**MODEL, "input_cost_per_token": -1}]}, "models.0.input_cost_per_token"),
        ({"models": [{**MODEL, "colour": "red"}]}, "models.0.colour"),
        ({"strategy": {"name": "fastest"}}, "strategy.name"),
        ({"budget": {"lambda": -3}}, "budget.lambda"),
        ({"budget": {"max_cost_usd": "a lot"}}, "budget.max_cost_usd"),
        ({"models": [MODEL, MODEL]}, "unique"),
    ],
)
def test_bad_configs_name_the_field(change, field):
    data = {"models": [MODEL], **change}
    with pytest.raises(InvalidInputError) as caught:
        RouterConfig.from_dict(data)
    assert field in str(caught.value)


def test_a_key_in_place_of_a_variable_name_is_refused_without_echoing_it():
    secret = "sk-live-0123456789abcdefghij"
    with pytest.raises(InvalidInputError) as caught:
        RouterConfig.from_dict({"models": [{**MODEL, "api_key_env": secret}]})
    assert "api_key_env" in str(caught.value)
    assert secret not in str(caught.value)
    with pytest.raises(InvalidInputError, match="api_key_env"):
        RouterConfig.from_dict({"models": [{**MODEL, "extra_params": {"api_key": secret}}]})


def test_missing_key_variable_is_reported_by_name(monkeypatch):
    monkeypatch.delenv("MY_PROVIDER_KEY", raising=False)
    engine = CascadeEngine(models=[{**MODEL, "api_key_env": "MY_PROVIDER_KEY"}])
    call = engine.start([{"role": "user", "content": "hi"}]).next_call()
    with pytest.raises(InvalidInputError, match="MY_PROVIDER_KEY"):
        call.kwargs(stream=False)


def test_unpriced_models_must_be_priced():
    with pytest.raises(InvalidInputError, match="input_cost_per_token"):
        CascadeEngine(models=[{"model": "openai/not-in-litellms-map"}])


def test_litellm_prices_are_used_when_none_are_given():
    engine = CascadeEngine(models=[{"model": "gpt-4o-mini"}])
    model = engine.parts.ladder[0]
    assert model.input_cost_per_token > 0 and model.context_window
    assert model.supports_logprobs


@pytest.mark.parametrize(
    ("messages", "params", "message"),
    [
        ([], {}, "messages"),
        ([{"content": "hi"}], {}, r"messages\[0\]"),
        ([{"role": "user", "content": "hi"}], {"max_tokens": 0}, "max_tokens"),
        ([{"role": "user", "content": "hi"}], {"temprature": 0.2}, "temprature"),
        ([{"role": "user", "content": "hi"}], {"tools": "search"}, "tools"),
    ],
)
def test_bad_requests_are_refused_before_any_call(messages, params, message):
    engine = CascadeEngine(models=[MODEL])
    with pytest.raises(InvalidInputError, match=message):
        engine.run(messages, **params)


def test_a_prompt_longer_than_a_context_window_skips_that_model():
    engine = CascadeEngine(models=[{**MODEL, "context_window": 5}, {**MODEL, "name": "roomy"}])
    run = engine.start([{"role": "user", "content": "word " * 50}])
    call = run.next_call()
    assert call.model.label == "roomy"
    assert run.trace.runs[0].status == "skipped" and "context window" in run.trace.runs[0].reason


def test_a_cost_cap_too_small_for_a_model_skips_it():
    # lambda 0 and a far better prior: the strategy wants the dear model first.
    cheap = {**MODEL, "name": "cheap", "prior_quality": 0.1}
    dear = {
        **MODEL,
        "name": "dear",
        "input_cost_per_token": 1e-3,
        "output_cost_per_token": 1e-3,
        "prior_quality": 0.95,
    }
    engine = CascadeEngine(models=[dear, cheap], budget={"lambda": 0, "max_cost_usd": 1e-3})
    run = engine.start([{"role": "user", "content": "hello there"}], max_tokens=50)
    call = run.next_call()
    assert call.model.label == "cheap"
    assert call.params["max_tokens"] <= 50
    skipped = [r for r in run.trace.runs if r.status == "skipped"]
    assert skipped and skipped[0].model == "dear" and "cost cap" in skipped[0].reason
