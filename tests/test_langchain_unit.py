"""CascadeRouterChatModel without any model call: langchain-tests' unit suite, construction,
and the pure conversions of langchain_cascade.convert."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("langchain_core", reason="needs the langchain extra")
pytest.importorskip("langchain_tests", reason="needs langchain-tests (pip install langchain-tests)")

from conftest import EXAMPLE_LADDER
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langchain_tests.unit_tests import ChatModelUnitTests

from cascade_core.engine import (
    CascadeResult,
    CascadeTrace,
    ModelAnswer,
    ModelRun,
    RouterConfig,
)
from cascade_core.errors import InvalidInputError
from langchain_cascade import CascadeRouterChatModel
from langchain_cascade.convert import (
    ai_message,
    final_chunk,
    to_openai_messages,
    to_openai_tools,
    tool_call_chunks,
    tool_calls,
    tool_choice_param,
)

LADDER = [
    {
        "name": "small",
        "model": "openai/small",
        "api_base": "http://127.0.0.1:9/v1",
        "input_cost_per_token": 1e-8,
        "output_cost_per_token": 2e-8,
    },
    {
        "name": "large",
        "model": "openai/large",
        "api_base": "http://127.0.0.1:9/v1",
        "input_cost_per_token": 1e-7,
        "output_cost_per_token": 2e-7,
    },
]


class TestStandardUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return CascadeRouterChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"models": LADDER, "budget": {"lambda": 1000.0}}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # No api_key: the router reads each model's key from the environment variable its
        # config names (api_key_env), so a key never sits in code, configs or traces.
        params = super().standard_chat_model_params
        params.pop("api_key")
        return params

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True


# -- construction -------------------------------------------------------------------------


def test_keyword_construction_builds_the_engine_with_langchain_names() -> None:
    llm = CascadeRouterChatModel(
        models=LADDER,
        strategy={"name": "threshold_cascade", "threshold": 0.7},
        budget={"lambda": 10.0, "max_cost_usd": 0.01},
        timeout=12.5,
        max_retries=4,
    )
    config = llm.router.config
    assert [m.label for m in config.models] == ["small", "large"]
    assert config.strategy.name == "threshold_cascade"
    assert config.budget.lam == 10.0 and config.budget.max_cost_usd == 0.01
    assert config.timeout_s == 12.5 and config.num_retries == 4
    assert llm.model_name == "cascade:small>large"


def test_from_config_file_and_router_config_agree() -> None:
    from_file = CascadeRouterChatModel.from_config(EXAMPLE_LADDER, max_tokens=32)
    from_config = CascadeRouterChatModel(config=RouterConfig.from_file(EXAMPLE_LADDER))
    assert from_file.router.config == from_config.router.config
    assert from_file.model_name == "cascade:smollm2-135m>gemma3-270m"
    assert from_file._default_params() == {"max_tokens": 32}


def test_construction_errors_name_the_fix() -> None:
    with pytest.raises(InvalidInputError, match="from_config"):
        CascadeRouterChatModel()
    with pytest.raises(InvalidInputError, match=r"models\.0\.api_key_env") as error:
        CascadeRouterChatModel(models=[{**LADDER[0], "api_key_env": "sk-secret-value"}])
    assert "sk-secret-value" not in str(error.value)  # a misplaced key is never echoed


def test_unknown_arguments_are_refused_by_name_and_keys_never_echoed() -> None:
    with pytest.raises(InvalidInputError, match="api_key_env") as error:
        CascadeRouterChatModel(models=LADDER, api_key="sk-secret-value")
    assert "sk-secret-value" not in str(error.value)
    with pytest.raises(InvalidInputError, match=r"\['frequency_penalty'\]"):
        CascadeRouterChatModel(models=LADDER, frequency_penalty=0.1)


def test_model_profile_describes_the_ladder() -> None:
    llm = CascadeRouterChatModel(
        models=[{**LADDER[0], "context_window": 4096}, {**LADDER[1], "context_window": 8192}]
    )
    assert llm.profile is not None
    assert llm.profile["max_input_tokens"] == 4096  # every model the cascade may run fits
    assert llm.profile["tool_calling"] and not llm.profile["tool_call_streaming"]
    assert llm.profile["structured_output"] is False  # create_agent then uses tool calls


def test_ls_params_report_the_cascade_router() -> None:
    llm = CascadeRouterChatModel(models=LADDER, temperature=0.2, max_tokens=7, stop=["\n"])
    assert llm._get_ls_params() == {
        "ls_provider": "cascade_router",
        "ls_model_name": "cascade:small>large",
        "ls_model_type": "chat",
        "ls_temperature": 0.2,
        "ls_max_tokens": 7,
        "ls_stop": ["\n"],
    }
    assert llm._get_ls_params(model="large")["ls_model_name"] == "large"


def test_call_keywords_override_instance_defaults_and_stream_switch_is_dropped() -> None:
    llm = CascadeRouterChatModel(models=LADDER, temperature=0.5, model_kwargs={"seed": 1})
    _, messages, params, with_logprobs = llm._request(
        [HumanMessage("hi")], ["END"], {"temperature": 0.0, "stream": True, "logprobs": True}
    )
    assert messages == [{"role": "user", "content": "hi"}]
    assert params == {"temperature": 0.0, "seed": 1, "stop": ["END"], "logprobs": True}
    assert with_logprobs


# -- conversions: LangChain -> engine ------------------------------------------------------


def test_messages_convert_to_openai_format_with_tool_calls_and_results() -> None:
    messages = [
        SystemMessage("be brief"),
        HumanMessage("weather?", name="ana"),
        AIMessage("", tool_calls=[{"name": "w", "args": {"city": "Oslo"}, "id": "c1"}]),
        ToolMessage("rain", tool_call_id="c1"),
    ]
    assert to_openai_messages(messages) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "name": "ana", "content": "weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "type": "function",
                    "id": "c1",
                    "function": {"name": "w", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "rain"},
    ]


def test_reasoning_and_v1_tool_call_blocks_are_not_sent_back() -> None:
    thinking = AIMessage(
        [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Hello"},
        ]
    )
    v1 = AIMessage(
        [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_call", "id": "c1", "name": "w", "args": {}},
        ],
        tool_calls=[{"name": "w", "args": {}, "id": "c1"}],
    )
    first, second = to_openai_messages([thinking, v1])
    assert first == {"role": "assistant", "content": "Hello"}
    assert second["content"] == "Let me check."
    assert second["tool_calls"][0]["function"]["name"] == "w"


def test_images_stay_content_parts() -> None:
    message = HumanMessage(
        [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ]
    )
    (converted,) = to_openai_messages([message])
    assert converted["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAAA"},
    }


def test_tools_and_tool_choice_spellings() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    tools = to_openai_tools([add], strict=True)
    assert tools[0]["function"]["name"] == "add"
    assert tools[0]["function"]["strict"] is True
    assert tool_choice_param("any", tools) == "required"
    assert tool_choice_param("required", tools) == "required"
    assert tool_choice_param(True, tools) == "required"
    assert tool_choice_param("auto", tools) == "auto"
    assert tool_choice_param("none", tools) == "none"
    assert tool_choice_param(None, tools) is None
    assert tool_choice_param(False, tools) is None
    assert tool_choice_param("add", tools) == {"type": "function", "function": {"name": "add"}}
    forced = {"type": "function", "function": {"name": "add"}}
    assert tool_choice_param(forced, tools) is forced
    with pytest.raises(InvalidInputError, match="not a bound tool"):
        tool_choice_param("sub", tools)


# -- conversions: engine -> LangChain ------------------------------------------------------


def _result(answer: ModelAnswer) -> CascadeResult:
    runs = [
        ModelRun("small", 0, "ok", "answered", 0.4, prompt_tokens=10, completion_tokens=3,
                 cost_usd=1e-7),
        ModelRun("large", 1, "ok", "answered", 0.6, prompt_tokens=12, completion_tokens=5,
                 cost_usd=2e-6),
    ]  # fmt: skip
    return CascadeResult(answer, "large", 1, CascadeTrace(runs=runs, strategy="test"))


CALL = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}


def test_tool_calls_parse_and_bad_json_becomes_invalid() -> None:
    broken = {"id": "c2", "type": "function", "function": {"name": "add", "arguments": "{"}}
    no_args = {"id": "c3", "type": "function", "function": {"name": "now", "arguments": ""}}
    valid, invalid = tool_calls([CALL, broken, no_args])
    assert [(c["name"], c["args"], c["id"]) for c in valid] == [
        ("add", {"a": 1}, "c1"),
        ("now", {}, "c3"),
    ]
    assert [(c["name"], c["args"], c["id"]) for c in invalid] == [("add", "{", "c2")]
    chunks = tool_call_chunks([CALL, no_args])
    assert [(c["name"], c["args"], c["id"], c["index"]) for c in chunks] == [
        ("add", '{"a": 1}', "c1", 0),
        ("now", "{}", "c3", 1),
    ]


def test_ai_message_sums_usage_over_runs_and_keeps_per_model_cost() -> None:
    logprobs = [{"token": "4", "logprob": -0.01, "top_logprobs": []}]
    result = _result(
        ModelAnswer(content="4", finish_reason="stop", logprobs=logprobs, tool_calls=[CALL])
    )
    message = ai_message(result, with_logprobs=True)
    assert message.content == "4"
    assert message.tool_calls[0]["args"] == {"a": 1}
    assert message.usage_metadata == {"input_tokens": 22, "output_tokens": 8, "total_tokens": 30}
    meta = message.response_metadata
    assert meta["model_name"] == "large" and meta["finish_reason"] == "stop"
    assert meta["usage_by_model"]["small"] == {
        "status": "ok",
        "input_tokens": 10,
        "output_tokens": 3,
        "total_tokens": 13,
        "cost_usd": 1e-7,
    }
    assert meta["cost_usd"] == pytest.approx(2.1e-6)
    assert meta["cascade"]["strategy"] == "test"
    assert meta["logprobs"] == {"content": logprobs}
    assert "logprobs" not in ai_message(result).response_metadata
    json.dumps(meta)


def test_final_chunk_carries_metadata_and_tool_call_chunks_once() -> None:
    chunk = final_chunk(_result(ModelAnswer(content="", tool_calls=[CALL])))
    assert chunk.content == "" and chunk.chunk_position == "last"
    assert chunk.tool_call_chunks[0]["args"] == '{"a": 1}'
    assert chunk.tool_calls[0]["args"] == {"a": 1}
    assert chunk.usage_metadata["total_tokens"] == 30
    assert chunk.response_metadata["model_name"] == "large"
