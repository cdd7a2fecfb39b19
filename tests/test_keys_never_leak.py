"""API keys never reach an error, a trace, a log record or printed output.

Against the FAKE OpenAI server (tests/fake_openai_server.py), which can echo the request's
Authorization header in its error bodies, as careless proxies do.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import litellm
import pytest
from fake_openai_server import FakeModel, FakeOpenAIServer, FaultPlan
from pydantic import ValidationError

from cascade_core.engine import CascadeEngine, ModelSpec, RouterConfig
from cascade_core.engine.config import API_KEY_REFUSED, is_env_var_name
from cascade_core.engine.redaction import (
    litellm_key_variables,
    protect_logs,
    redact,
    secrets_from_env,
)
from cascade_core.errors import AllModelsFailedError, InvalidInputError

# Shapes of real keys (made up), none with a dash after a short prefix except where real.
KEYS = {
    "huggingface": "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",
    "groq": "gsk_8f3Kx2LmQ9pRt7VwYz1Ab4Cd6Ef0Gh2Ij5Kl8Mn3Op",
    "google": "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
    "openai": "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34",
    "anthropic": "sk-ant-api03-Ab12Cd34Ef56Gh78Ij90",
    "xai": "xai-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0",
    "hex": "0123456789abcdef0123456789abcdef",
    "base64": "Zm9vYmFyQmF6UXV4MTIzNDU2Nzg5MGFiY2RlZg",
    "upper": "X1Y2Z3W4V5U6T7S8R9Q0P",
}
NAMES = ["OPENAI_API_KEY", "MY_TEAM_KEY_2", "HF_TOKEN", "AZURE_API_KEY", "_PRIVATE", "K"]
MODEL = {
    "model": "openai/fake-small",
    "input_cost_per_token": 1e-6,
    "output_cost_per_token": 2e-6,
}


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_redact_catches_every_key_shape(kind: str) -> None:
    key = KEYS[kind]
    text = f"provider said: invalid key {key} (check Authorization: Bearer {key})"
    assert key not in redact(text, ())
    assert "provider said: invalid key" in redact(text, ())


def test_redact_leaves_ordinary_text_alone() -> None:
    text = (
        "models.0.api_key_env: must be set; openai/gpt-4o-mini-2024-07-18 returned 500 "
        "at http://127.0.0.1:8765/v1/chat/completions (ChatCompletionMessageToolCall)"
    )
    assert redact(text, ()) == text


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_a_key_pasted_into_api_key_env_is_refused_without_echoing_it(kind: str) -> None:
    key = KEYS[kind]
    with pytest.raises(InvalidInputError) as caught:
        RouterConfig.from_dict({"models": [{**MODEL, "api_key_env": key}]})
    message = str(caught.value)
    assert "models.0.api_key_env" in message and "NAME of an environment variable" in message
    assert key not in message and key[4:20] not in message
    assert "\n" not in message


@pytest.mark.parametrize("name", NAMES)
def test_real_variable_names_are_accepted(name: str) -> None:
    assert is_env_var_name(name)
    config = RouterConfig.from_dict({"models": [{**MODEL, "api_key_env": name}]})
    assert config.models[0].api_key_env == name


@pytest.mark.parametrize("name", ["openai_api_key", "OpenAI_Key", "1PASSWORD", "MY-KEY", "A" * 65])
def test_lower_case_and_malformed_names_are_refused(name: str) -> None:
    assert not is_env_var_name(name)


def test_constructing_a_model_spec_directly_hides_the_key_in_pydantic_errors() -> None:
    key = KEYS["groq"]
    with pytest.raises(ValidationError) as caught:
        ModelSpec(model="openai/x", api_key_env=key)
    assert key not in str(caught.value) and key not in repr(caught.value)


def test_adapters_refuse_a_key_in_api_key_env_and_in_api_key_without_echoing_it(
    tmp_path,
) -> None:
    from langchain_cascade import CascadeRouterChatModel
    from llamaindex_cascade import CascadeRouterLLM

    key = KEYS["huggingface"]
    with pytest.raises(InvalidInputError) as caught:
        CascadeRouterChatModel(models=[{**MODEL, "api_key_env": key}])
    assert "api_key_env" in str(caught.value) and key not in str(caught.value)

    config = tmp_path / "router.json"
    config.write_text(json.dumps({"models": [{**MODEL, "api_key_env": key}]}))
    with pytest.raises(InvalidInputError) as caught:
        CascadeRouterLLM(str(config))
    assert "api_key_env" in str(caught.value) and key not in str(caught.value)

    engine = CascadeEngine(models=[MODEL])
    for build in (
        lambda: CascadeRouterLLM(engine, api_key=key),
        lambda: CascadeRouterChatModel(engine=engine, api_key=key),
    ):
        with pytest.raises(InvalidInputError) as caught:
            build()
        assert str(caught.value) == API_KEY_REFUSED
    with pytest.raises(InvalidInputError) as caught:
        CascadeRouterLLM(engine).complete("hi", api_key=key)
    assert str(caught.value) == API_KEY_REFUSED
    with pytest.raises(InvalidInputError) as caught:  # a key in the wrong field
        CascadeRouterLLM(engine, temperature=key)
    assert "CascadeRouterLLM: temperature" in str(caught.value) and key not in str(caught.value)


def test_the_key_variables_litellm_reads_by_itself_come_from_litellm() -> None:
    names = litellm_key_variables()
    assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROQ_API_KEY", "GEMINI_API_KEY"} <= names
    assert {"AZURE_API_KEY", "HUGGINGFACE_API_KEY", "XAI_API_KEY"} <= names
    assert "AZURE_API_BASE" not in names and "VERTEXAI_PROJECT" not in names
    assert len(names) > 50  # LiteLLM's tables, not a hand list


def test_implicit_and_secret_named_variables_are_scrubbed(monkeypatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "plain-groq-value-2718")  # no key shape: found by name
    monkeypatch.setenv("HF_TOKEN", "plain-hf-value-3141")  # not in LiteLLM's tables: by name
    monkeypatch.setenv("MY_SERVICE_PASSWORD", "plain-password-1618")
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # too short to scrub safely
    monkeypatch.setenv("HOME_DIRECTORY", "plain-not-secret-value")
    secrets = secrets_from_env()
    text = "plain-groq-value-2718 plain-hf-value-3141 plain-password-1618 abc"
    assert redact(text, secrets) == "*** *** *** abc"
    assert "plain-not-secret-value" not in secrets


@pytest.fixture
def litellm_debug(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """LiteLLM's logger at DEBUG into caplog (it has its own stderr handler too)."""
    logger = logging.getLogger("LiteLLM")
    level = logger.level
    caplog.set_level(logging.DEBUG, logger="LiteLLM")
    yield caplog
    logger.setLevel(level)


def test_implicit_openai_key_does_not_leak_from_provider_errors(
    monkeypatch, litellm_debug: pytest.LogCaptureFixture, capfd
) -> None:
    """No api_key_env: LiteLLM sends OPENAI_API_KEY by itself, the fake echoes it in 500s."""
    implicit = "opensesame-value-27182818"
    monkeypatch.setenv("OPENAI_API_KEY", implicit)
    models = {"fake-small": FakeModel(fault="http_500")}
    with FakeOpenAIServer(models, FaultPlan(echo_key_in_errors=True)) as server:
        engine = CascadeEngine(
            models=[{**MODEL, "extra_params": {"api_base": server.base_url}}], num_retries=0
        )
        with pytest.raises(AllModelsFailedError) as caught:
            engine.run([{"role": "user", "content": "hi"}])
        assert f"Bearer {implicit}" in server.stats.authorizations  # it did reach the wire
    error = caught.value
    assert "fake internal error" in error.errors["openai/fake-small"]
    # A provider message with the bare value (no "Bearer" before it, no key shape): only
    # knowing the variable LiteLLM read it from can scrub it.
    run = engine.start([{"role": "user", "content": "hi"}])
    call = run.next_call()
    assert call is not None
    run.record_failure(call, RuntimeError(f"invalid api key {implicit} for org"), 0.1)
    trace = json.dumps(run.trace.as_dict())
    assert "invalid api key *** for org" in trace
    captured = capfd.readouterr()
    for text in (str(error), repr(error), trace, litellm_debug.text, captured.out, captured.err):
        assert implicit not in text


def test_set_verbose_prints_nothing_and_logs_only_scrubbed_records(
    monkeypatch, litellm_debug: pytest.LogCaptureFixture, capfd
) -> None:
    """``litellm.set_verbose = True`` makes LiteLLM ``print()`` request details, which no log
    handler can scrub. With an engine built, it turns on the (scrubbed) DEBUG logger instead.
    The direct calls below stand for any release of LiteLLM that prints the raw kwargs."""
    key = "plain-configured-key-0577"
    monkeypatch.setenv("CASCADE_TEST_KEY", key)
    protect_logs(["CASCADE_TEST_KEY"])
    printers = [
        litellm.utils.print_verbose,
        litellm.main.print_verbose,
        litellm._logging.print_verbose,
        litellm.litellm_core_utils.streaming_handler.print_verbose,
    ]
    with FakeOpenAIServer({"fake-small": FakeModel()}) as server:
        engine = CascadeEngine(
            models=[{**MODEL, "api_base": server.base_url, "api_key_env": "CASCADE_TEST_KEY"}]
        )
        litellm.set_verbose = True
        try:
            assert litellm.set_verbose is False
            assert logging.getLogger("LiteLLM").isEnabledFor(logging.DEBUG)
            result = engine.run([{"role": "user", "content": "hi"}], max_tokens=8)
            events = list(engine.stream([{"role": "user", "content": "hi"}], max_tokens=8))
            for printer in printers:
                printer(f"PRINTED completion(api_key={key!r}, model='x')")
            litellm.utils.verbose_logger.debug("kwargs: api_key=%s", key)
        finally:
            litellm.set_verbose = False
        assert f"Bearer {key}" in server.stats.authorizations
    assert result.answer.content and events
    captured = capfd.readouterr()
    # The prints were blocked (a print starts the line; a log record has a prefix) ...
    assert not [line for line in captured.out.splitlines() if line.startswith("PRINTED")]
    assert "PRINTED completion(api_key='***'" in litellm_debug.text  # ... logged, scrubbed
    assert "kwargs: api_key=***" in litellm_debug.text  # the log record was scrubbed
    trace = json.dumps(result.trace.as_dict())
    for text in (captured.out, captured.err, litellm_debug.text, trace, repr(result)):
        assert key not in text
