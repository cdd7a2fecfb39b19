"""CascadeRouterLLM against scripted models: exact behaviour, through the real engine.

Requests go adapter -> engine -> LiteLLM -> OpenAI client -> HTTP -> a scripted
OpenAI-compatible server (tests/scripted_openai_server.py). The ladder is a weak draft
("scripted-draft") and "scripted": the draft's tool calls fail schema checks and its text has
low logprobs, so the cascade escalates, which lets the tests check that rejected drafts never
reach LlamaIndex.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("llama_index.core", reason="needs the llamaindex extra")

from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.tools import FunctionTool
from scripted_openai_server import Reply, ScriptedServer

from cascade_core.engine import CascadeEngine
from cascade_core.errors import InvalidInputError
from llamaindex_cascade import CascadeRouterLLM
from llamaindex_cascade.convert import to_openai_messages

DRAFT_TEXT = "WRONG DRAFT"
ANSWER = "Paris is the capital of France."


def _script(model: str, body: dict[str, Any]) -> Reply:
    last = body["messages"][-1]
    if model == "scripted-draft":
        if last["role"] != "tool" and body.get("tools"):
            return Reply(tool_calls=[{"name": "get_weather", "arguments": '{"town": "Paris"}'}])
        return Reply(DRAFT_TEXT, logprob=-3.0)
    if last["role"] == "tool":
        return Reply(f"The weather in Paris is {last['content']}.", logprob=-0.1)
    if body.get("tools"):
        return Reply(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}])
    return Reply(ANSWER, logprob=-0.1)


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(_script) as running:
        yield running


@pytest.fixture
def llm(server: ScriptedServer) -> CascadeRouterLLM:
    server.requests.clear()

    def rung(name: str, price: float) -> dict[str, Any]:
        return {
            "name": name,
            "model": f"openai/{name}",
            "api_base": server.api_base,
            "input_cost_per_token": price,
            "output_cost_per_token": price,
            "context_window": 4096 if name == "scripted" else 1024,
            "supports_logprobs": True,
        }

    engine = CascadeEngine(
        models=[rung("scripted-draft", 1e-8), rung("scripted", 2e-8)],
        # a threshold cascade is deterministic: the draft always runs first and must reach
        # quality 0.5 (mean-logprob or tool-call checks) to stop the cascade
        strategy={"name": "threshold_cascade", "threshold": 0.5},
        num_retries=0,
    )
    return CascadeRouterLLM(engine, max_tokens=64, temperature=0.0)


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return {"Paris": "sunny, 21 C"}.get(city, "unknown")


USER = [ChatMessage(role=MessageRole.USER, content="What is the capital of France?")]


# -- metadata ------------------------------------------------------------------------------


def test_metadata_reports_the_smallest_context_window_and_function_calling(llm) -> None:
    meta = llm.metadata
    assert meta.context_window == 1024
    assert meta.num_output == 64
    assert meta.is_chat_model and meta.is_function_calling_model
    assert meta.model_name == "cascade:scripted-draft>scripted"


# -- whole answers -------------------------------------------------------------------------


def test_chat_returns_accepted_answer_with_logprobs_and_trace(llm) -> None:
    response = llm.chat(USER)
    assert response.message.content == ANSWER
    assert response.message.role == MessageRole.ASSISTANT
    extras = response.additional_kwargs
    assert extras["model"] == "scripted"
    runs = extras["cascade_trace"]["runs"]
    assert [r["model"] for r in runs] == ["scripted-draft", "scripted"]
    assert extras["cost_usd"] > 0 and extras["prompt_tokens"] > 0
    assert response.raw["usage"]["completion_tokens"] == extras["completion_tokens"]
    tokens = response.logprobs
    assert tokens is not None and "".join(row[0].token for row in tokens) == ANSWER
    assert all(row[0].logprob == pytest.approx(-0.1) for row in tokens)
    assert tokens[0][1].token == "<alt>"  # alternatives follow the chosen token
    json.dumps(extras)  # plain data, safe for LlamaIndex's serialisation


async def test_achat_and_acomplete_match_chat(llm) -> None:
    response = await llm.achat(USER)
    assert response.message.content == ANSWER
    completion = await llm.acomplete("What is the capital of France?")
    assert completion.text == ANSWER
    assert completion.logprobs == response.logprobs
    assert completion.additional_kwargs["model"] == "scripted"


def test_complete_is_the_same_cascade(llm) -> None:
    completion = llm.complete("What is the capital of France?")
    assert completion.text == ANSWER
    assert completion.additional_kwargs["cascade_trace"]["stop_reason"]


def test_unknown_request_parameter_is_refused_by_name(llm) -> None:
    with pytest.raises(InvalidInputError, match="frequency_penalty"):
        llm.chat(USER, frequency_penalty=1.0)


# -- streams -------------------------------------------------------------------------------


def _check_stream(chunks: list[ChatResponse]) -> None:
    assert len(chunks) >= 2
    text = ""
    for chunk in chunks:
        assert DRAFT_TEXT not in (chunk.message.content or "")  # the rejected draft
        text += chunk.delta or ""
        assert chunk.message.content == text  # cumulative content, delta on top
    final = chunks[-1]
    assert final.delta == "" and text == ANSWER
    assert final.additional_kwargs["model"] == "scripted"
    assert final.additional_kwargs["cascade_trace"]["runs"][0]["model"] == "scripted-draft"
    assert len(final.logprobs) == len(chunks[-2].logprobs)  # logprobs grow with the text


def test_stream_chat_is_cumulative_and_never_shows_the_rejected_draft(llm) -> None:
    _check_stream(list(llm.stream_chat(USER)))


async def test_astream_chat_too(llm) -> None:
    _check_stream([chunk async for chunk in await llm.astream_chat(USER)])


async def test_stream_complete_and_astream_complete(llm) -> None:
    chunks = list(llm.stream_complete("What is the capital of France?"))
    assert "".join(c.delta or "" for c in chunks) == chunks[-1].text == ANSWER
    achunks = [c async for c in await llm.astream_complete("What is the capital of France?")]
    assert [c.text for c in achunks] == [c.text for c in chunks]


# -- instrumentation -----------------------------------------------------------------------


class _Recorder(BaseEventHandler):
    events: list[str] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "Recorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event.class_name())


def test_callback_decorators_fire_instrumentation_events(llm) -> None:
    recorder = _Recorder()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(recorder)
    try:
        llm.chat(USER)
        list(llm.stream_chat(USER))
        llm.complete("hi")
    finally:
        dispatcher.event_handlers.remove(recorder)
    events = recorder.events
    assert events.count("LLMChatStartEvent") == 2 and events.count("LLMChatEndEvent") == 2
    assert "LLMChatInProgressEvent" in events
    assert "LLMCompletionStartEvent" in events and "LLMCompletionEndEvent" in events


# -- tools ---------------------------------------------------------------------------------


def test_chat_with_tools_escalates_past_an_invalid_call(llm, server) -> None:
    tool = FunctionTool.from_defaults(get_weather)
    response = llm.chat_with_tools([tool], user_msg="Weather in Paris?")
    [selection] = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("get_weather", {"city": "Paris"})
    assert selection.tool_id == "call_0"
    runs = response.additional_kwargs["cascade_trace"]["runs"]
    assert runs[0]["quality_basis"] == "tool-call checks" and runs[0]["post_hoc_quality"] == 0
    sent = server.requests[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == "auto"


def test_tool_choice_by_name_and_required() -> None:
    from llamaindex_cascade.convert import tool_choice_param

    tools = [FunctionTool.from_defaults(get_weather)]
    assert tool_choice_param(tools, False, "get_weather") == {
        "type": "function",
        "function": {"name": "get_weather"},
    }
    assert tool_choice_param(tools, True, None) == "required"
    assert tool_choice_param([], True, "x") is None


def test_stream_chat_with_tools_puts_calls_on_the_last_chunk(llm) -> None:
    tool = FunctionTool.from_defaults(get_weather)
    chunks = list(llm.stream_chat_with_tools([tool], user_msg="Weather in Paris?"))
    for chunk in chunks[:-1]:
        assert llm.get_tool_calls_from_response(chunk, error_on_no_tool_call=False) == []
    [selection] = llm.get_tool_calls_from_response(chunks[-1])
    assert selection.tool_kwargs == {"city": "Paris"}  # never the draft's {"town": ...}


def test_partial_streamed_arguments_are_tolerated(llm) -> None:
    partial = ChatResponse(
        message=ChatMessage(
            role=MessageRole.ASSISTANT,
            blocks=[
                ToolCallBlock(tool_call_id="c1", tool_name="f", tool_kwargs='{"city": "Paris", "d')
            ],
        )
    )
    [selection] = llm.get_tool_calls_from_response(partial)
    assert selection.tool_kwargs["city"] == "Paris"
    broken = ChatResponse(
        message=ChatMessage(
            role=MessageRole.ASSISTANT,
            blocks=[ToolCallBlock(tool_call_id="c1", tool_name="f", tool_kwargs='{"a": 1}}')],
        )
    )
    assert llm.get_tool_calls_from_response(broken)[0].tool_kwargs == {}
    empty = ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content="no call"))
    assert llm.get_tool_calls_from_response(empty, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="0 tool calls"):
        llm.get_tool_calls_from_response(empty)


def test_tool_results_round_trip_with_their_call_id() -> None:
    history = [
        ChatMessage(role=MessageRole.USER, content="Weather?"),
        ChatMessage(
            role=MessageRole.ASSISTANT,
            blocks=[
                ToolCallBlock(
                    tool_call_id="call_7", tool_name="get_weather", tool_kwargs={"city": "Paris"}
                )
            ],
        ),
        ChatMessage(
            role=MessageRole.TOOL,
            blocks=[TextBlock(text="sunny")],
            additional_kwargs={"tool_call_id": "call_7"},
        ),
    ]
    sent = to_openai_messages(history)
    assert sent[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_7",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert sent[2] == {"role": "tool", "content": "sunny", "tool_call_id": "call_7"}
    legacy = ChatMessage(
        role=MessageRole.ASSISTANT,
        content="",
        additional_kwargs={
            "tool_calls": [
                {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]
        },
    )
    assert to_openai_messages([legacy])[0]["tool_calls"][0]["id"] == "c2"
    with pytest.raises(InvalidInputError, match="tool_call_id"):
        to_openai_messages([ChatMessage(role=MessageRole.TOOL, content="x")])


# -- FunctionAgent ---------------------------------------------------------------------------


@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent_calls_a_python_tool(llm, server, streaming: bool) -> None:
    calls: list[str] = []

    def weather(city: str) -> str:
        """Current weather in a city."""
        calls.append(city)
        return get_weather(city)

    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(weather, name="get_weather")],
        llm=llm,
        streaming=streaming,
        system_prompt="Use tools to answer.",
    )
    handler = agent.run(user_msg="What is the weather in Paris?")
    results = [ev async for ev in handler.stream_events() if isinstance(ev, ToolCallResult)]
    output = await handler
    assert calls == ["Paris"]  # the draft's invalid call never reached the tool
    assert results[0].tool_id == "call_0"
    assert "sunny, 21 C" in str(output.response.content)
    # the tool result went back to the model with the id of the call it answers
    tool_messages = [m for body in server.requests for m in body["messages"] if m["role"] == "tool"]
    assert tool_messages and all(m["tool_call_id"] == "call_0" for m in tool_messages)
    assert all(m["content"] == "sunny, 21 C" for m in tool_messages)
