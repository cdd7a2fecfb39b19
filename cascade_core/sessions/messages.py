"""Safe model switches: the conversation history as a given model can accept it.

A history carries provider-specific parts (LiteLLM's message format):

* reasoning: ``reasoning_content``, Anthropic ``thinking_blocks`` and ``thinking`` /
  ``redacted_thinking`` content parts (with signatures only Anthropic can verify), OpenAI
  ``reasoning_items``, ``provider_specific_fields`` (Gemini thought signatures);
* tool-call ids in the issuing provider's format: Gemini embeds its thought signature in the
  id (``call_x__thought__<base64>``), Anthropic's are ``toolu_...``, while Mistral accepts only
  nine letters or digits, and OpenAI at most 40 characters.

Sent to another model they break the request (DeepSeek refuses ``reasoning_content`` in input,
Anthropic refuses a thinking block whose signature it did not make, Mistral refuses any other
id shape) or, worse, are accepted with a meaning they do not have. `for_model` therefore drops
every reasoning part of an assistant turn the target did not produce (it is the model's
private scratchpad: dropping it changes no visible content), and rewrites every tool-call id
the target would refuse, consistently in the assistant's ``tool_calls`` and in the matching
tool messages, so each call still pairs with its result.

Who produced a turn is known from the session (the model that issued its tool calls). For a
turn of unknown origin, reasoning is kept only for a target of the family that produces that
format (Anthropic thinking for Claude models); everything else is dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import litellm

# Assistant-message keys that carry one provider's reasoning or private metadata.
REASONING_KEYS = (
    "reasoning_content",
    "thinking_blocks",
    "reasoning_items",
    "reasoning",
    "reasoning_details",
    "provider_specific_fields",
)
REASONING_PARTS = frozenset({"thinking", "redacted_thinking", "reasoning"})
# Anthropic-format reasoning: the parts a Claude target may take from a turn of unknown origin.
_ANTHROPIC_REASONING = frozenset({"thinking_blocks"})
GEMINI_SIGNATURE = "__thought__"  # LiteLLM's separator of a Gemini id and its signature
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_MISTRAL_NAMES = ("mistral", "mixtral", "codestral", "magistral", "devstral", "ministral")


@dataclass(frozen=True)
class Dialect:
    """What one target model accepts in a history: its family and its tool-call id format.

    ``id_pattern`` None means any non-empty id (Gemini matches results by position and name).
    """

    family: str
    id_pattern: re.Pattern[str] | None
    new_id_prefix: str
    new_id_length: int

    @classmethod
    def for_model(cls, model: str) -> Dialect:
        """The dialect of a LiteLLM model id (resolved once per ladder, never per request)."""
        return DIALECTS[model_family(model)]

    def accepts_id(self, call_id: object) -> bool:
        if not isinstance(call_id, str) or not call_id:
            return False
        return self.id_pattern is None or self.id_pattern.fullmatch(call_id) is not None

    def derived_id(self, original: str, attempt: int = 0) -> str:
        """A deterministic id in this dialect's format for ``original`` (the same original
        always gets the same id, so a conversation's prompt prefix stays cacheable)."""
        stripped = original.split(GEMINI_SIGNATURE, 1)[0]
        if attempt == 0 and stripped != original and self.accepts_id(stripped):
            return stripped
        digest = int.from_bytes(hashlib.sha256(f"{attempt}:{original}".encode()).digest(), "big")
        chars = []
        for _ in range(self.new_id_length):
            digest, rest = divmod(digest, 62)
            chars.append(_BASE62[rest])
        return self.new_id_prefix + "".join(chars)


DIALECTS: dict[str, Dialect] = {
    # The default is the intersection of what OpenAI-compatible servers and Anthropic take.
    "openai": Dialect("openai", re.compile(r"[A-Za-z0-9_-]{1,40}"), "call_", 24),
    "anthropic": Dialect("anthropic", re.compile(r"[A-Za-z0-9_-]{1,64}"), "toolu_", 24),
    "mistral": Dialect("mistral", re.compile(r"[A-Za-z0-9]{9}"), "", 9),
    "gemini": Dialect("gemini", None, "call_", 24),
}


def model_family(model: str) -> str:
    """``anthropic``, ``gemini``, ``mistral`` or ``openai`` (everything else) for a LiteLLM id.

    By name as well as by provider: a Mistral model served by vLLM behind an OpenAI-compatible
    endpoint enforces Mistral's id format too, and Claude on Bedrock or Vertex is Anthropic.
    """
    name = model.lower()
    try:
        provider = str(litellm.get_llm_provider(model)[1])
    except Exception:  # LiteLLM raises a bare exception for ids it cannot place
        provider = name.partition("/")[0]
    if provider in ("mistral", "codestral") or any(n in name for n in _MISTRAL_NAMES):
        return "mistral"
    if provider == "anthropic" or "claude" in name:
        return "anthropic"
    if provider == "gemini" or "gemini" in name:
        return "gemini"
    return "openai"


@dataclass(frozen=True)
class Converted:
    """A history ready for one model, and what had to change (for the trace)."""

    messages: list[Any]
    dropped_reasoning: int = 0
    remapped_ids: int = 0
    dropped_messages: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.dropped_reasoning or self.remapped_ids or self.dropped_messages)

    def describe(self, label: str) -> str:
        parts = []
        if self.dropped_reasoning:
            parts.append(f"dropped {self.dropped_reasoning} reasoning part(s) of other models")
        if self.remapped_ids:
            parts.append(f"rewrote {self.remapped_ids} tool-call id(s) to its format")
        if self.dropped_messages:
            parts.append(f"left out {self.dropped_messages} assistant turn(s) with only reasoning")
        return f"history for {label}: " + ", ".join(parts)


def for_model(
    messages: Sequence[Any],
    target: str,
    dialect: Dialect,
    origins: Mapping[str, str] | None = None,
) -> Converted:
    """``messages`` as model ``target`` (a ladder label) can accept them.

    ``origins`` maps tool-call ids to the label of the model that issued them (the session's
    record). Messages that need no change are passed on as the same objects.
    """
    origins = origins or {}
    ids = _id_map(messages, target, dialect, origins)
    out: list[Any] = []
    dropped_reasoning = dropped_messages = 0
    for message in messages:
        if not isinstance(message, Mapping):
            out.append(message)
            continue
        role = message.get("role")
        if role == "assistant":
            converted, dropped = _assistant(message, target, dialect, origins, ids)
            dropped_reasoning += dropped
            if converted is None:
                dropped_messages += 1
                continue
            out.append(converted)
        elif role == "tool" and _mapped(message.get("tool_call_id"), ids):
            out.append({**message, "tool_call_id": ids[message["tool_call_id"]]})
        else:
            out.append(message)
    remapped = sum(1 for old, new in ids.items() if old != new)
    return Converted(out, dropped_reasoning, remapped, dropped_messages)


def origin_of(message: Mapping[str, Any], origins: Mapping[str, str]) -> str | None:
    """The model that produced an assistant turn, when the session knows (by its calls)."""
    for call in message.get("tool_calls") or []:
        call_id = call.get("id") if isinstance(call, Mapping) else None
        if isinstance(call_id, str) and call_id in origins:
            return origins[call_id]
    return None


def _id_map(
    messages: Sequence[Any], target: str, dialect: Dialect, origins: Mapping[str, str]
) -> dict[str, str]:
    """Every tool-call id of the history that must change for ``target``, mapped one-to-one
    onto ids in its format; ids it would accept, or issued itself, stay as they are.

    Ids are assigned in order of first appearance and never depend on later messages, so a
    longer history converts to an extension of the shorter one's conversion: the prompt
    prefix a provider has cached stays the same.
    """
    seen: set[str] = set()
    taken: set[str] = set()  # output ids in use
    mapping: dict[str, str] = {}
    for call_id, keep in _ids_in_order(messages, target, dialect, origins):
        if call_id in seen:
            continue
        seen.add(call_id)
        new = call_id if keep else dialect.derived_id(call_id)
        attempt = 1
        while new in taken:
            new = dialect.derived_id(call_id, attempt)
            attempt += 1
        taken.add(new)
        if new != call_id:
            mapping[call_id] = new
    return mapping


def _ids_in_order(
    messages: Sequence[Any], target: str, dialect: Dialect, origins: Mapping[str, str]
) -> Iterator[tuple[str, bool]]:
    """(id, may stay as it is) for every tool-call id occurrence, in order."""
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        if message.get("role") == "assistant":
            own = origin_of(message, origins) == target
            for call in message.get("tool_calls") or []:
                call_id = call.get("id") if isinstance(call, Mapping) else None
                if isinstance(call_id, str):
                    yield call_id, own or dialect.accepts_id(call_id)
        elif message.get("role") == "tool":
            call_id = message.get("tool_call_id")
            if isinstance(call_id, str):
                yield call_id, origins.get(call_id) == target or dialect.accepts_id(call_id)


def _keeps_reasoning(origin: str | None, target: str, dialect: Dialect, key: str) -> bool:
    if origin is not None:
        return origin == target
    return dialect.family == "anthropic" and key in _ANTHROPIC_REASONING


def _assistant(
    message: Mapping[str, Any],
    target: str,
    dialect: Dialect,
    origins: Mapping[str, str],
    ids: Mapping[str, str],
) -> tuple[Mapping[str, Any] | None, int]:
    """One assistant turn for ``target``: (the turn, or None when nothing is left; how many
    reasoning parts were dropped)."""
    origin = origin_of(message, origins)
    out = dict(message)
    dropped = 0
    for key in REASONING_KEYS:
        if key in out and not _keeps_reasoning(origin, target, dialect, key):
            del out[key]
            dropped += 1
    content = out.get("content")
    if isinstance(content, list):
        kept = [
            part
            for part in content
            if not (
                isinstance(part, Mapping)
                and part.get("type") in REASONING_PARTS
                and not _keeps_reasoning(origin, target, dialect, "thinking_blocks")
            )
        ]
        if len(kept) != len(content):
            dropped += len(content) - len(kept)
            out["content"] = kept or None
    calls = out.get("tool_calls")
    if calls:
        out["tool_calls"] = [_tool_call(call, ids, origin == target) for call in calls]
    if dropped and not _visible(out):
        return None, dropped  # the turn was reasoning only: nothing visible is lost
    if dropped == 0 and out.get("tool_calls") == message.get("tool_calls"):
        return message, 0
    return out, dropped


def _tool_call(call: Any, ids: Mapping[str, str], own: bool) -> Any:
    if not isinstance(call, Mapping):
        return call
    call_id = call.get("id")
    remapped = _mapped(call_id, ids)
    if not remapped and (own or "provider_specific_fields" not in call):
        return call
    out = {k: v for k, v in call.items() if own or k != "provider_specific_fields"}
    if remapped:
        out["id"] = ids[call_id]
    return out


def _mapped(call_id: object, ids: Mapping[str, str]) -> bool:
    return isinstance(call_id, str) and call_id in ids


def _visible(message: Mapping[str, Any]) -> bool:
    """Whether a turn shows anything besides reasoning: text, other parts, tool calls."""
    content = message.get("content")
    if isinstance(content, list):
        content = [
            p for p in content if not (isinstance(p, Mapping) and p.get("type") in REASONING_PARTS)
        ]
    return bool(content) or bool(message.get("tool_calls"))
