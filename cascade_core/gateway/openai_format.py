"""OpenAI chat format <-> engine: request parameters in, responses and stream chunks out.

Pure data mapping, no I/O, so each direction is tested on its own and the provider stays a
thin driver. What a response says about the cascade has one shape here: ``summary`` (the body
field ``cascade``) and ``headers`` (``x-cascade-models-run``, ``x-cascade-cost-usd``).
"""

from __future__ import annotations

from typing import Any

from cascade_core.engine import CascadeResult
from cascade_core.errors import InvalidInputError

# The body field that carries the trace summary, on whole responses and on a stream's last
# content chunk.
SUMMARY_FIELD = "cascade"
MODELS_RUN_HEADER = "x-cascade-models-run"
COST_HEADER = "x-cascade-cost-usd"

# OpenAI request fields that say nothing to the cascade: transport (stream switches), the
# caller's own bookkeeping (user, metadata), and the client retries the proxy sets (the
# engine passes LiteLLM its own retry settings for each model).
_IGNORED = frozenset({"stream", "stream_options", "user", "metadata", "store", "max_retries"})


def engine_params(optional_params: dict[str, Any]) -> dict[str, Any]:
    """The engine's request parameters from LiteLLM's ``optional_params``.

    Anything the engine does not take reaches it and is refused there, naming the accepted
    parameters; ``n`` other than 1 is refused here because a cascade gives one answer.
    """
    params = {k: v for k, v in optional_params.items() if k not in _IGNORED and v is not None}
    if params.get("extra_body") == {}:
        params.pop("extra_body")
    if "max_completion_tokens" in params:
        params.setdefault("max_tokens", params.pop("max_completion_tokens"))
        params.pop("max_completion_tokens", None)
    n = params.pop("n", 1)
    if n != 1:
        raise InvalidInputError(f"n: a cascade returns one answer; omit n or set it to 1, not {n}")
    if params.get("parallel_tool_calls") is not None and not params.get("tools"):
        params.pop("parallel_tool_calls")
    return params


def summary(result: CascadeResult) -> dict[str, Any]:
    """What the caller sees of the trace: which models ran, what each cost, and why it stopped.

    Features and estimates stay in the full trace (``result.trace.as_dict()``); this is the
    part a client needs to audit a bill or a decision.
    """
    trace = result.trace
    return {
        "model": result.model,
        "models_run": trace.models_run,
        "cost_usd": trace.cost_usd,
        "prompt_tokens": trace.prompt_tokens,
        "completion_tokens": trace.completion_tokens,
        "strategy": trace.strategy,
        "stop_reason": trace.stop_reason,
        "decisions": list(trace.decisions),
        "runs": [
            {
                "model": run.model,
                "status": run.status,
                "reason": run.reason,
                "post_hoc_quality": run.post_hoc_quality,
                "prompt_tokens": run.prompt_tokens,
                "completion_tokens": run.completion_tokens,
                "cost_usd": run.cost_usd,
                "latency_ms": run.latency_ms,
            }
            for run in trace.runs
        ],
        "session": _session(result),
    }


def _session(result: CascadeResult) -> dict[str, Any] | None:
    """The request's session as a client checks it (which one, whether it was new, its
    spend before and after), or None outside a session."""
    session = result.trace.session
    if session is None:
        return None
    return {
        "session_id": session.session_id,
        "policy": session.policy,
        "new": session.new,
        "cap_usd": session.cap_usd,
        "spend_before_usd": session.spend_before_usd,
        "spend_after_usd": session.spend_after_usd,
    }


def headers(result: CascadeResult) -> dict[str, str]:
    """Response headers: the models run in order and the total cost (drafts included)."""
    return summary_headers(summary(result))


def summary_headers(summary: dict[str, Any]) -> dict[str, str]:
    """The same headers from a response's summary field (what the proxy hook has)."""
    return {
        MODELS_RUN_HEADER: ",".join(summary["models_run"]),
        COST_HEADER: repr(float(summary["cost_usd"])),
    }


def usage(result: CascadeResult) -> dict[str, int]:
    """Tokens of every model the request ran: drafts are billed, so they are counted."""
    prompt, completion = result.trace.prompt_tokens, result.trace.completion_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def finish_reason(result: CascadeResult) -> str:
    answer = result.answer
    if answer.tool_calls:
        return "tool_calls"
    return answer.finish_reason or "stop"


def message(result: CascadeResult) -> dict[str, Any]:
    """The assistant message, tool calls with ids as OpenAI sends them."""
    out = result.answer.message()
    calls = out.get("tool_calls")
    if calls:
        out["tool_calls"] = [_tool_call(call, i) for i, call in enumerate(calls)]
    return out


def _tool_call(call: dict[str, Any], index: int) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "id": call.get("id") or f"call_cascade_{index}",
        "type": "function",
        "function": {
            "name": function.get("name", ""),
            "arguments": function.get("arguments") or "",
        },
    }


def text_chunk(text: str) -> dict[str, Any]:
    """A LiteLLM ``GenericStreamingChunk`` carrying a piece of the accepted answer."""
    return {
        "text": text,
        "tool_use": None,
        "is_finished": False,
        "finish_reason": "",
        "usage": None,
        "index": 0,
    }


def closing_chunks(result: CascadeResult) -> list[dict[str, Any]]:
    """The tool calls (one chunk each, LiteLLM's chunk holds one), then the finish chunk
    with the whole request's usage and the trace summary."""
    chunks = [
        {**text_chunk(""), "tool_use": {**_tool_call(call, i), "index": i}}
        for i, call in enumerate(result.answer.tool_calls)
    ]
    chunks.append(
        {
            **text_chunk(""),
            "is_finished": True,
            "finish_reason": finish_reason(result),
            "usage": usage(result),
            "provider_specific_fields": {SUMMARY_FIELD: summary(result)},
        }
    )
    return chunks
