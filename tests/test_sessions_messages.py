"""Safe model switches (cascade_core.sessions.messages): a history made acceptable to a model.

Hypothesis generates histories with reasoning of every LiteLLM shape (``reasoning_content``,
``thinking_blocks``, thinking/redacted_thinking/reasoning parts, ``provider_specific_fields``)
and tool-call ids of every provider's shape (OpenAI, Anthropic, Mistral, Gemini with an
embedded thought signature, and arbitrary text), issued by the target, by another model or by
nobody the session knows. For every target dialect the converted history must be valid for
it, keep each call paired with its result, change nothing else, and convert a longer history
to an extension of the shorter one's conversion (so the cached prompt prefix survives).

The end-to-end test sends such a history through the engine to a FAKE provider that refuses
what the real ones refuse (tests/scripted_openai_server.py's ``Rejected``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scripted_openai_server import Rejected, Reply, ScriptedServer

from cascade_core.engine import CascadeEngine
from cascade_core.sessions.messages import (
    DIALECTS,
    GEMINI_SIGNATURE,
    REASONING_KEYS,
    REASONING_PARTS,
    Dialect,
    for_model,
    model_family,
)

TARGET = "target"
OTHER = "other"

# -- generated histories ----------------------------------------------------------------------

_base64 = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", min_size=8
)
call_ids = st.one_of(
    st.from_regex(r"call_[A-Za-z0-9]{6,30}", fullmatch=True),
    st.from_regex(r"toolu_[A-Za-z0-9]{20,40}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9]{9}", fullmatch=True),
    st.builds(
        lambda head, sig: f"call_{head}{GEMINI_SIGNATURE}{sig}",
        st.text("abc123", min_size=1),
        _base64,
    ),
    st.text(max_size=70),
)
thinking_part = st.sampled_from(
    [
        {"type": "thinking", "thinking": "let me think", "signature": "EqQBCgIYAhIM"},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3p"},
        {"type": "reasoning", "reasoning": "step by step"},
    ]
)
text_part = st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=20))
reasoning_fields = st.fixed_dictionaries(
    {},
    optional={
        "reasoning_content": st.text(max_size=20),
        "thinking_blocks": st.just([{"type": "thinking", "thinking": "hm", "signature": "sig"}]),
        "reasoning_items": st.just([{"type": "reasoning", "encrypted_content": "gAAAA"}]),
        "provider_specific_fields": st.just({"thought_signature": "CiQB"}),
    },
)


@st.composite
def histories(draw) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """A conversation and the session's record of who issued which tool call."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": draw(st.text(max_size=20))}]
    origins: dict[str, str] = {}
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["tools", "text", "parts", "user"]))
        if kind == "user":
            messages.append({"role": "user", "content": draw(st.text(max_size=20))})
            continue
        message: dict[str, Any] = {"role": "assistant", **draw(reasoning_fields)}
        if kind == "parts":
            message["content"] = draw(st.lists(st.one_of(thinking_part, text_part), max_size=3))
        else:
            message["content"] = draw(st.one_of(st.none(), st.text(max_size=20)))
        if kind == "tools":
            ids = draw(st.lists(call_ids, min_size=1, max_size=3))
            issuer = draw(st.sampled_from([TARGET, OTHER, None]))
            calls = []
            for call_id in ids:
                call = {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "f", "arguments": "{}"},
                }
                if draw(st.booleans()):
                    call["provider_specific_fields"] = {"thought_signature": "CiQB"}
                calls.append(call)
                if issuer is not None:
                    origins[call_id] = issuer
            message["tool_calls"] = calls
            messages.append(message)
            for call_id in ids:
                if draw(st.integers(0, 4)):  # most calls get their result
                    messages.append({"role": "tool", "tool_call_id": call_id, "content": "ok"})
            continue
        messages.append(message)
    return messages, origins


def _origin(message: Mapping[str, Any], origins: Mapping[str, str]) -> str | None:
    for call in message.get("tool_calls") or []:
        if call["id"] in origins:
            return origins[call["id"]]
    return None


def _own_ids(messages: list[dict[str, Any]], origins: Mapping[str, str]) -> set[str]:
    own = {call_id for call_id, issuer in origins.items() if issuer == TARGET}
    for message in messages:
        if message["role"] == "assistant" and _origin(message, origins) == TARGET:
            own |= {call["id"] for call in message.get("tool_calls") or []}
    return own


def _strip(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message without reasoning and with ids blanked: what must not change."""
    out = {k: v for k, v in message.items() if k not in REASONING_KEYS}
    if isinstance(out.get("content"), list):
        kept = [p for p in out["content"] if p.get("type") not in REASONING_PARTS]
        out["content"] = kept or None
    if out.get("tool_calls"):
        out["tool_calls"] = [
            {k: v for k, v in c.items() if k not in ("id", "provider_specific_fields")}
            for c in out["tool_calls"]
        ]
    out.pop("tool_call_id", None)
    return out


def _visible(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    if isinstance(content, list):
        content = [p for p in content if p.get("type") not in REASONING_PARTS]
    return bool(content) or bool(message.get("tool_calls"))


def _keeps(origin: str | None, family: str) -> bool:
    """The spec: reasoning stays on turns of the target, and Anthropic thinking on turns of
    unknown origin for an Anthropic target."""
    return origin == TARGET or (origin is None and family == "anthropic")


def _dropped(message: Mapping[str, Any], origins: Mapping[str, str], family: str) -> bool:
    """A turn with nothing visible whose reasoning the target may not see is left out."""
    if message["role"] != "assistant" or _visible(message):
        return False
    origin = _origin(message, origins)
    parts = message.get("content") if isinstance(message.get("content"), list) else []
    reasoning = [k for k in REASONING_KEYS if k in message] + [p["type"] for p in parts]
    if origin == TARGET:
        return False
    kept = {"thinking_blocks", *REASONING_PARTS} if _keeps(origin, family) else set()
    return any(r not in kept for r in reasoning)


def _aligned(
    before: list[dict[str, Any]], after: list[dict[str, Any]], origins, family
) -> list[tuple[dict, dict]]:
    """Pair each output message with its input, expected drops left out."""
    kept = [m for m in before if not _dropped(m, origins, family)]
    pairs = list(zip(kept, after, strict=True))
    for old, new in pairs:
        assert _strip(old) == _strip(new), "a message changed beyond reasoning and ids"
    return pairs


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.sampled_from(sorted(DIALECTS)))
def test_converted_history_is_valid_for_the_target_and_keeps_calls_paired(history, family):
    messages, origins = history
    dialect = DIALECTS[family]
    converted = for_model(messages, TARGET, dialect, origins)
    own = _own_ids(messages, origins)
    mapping: dict[str, str] = {}
    for before, after in _aligned(messages, converted.messages, origins, family):
        if before["role"] == "assistant":
            origin = _origin(before, origins)
            keeps = _keeps(origin, family)
            for key in REASONING_KEYS:
                if key in after:
                    assert origin == TARGET or (keeps and key == "thinking_blocks"), key
            for part in (
                after.get("content") or [] if isinstance(after.get("content"), list) else []
            ):
                if part.get("type") in REASONING_PARTS:
                    assert keeps
            pairs = zip(before.get("tool_calls") or [], after.get("tool_calls") or [], strict=True)
            for old, new in pairs:
                mapping.setdefault(old["id"], new["id"])
                assert mapping[old["id"]] == new["id"], "one id became two"
                if "provider_specific_fields" in new:
                    assert origin == TARGET
        if before["role"] == "tool":
            mapping.setdefault(before["tool_call_id"], after["tool_call_id"])
            assert mapping[before["tool_call_id"]] == after["tool_call_id"], "result unpaired"
    for old, new in mapping.items():
        assert dialect.accepts_id(new) or (new == old and old in own), (family, old, new)
    assert len(set(mapping.values())) == len(mapping), "two ids became one"


@settings(max_examples=200, deadline=None)
@given(histories(), st.sampled_from(sorted(DIALECTS)), st.integers(0, 12))
def test_a_longer_history_converts_to_an_extension(history, family, cut):
    """Conversion of a prefix is a prefix of the conversion: cached prompts stay cached."""
    messages, origins = history
    dialect = DIALECTS[family]
    whole = for_model(messages, TARGET, dialect, origins).messages
    part = for_model(messages[:cut], TARGET, dialect, origins).messages
    assert whole[: len(part)] == part


def test_untouched_history_is_passed_on_as_the_same_objects():
    messages = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
    ]
    converted = for_model(messages, TARGET, DIALECTS["openai"])
    assert all(a is b for a, b in zip(converted.messages, messages, strict=True))
    assert not converted.changed


def test_gemini_signature_ids_lose_the_signature_for_other_models_and_keep_it_for_gemini():
    call_id = f"call_abc{GEMINI_SIGNATURE}CiQBHsk9+/=="
    messages = [
        {
            "role": "assistant",
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "ok"},
    ]
    openai = for_model(messages, TARGET, DIALECTS["openai"], {call_id: OTHER}).messages
    assert openai[0]["tool_calls"][0]["id"] == "call_abc" == openai[1]["tool_call_id"]
    gemini = for_model(messages, TARGET, DIALECTS["gemini"], {call_id: TARGET}).messages
    assert gemini[0]["tool_calls"][0]["id"] == call_id


def test_mistral_gets_nine_character_ids_consistently():
    messages = [
        {
            "role": "assistant",
            "tool_calls": [
                {"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}}
                for i in ("call_A", "toolu_01B")
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_01B", "content": "b"},
        {"role": "tool", "tool_call_id": "call_A", "content": "a"},
    ]
    out = for_model(messages, TARGET, DIALECTS["mistral"]).messages
    new_ids = [c["id"] for c in out[0]["tool_calls"]]
    assert all(re.fullmatch(r"[A-Za-z0-9]{9}", i) for i in new_ids)
    assert [out[2]["tool_call_id"], out[1]["tool_call_id"]] == new_ids


def test_families_from_litellm_ids():
    assert model_family("anthropic/claude-sonnet-4-5") == "anthropic"
    assert model_family("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0") == "anthropic"
    assert model_family("mistral/mistral-small-latest") == "mistral"
    assert model_family("openai/mistral-7b-instruct") == "mistral"  # vLLM serving Mistral
    assert model_family("gemini/gemini-2.0-flash") == "gemini"
    assert model_family("openai/gpt-4o-mini") == "openai"
    assert model_family("hosted_vllm/some-model") == "openai"
    assert isinstance(Dialect.for_model("deepseek/deepseek-chat"), Dialect)


# -- end to end: what the real providers refuse, refused by a fake ----------------------------

_MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")


def _refuse_like_real_providers(model: str, body: dict[str, Any]) -> Reply:
    """A FAKE pair of providers: "mistral-small" refuses ids that are not nine letters or
    digits (as Mistral's API does) and reasoning it did not make; "gpt-small" refuses
    ``reasoning_content`` in input (as DeepSeek does) and ids longer than 40 (as OpenAI)."""
    for message in body["messages"]:
        ids = [c["id"] for c in message.get("tool_calls") or []]
        if message["role"] == "tool":
            ids.append(message["tool_call_id"])
        if "mistral" in model and not all(_MISTRAL_ID.fullmatch(i) for i in ids):
            raise Rejected(400, f"Tool call id was {ids} but must be a-z, A-Z, 0-9, length 9")
        if "gpt" in model and any(len(i) > 40 for i in ids):
            raise Rejected(400, "string too long. Expected a string with maximum length 40")
        if message["role"] == "assistant" and any(k in message for k in REASONING_KEYS):
            raise Rejected(400, "reasoning_content is not allowed in input messages")
    if body["messages"][-1]["role"] == "tool":
        return Reply("Done: " + json.dumps(body["messages"][-1]["content"]), logprob=-0.05)
    return Reply(
        tool_calls=[
            {"name": "lookup", "arguments": '{"q": "x"}', "id": "toolu_01AbCdEfGhIjKlMnOpQrStUv"}
        ]
    )


def test_a_foreign_history_reaches_both_providers_unbroken():
    """A history from an Anthropic model (toolu_ ids, thinking blocks with signatures,
    reasoning_content) and a Gemini one (signature ids) is sent to a Mistral-format and an
    OpenAI-format model in one cascade; neither refuses it, each call still pairs with its
    result, and the caller's messages are not modified."""
    foreign = f"call_g1{GEMINI_SIGNATURE}CiQBHsk9pQ+/=="
    history = [
        {"role": "user", "content": "Look two things up."},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "plan", "signature": "EqQB"},
                {"type": "text", "text": "Sure."},
            ],
            "reasoning_content": "plan",
            "thinking_blocks": [{"type": "thinking", "thinking": "plan", "signature": "EqQB"}],
            "tool_calls": [
                {
                    "id": "toolu_01AbCdEfGhIjKlMnOpQrStUv",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "a"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_01AbCdEfGhIjKlMnOpQrStUv", "content": "A"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": foreign,
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "b"}'},
                    "provider_specific_fields": {"thought_signature": "CiQB"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": foreign, "content": "B"},
    ]
    snapshot = json.dumps(history)
    for model in ("mistral-small", "gpt-small"):  # the fake does refuse the raw history
        with pytest.raises(Rejected):
            _refuse_like_real_providers(model, {"messages": history})
    with ScriptedServer(_refuse_like_real_providers) as server:
        engine = CascadeEngine(
            models=[
                {
                    "name": "mistral-small",
                    "model": "openai/mistral-small",
                    "api_base": server.api_base,
                    "input_cost_per_token": 1e-8,
                    "output_cost_per_token": 1e-8,
                },
                {
                    "name": "gpt-small",
                    "model": "openai/gpt-small",
                    "api_base": server.api_base,
                    "input_cost_per_token": 2e-8,
                    "output_cost_per_token": 2e-8,
                },
            ],
            strategy={"name": "cascade_routing"},
            budget={"lambda": 0.0},  # cost is no object: both models run
            num_retries=0,
        )
        result = engine.run(history, max_tokens=20)
    assert [r.status for r in result.trace.runs] == ["ok", "ok"], result.trace.runs
    assert json.dumps(history) == snapshot
    for body in server.requests:
        sent = body["messages"]
        calls = [c["id"] for m in sent for c in m.get("tool_calls") or []]
        results = [m["tool_call_id"] for m in sent if m["role"] == "tool"]
        assert calls == results and len(set(calls)) == 2
    assert any("rewrote 2 tool-call id(s)" in d for d in result.trace.decisions)
