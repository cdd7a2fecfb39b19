"""Router configuration and request validation: bad input is refused naming the field."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cascade_core.cli.app import app
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
    secret = "sk-live-0123456789abcdefghij"  # tests/test_keys_never_leak.py: every key shape
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
    model = engine.ladder[0]
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


# -- every field refuses what would only fail later -------------------------------------

FULL_CONFIG: dict[str, Any] = {
    "models": [
        {
            "model": "openai/my-model",
            "name": "mine",
            "api_base": "http://127.0.0.1:9/v1",
            "api_key_env": "MY_PROVIDER_KEY",
            "input_cost_per_token": 1e-6,
            "output_cost_per_token": 2e-6,
            "context_window": 4096,
            "supports_logprobs": True,
            "prior_quality": 0.5,
            "expected_output_tokens": 64,
            "extra_params": {},
        }
    ],
    "strategy": {"name": "cascade_routing", "variant": "exact", "max_depth": 2, "threshold": 0.5},
    "budget": {"lambda": 10.0, "max_cost_usd": 0.01},
    "profile": None,
    "num_retries": 1,
    "timeout_s": 30.0,
    "prior_std": 0.2,
    "early_abort": True,
}


def _leaves(data: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    if isinstance(data, dict) and data:
        return [leaf for key, value in data.items() for leaf in _leaves(value, (*path, key))]
    if isinstance(data, list) and data:
        return [leaf for i, value in enumerate(data) for leaf in _leaves(value, (*path, i))]
    return [(path, data)]


def _with(data: Any, path: tuple, value: Any) -> Any:
    copy = json.loads(json.dumps(data))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copy


NUMERIC_LEAVES = [
    (path, value)
    for path, value in _leaves(FULL_CONFIG)
    if isinstance(value, int | float) and not isinstance(value, bool)
]


def test_the_full_config_is_valid_and_covers_every_numeric_field() -> None:
    RouterConfig.from_dict(FULL_CONFIG)
    numeric = {".".join(map(str, p)) for p, _ in NUMERIC_LEAVES}
    assert numeric >= {
        "models.0.input_cost_per_token",
        "models.0.output_cost_per_token",
        "models.0.context_window",
        "models.0.prior_quality",
        "models.0.expected_output_tokens",
        "strategy.max_depth",
        "strategy.threshold",
        "budget.lambda",
        "budget.max_cost_usd",
        "num_retries",
        "timeout_s",
        "prior_std",
    }


@pytest.mark.parametrize(("path", "value"), NUMERIC_LEAVES, ids=lambda v: str(v))
@pytest.mark.parametrize(
    "bad", [math.inf, -math.inf, math.nan, "inf", "nan", True, False, 10**400], ids=repr
)
def test_every_numeric_field_refuses_non_finite_numbers_and_bools(path, value, bad) -> None:
    """One line naming the field, whatever the field: a new float field inherits the rule."""
    with pytest.raises(InvalidInputError) as caught:
        RouterConfig.from_dict(_with(FULL_CONFIG, path, bad))
    message = str(caught.value)
    assert ".".join(map(str, path)) in message and "\n" not in message


@pytest.mark.parametrize("field", ["target_cost_usd", "max_cost_usd", "lambda"])
def test_budget_fields_refuse_infinity(field: str) -> None:
    with pytest.raises(InvalidInputError, match=f"budget.{field}: must be a finite number"):
        RouterConfig.from_dict({"models": [MODEL], "budget": {field: math.inf}})


@pytest.mark.parametrize("field", ["context_window", "expected_output_tokens"])
def test_integer_fields_refuse_integral_floats_and_huge_counts(field: str) -> None:
    for bad in (64.0, 2**31, "64"):
        with pytest.raises(InvalidInputError, match=f"models.0.{field}"):
            RouterConfig.from_dict({"models": [{**MODEL, field: bad}]})


def test_yaml_numbers_without_a_dot_still_count() -> None:
    """PyYAML reads `1e-6` as a string; it is still the number the user meant."""
    config = RouterConfig.from_dict({"models": [{**MODEL, "input_cost_per_token": "1e-6"}]})
    assert config.models[0].input_cost_per_token == 1e-6


@pytest.mark.parametrize(
    "param", ["api_key", "aws_secret_access_key", "azure_ad_token", "vertex_credentials", "token"]
)
def test_credentials_in_extra_params_are_refused_without_echoing_them(param: str) -> None:
    secret = "plain-secret-value-0112358"
    with pytest.raises(InvalidInputError) as caught:
        RouterConfig.from_dict({"models": [{**MODEL, "extra_params": {param: secret}}]})
    assert "models.0.extra_params" in str(caught.value) and secret not in str(caught.value)


def test_ordinary_extra_params_are_kept() -> None:
    config = RouterConfig.from_dict({"models": [{**MODEL, "extra_params": {"max_tokens": 9}}]})
    assert config.models[0].extra_params == {"max_tokens": 9}


def test_several_bad_fields_make_one_line() -> None:
    with pytest.raises(InvalidInputError) as caught:
        RouterConfig.from_dict(
            {"models": [{**MODEL, "input_cost_per_token": -1}], "timeout_s": 0, "colour": 1}
        )
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("config: ")
    for field in ("models.0.input_cost_per_token", "timeout_s", "colour"):
        assert field in message
    assert message.count("; ") == 2


def test_replace_validates_like_a_config() -> None:
    config = RouterConfig.from_dict({"models": [MODEL]})
    assert config.replace(timeout_s=5).timeout_s == 5
    with pytest.raises(InvalidInputError, match="timeout_s: must be a finite number"):
        config.replace(source="--timeout", timeout_s=math.inf)


# -- config files: every problem is one line naming the file --------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "bad.yaml",
            "models:\n  - model: x\n   name: [unclosed\n",
            r"bad.yaml:3:\d+: invalid YAML",
        ),
        ("tab.yaml", "models:\n\t- model: x\n", r"tab.yaml:2:1: invalid YAML"),
        ("bad.json", '{"models": [{"model": "x",}]}', r"bad.json:1:27: invalid JSON"),
        ("list.yaml", "- model: x\n", r"list.yaml: expected a mapping"),
        ("empty.yaml", "", r"empty.yaml: expected a mapping"),
        ("nan.json", '{"models": [{"model": "x"}], "timeout_s": NaN}', r"timeout_s: must be"),
        ("tag.yaml", "models: !!python/object:os.system [ls]\n", r"tag.yaml:1:9: invalid YAML"),
    ],
)
def test_file_syntax_errors_name_the_file_line_and_column(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInputError, match=expected) as caught:
        RouterConfig.from_file(path)
    assert "\n" not in str(caught.value)


def test_a_non_utf8_config_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("models:\n  - model: caf\xe9\n".encode("latin-1"))
    with pytest.raises(
        InvalidInputError, match=r"latin1.yaml:2: not UTF-8.*save the file as UTF-8"
    ):
        RouterConfig.from_file(path)


def test_a_missing_config_or_a_directory_says_to_check_the_path(tmp_path: Path) -> None:
    for path in (tmp_path / "nope.yaml", tmp_path):
        with pytest.raises(InvalidInputError, match="check the path"):
            RouterConfig.from_file(path)


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"models": [MODEL]}).encode())
    assert RouterConfig.from_file(path).models[0].model == MODEL["model"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("models:\n  - model: x\n   name: [\n", "invalid YAML"),
        (b"models:\n  - model: \xff\n", "not UTF-8"),
        ("models:\n  - {model: openai/x, input_cost_per_token: .inf}\n", "finite number"),
        ("models:\n  - {model: openai/x, api_key_env: gsk_8f3Kx2LmQ9pRt7VwYz1Ab4Cd6Ef0}\n", "NAME"),
    ],
)
def test_the_cli_prints_one_line_and_exits_2_for_a_bad_config(tmp_path, content, expected):
    config = tmp_path / "router.yaml"
    if isinstance(content, bytes):
        config.write_bytes(content)
    else:
        config.write_text(content)
    rows = tmp_path / "in.jsonl"
    rows.write_text('{"id": "1", "prompt": "hi"}\n')
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["batch", "--config", str(config), str(rows), str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.output
    assert "gsk_8f3Kx2LmQ9pRt7VwYz1Ab4Cd6Ef0" not in result.output
