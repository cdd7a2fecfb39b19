"""One model's answer in a single shape, whether it came whole or as a stream.

This is the one parser of provider responses. LiteLLM returns pydantic objects for whole
responses and deltas for streams, and its ``stream_chunk_builder`` drops streamed logprobs;
the engine and calibration need the same fields either way (text, tool calls, finish reason,
usage, token logprobs), so both paths build a ``ModelAnswer``, and its features come from the
one builder (`cascade_core.signals.answer_features`) on its stored token logprobs, exactly as
the replay computes them from a saved answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cascade_core.signals import (
    LogprobAccumulator,
    LogprobFeatures,
    TokenLogprobs,
    answer_features,
    get_field,
)


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "model_dump"):
        return obj.model_dump(exclude_none=True)
    return dict(vars(obj))


def _logprob_item(item: Any) -> dict[str, Any]:
    """An OpenAI-format token logprob entry as a plain dict (kept for the caller)."""
    tops = get_field(item, "top_logprobs") or []
    return {
        "token": get_field(item, "token"),
        "logprob": get_field(item, "logprob"),
        "top_logprobs": [
            {"token": get_field(t, "token"), "logprob": get_field(t, "logprob")} for t in tops
        ],
    }


def _alternatives(entry: dict[str, Any]) -> tuple[Any, ...]:
    """The logprobs of one entry's top alternatives, as the feature builder reads them."""
    return tuple(t["logprob"] for t in entry["top_logprobs"])


@dataclass
class ModelAnswer:
    """Text or tool calls of one model, its usage, and its token logprobs (when returned).

    ``logprobs`` keeps the OpenAI-format entries for callers; ``tokens`` is the same data in
    storage form (what calibration writes to a replay) and ``features`` is
    `answer_features` of ``tokens`` and the text. Both are derived on construction, so a
    malformed logprob fails where the response is parsed.
    """

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    refusal: str | None = None
    logprobs: list[dict[str, Any]] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Output tokens the provider itself showed (one logprob entry, or one streamed delta, per
    # token), as opposed to a re-count of the text with another tokenizer; at least the
    # number of logprob entries.
    observed_tokens: int = 0
    tokens: TokenLogprobs | None = field(init=False, repr=False)
    features: LogprobFeatures | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.observed_tokens = max(self.observed_tokens, len(self.logprobs or []))
        self.tokens = (
            None
            if self.logprobs is None
            else TokenLogprobs(
                tuple(entry["logprob"] for entry in self.logprobs),
                tuple(_alternatives(entry) for entry in self.logprobs),
            )
        )
        self.features = answer_features(self.tokens, self.content)

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
        choices = get_field(response, "choices") or []
        if not choices:
            raise ValueError("response has no choices")
        choice = choices[0]
        message = get_field(choice, "message")
        if message is None:
            raise ValueError("response choice has no message")
        content = get_field(message, "content")
        if content is not None and not isinstance(content, str):
            raise ValueError(f"response content is {type(content).__name__}, not text")
        tool_calls = [_as_dict(call) for call in (get_field(message, "tool_calls") or [])]
        items = get_field(get_field(choice, "logprobs"), "content")
        usage = get_field(response, "usage")
        return cls(
            content=content or "",
            tool_calls=tool_calls,
            finish_reason=get_field(choice, "finish_reason"),
            refusal=get_field(message, "refusal"),
            logprobs=None if items is None else [_logprob_item(item) for item in items],
            prompt_tokens=get_field(usage, "prompt_tokens"),
            completion_tokens=get_field(usage, "completion_tokens"),
        )


class DraftAssembler:
    """Accumulates a streamed answer chunk by chunk.

    ``accumulator`` holds running logprob features of the tokens so far, for deciding on an
    early abort while the draft streams; the finished answer's features are built by
    `ModelAnswer` from the collected entries, as for a whole response.
    """

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
        usage = get_field(chunk, "usage")
        if usage is not None and get_field(usage, "completion_tokens") is not None:
            self.prompt_tokens = get_field(usage, "prompt_tokens")
            self.completion_tokens = get_field(usage, "completion_tokens")
        choices = get_field(chunk, "choices") or []
        if not choices:
            return "", []
        choice = choices[0]
        delta = get_field(choice, "delta")
        text = (get_field(delta, "content") or "") if delta is not None else ""
        if text:
            self._text.append(text)
            self._deltas += 1
        for call in (get_field(delta, "tool_calls") or []) if delta is not None else []:
            self._merge_tool_call(call)
            self._deltas += 1
        if get_field(choice, "finish_reason"):
            self.finish_reason = get_field(choice, "finish_reason")
        items = get_field(get_field(choice, "logprobs"), "content")
        entries: list[dict[str, Any]] = []
        if items is not None:
            self._saw_logprobs = True
            entries = [_logprob_item(item) for item in items]
            for item in entries:
                self.accumulator.add(item["logprob"], _alternatives(item))
            self._logprobs.extend(entries)
        return text, entries

    def _merge_tool_call(self, delta: Any) -> None:
        index = get_field(delta, "index") or 0
        call = self._calls.setdefault(
            index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if get_field(delta, "id"):
            call["id"] = get_field(delta, "id")
        function = get_field(delta, "function")
        if function is not None:
            if get_field(function, "name"):
                call["function"]["name"] += get_field(function, "name")
            if get_field(function, "arguments"):
                call["function"]["arguments"] += get_field(function, "arguments")

    def answer(self) -> ModelAnswer:
        return ModelAnswer(
            content="".join(self._text),
            tool_calls=[self._calls[i] for i in sorted(self._calls)],
            finish_reason=self.finish_reason,
            logprobs=self._logprobs if self._saw_logprobs else None,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            observed_tokens=self.n_pieces,
        )
