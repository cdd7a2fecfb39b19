"""One model's answer in a single shape, whether it came whole or as a stream.

LiteLLM returns pydantic objects for whole responses and deltas for streams, and its
``stream_chunk_builder`` drops streamed logprobs; the engine needs the same fields either way
(text, tool calls, finish reason, usage, token logprobs and their features), so both paths
build a ``ModelAnswer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cascade_core.signals import LogprobAccumulator, LogprobFeatures


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "model_dump"):
        return obj.model_dump(exclude_none=True)
    return dict(vars(obj))


def _logprob_item(item: Any) -> dict[str, Any]:
    """An OpenAI-format token logprob entry as a plain dict (kept for the caller)."""
    tops = _get(item, "top_logprobs") or []
    return {
        "token": _get(item, "token"),
        "logprob": _get(item, "logprob"),
        "top_logprobs": [{"token": _get(t, "token"), "logprob": _get(t, "logprob")} for t in tops],
    }


@dataclass
class ModelAnswer:
    """Text or tool calls of one model, its usage, and its token logprobs (when returned)."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    refusal: str | None = None
    logprobs: list[dict[str, Any]] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    features: LogprobFeatures | None = None

    def message(self) -> dict[str, Any]:
        """The OpenAI-format assistant message (what tool-call checks and adapters read)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        if self.refusal:
            message["refusal"] = self.refusal
        return message

    @classmethod
    def from_response(cls, response: Any) -> ModelAnswer:
        """From a whole (non-streamed) LiteLLM ``ModelResponse``."""
        choices = _get(response, "choices") or []
        if not choices:
            raise ValueError("response has no choices")
        choice = choices[0]
        message = _get(choice, "message")
        if message is None:
            raise ValueError("response choice has no message")
        content = _get(message, "content")
        if content is not None and not isinstance(content, str):
            raise ValueError(f"response content is {type(content).__name__}, not text")
        tool_calls = [_as_dict(call) for call in (_get(message, "tool_calls") or [])]
        items = _get(_get(choice, "logprobs"), "content")
        accumulator = LogprobAccumulator()
        logprobs = None
        if items is not None:
            logprobs = [_logprob_item(item) for item in items]
            for item in logprobs:
                accumulator.add(item["logprob"], [t["logprob"] for t in item["top_logprobs"]])
            accumulator.extend([])  # an empty list still means the provider sent logprobs
        usage = _get(response, "usage")
        return cls(
            content=content or "",
            tool_calls=tool_calls,
            finish_reason=_get(choice, "finish_reason"),
            refusal=_get(message, "refusal"),
            logprobs=logprobs,
            prompt_tokens=_get(usage, "prompt_tokens"),
            completion_tokens=_get(usage, "completion_tokens"),
            features=accumulator.features(answer_parsed=True),
        )


class DraftAssembler:
    """Accumulates a streamed answer chunk by chunk, with running logprob features."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._logprobs: list[dict[str, Any]] = []
        self._saw_logprobs = False
        self._deltas = 0
        self.accumulator = LogprobAccumulator()
        self.finish_reason: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None

    @property
    def n_tokens(self) -> int:
        return self.accumulator.n_tokens

    @property
    def n_pieces(self) -> int:
        """Tokens received so far: logprob entries, or text/argument deltas when a provider
        sends no logprobs (one delta carries one token or more)."""
        return max(self.accumulator.n_tokens, self._deltas)

    def add(self, chunk: Any) -> tuple[str, list[dict[str, Any]]]:
        """Take one chunk; return its text delta and its token logprob entries."""
        usage = _get(chunk, "usage")
        if usage is not None and _get(usage, "completion_tokens") is not None:
            self.prompt_tokens = _get(usage, "prompt_tokens")
            self.completion_tokens = _get(usage, "completion_tokens")
        choices = _get(chunk, "choices") or []
        if not choices:
            return "", []
        choice = choices[0]
        delta = _get(choice, "delta")
        text = (_get(delta, "content") or "") if delta is not None else ""
        if text:
            self._text.append(text)
            self._deltas += 1
        for call in (_get(delta, "tool_calls") or []) if delta is not None else []:
            self._merge_tool_call(call)
            self._deltas += 1
        if _get(choice, "finish_reason"):
            self.finish_reason = _get(choice, "finish_reason")
        items = _get(_get(choice, "logprobs"), "content")
        entries: list[dict[str, Any]] = []
        if items is not None:
            self._saw_logprobs = True
            entries = [_logprob_item(item) for item in items]
            for item in entries:
                self.accumulator.add(item["logprob"], [t["logprob"] for t in item["top_logprobs"]])
            self._logprobs.extend(entries)
        return text, entries

    def _merge_tool_call(self, delta: Any) -> None:
        index = _get(delta, "index") or 0
        call = self._calls.setdefault(
            index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if _get(delta, "id"):
            call["id"] = _get(delta, "id")
        function = _get(delta, "function")
        if function is not None:
            if _get(function, "name"):
                call["function"]["name"] += _get(function, "name")
            if _get(function, "arguments"):
                call["function"]["arguments"] += _get(function, "arguments")

    def answer(self) -> ModelAnswer:
        return ModelAnswer(
            content="".join(self._text),
            tool_calls=[self._calls[i] for i in sorted(self._calls)],
            finish_reason=self.finish_reason,
            logprobs=self._logprobs if self._saw_logprobs else None,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            features=self.accumulator.features(answer_parsed=True),
        )
