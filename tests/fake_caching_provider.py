"""A FAKE provider with a prompt cache, for tests and benchmarks of sessions.

It speaks the OpenAI wire format (it is a `ScriptedServer`: the model's answers are scripted)
and caches prompts the way real providers do: per model name it remembers every prompt prefix
it has been sent (at message boundaries, tools and schemas included in the head), and reports
``prompt_tokens_details.cached_tokens`` for the longest of them that the new prompt starts
with, as OpenAI does (``style="openai"``), or Anthropic's ``cache_read_input_tokens`` /
``cache_creation_input_tokens`` (``style="anthropic"``: the uncached part is written to the
cache when the request carries ``cache_control``).

It counts tokens with its own rule (about four characters per token, four per message), not
LiteLLM's tokenizer, and keeps its own bill per call (`ledger`) from its own prices: what the
engine computes from the reported usage can then be checked against what the provider billed.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import dataclass
from typing import Any, Literal

from scripted_openai_server import Reply, Script, ScriptedServer

# Fields of a request body that are part of the prompt besides the messages.
_HEAD_FIELDS = ("tools", "tool_choice", "response_format")


@dataclass(frozen=True)
class Prices:
    """USD per token, as the fake provider bills."""

    input: float
    cached: float
    output: float
    write: float | None = None  # cache writes (Anthropic style); default: the input price


@dataclass
class Bill:
    """One call as the fake provider billed it."""

    model: str
    prompt_tokens: int
    cached_tokens: int
    written_tokens: int
    completion_tokens: int
    cost_usd: float


def message_tokens(message: Any) -> int:
    """The fake's own token count of one message: content and tool calls, ~4 chars a token."""
    if not isinstance(message, dict):
        return 4
    parts = [message.get("content") or "", message.get("tool_calls") or []]
    text = json.dumps(parts, sort_keys=True, default=str)
    return math.ceil(len(text) / 4) + 4


def _head(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in _HEAD_FIELDS if body.get(k) is not None}


def _key(previous: str, value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha1(f"{previous}|{text}".encode()).hexdigest()


def _marks_cache(body: dict[str, Any]) -> bool:
    return "cache_control" in json.dumps(body.get("messages"), default=str)


class FakeCachingProvider(ScriptedServer):
    """``ScriptedServer`` with a per-model prompt cache and a bill per call.

    ``prices`` maps model names (as sent, e.g. "small") to `Prices`; ``min_cached_tokens``
    is the shortest prefix the fake caches (OpenAI: 1,024; 0 caches everything).
    """

    def __init__(
        self,
        script: Script,
        prices: dict[str, Prices] | None = None,
        style: Literal["openai", "anthropic"] = "openai",
        min_cached_tokens: int = 0,
    ) -> None:
        super().__init__(script)
        self.prices = dict(prices or {})
        self.style = style
        self.min_cached_tokens = min_cached_tokens
        self._cache: dict[str, dict[str, int]] = {}  # model -> prefix key -> tokens through it
        self._lock = threading.Lock()
        self.ledger: list[Bill] = []

    def total_billed(self) -> float:
        return sum(bill.cost_usd for bill in self.ledger)

    def forget(self) -> None:
        """Empty every model's cache and the bill."""
        with self._lock:
            self._cache.clear()
            self.ledger.clear()

    def _usage(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:  # type: ignore[override]
        model = str(body.get("model", ""))
        messages = body.get("messages") or []
        keys, tokens = [_key("", _head(body))], [math.ceil(len(json.dumps(_head(body))) / 4)]
        for message in messages:
            keys.append(_key(keys[-1], message))
            tokens.append(tokens[-1] + message_tokens(message))
        prompt = tokens[-1]
        with self._lock:
            served = self._cache.setdefault(model, {})
            cached = next((served[k] for k in reversed(keys) if k in served), 0)
            if cached < self.min_cached_tokens:
                cached = 0
            for k, t in zip(keys, tokens, strict=True):
                served[k] = t
            written = prompt - cached if self.style == "anthropic" and _marks_cache(body) else 0
            completion = len(reply.tokens()) + 8 * len(reply.tool_calls)
            price = self.prices.get(model, Prices(0.0, 0.0, 0.0))
            write_price = price.input if price.write is None else price.write
            cost = (
                (prompt - cached - written) * price.input
                + cached * price.cached
                + written * write_price
                + completion * price.output
            )
            self.ledger.append(Bill(model, prompt, cached, written, completion, cost))
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if self.style == "openai":
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        else:
            usage["cache_read_input_tokens"] = cached
            usage["cache_creation_input_tokens"] = written
        return usage
