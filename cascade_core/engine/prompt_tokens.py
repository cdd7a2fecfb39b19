"""An upper bound on the input tokens a provider bills for one request, without any I/O.

The hard cost cap is only as good as this count, so it is taken over the exact keyword
arguments sent to the provider, by exclusion rather than inclusion: every field is counted
unless it is known not to be billed as input (transport settings and scalar sampling knobs).
A field this module has never heard of (a new LiteLLM parameter, a provider's ``extra_body``,
a JSON schema in ``response_format``) is therefore counted as the tokens of its JSON text,
which is how providers feed schemas and tools to the model.

Messages and tools go through LiteLLM's tokenizer for the model. Images are never fetched:
LiteLLM's counter downloads an image synchronously to size a ``detail: "high"`` part, which
stalls an event loop for seconds and fails on an unreachable URL. Each image part is instead
charged ``image_tokens`` (the most a provider bills for one image); other non-text parts
(files, audio) are charged the tokens of their JSON, an overestimate for binary payloads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import litellm

from cascade_core.errors import InvalidInputError

# The most any provider LiteLLM serves bills for one image part, in input tokens: OpenAI's
# patch-based models bill up to 1536 patches x 1.72 (about 2,640) and tile-based ones 1,445 at
# "high" detail; Anthropic about 1,600 for an image within 1.15 megapixels.
IMAGE_TOKEN_BOUND = 2_800
IMAGE_PART_TYPES = frozenset({"image_url", "image", "input_image"})

# Keyword arguments that are not billed as input tokens. Everything else is counted.
UNBILLED_FIELDS = frozenset(
    {
        "model",
        "messages",  # counted separately, with LiteLLM's tokenizer
        "tools",  # counted separately, with LiteLLM's tokenizer
        "tool_choice",  # counted separately, with LiteLLM's tokenizer
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "organization",
        "timeout",
        "num_retries",
        "max_retries",
        "stream",
        "stream_options",
        "logprobs",
        "top_logprobs",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "seed",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "stop",
        "user",
        "parallel_tool_calls",
        "drop_params",
    }
)


def input_token_bound(
    model: str, params: Mapping[str, Any], image_tokens: int = IMAGE_TOKEN_BOUND
) -> int:
    """Input tokens ``params`` (LiteLLM keyword arguments) can be billed at most, before margin."""
    messages = params.get("messages")
    if not isinstance(messages, list):
        raise InvalidInputError("messages: give a list of {'role', 'content'} dicts")
    text_messages, extra_parts = _split_parts(messages)
    try:
        tokens = int(
            litellm.token_counter(
                model=model,
                messages=text_messages,
                tools=params.get("tools"),
                tool_choice=params.get("tool_choice"),
            )
        )
    except Exception as error:  # LiteLLM raises ValueError/KeyError/TypeError on odd shapes
        raise InvalidInputError(
            f"messages/tools: cannot count their tokens ({type(error).__name__}: {error}); "
            "give OpenAI-format messages and tool definitions"
        ) from None
    for part in extra_parts:
        if part.get("type") in IMAGE_PART_TYPES:
            tokens += image_tokens
        else:
            tokens += _json_tokens(model, part)
    for name, value in params.items():
        if name not in UNBILLED_FIELDS and value is not None:
            tokens += _json_tokens(model, value)
    return tokens


def _split_parts(
    messages: list[Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Messages with only their text parts, and every other content part (checked)."""
    text_messages: list[dict[str, Any]] = []
    extra: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidInputError(f"messages[{i}]: each message must be a dict")
        content = message.get("content")
        if not isinstance(content, list):
            text_messages.append(dict(message))
            continue
        kept: list[Any] = []
        for j, part in enumerate(content):
            where = f"messages[{i}].content[{j}]"
            if isinstance(part, str):
                kept.append({"type": "text", "text": part})
                continue
            if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                raise InvalidInputError(f"{where}: each content part needs a string 'type'")
            if part["type"] == "text":
                kept.append(dict(part))
                continue
            if part["type"] == "image_url":
                _check_image_url(part.get("image_url"), where)
            extra.append(dict(part))
        text_messages.append({**message, "content": kept})
    return text_messages, extra


def _check_image_url(value: Any, where: str) -> None:
    url = value.get("url") if isinstance(value, Mapping) else value
    if not isinstance(url, str) or not url.strip():
        raise InvalidInputError(
            f"{where}.image_url: give {{'url': 'https://... or data:image/...;base64,...'}}"
        )
    detail = value.get("detail", "auto") if isinstance(value, Mapping) else "auto"
    if detail not in ("auto", "low", "high"):
        raise InvalidInputError(f"{where}.image_url.detail: use 'auto', 'low' or 'high'")


def _json_tokens(model: str, value: Any) -> int:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return int(litellm.token_counter(model=model, text=text))
