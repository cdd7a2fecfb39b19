"""Validate one request's inputs before any model is called."""

from __future__ import annotations

from typing import Any

from cascade_core.errors import InvalidInputError

ACCEPTED_PARAMS = frozenset(
    {
        "tools",
        "tool_choice",
        "response_format",
        "temperature",
        "max_tokens",
        "stop",
        "seed",
        "top_p",
        "top_logprobs",
        "logprobs",
    }
)


def build_request(messages: Any, params: dict[str, Any]) -> dict[str, Any]:
    """A plain dict request; bad input is refused naming the field and the fix."""
    if not isinstance(messages, list) or not messages:
        raise InvalidInputError("messages: give a non-empty list of {'role', 'content'} dicts")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise InvalidInputError(f"messages[{i}]: each message needs a 'role' key")
    unknown = sorted(set(params) - ACCEPTED_PARAMS)
    if unknown:
        raise InvalidInputError(
            f"unknown request parameter(s) {unknown}; accepted: {sorted(ACCEPTED_PARAMS)}"
        )
    max_tokens = params.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise InvalidInputError(f"max_tokens: must be a positive integer, got {max_tokens!r}")
    tools = params.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidInputError("tools: give a list of OpenAI-format tool definitions")
    if isinstance(params.get("stop"), str):
        params = {**params, "stop": [params["stop"]]}
    return {"messages": messages, **{k: v for k, v in params.items() if v is not None}}
