"""The gateway's pure parts, fuzzed: OpenAI parameters -> engine, proxy config merging,
`serve`'s refusals; and the in-process provider's accounting as LiteLLM's callbacks see it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import litellm
import pytest
import yaml
from fake_openai_server import FakeModel, FakeOpenAIServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litellm.integrations.custom_logger import CustomLogger

from cascade_core.engine import RouterConfig
from cascade_core.errors import InvalidInputError
from cascade_core.gateway import LadderRegistry, openai_format, proxy_config, register
from cascade_core.gateway.ladders import gateway_engine
from cascade_core.gateway.provider import CascadeProvider

ENV_NAME = st.from_regex(r"[A-Z_][A-Z0-9_]{0,12}", fullmatch=True)
LABEL = st.from_regex(r"[a-z][a-z0-9\-]{0,10}", fullmatch=True)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def ladder_config(
    labels: list[str], key_envs: list[str | None], api_base: str = "http://127.0.0.1:9/v1"
) -> RouterConfig:
    return RouterConfig.from_dict(
        {
            "models": [
                {
                    "name": label,
                    "model": f"openai/{label}",
                    "api_base": api_base,
                    "api_key_env": env,
                    "supports_logprobs": True,
                    "input_cost_per_token": 1e-6,
                    "output_cost_per_token": 2e-6,
                }
                for label, env in zip(labels, key_envs, strict=True)
            ]
        }
    )


# -- OpenAI parameters -> engine ------------------------------------------------------------


@given(st.dictionaries(st.text(max_size=20), JSONISH, max_size=8))
def test_engine_params_drop_transport_fields_and_refuse_several_choices(params) -> None:
    try:
        out = openai_format.engine_params(dict(params))
    except InvalidInputError as error:
        assert str(error).startswith("n: ")
        assert params.get("n") not in (None, 1)
        return
    assert not {"stream", "stream_options", "user", "metadata", "max_retries", "n"} & set(out)
    assert None not in out.values()
    if "max_completion_tokens" in params and params["max_completion_tokens"] is not None:
        assert "max_completion_tokens" not in out


def test_max_completion_tokens_is_max_tokens() -> None:
    assert openai_format.engine_params({"max_completion_tokens": 9}) == {"max_tokens": 9}


# -- proxy config -------------------------------------------------------------------------


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(LABEL, min_size=1, max_size=3, unique=True),
    st.lists(st.none() | ENV_NAME, min_size=3, max_size=3),
    st.booleans(),
    st.booleans(),
)
def test_generated_config_names_key_variables_never_values(labels, envs, expose, redis) -> None:
    secret = "sk-live-" + "x" * 24
    config = ladder_config(labels, envs[: len(labels)])
    with pytest.MonkeyPatch.context() as patch:
        for env in filter(None, envs):
            patch.setenv(env, secret)
        generated = proxy_config.build({"lad": config}, expose_models=expose, redis=redis)
    text = yaml.safe_dump(generated)
    assert secret not in text
    keys = [e["litellm_params"].get("api_key") for e in generated["model_list"]]
    for key in filter(None, keys):
        assert key.startswith("os.environ/") or key == "no-key-required"
    assert generated["model_list"][0]["litellm_params"] == {"model": "cascade/lad"}
    assert generated["router_settings"]["model_group_retry_policy"] == {
        "lad": {"DefaultRetries": 0}
    }


USER_ENTRY = st.fixed_dictionaries(
    {
        "model_name": st.sampled_from(["lad", "other", "small"]),
        "litellm_params": st.dictionaries(
            st.sampled_from(["rpm", "tpm", "model", "api_base"]),
            st.integers(1, 9) | st.text(max_size=5),
            max_size=3,
        ),
    }
)


@settings(max_examples=80)
@given(
    st.lists(USER_ENTRY, max_size=4),
    st.dictionaries(
        st.sampled_from(["callbacks", "drop_params", "custom_provider_map"]),
        st.lists(st.text(max_size=5), max_size=2) | st.booleans(),
        max_size=2,
    ),
)
def test_merge_keeps_the_cascade_and_adds_the_users_settings(entries, settings_) -> None:
    generated = proxy_config.build({"lad": ladder_config(["small"], [None])}, expose_models=True)
    user = {"model_list": entries, "litellm_settings": settings_}
    try:
        merged = proxy_config.merge(generated, user, "user.yaml")
    except InvalidInputError as error:
        assert str(error).startswith("user.yaml: ")
        bad_model = any(
            e["model_name"] == "lad"
            and e["litellm_params"].get("model") not in (None, "cascade/lad")
            for e in entries
        )
        repeated = sum(e["model_name"] == "lad" for e in entries) > 1
        assert bad_model or repeated or "custom_provider_map" in str(error)
        return
    cascade = [e for e in merged["model_list"] if e["model_name"] == "lad"]
    assert len(cascade) == 1 and cascade[0]["litellm_params"]["model"] == "cascade/lad"
    for entry in entries:
        if entry["model_name"] == "lad":
            for key, value in entry["litellm_params"].items():
                if key != "model":
                    assert cascade[0]["litellm_params"][key] == value
    settings_out = merged["litellm_settings"]
    assert settings_out["custom_provider_map"][0]["provider"] == "cascade"
    assert settings_out["callbacks"][0] == proxy_config.PROXY_HOOKS


def test_a_ladder_of_cascades_is_refused() -> None:
    config = RouterConfig.from_dict(
        {
            "models": [
                {"model": "cascade/other", "input_cost_per_token": 0, "output_cost_per_token": 0}
            ]
        }
    )
    with pytest.raises(InvalidInputError, match="itself a cascade"):
        gateway_engine(config)


# -- serve's refusals: one line, exit code 2 ----------------------------------------------


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "LITELLM_MASTER_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "cascade_core.cli.serve", *args],
        capture_output=True,
        text=True,
        env={**environment, **(env or {})},
        timeout=120,
    )


def test_serve_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    missing = serve("--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "nope.yaml" in missing.stderr and "Traceback" not in missing.stderr
    ladder = tmp_path / "ladder.yaml"
    ladder.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {"model": "openai/x", "input_cost_per_token": 0, "output_cost_per_token": 0}
                ]
            }
        )
    )
    no_key = serve("--config", str(ladder))
    assert no_key.returncode == 2 and "LITELLM_MASTER_KEY" in no_key.stderr
    assert no_key.stderr.count("\n") == 1
    bad_merge = tmp_path / "proxy.yaml"
    bad_merge.write_text(
        yaml.safe_dump(
            {"model_list": [{"model_name": "ladder", "litellm_params": {"model": "openai/y"}}]}
        )
    )
    refused = serve(
        "--config",
        str(ladder),
        "--proxy-config",
        str(bad_merge),
        env={"LITELLM_MASTER_KEY": "sk-x" * 8},
    )
    assert refused.returncode == 2 and "model_list[0] (ladder)" in refused.stderr
    printed = serve("--config", str(ladder), "--print-config", "--insecure-no-auth")
    assert printed.returncode == 0
    assert (
        yaml.safe_load(printed.stdout)["model_list"][0]["litellm_params"]["model"]
        == "cascade/ladder"
    )


# -- in-process accounting ---------------------------------------------------------------


class _Events(CustomLogger):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, float | None]] = []

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.seen.append((kwargs.get("model"), kwargs.get("response_cost")))

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.seen.append((kwargs.get("model"), kwargs.get("response_cost")))


@pytest.fixture(scope="module")
def litellm_events():
    """One recorder in ``litellm.callbacks`` for the module: LiteLLM keeps the callback
    instances it first saw, so a recorder swapped in per test would miss events."""
    events = _Events()
    previous = list(litellm.callbacks)
    litellm.callbacks = [*previous, events]
    yield events
    litellm.callbacks = previous


# One event loop for both cases: LiteLLM's logging worker stays bound to the first loop.
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("stream", [False, True])
async def test_litellm_callbacks_see_the_cascade_once_at_its_total(
    stream: bool, litellm_events: _Events
) -> None:
    models = {"small": FakeModel(logprob=-3.0), "big": FakeModel(logprob=-0.01)}
    events = litellm_events
    events.seen.clear()
    with FakeOpenAIServer(models) as fake:
        config = ladder_config(["small", "big"], [None, None], fake.base_url)
        register(CascadeProvider(LadderRegistry({"u": config})))
        try:
            response = await litellm.acompletion(
                model="cascade/u",
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=8,
                stream=stream,
            )
            if stream:
                chunks = [chunk async for chunk in response]
                cost = next(c.cascade for c in chunks if getattr(c, "cascade", None))["cost_usd"]
            else:
                cost = response.cascade["cost_usd"]
            deadline = time.monotonic() + 30
            while not any(m == "u" for m, _ in events.seen) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            # The engine's calls ended before the cascade's response; any event of theirs
            # was scheduled before the cascade's own, so it is in by now.
            await asyncio.sleep(0.2)
        finally:
            register()
    assert fake.stats.requests == 2
    # Late events of other tests' requests may land here too; this request's models are these.
    ours = [
        (model, c)
        for model, c in events.seen
        if model in ("u", "small", "big", "openai/small", "openai/big")
    ]
    assert [model for model, _ in ours] == ["u"]
    assert ours[0][1] == pytest.approx(cost, rel=1e-9)


@pytest.mark.parametrize(
    "naming",
    [{"litellm_session_id": "sdk-run"}, {"metadata": {"session_id": "sdk-run"}}],
    ids=["litellm_session_id", "metadata"],
)
def test_litellm_sdk_session_fields_name_the_cascades_session(naming: dict) -> None:
    """In code, without the proxy: LiteLLM's own session fields reach the engine."""
    models = {"small": FakeModel(logprob=-3.0), "big": FakeModel(logprob=-0.01)}
    with FakeOpenAIServer(models) as fake:
        config = ladder_config(["small", "big"], [None, None], fake.base_url)
        register(CascadeProvider(LadderRegistry({"u": config})))
        try:
            messages = [{"role": "user", "content": "hi"}]
            first = litellm.completion(model="cascade/u", messages=messages, **naming)
            second = litellm.completion(model="cascade/u", messages=messages, **naming)
            alone = litellm.completion(model="cascade/u", messages=messages)
        finally:
            register()
    one, two = first.cascade["session"], second.cascade["session"]
    assert one["session_id"] == two["session_id"] == "sdk-run"
    assert one["new"] and not two["new"]
    assert two["spend_before_usd"] == pytest.approx(first.cascade["cost_usd"], rel=1e-9)
    assert alone.cascade["session"] is None
