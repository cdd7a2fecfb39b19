"""Conversions between LlamaIndex's message types and the engine's OpenAI-format dicts.

The engine speaks OpenAI chat format (what LiteLLM takes); LlamaIndex speaks ``ChatMessage``
with content blocks. Everything here is pure data mapping, kept apart from the LLM class so
each direction can be tested on its own and the adapter stays thin.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    ChatResponse,
    ImageBlock,
    LogProb,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.utils import parse_partial_json

from cascade_core.engine import CascadeResult, ModelAnswer
from cascade_core.errors import InvalidInputError

# Roles some LlamaIndex integrations use for the model's own turns.
_ASSISTANT_ROLES = {MessageRole.ASSISTANT, MessageRole.CHATBOT, MessageRole.MODEL}


# -- LlamaIndex -> engine ------------------------------------------------------------------


def to_openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """OpenAI-format dicts for the engine; tool calls and tool results keep their ids."""
    return [_to_openai_message(i, message) for i, message in enumerate(messages)]


def _to_openai_message(index: int, message: ChatMessage) -> dict[str, Any]:
    role = message.role
    if role in _ASSISTANT_ROLES:
        return _assistant_message(message)
    if role in (MessageRole.TOOL, MessageRole.FUNCTION):
        call_id = message.additional_kwargs.get("tool_call_id")
        if not call_id:
            raise InvalidInputError(
                f"messages[{index}]: a tool result needs additional_kwargs['tool_call_id'] "
                "(the id of the assistant tool call it answers)"
            )
        return {"role": "tool", "content": _text(message), "tool_call_id": str(call_id)}
    content = _content_parts(index, message)
    out: dict[str, Any] = {"role": role.value, "content": content}
    if name := message.additional_kwargs.get("name"):
        out["name"] = name
    return out


def _assistant_message(message: ChatMessage) -> dict[str, Any]:
    calls = [
        {
            "id": block.tool_call_id or "",
            "type": "function",
            "function": {"name": block.tool_name, "arguments": _arguments(block.tool_kwargs)},
        }
        for block in message.blocks
        if isinstance(block, ToolCallBlock)
    ]
    if not calls:  # messages built by integrations that keep OpenAI calls in additional_kwargs
        calls = [_plain_call(call) for call in message.additional_kwargs.get("tool_calls") or []]
    out: dict[str, Any] = {"role": "assistant", "content": _text(message) or None}
    if calls:
        out["tool_calls"] = calls
    return out


def _plain_call(call: Any) -> dict[str, Any]:
    if hasattr(call, "model_dump"):
        call = call.model_dump(exclude_none=True)
    function = dict(call.get("function") or {})
    function["arguments"] = _arguments(function.get("arguments", ""))
    return {"id": call.get("id") or "", "type": "function", "function": function}


def _arguments(value: dict[str, Any] | str | None) -> str:
    if value is None:
        return "{}"
    return value if isinstance(value, str) else json.dumps(value)


def _text(message: ChatMessage) -> str:
    return "".join(b.text for b in message.blocks if isinstance(b, TextBlock))


def _content_parts(index: int, message: ChatMessage) -> str | list[dict[str, Any]]:
    """Plain text when the message is text only (what every provider takes), else parts."""
    parts: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block)}})
        elif isinstance(block, (CachePoint, ThinkingBlock)):
            continue  # provider hints and reasoning traces are not input content
        else:
            raise InvalidInputError(
                f"messages[{index}]: {type(block).__name__} is not supported by "
                "CascadeRouterLLM; send text or images"
            )
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _image_url(block: ImageBlock) -> str:
    if block.url is not None and block.image is None and block.path is None:
        return str(block.url)
    data = block.resolve_image(as_base64=True).read().decode()
    return f"data:{block.image_mimetype or 'image/png'};base64,{data}"


def to_openai_tools(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """OpenAI function definitions from LlamaIndex tools (what LiteLLM sends on)."""
    return [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]


def tool_choice_param(
    tools: Sequence[Any], tool_required: bool, tool_choice: Any
) -> str | dict[str, Any] | None:
    """OpenAI ``tool_choice``: a tool name becomes a forced call to that function."""
    if not tools:
        return None
    if isinstance(tool_choice, str) and tool_choice not in ("auto", "none", "required"):
        return {"type": "function", "function": {"name": tool_choice}}
    if tool_choice is not None:
        return tool_choice
    return "required" if tool_required else "auto"


# -- engine -> LlamaIndex ------------------------------------------------------------------


def answer_message(content: str, tool_calls: Sequence[dict[str, Any]]) -> ChatMessage:
    """The assistant turn as LlamaIndex 0.14 represents it: text and ToolCallBlocks."""
    blocks: list[Any] = [TextBlock(text=content)] if content or not tool_calls else []
    for call in tool_calls:
        function = call.get("function") or {}
        raw = function.get("arguments") or ""
        blocks.append(
            ToolCallBlock(
                tool_call_id=call.get("id"),
                tool_name=function.get("name") or "",
                tool_kwargs=_parsed_arguments(raw),
            )
        )
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks)


def _parsed_arguments(raw: str) -> dict[str, Any] | str:
    """A dict when the arguments are a JSON object; else the raw text, kept for the model."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, dict) else raw


def token_logprobs(items: Sequence[dict[str, Any]] | None) -> list[list[LogProb]] | None:
    """One list per generated token: the chosen token first, then its other alternatives.

    LlamaIndex has no field for "the chosen token"; putting it first (instead of only the
    top alternatives, which under sampling may not contain it) keeps every token's own
    logprob available, one entry per generated token.
    """
    if items is None:
        return None
    out: list[list[LogProb]] = []
    for item in items:
        token = str(item.get("token") or "")
        row = [LogProb(token=token, logprob=float(item.get("logprob") or 0.0))]
        row.extend(
            LogProb(token=str(top.get("token") or ""), logprob=float(top.get("logprob") or 0.0))
            for top in item.get("top_logprobs") or []
            if top.get("token") != token
        )
        out.append(row)
    return out


def response_extras(result: CascadeResult) -> dict[str, Any]:
    """What LlamaIndex callers read besides the message: which model answered, the trace,
    and usage summed over every model run (drafts are paid for too)."""
    return {
        "model": result.model,
        "model_index": result.model_index,
        "finish_reason": result.answer.finish_reason,
        "cost_usd": result.cost_usd,
        **result.usage.as_openai(),
        "cascade_trace": result.trace.as_dict(),
    }


def raw_response(result: CascadeResult) -> dict[str, Any]:
    """An OpenAI-shaped plain dict, so token counters that read ``raw['usage']`` work."""
    answer: ModelAnswer = result.answer
    return {
        "model": result.model,
        "choices": [
            {"index": 0, "message": answer.message(), "finish_reason": answer.finish_reason}
        ],
        "usage": result.usage.as_openai(),
    }


def chat_response(result: CascadeResult, delta: str | None = None) -> ChatResponse:
    answer = result.answer
    return ChatResponse(
        message=answer_message(answer.content, answer.tool_calls),
        delta=delta,
        logprobs=token_logprobs(answer.logprobs),
        raw=raw_response(result),
        additional_kwargs=response_extras(result),
    )


def tool_selections(response: ChatResponse) -> list[ToolSelection]:
    """Tool calls of a response, also of a partial streamed one.

    FunctionAgent calls this on every streamed chunk, so arguments may be cut mid-JSON: they
    are completed by LlamaIndex's partial-JSON parser, and unparsable ones read as ``{}``.
    """
    blocks = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
    calls = [(b.tool_call_id, b.tool_name, b.tool_kwargs) for b in blocks]
    if not calls:
        for call in response.message.additional_kwargs.get("tool_calls") or []:
            plain = _plain_call(call)
            function = plain["function"]
            calls.append((plain["id"], function.get("name") or "", function["arguments"]))
    selections = []
    for call_id, name, arguments in calls:
        if isinstance(arguments, str):
            try:
                arguments = parse_partial_json(arguments) if arguments.strip() else {}
            except (ValueError, TypeError):
                arguments = {}
        selections.append(
            ToolSelection(
                tool_id=call_id or "",
                tool_name=name,
                tool_kwargs=arguments if isinstance(arguments, dict) else {},
            )
        )
    return selections
