"""Bad input is refused with a message that names the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fitted_profile import fitted_profile

from cascade_core import CascadeRouting, QueryEstimates, StagedEstimates, make_strategy
from cascade_core.engine import RouterConfig
from cascade_core.engine.config import API_KEY_REFUSED
from cascade_core.engine.lambda_choice import configured_strategy
from cascade_core.engine.request import build_request
from cascade_core.errors import InvalidInputError
from cascade_core.estimators import ProfileVersionError, load_profile, profile_from_dict


@pytest.mark.parametrize(
    ("quality", "cost", "message"),
    [
        ([0.5, 0.6], [1.0], "shapes"),
        ([0.5, np.nan], [1.0, 2.0], "NaN"),
        ([0.5, 1.2], [1.0, 2.0], r"\[0, 1\]"),
        ([0.5, -0.1], [1.0, 2.0], r"\[0, 1\]"),
        ([0.5, 0.6], [1.0, -2.0], ">= 0"),
        ([0.5, 0.6], [1.0, np.nan], "NaN"),
        ([], [], "empty"),
    ],
)
def test_query_estimates_refuse_bad_values(quality, cost, message):
    with pytest.raises(InvalidInputError, match=message):
        QueryEstimates.create(quality, cost)


def test_staged_estimates_refuse_disagreeing_shapes():
    with pytest.raises(InvalidInputError, match="shapes disagree"):
        StagedEstimates.from_arrays(np.zeros((3, 2)), np.zeros((3, 3)), np.ones((3, 2)))


def test_unknown_strategy_and_variant_are_named():
    with pytest.raises(InvalidInputError, match=r"unknown strategy 'cascade'.*cascade_routing"):
        make_strategy("cascade")
    with pytest.raises(InvalidInputError, match="variant"):
        make_strategy("cascade_routing", variant="fast")
    with pytest.raises(InvalidInputError, match="unexpected keyword"):
        make_strategy("routing", lamda=1.0)


def test_negative_or_nan_lambda_is_refused():
    with pytest.raises(InvalidInputError, match="lam"):
        CascadeRouting(lam=-1.0)
    with pytest.raises(InvalidInputError, match="lam"):
        CascadeRouting(lam=float("nan"))


def test_ran_indices_out_of_range_are_refused():
    estimates = QueryEstimates.create([0.5, 0.6], [1.0, 2.0])
    with pytest.raises(InvalidInputError, match="outside"):
        CascadeRouting().decide(estimates, [5])


# -- profiles: checked completely when loaded ----------------------------------------------


def _drop(key):
    return lambda node: node.pop(key)


def _set(key, value):
    return lambda node: node.__setitem__(key, value)


def _shorten(key):
    return lambda node: node.__setitem__(key, node[key][:-1])


# (location of the node to change, change, what the one-line error must say)
PROFILE_DEFECTS = [
    (("states", 1, "models", 0), _drop("coef"), "states.1.models.0.coef: required, but missing"),
    (("states", 3, "models", 1), _shorten("coef"), r"states.3.models.1.coef: expected \d+ numbers"),
    (("states", 2, "models", 0), _shorten("mean"), r"states.2.models.0.mean: expected \d+ numbers"),
    (("states", 0, "models", 1), _set("intercept", True), "states.0.models.1.intercept: must be"),
    (("states", 0, "models", 0), _set("intercept", float("nan")), "intercept: must be a finite"),
    (("states", 1, "models", 1), _set("scale", [0.0, 1.0, 1.0, 1.0, 1.0, 1.0]), "scale.0"),
    (("states", 1, "models", 1), _set("extra", 1), "states.1.models.1.extra: unknown key"),
    (("states", 0), _set("covariance", [[1.0, 0.5], [0.4, 1.0]]), "covariance: must be symmetric"),
    (("states", 0), _set("covariance", [[1.0, 2.0], [2.0, 1.0]]), "not positive semi-definite"),
    (("states", 0), _set("covariance", [[1.0]]), r"states.0.covariance: expected a 2 x 2 matrix"),
    (("states", 0), _set("covariance", [[1.0, "x"], [0.0, 1.0]]), "states.0.covariance.0.1"),
    (("states", 3), _set("ran", [0, 2]), r"states.3.ran: expected distinct model indices"),
    (("states", 3), _set("ran", [1, 0]), r"states.3.ran: expected distinct"),
    (("states", 3), _set("ran", [0]), r"states.3.ran: repeats states.1"),
    (("states", 2), _set("models", []), r"states.2.models: expected 2 models"),
    (("states", 2), _drop("covariance"), r"states.2.covariance: required"),
    ((), _set("states", []), r"states: expected 4 states"),
    (("features",), _set("embedding_dim", True), "features.embedding_dim: must be an integer"),
    (("features",), _set("embedding_dim", 3), r"states.0.models.0.mean: expected 6 numbers, got 3"),
    (("features",), _set("posthoc_source", "vibes"), "features.posthoc_source"),
    (("features",), _set("model_names", ["m0", "m0"]), "features.model_names: names must be"),
    (("features",), _set("use_agreement", 1), "features.use_agreement: must be true or false"),
    (("features",), _drop("tasks"), "features.tasks: required"),
    ((), _set("kind", "tree"), "kind: unknown estimator kind"),
    ((), _set("states", {"0": 1}), "states: Input should be a valid list"),
]


def _node(data, path):
    for part in path:
        data = data[part]
    return data


@pytest.mark.parametrize(("path", "change", "expected"), PROFILE_DEFECTS)
def test_a_defective_profile_is_refused_at_load_naming_the_json_location(
    tmp_path, path, change, expected
) -> None:
    data = fitted_profile(2)
    profile_from_dict(data, "profile.json")  # the real profile loads ...
    change(_node(data, path))
    target = tmp_path / "profile.json"
    target.write_text(json.dumps(data))
    with pytest.raises(InvalidInputError, match=expected) as caught:
        load_profile(target)
    message = str(caught.value)
    assert message.startswith(f"{target}: ") and "\n" not in message


@pytest.mark.parametrize("version", [True, 1.0, "1", None, 0, 2])
def test_a_profile_version_must_be_the_integer_1(version) -> None:
    data = fitted_profile(2)
    data["version"] = version
    with pytest.raises(ProfileVersionError, match="version"):
        profile_from_dict(data)


def test_unknown_top_level_keys_of_a_profile_are_ignored() -> None:
    data = fitted_profile(2)
    data["written_by"] = "a later calibrate"
    data["cost"] = {"model_names": ["a"], "input_price": [1.0]}  # older versions wrote one
    assert profile_from_dict(data).n_models == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "check the path"),
        (b'{"format": "x",\n "version": 1,,}', r"profile.json:2:15: not valid JSON"),
        (b'{"format": "\xff"}', "not UTF-8"),
        (b"[1, 2]", "not a cascade-router quality profile"),
    ],
)
def test_unreadable_profiles_are_one_line(tmp_path, content, expected) -> None:
    path = tmp_path / "profile.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=expected) as caught:
        load_profile(path)
    assert "\n" not in str(caught.value)


BUDGET_DEFECTS = [
    (_set("lambda", -1.0), "budget.lambda: Input should be greater than or equal to 0"),
    (_set("gamma", 2.0), "budget.gamma"),
    (_set("gamma", True), "budget.gamma: must be a number"),
    (_set("curve", []), "budget.curve"),
    (lambda s: s["curve"][3].__setitem__("cost_usd", float("inf")), "budget.curve.3.cost_usd"),
    (lambda s: s["curve"][0].pop("lambda"), "budget.curve.0.lambda: required"),
    (lambda s: s["strategy"].__setitem__("name", "fastest"), "budget.strategy.name"),
    (_drop("strategy"), "budget.strategy: required"),
]


@pytest.mark.parametrize(("change", "expected"), BUDGET_DEFECTS)
@pytest.mark.parametrize("budget", [{}, {"target_cost_usd": 1e-4}, {"lambda": 3.0}])
def test_a_defective_budget_section_is_refused_whatever_the_config_uses(
    tmp_path, change, expected, budget
) -> None:
    data = fitted_profile(2)
    change(data["budget"])
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data))
    config = RouterConfig.from_dict({"models": [{"model": "openai/m"}], "budget": budget})
    with pytest.raises(InvalidInputError, match=expected) as caught:
        configured_strategy(config.replace(profile=path))
    assert str(caught.value).startswith(f"{path}: ")


def test_the_fitted_budget_section_gives_the_fitted_lambda(tmp_path) -> None:
    data = fitted_profile(2)
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data))
    config = RouterConfig.from_dict({"models": [{"model": "openai/m"}], "profile": str(path)})
    strategy = configured_strategy(config)
    lam = getattr(strategy, "lam", None) or strategy.cheap.lam  # type: ignore[attr-defined]
    assert lam == pytest.approx(data["budget"]["lambda"])


# -- requests: strict types --------------------------------------------------------------

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"max_tokens": True}, "max_tokens"),
        ({"max_tokens": 8.0}, "max_tokens"),
        ({"max_tokens": 2**40}, "max_tokens"),
        ({"seed": False}, "seed"),
        ({"top_logprobs": True}, "top_logprobs"),
        ({"logprobs": 1}, "logprobs"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"temperature": "0.2"}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"stop": [1]}, "stop"),
        ({"tools": {"type": "function"}}, "tools"),
        ({"tool_choice": 3}, "tool_choice"),
        ({"response_format": "json"}, "response_format"),
    ],
)
def test_request_parameters_are_strict(params, field) -> None:
    with pytest.raises(InvalidInputError, match=f"^request: {field}") as caught:
        build_request(HI, params)
    assert "\n" not in str(caught.value)


def test_valid_request_parameters_pass_unchanged() -> None:
    params = {"max_tokens": 8, "temperature": 0, "top_p": 1, "seed": -3, "stop": "###"}
    request = build_request(HI, params)
    assert request == {"messages": HI, **params, "stop": ["###"]}
    assert request["temperature"] == 0 and type(request["temperature"]) is int


def test_an_api_key_in_a_request_is_refused_without_echoing_it() -> None:
    key = "gsk_8f3Kx2LmQ9pRt7VwYz1Ab4Cd6Ef0Gh2I"
    with pytest.raises(InvalidInputError) as caught:
        build_request(HI, {"api_key": key})
    assert str(caught.value) == API_KEY_REFUSED
    with pytest.raises(InvalidInputError, match="unknown request parameter") as caught:
        build_request(HI, {key: 1})
    assert key not in str(caught.value)
