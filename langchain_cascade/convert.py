"""Conversions between LangChain's message/tool types and the engine's OpenAI-format dicts.

The engine speaks OpenAI chat format (what LiteLLM takes); LangChain speaks ``BaseMessage``
objects whose content may be in OpenAI, Anthropic or LangChain v1 block formats. Everything
here is pure data mapping, kept apart from the chat model so each direction is tested on its
own and the adapter stays thin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    InvalidToolCall,
    ToolCall,
    ToolCallChunk,
    UsageMetadata,
)
from langchain_core.messages.utils import convert_to_openai_messages
from langchain_core.output_parsers.openai_tools import make_invalid_tool_call, parse_tool_call
from langchain_core.utils.function_calling import convert_to_openai_tool

from cascade_core.engine import CascadeResult
from cascade_core.errors import InvalidInputError

# Blocks of an assistant turn that are not content to send back: reasoning traces another
# provider returned, and LangChain v1 tool-call blocks (the calls go in ``tool_calls``).
_DROPPED_BLOCKS = frozenset(
    {
        "thinking",
        "redacted_thinking",
        "reasoning",
        "tool_call",
        "tool_call_chunk",
        "invalid_tool_call",
    }
)

# LangChain's "force some tool" spellings, all meaning OpenAI's "required".
_ANY_TOOL = frozenset({"any", "required"})


# -- LangChain -> engine ------------------------------------------------------------------


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """OpenAI-format dicts for the engine.

    LangChain's own converter already maps tool calls, tool results and the Anthropic and
    v1 content-block formats; on top of it, reasoning and tool-call blocks are dropped and
    all-text content becomes a plain string, the one shape every LiteLLM provider accepts.
    """
    return [_plain(message) for message in convert_to_openai_messages(list(messages))]


def _plain(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if not isinstance(content, list):
        return message
    blocks = [
        block
        for block in content
        if not (isinstance(block, dict) and block.get("type") in _DROPPED_BLOCKS)
    ]
    if all(isinstance(b, dict) and b.get("type") == "text" for b in blocks):
        return {**message, "content": "\n".join(b["text"] for b in blocks)}
    return {**message, "content": blocks}


def to_openai_tools(tools: Sequence[Any], strict: bool | None = None) -> list[dict[str, Any]]:
    """OpenAI function-tool definitions from anything LangChain accepts as a tool
    (BaseTool, Python function, pydantic model, TypedDict, JSON schema, OpenAI dict)."""
    return [convert_to_openai_tool(tool, strict=strict) for tool in tools]


def tool_choice_param(
    tool_choice: str | bool | dict[str, Any] | None, tools: Sequence[dict[str, Any]]
) -> str | dict[str, Any] | None:
    """OpenAI ``tool_choice`` from LangChain's spellings.

    "any"/"required"/True force some tool, "auto"/"none" pass through, a tool's name forces
    that tool (and must name a bound tool), a dict is taken as OpenAI format.
    """
    if tool_choice is None or tool_choice is False:
        return None
    if tool_choice is True:
        return "required"
    if isinstance(tool_choice, dict):
        return tool_choice
    if tool_choice in _ANY_TOOL:
        return "required"
    if tool_choice in ("auto", "none"):
        return tool_choice
    names = [tool["function"]["name"] for tool in tools]
    if tool_choice not in names:
        raise InvalidInputError(
            f"tool_choice: {tool_choice!r} is not a bound tool; give one of {names}, "
            "'auto', 'none' or 'any'"
        )
    return {"type": "function", "function": {"name": tool_choice}}


# -- engine -> LangChain ------------------------------------------------------------------


def tool_calls(raw_calls: Sequence[dict[str, Any]]) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    """Parsed tool calls, and the ones whose arguments are not valid JSON kept as invalid
    (LangChain's convention, so agents can report the error back to the model)."""
    valid: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for raw in raw_calls:
        raw = _complete_call(raw)
        try:
            parsed = parse_tool_call(raw, return_id=True)
        except Exception as error:  # OutputParserException and JSON errors alike
            invalid.append(make_invalid_tool_call(raw, str(error)))
            continue
        if parsed is not None:
            valid.append(parsed)  # type: ignore[arg-type]
    return valid, invalid


def tool_call_chunks(raw_calls: Sequence[dict[str, Any]]) -> list[ToolCallChunk]:
    """Tool calls as stream chunks: LangChain parses them into ``tool_calls`` when chunks
    are added up (the engine hands tool calls over whole, at the end of a stream)."""
    return [
        ToolCallChunk(
            name=call["function"]["name"],
            args=call["function"]["arguments"],
            id=call["id"],
            index=index,
            type="tool_call_chunk",
        )
        for index, call in enumerate(_complete_call(raw) for raw in raw_calls)
    ]


def _complete_call(raw: dict[str, Any]) -> dict[str, Any]:
    """A call with every field LangChain expects; no-argument calls may arrive with ''."""
    function = dict(raw.get("function") or {})
    function["name"] = function.get("name") or ""
    function["arguments"] = function.get("arguments") or "{}"
    return {"id": raw.get("id") or "", "type": "function", "function": function}


def usage_metadata(result: CascadeResult) -> UsageMetadata:
    """Tokens summed over every model the request ran: the drafts were paid for too."""
    usage = result.usage
    return UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


def response_metadata(result: CascadeResult, with_logprobs: bool) -> dict[str, Any]:
    """What LangChain callers and tracers read: the answering model, finish reason, cost,
    per-model usage, the engine's trace, and the answer's token logprobs when asked for."""
    trace = result.trace
    by_model = {
        run.model: {
            "status": run.status,
            "input_tokens": run.usage.prompt_tokens,
            "output_tokens": run.usage.completion_tokens,
            "total_tokens": run.usage.total_tokens,
            "cost_usd": run.cost_usd,
        }
        for run in trace.runs
    }
    metadata: dict[str, Any] = {
        "model_name": result.model,
        "finish_reason": result.answer.finish_reason,
        "cost_usd": trace.cost_usd,
        "usage_by_model": by_model,
        "cascade": trace.as_dict(),
    }
    if with_logprobs and result.answer.logprobs is not None:
        metadata["logprobs"] = {"content": result.answer.logprobs}
    return metadata


def ai_message(result: CascadeResult, with_logprobs: bool = False) -> AIMessage:
    """The accepted answer as an ``AIMessage`` with usage and cascade metadata."""
    valid, invalid = tool_calls(result.answer.tool_calls)
    return AIMessage(
        content=result.answer.content,
        tool_calls=valid,
        invalid_tool_calls=invalid,
        usage_metadata=usage_metadata(result),
        response_metadata=response_metadata(result, with_logprobs),
    )


def final_chunk(result: CascadeResult, with_logprobs: bool = False) -> AIMessageChunk:
    """The one closing chunk of a stream: tool calls, usage, model name and trace.

    Text went out in earlier chunks; putting the metadata on exactly one chunk keeps it
    intact when LangChain adds chunks up (string values would be concatenated otherwise).
    """
    return AIMessageChunk(
        content="",
        tool_call_chunks=tool_call_chunks(result.answer.tool_calls),
        usage_metadata=usage_metadata(result),
        response_metadata=response_metadata(result, with_logprobs),
        chunk_position="last",
    )
