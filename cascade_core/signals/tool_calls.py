"""Post-hoc signals for tool-call answers and for how a response ended.

Why: providers return no logprobs for tool-call arguments (and some return none at all), so
a cascade needs other evidence that an answer is usable. For a tool call the cheapest strong
evidence is mechanical: the called tool exists, its arguments are JSON, and they validate
against the tool's JSON schema. A call failing any of these would fail when executed, so the
answer is almost certainly wrong and escalating is worthwhile. The converse does not hold:
a valid call may still be the wrong call, so :attr:`ToolCallSignals.score` is evidence for a
calibrator, not P(correct) itself.

How a response ended is the other model-agnostic signal: ``finish_reason == "length"``
means the answer was truncated, a refusal or content filter means there is no answer, and
empty content without tool calls means nothing usable came back.

What the schema check covers (Draft 2020-12, ``jsonschema.Draft202012Validator``):

* the tool's ``parameters`` schema must itself be a valid 2020-12 schema; if not, arguments
  are reported as not checked (``arguments_valid is None``) rather than guessed;
* the arguments must be a JSON *object* (OpenAI function arguments always are);
* types, ``required``, ``enum``/``const``, ``additionalProperties``, numeric/string/array
  bounds, combinators and local ``$ref``/``$defs`` are checked; ``format`` is only an
  annotation (no format checker, as in the spec's default), and remote ``$ref`` are not
  fetched (such a call is reported as not checked);
* a tool without ``parameters`` takes no arguments (OpenAI: "omitting parameters defines a
  function with an empty parameter list"): arguments must be an empty object; an empty
  arguments string is read as ``{}``, the usual encoding of "no arguments".
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from cascade_core.signals.access import get_field

__all__ = [
    "NO_PARAMETERS_SCHEMA",
    "ResponseSignals",
    "ToolCallCheck",
    "ToolCallSignals",
    "check_tool_calls",
    "message_signals",
]

NO_PARAMETERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {},
    "additionalProperties": False,
}
"""Schema used for a tool declared without ``parameters``: no arguments allowed."""

_MAX_ERRORS = 5


@dataclass(frozen=True, slots=True)
class ToolCallCheck:
    """The checks of one tool call, in the order they gate each other.

    Attributes:
        index: position of the call in ``message.tool_calls``.
        id: the call id the model gave (None if missing).
        name: the function name the model called (None if missing).
        tool_exists: a tool of that name was offered in the request.
        arguments_parse: the arguments string is strict JSON (no NaN/Infinity).
        arguments_valid: True/False from the schema check; None when it could not run
            (unknown tool, unparsable arguments, invalid tool schema, unresolvable $ref).
        errors: short human-readable reasons for every failed or skipped check.
    """

    index: int
    id: str | None
    name: str | None
    tool_exists: bool
    arguments_parse: bool
    arguments_valid: bool | None
    errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """The call would execute as given: tool exists, JSON parses, schema validates."""
        return self.tool_exists and self.arguments_parse and self.arguments_valid is True


@dataclass(frozen=True, slots=True)
class ToolCallSignals:
    """All tool-call checks of one assistant message.

    Attributes:
        calls: one :class:`ToolCallCheck` per tool call.
        score: fraction of calls that are :attr:`ToolCallCheck.ok`, in [0, 1]; 1.0 means
            every call would execute as given, 0.0 that none would. None when the message
            has no tool calls (the score is undefined; see ``tool_choice_respected``).
        tool_choice_respected: False when the request's ``tool_choice`` was violated
            ("required" or a named function but no/other calls; "none" but calls made);
            True otherwise (including no ``tool_choice`` / "auto").
    """

    calls: tuple[ToolCallCheck, ...]
    score: float | None
    tool_choice_respected: bool

    @property
    def n_calls(self) -> int:
        return len(self.calls)


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator | str:
    """A compiled validator for a schema, or the reason the schema itself is invalid.

    Cached by the schema's canonical JSON: the same tools are sent with every request.
    """
    schema = json.loads(schema_json)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"invalid tool schema: {exc.message}"
    return Draft202012Validator(schema)


def _tool_schemas(tools: Sequence[Any] | None) -> dict[str, Any]:
    """``{name: parameters schema or None}`` from request tools (OpenAI or legacy layout)."""
    out: dict[str, Any] = {}
    for tool in tools or ():
        fn = get_field(tool, "function") or tool  # {"type": "function", "function": {...}} or flat
        name = get_field(fn, "name")
        if isinstance(name, str) and name not in out:
            out[name] = get_field(fn, "parameters")
    return out


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


def _parse_arguments(raw: Any) -> tuple[Any, str | None]:
    """Parsed arguments and None, or (None, reason) when they are not strict JSON."""
    if isinstance(raw, Mapping):  # some SDK paths hand over already-parsed arguments
        return dict(raw), None
    if raw is None:
        return None, "arguments missing"
    if not isinstance(raw, str):
        return None, f"arguments must be a JSON string, got {type(raw).__name__}"
    if not raw.strip():
        return {}, None
    try:
        return json.loads(raw, parse_constant=_reject_constant), None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        return None, f"arguments are not valid JSON: {exc}"


def _check_one(index: int, call: Any, schemas: Mapping[str, Any]) -> ToolCallCheck:
    fn = get_field(call, "function") or call
    name = get_field(fn, "name")
    call_id = get_field(call, "id")
    errors: list[str] = []
    exists = isinstance(name, str) and name in schemas
    if not exists:
        errors.append(f"unknown tool {name!r}")
    args, parse_error = _parse_arguments(get_field(fn, "arguments"))
    parses = parse_error is None
    if parse_error:
        errors.append(parse_error)
    valid: bool | None = None
    if exists and parses:
        valid, schema_errors = _validate(args, schemas[name])
        errors.extend(schema_errors)
    return ToolCallCheck(
        index=index,
        id=call_id if isinstance(call_id, str) else None,
        name=name if isinstance(name, str) else None,
        tool_exists=exists,
        arguments_parse=parses,
        arguments_valid=valid,
        errors=tuple(errors),
    )


def _validate(args: Any, schema: Any) -> tuple[bool | None, list[str]]:
    """Validate parsed arguments against a tool's ``parameters`` (see module docstring)."""
    if not isinstance(args, dict):
        return False, [f"arguments are a JSON {type(args).__name__}, not an object"]
    if schema is None:
        schema = NO_PARAMETERS_SCHEMA
    if not isinstance(schema, Mapping):
        return None, ["tool parameters is not a JSON schema object"]
    try:
        validator = _validator(json.dumps(schema, sort_keys=True))
    except (TypeError, ValueError) as exc:
        return None, [f"tool schema is not JSON-serializable: {exc}"]
    if isinstance(validator, str):
        return None, [validator]
    try:
        found = sorted(validator.iter_errors(args), key=lambda e: list(e.absolute_path))
    except Exception as exc:  # e.g. unresolvable $ref: report "not checked", never guess
        return None, [f"could not validate arguments: {type(exc).__name__}: {exc}"]
    if not found:
        return True, []
    messages = [
        f"schema violation at /{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in found[:_MAX_ERRORS]
    ]
    return False, messages


def _calls_of(message: Any) -> list[Any]:
    """``tool_calls`` of a message, or the legacy ``function_call`` as a single call."""
    calls = get_field(message, "tool_calls")
    if calls:
        return list(calls)
    legacy = get_field(message, "function_call")
    return [{"function": legacy}] if legacy else []


def _tool_choice_respected(tool_choice: Any, names: list[str | None]) -> bool:
    if tool_choice is None or tool_choice == "auto":
        return True
    if tool_choice == "none":
        return not names
    if tool_choice == "required":
        return bool(names)
    wanted = get_field(get_field(tool_choice, "function"), "name")
    if isinstance(wanted, str):
        return bool(names) and all(n == wanted for n in names)
    return True  # an unknown tool_choice form: nothing to check against


def check_tool_calls(
    message: Any, tools: Sequence[Any] | None, tool_choice: Any = None
) -> ToolCallSignals:
    """Check every tool call of an assistant message against the request's tools.

    Args:
        message: an OpenAI-format assistant message (dict or LiteLLM ``Message``) with
            ``tool_calls: [{id, type: "function", function: {name, arguments}}]``.
        tools: the ``tools`` sent with the request (``[{type, function: {name,
            parameters}}]``; flat ``{name, parameters}`` items are accepted too).
        tool_choice: the request's ``tool_choice``, if any.
    """
    schemas = _tool_schemas(tools)
    checks = tuple(_check_one(i, call, schemas) for i, call in enumerate(_calls_of(message)))
    score = sum(c.ok for c in checks) / len(checks) if checks else None
    respected = _tool_choice_respected(tool_choice, [c.name for c in checks])
    return ToolCallSignals(calls=checks, score=score, tool_choice_respected=respected)


# ---------------------------------------------------------------------------- finish state


@dataclass(frozen=True, slots=True)
class ResponseSignals:
    """How one response ended; each flag is evidence the answer is unusable.

    Attributes:
        finish_reason: as reported (None if missing).
        truncated: ``finish_reason == "length"``: cut off at max_tokens / context limit.
        content_filtered: ``finish_reason == "content_filter"``.
        refused: the message carries a non-empty ``refusal`` (OpenAI structured refusals)
            or ``finish_reason == "refusal"``.
        empty_content: no text (None, "" or whitespace) and no tool calls.
        has_tool_calls: the message contains tool calls (or a legacy function_call).
    """

    finish_reason: str | None
    truncated: bool
    content_filtered: bool
    refused: bool
    empty_content: bool
    has_tool_calls: bool

    @property
    def unusable_reason(self) -> str | None:
        """Why this answer cannot be returned to a caller at all, or None when it can.

        Truncation is not here: a truncated answer is still an answer (the estimators score
        it); empty, refused and filtered ones are not.
        """
        if self.refused:
            return "the model refused"
        if self.content_filtered:
            return "the provider's content filter stopped the answer"
        if self.empty_content:
            return "empty answer (no text and no tool calls)"
        return None


def _text_of(content: Any) -> str:
    """Text of ``message.content``: a string, or a list of parts with ``text``."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(str(get_field(part, "text") or "") for part in content)
    return str(content)


def message_signals(message: Any, finish_reason: str | None) -> ResponseSignals:
    """Finish-state signals from an assistant message and its choice's finish_reason."""
    refusal = get_field(message, "refusal")
    has_calls = bool(_calls_of(message))
    return ResponseSignals(
        finish_reason=finish_reason,
        truncated=finish_reason == "length",
        content_filtered=finish_reason == "content_filter",
        refused=bool(isinstance(refusal, str) and refusal.strip()) or finish_reason == "refusal",
        empty_content=not _text_of(get_field(message, "content")).strip() and not has_calls,
        has_tool_calls=has_calls,
    )
