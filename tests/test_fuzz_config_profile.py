"""Property-based fuzzing of the config, profile and request parsers.

The contract under test, for every input: a valid object, or exactly one
`InvalidInputError` (or a subclass) whose one-line message names the source and a field,
never another exception, and never any key-shaped string of the input. A profile that loads
must then predict in every state without error (validation is complete, not a sample).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fitted_profile import fitted_profile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascade_core.engine import RouterConfig
from cascade_core.engine.config import ModelSpec
from cascade_core.engine.lambda_choice import profile_budget
from cascade_core.engine.request import ACCEPTED_PARAMS, build_request
from cascade_core.errors import InvalidInputError
from cascade_core.estimators import (
    QueryObservation,
    load_profile,
    posthoc_from_confidence,
    profile_from_dict,
)
from cascade_core.estimators.quality import all_states
from cascade_core.key_shapes import looks_like_key

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

KEY_SAMPLES = [
    "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",
    "gsk_8f3Kx2LmQ9pRt7VwYz1Ab4Cd6Ef0Gh2Ij5Kl8Mn3Op",
    "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34",
    "xai-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56",
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
    "0123456789abcdef0123456789abcdef",
]
keys = st.sampled_from(KEY_SAMPLES) | st.from_regex(
    r"\A(sk-|hf_|gsk_|AIza|xai-)[A-Za-z0-9]{32,40}\Z"
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 10**400, 1e308, -0.0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["inf", "nan", "-inf", "1e-6", "", "0x10", "true", "OPENAI_API_KEY"]),
    keys,
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8) | keys, inner, max_size=3)
    ),
    max_leaves=6,
)


def key_strings(data: Any) -> set[str]:
    """Every key-shaped string in a document, as a value or as a mapping key."""
    found: set[str] = set()
    if isinstance(data, str):
        if looks_like_key(data):
            found.add(data)
    elif isinstance(data, dict):
        for key, value in data.items():
            found |= key_strings(key) | key_strings(value)
    elif isinstance(data, list):
        for value in data:
            found |= key_strings(value)
    return found


def assert_one_clean_line(error: InvalidInputError, source: str, document: Any) -> str:
    message = str(error)
    assert "\n" not in message, message
    assert message.startswith(source), message
    for key in key_strings(document):
        assert key not in message, message
    return message


# -- configs --------------------------------------------------------------------------------

MODEL_FIELDS = list(ModelSpec.model_fields)
model_sections = st.fixed_dictionaries(
    {"model": st.sampled_from(["openai/x", "openai/y"]) | values},
    optional={name: values for name in MODEL_FIELDS if name != "model"} | {"api_key_env": keys},
)
config_documents = st.fixed_dictionaries(
    {},
    optional={
        "models": st.lists(model_sections, max_size=3) | values,
        "strategy": st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(["routing", "cascade_routing"]) | values,
                "variant": values,
                "max_depth": values,
                "threshold": values,
            },
        )
        | values,
        "budget": st.fixed_dictionaries(
            {},
            optional={"lambda": values, "target_cost_usd": values, "max_cost_usd": values},
        )
        | values,
        "profile": values,
        "num_retries": values,
        "timeout_s": values,
        "prior_std": values,
        "early_abort": values,
        "colour": values,
    },
)


def _config_or_error(document: Any, source: str) -> RouterConfig | None:
    try:
        return RouterConfig.from_dict(document, source=source)
    except InvalidInputError as error:
        message = assert_one_clean_line(error, source, document)
        named = [str(k) for k in document] if isinstance(document, dict) else []
        named += [*RouterConfig.model_fields, "(top level)", "mapping"]
        assert any(f": {name}" in message for name in named), message
        return None


@FUZZ
@given(config_documents)
def test_fuzz_config_documents(document: dict[str, Any]) -> None:
    config = _config_or_error(document, "fuzz.yaml")
    if config is not None:  # what was accepted is usable: finite numbers, names not keys
        for spec in config.models:
            assert spec.api_key_env is None or not looks_like_key(spec.api_key_env)
        for number in (config.timeout_s, config.prior_std, config.budget.lam):
            assert number is None or math.isfinite(number)


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
            "extra_params": {"top_k": 3},
        },
        {"model": "openai/big", "input_cost_per_token": 1e-5, "output_cost_per_token": 2e-5},
    ],
    "strategy": {"name": "cascade_routing", "variant": "exact", "max_depth": 2, "threshold": 0.5},
    "budget": {"lambda": 10.0, "max_cost_usd": 0.01},
    "num_retries": 1,
    "timeout_s": 30.0,
    "prior_std": 0.2,
    "early_abort": True,
}


def _paths(data: Any, path: tuple = ()) -> list[tuple]:
    """Every location in a document (mappings and lists included, the root excluded)."""
    found = [path] if path else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _paths(value, (*path, i))
    return found


def _replace(data: Any, path: tuple, value: Any) -> Any:
    copy = json.loads(json.dumps(data))
    parent = copy
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return copy


@FUZZ
@given(st.sampled_from(_paths(FULL_CONFIG)), values)
def test_fuzz_one_field_of_a_full_config(path: tuple, value: Any) -> None:
    """Changing one field either still validates or is refused naming that field (or the
    section holding it, for rules across fields such as unique names)."""
    document = _replace(FULL_CONFIG, path, value)
    try:
        RouterConfig.from_dict(document, source="router.yaml")
    except InvalidInputError as error:
        message = assert_one_clean_line(error, "router.yaml", document)
        prefixes = [".".join(map(str, path[:i])) for i in range(len(path), 0, -1)]
        assert any(f"{p}" in message for p in prefixes) or "(top level)" in message, message


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(
    st.one_of(
        config_documents.map(lambda d: ("json", d)),
        config_documents.map(lambda d: ("yaml", d)),
        st.binary(max_size=80).map(lambda b: ("bytes", b)),
        st.text(max_size=80).map(lambda t: ("text", t)),
    ),
    st.sampled_from([".yaml", ".json"]),
)
def test_fuzz_config_files(fuzz_dir: Path, item: tuple[str, Any], suffix: str) -> None:
    kind, content = item
    path = fuzz_dir / f"router{suffix}"
    if kind == "json":
        path.write_text(json.dumps(content), encoding="utf-8")
    elif kind == "yaml":
        path.write_text(yaml.safe_dump(content), encoding="utf-8")
    elif kind == "bytes":
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    try:
        RouterConfig.from_file(path)
    except InvalidInputError as error:
        document = content if kind in ("json", "yaml") else None
        assert str(path) in assert_one_clean_line(error, "", document)


# -- profiles -------------------------------------------------------------------------------

PROFILES = {k: fitted_profile(k) for k in (2, 3)}


@st.composite
def mutated_profiles(draw: st.DrawFn) -> dict[str, Any]:
    document = json.loads(json.dumps(PROFILES[draw(st.sampled_from([2, 3]))]))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)
        path = draw(st.sampled_from(paths))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "drop", "shorten", "extend", "duplicate"]))
        target = parent[path[-1]]
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif (action == "drop" and isinstance(parent, dict)) or action == "drop":
            parent.pop(path[-1])
        elif action == "shorten" and isinstance(target, list) and target:
            parent[path[-1]] = target[:-1]
        elif action == "extend" and isinstance(target, list):
            parent[path[-1]] = [*target, draw(values)]
        elif action == "duplicate" and isinstance(target, list) and target:
            parent[path[-1]] = [*target, target[0]]
    if draw(st.integers(0, 3)) == 0:
        document["version"] = draw(st.sampled_from([1, True, 1.0, "1", 2, None]))
    return document


def _predicts_in_every_state(document: dict[str, Any]) -> None:
    estimator = profile_from_dict(document)
    spec = estimator.spec
    for state in all_states(spec.n_models):
        observation = QueryObservation(
            prompt="how much is 6 * 7?",
            task=spec.tasks[0] if spec.tasks else "",
            embedding=np.zeros(spec.embedding_dim) if spec.embedding_dim else None,
            posthoc={m: posthoc_from_confidence(-0.2) for m in state},
            answers={m: "42" for m in state},
        )
        quality, uncertainty = estimator.predict_one(observation, state)
        assert quality.shape == (spec.n_models,) and np.isfinite(quality).all()
        assert uncertainty is not None


@FUZZ
@given(mutated_profiles())
def test_fuzz_profiles(fuzz_dir: Path, document: dict[str, Any]) -> None:
    path = fuzz_dir / "profile.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    try:
        load_profile(path)
    except InvalidInputError as error:
        assert_one_clean_line(error, str(path), document)
    else:
        _predicts_in_every_state(document)
    try:
        profile_budget(path)
    except InvalidInputError as error:
        assert_one_clean_line(error, str(path), document)


def test_the_unmutated_profiles_load_and_predict() -> None:
    for document in PROFILES.values():
        _predicts_in_every_state(document)
        assert profile_from_dict(document).n_models == len(document["features"]["model_names"])


# -- requests -------------------------------------------------------------------------------

messages = (
    st.lists(
        st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": values})
        | values,
        max_size=3,
    )
    | values
)
params = st.dictionaries(
    st.sampled_from(sorted(ACCEPTED_PARAMS)) | st.sampled_from(["api_key", "temprature"]) | keys,
    values,
    max_size=4,
)


@FUZZ
@given(messages, params)
def test_fuzz_build_request(message_list: Any, parameters: dict[str, Any]) -> None:
    try:
        request = build_request(message_list, parameters)
    except InvalidInputError as error:
        message = assert_one_clean_line(error, "", [message_list, parameters])
        fields = ["messages", "api_key", "unknown request parameter", *map(str, parameters)]
        assert any(field in message for field in fields), message
    else:
        assert request["messages"] is message_list
        for name, value in parameters.items():
            if name in ("max_tokens", "seed", "top_logprobs") and value is not None:
                assert type(value) is int
            if name in ("temperature", "top_p") and value is not None:
                assert not isinstance(value, bool) and math.isfinite(value)
