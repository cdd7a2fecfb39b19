"""CascadeRouterChatModel against scripted models: exact behaviour, through the real engine.

Requests go adapter -> engine -> LiteLLM -> OpenAI client -> HTTP -> a scripted
OpenAI-compatible server (tests/scripted_openai_server.py). The ladder is a weak draft
("scripted-draft") and "scripted": the draft's tool calls have truncated JSON arguments and its text
has low logprobs, so a threshold cascade always escalates; that lets the tests check that a
rejected draft never reaches LangChain. "scripted" answers what the langchain-tests standard
integration tests expect (tool calls with the arguments they assert, JSON for structured
output), so those run here in full, tool calling and structured output included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_core", reason="needs the langchain extra")
pytest.importorskip("langchain_tests", reason="needs langchain-tests (pip install langchain-tests)")

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_tests.integration_tests import ChatModelIntegrationTests
from pydantic import BaseModel, Field
from scripted_openai_server import Reply, ScriptedServer

from cascade_core.engine import CascadeEngine
from cascade_core.errors import InvalidInputError
from langchain_cascade import CascadeRouterChatModel

DRAFT_TEXT = "WRONG DRAFT"
ANSWER = "Paris is the capital of France."
STRING_VALUE = "Why did the cat sit on the keyboard? To keep an eye on the mouse."


# -- the scripted models --------------------------------------------------------------------


def _value(name: str, spec: dict[str, Any], question: str) -> Any:
    """An argument value the standard tests accept: the number or quoted name asked for."""
    kind = spec.get("type") or next(
        (s.get("type") for s in spec.get("anyOf", []) if s.get("type") != "null"), "string"
    )
    if kind in ("integer", "number"):
        numbers = re.findall(r"-?\d+", question)
        return int(numbers[0]) if numbers else 3
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    quoted = re.findall(r"'([^']+)'", question)
    return quoted[0] if quoted else f"{name}: {STRING_VALUE}"


def _arguments(schema: dict[str, Any], question: str) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    return {name: _value(name, spec, question) for name, spec in properties.items()}


def _question(body: dict[str, Any]) -> str:
    """The last user turn's text (content may be a string or text parts)."""
    for message in reversed(body["messages"]):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content)
    return ""


def _chosen_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool a tool-calling model would call: the forced one, else the first bound."""
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        return next(t["function"] for t in tools if t["function"]["name"] == name)
    question = _question(body)
    named = [t["function"] for t in tools if t["function"]["name"] in question]
    return named[0] if named else tools[0]["function"]


def _script(model: str, body: dict[str, Any]) -> Reply:
    last = body["messages"][-1]
    tool_fn = _chosen_tool(body) if last["role"] != "tool" else None
    response_format = body.get("response_format") or {}
    if model == "scripted-draft":
        if tool_fn is not None:  # truncated arguments: never valid JSON, never accepted
            return Reply(tool_calls=[{"name": tool_fn["name"], "arguments": '{"wrong": '}])
        return Reply(DRAFT_TEXT, logprob=-3.0)
    if tool_fn is not None:
        arguments = _arguments(tool_fn.get("parameters") or {}, _question(body))
        return Reply(
            tool_calls=[
                {"name": tool_fn["name"], "arguments": json.dumps(arguments, ensure_ascii=False)}
            ]
        )
    if response_format.get("type") == "json_schema":
        schema = response_format["json_schema"]["schema"]
        return Reply(json.dumps(_arguments(schema, _question(body))), logprob=-0.1)
    if response_format.get("type") == "json_object":
        return Reply(json.dumps({"setup": "Why cats?", "punchline": "Purr."}), logprob=-0.1)
    if last["role"] == "tool":
        return Reply(f"The tool said: {last['content']}", logprob=-0.1)
    return Reply(ANSWER, logprob=-0.1)


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(_script) as running:
        yield running


def _engine(server: ScriptedServer) -> CascadeEngine:
    def rung(name: str, price: float) -> dict[str, Any]:
        return {
            "name": name,
            "model": f"openai/{name}",
            "api_base": server.api_base,
            "input_cost_per_token": price,
            "output_cost_per_token": price,
            "supports_logprobs": True,
        }

    return CascadeEngine(
        models=[rung("scripted-draft", 1e-8), rung("scripted", 2e-8)],
        # a threshold cascade is deterministic: the draft always runs first and must reach
        # quality 0.5 (mean-logprob or tool-call checks) to stop the cascade
        strategy={"name": "threshold_cascade", "threshold": 0.5},
        num_retries=0,
    )


# -- the standard integration tests ---------------------------------------------------------

_SCRIPTED: dict[str, Any] = {}


class TestScriptedStandard(ChatModelIntegrationTests):
    """langchain-tests' integration suite, every tool and structured-output test included."""

    @pytest.fixture(autouse=True)
    def _scripted_engine(self, server: ScriptedServer) -> None:
        _SCRIPTED.setdefault("engine", _engine(server))

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return CascadeRouterChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"engine": _SCRIPTED["engine"]}

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        # histories with Anthropic tool_use/thinking blocks and cache_control hints
        return True

    @property
    def model_override_value(self) -> str:
        return "scripted"


# -- adapter behaviour ------------------------------------------------------------------------


@pytest.fixture
def llm(server: ScriptedServer) -> CascadeRouterChatModel:
    server.requests.clear()
    return CascadeRouterChatModel(engine=_engine(server), max_tokens=64, temperature=0.0)


class TokenLog(BaseCallbackHandler):
    """Records what LangChain's callbacks saw: every new token, and every LLM end."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.ends: list[Any] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self.ends.append(response)


def test_invoke_returns_accepted_answer_with_summed_usage_and_trace(llm) -> None:
    message = llm.invoke("What is the capital of France?")
    assert message.content == ANSWER
    meta = message.response_metadata
    assert meta["model_name"] == "scripted"
    runs = meta["cascade"]["runs"]
    assert [r["model"] for r in runs] == ["scripted-draft", "scripted"]
    usage = message.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] == sum(r["prompt_tokens"] for r in runs)
    assert usage["output_tokens"] == sum(r["completion_tokens"] for r in runs)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    by_model = meta["usage_by_model"]
    assert set(by_model) == {"scripted-draft", "scripted"}
    assert by_model["scripted-draft"]["output_tokens"] == runs[0]["completion_tokens"]
    assert meta["cost_usd"] == pytest.approx(sum(m["cost_usd"] for m in by_model.values()))
    assert meta["cost_usd"] > 0
    assert "logprobs" not in meta  # only when asked for
    json.dumps(meta)  # plain data, safe for tracers


async def test_ainvoke_batch_and_abatch_match_invoke(llm) -> None:
    assert (await llm.ainvoke("capital?")).content == ANSWER
    assert [m.content for m in llm.batch(["a", "b"])] == [ANSWER, ANSWER]
    assert [m.content for m in await llm.abatch(["a", "b"])] == [ANSWER, ANSWER]


def test_logprobs_of_the_accepted_answer_when_requested(llm) -> None:
    message = llm.invoke("capital?", logprobs=True)
    tokens = message.response_metadata["logprobs"]["content"]
    assert "".join(t["token"] for t in tokens) == ANSWER
    assert all(t["logprob"] == pytest.approx(-0.1) for t in tokens)
    assert tokens[0]["top_logprobs"][1]["token"] == "<alt>"
    chunks = list(llm.bind(logprobs=True).stream("capital?"))
    with_logprobs = [c for c in chunks if "logprobs" in c.response_metadata]
    assert len(with_logprobs) == 1
    assert with_logprobs[0].response_metadata["logprobs"]["content"] == tokens


def test_stream_shows_only_the_accepted_answer_and_metadata_once(llm) -> None:
    log = TokenLog()
    chunks = list(llm.stream("capital?", config={"callbacks": [log]}))
    text = "".join(str(c.content) for c in chunks)
    assert text == ANSWER and DRAFT_TEXT not in text
    assert "".join(log.tokens) == ANSWER  # the rejected draft never reached a callback
    named = [c for c in chunks if "model_name" in c.response_metadata]
    used = [c for c in chunks if c.usage_metadata]
    assert len(named) == 1 and len(used) == 1 and named[0] is used[0] is chunks[-1]
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert full.response_metadata["model_name"] == "scripted"
    assert full.usage_metadata["total_tokens"] > 0
    assert full.chunk_position == "last"


async def test_astream_events_carry_only_the_accepted_answer(llm) -> None:
    streamed = []
    async for event in llm.astream_events("capital?", version="v2"):
        if event["event"] == "on_chat_model_stream":
            streamed.append(event["data"]["chunk"].content)
    assert "".join(streamed) == ANSWER


def test_invoke_with_streaming_true_uses_the_stream_and_callbacks(server) -> None:
    llm = CascadeRouterChatModel(engine=_engine(server), streaming=True)
    log = TokenLog()
    message = llm.invoke("capital?", config={"callbacks": [log]})
    assert message.content == ANSWER and "".join(log.tokens) == ANSWER
    assert message.response_metadata["model_name"] == "scripted"
    assert server.requests[-1]["stream"] is True


def test_tool_calls_stream_in_the_final_chunk(llm, server) -> None:
    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return "sunny"

    bound = llm.bind_tools([get_weather], tool_choice="get_weather")
    chunks = list(bound.stream("Weather in 'Paris'?"))
    assert [c for c in chunks if c.tool_call_chunks] == [chunks[-1]]
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert isinstance(full, AIMessageChunk)
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [("get_weather", {"city": "Paris"})]
    # the draft's call failed the schema check and was never shown; both got the forced choice
    assert [r["model"] for r in server.requests] == ["scripted-draft", "scripted"]
    forced = {"type": "function", "function": {"name": "get_weather"}}
    assert [r["tool_choice"] for r in server.requests] == [forced, forced]


def test_tool_choice_spellings(llm, server) -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    for choice, sent in [
        ("any", "required"),
        ("required", "required"),
        (True, "required"),
        ("auto", "auto"),
        ("add", {"type": "function", "function": {"name": "add"}}),
    ]:
        server.requests.clear()
        llm.bind_tools([add], tool_choice=choice).invoke("What is 1 + 2?")
        assert {json.dumps(r["tool_choice"]) for r in server.requests} == {json.dumps(sent)}
    with pytest.raises(InvalidInputError, match="not a bound tool"):
        llm.bind_tools([add], tool_choice="multiply")


def test_invalid_tool_arguments_become_invalid_tool_calls(server) -> None:
    # a one-model ladder returning the draft's broken call: nothing better to escalate to
    engine = CascadeEngine(
        models=[
            {
                "name": "scripted-draft",
                "model": "openai/scripted-draft",
                "api_base": server.api_base,
                "input_cost_per_token": 1e-8,
                "output_cost_per_token": 1e-8,
            }
        ],
        num_retries=0,
    )
    server.script, original = (
        lambda model, body: Reply(tool_calls=[{"name": "add", "arguments": "{not json"}]),
        server.script,
    )
    try:
        message = CascadeRouterChatModel(engine=engine).invoke("1 + 2?")
    finally:
        server.script = original
    assert message.tool_calls == []
    assert message.invalid_tool_calls[0]["name"] == "add"
    assert message.invalid_tool_calls[0]["args"] == "{not json"


def test_tool_message_history_round_trip(llm, server) -> None:
    history = [
        HumanMessage("Weather in Paris?"),
        AIMessage(
            "",
            tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}],
        ),
        ToolMessage("sunny, 21 C", tool_call_id="c1"),
    ]
    message = llm.invoke(history)
    assert message.content == "The tool said: sunny, 21 C"
    sent = server.requests[-1]["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert sent[2] == {"role": "tool", "content": "sunny, 21 C", "tool_call_id": "c1"}


class Capital(BaseModel):
    """A country's capital."""

    country: str = Field(description="the country")
    capital: str = Field(description="its capital city")


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_with_structured_output_methods(llm, server, method: str) -> None:
    structured = llm.with_structured_output(Capital, method=method, include_raw=True)
    result = structured.invoke("Capital of 'France'?")
    assert isinstance(result["parsed"], Capital)
    assert result["parsed"].country == "France"
    assert result["parsing_error"] is None
    assert result["raw"].response_metadata["model_name"] == "scripted"
    last = server.requests[-1]
    if method == "function_calling":
        assert last["tool_choice"] == {"type": "function", "function": {"name": "Capital"}}
    else:
        assert last["response_format"]["json_schema"]["name"] == "Capital"


def test_with_structured_output_refuses_unknown_method(llm) -> None:
    with pytest.raises(ValueError, match="method"):
        llm.with_structured_output(Capital, method="xml")  # type: ignore[arg-type]


def test_model_override_pins_one_ladder_model(llm, server) -> None:
    message = llm.invoke("capital?", model="scripted-draft")
    assert message.response_metadata["model_name"] == "scripted-draft"
    assert message.content == DRAFT_TEXT  # pinned: no cascade, so no escalation
    assert [r["model"] for r in message.response_metadata["cascade"]["runs"]] == ["scripted-draft"]
    with pytest.raises(InvalidInputError, match="not in the ladder"):
        llm.invoke("capital?", model="gpt-9")


def test_unknown_request_parameter_is_refused_by_the_engine(llm) -> None:
    with pytest.raises(InvalidInputError, match="unknown request parameter"):
        llm.invoke("capital?", frequency_penalty=0.5)
