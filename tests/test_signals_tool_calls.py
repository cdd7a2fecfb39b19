"""Tests for cascade_core.signals.tool_calls."""

from __future__ import annotations

import json
import os

import pytest

from cascade_core.engine.answers import ModelAnswer
from cascade_core.signals import (
    check_tool_calls,
    get_field,
    message_signals,
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "minLength": 1},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7},
                },
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    },
    {"type": "function", "function": {"name": "get_time", "description": "No arguments."}},
]


def call(name, arguments, call_id="call_1"):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def message(*calls, content=None):
    return {"role": "assistant", "content": content, "tool_calls": list(calls)}


def only(msg, tools=TOOLS):
    signals = check_tool_calls(msg, tools)
    assert signals.n_calls == 1
    return signals.calls[0], signals


def test_valid_call():
    check, signals = only(message(call("get_weather", '{"city": "Paris", "unit": "celsius"}')))
    assert check.ok and check.tool_exists and check.arguments_parse
    assert check.arguments_valid is True and check.errors == ()
    assert (check.id, check.name) == ("call_1", "get_weather")
    assert signals.score == 1.0 and signals.tool_choice_respected


def test_unknown_tool():
    check, signals = only(message(call("get_wether", '{"city": "Paris"}')))
    assert not check.tool_exists and check.arguments_parse
    assert check.arguments_valid is None  # nothing to validate against
    assert "unknown tool" in check.errors[0]
    assert signals.score == 0.0


@pytest.mark.parametrize("bad", ['{"city": "Paris"', "city=Paris", '{"city": NaN}', "[1,"])
def test_bad_json(bad):
    check, signals = only(message(call("get_weather", bad)))
    assert check.tool_exists and not check.arguments_parse and check.arguments_valid is None
    assert "JSON" in check.errors[0]
    assert signals.score == 0.0


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({}, "'city' is a required property"),
        ({"city": "Paris", "unit": "kelvin"}, "is not one of"),
        ({"city": "Paris", "days": 9}, "greater than the maximum"),
        ({"city": 42}, "is not of type 'string'"),
        ({"city": "Paris", "country": "FR"}, "Additional properties"),
    ],
)
def test_schema_violation(arguments, fragment):
    check, signals = only(message(call("get_weather", json.dumps(arguments))))
    assert check.tool_exists and check.arguments_parse and check.arguments_valid is False
    assert any(fragment in e for e in check.errors), check.errors
    assert signals.score == 0.0


def test_arguments_must_be_an_object():
    check, _ = only(message(call("get_weather", '["Paris"]')))
    assert check.arguments_parse and check.arguments_valid is False
    assert "not an object" in check.errors[0]


@pytest.mark.parametrize("arguments", ["{}", "", "  "])
def test_tool_without_parameters_accepts_no_arguments(arguments):
    check, _ = only(message(call("get_time", arguments)))
    assert check.ok


def test_tool_without_parameters_rejects_arguments():
    check, _ = only(message(call("get_time", '{"tz": "UTC"}')))
    assert check.arguments_valid is False


def test_invalid_tool_schema_is_not_checked():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}]
    check, signals = only(message(call("f", "{}")), tools)
    assert check.arguments_valid is None and "invalid tool schema" in check.errors[0]
    assert signals.score == 0.0


def test_unresolvable_ref_is_not_checked():
    params = {"type": "object", "properties": {"x": {"$ref": "https://example.invalid/s.json"}}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": params}}]
    check, _ = only(message(call("f", '{"x": 1}')), tools)
    assert check.arguments_valid is None and "could not validate" in check.errors[0]


def test_local_refs_and_flat_tool_layout():
    params = {
        "type": "object",
        "$defs": {"pos": {"type": "integer", "minimum": 1}},
        "properties": {"n": {"$ref": "#/$defs/pos"}},
        "required": ["n"],
    }
    tools = [{"name": "f", "parameters": params}]  # flat / legacy functions layout
    assert only(message(call("f", '{"n": 3}')), tools)[0].ok
    assert only(message(call("f", '{"n": 0}')), tools)[0].arguments_valid is False


def test_score_is_fraction_of_valid_calls():
    msg = message(
        call("get_weather", '{"city": "Paris"}', "a"),
        call("get_time", "{}", "b"),
        call("nope", "{}", "c"),
        call("get_weather", "{}", "d"),
    )
    signals = check_tool_calls(msg, TOOLS)
    assert [c.ok for c in signals.calls] == [True, True, False, False]
    assert signals.score == 0.5
    assert [c.index for c in signals.calls] == [0, 1, 2, 3]


def test_no_tool_calls_and_tool_choice():
    text = {"role": "assistant", "content": "It is sunny."}
    assert check_tool_calls(text, TOOLS).score is None
    assert check_tool_calls(text, TOOLS, "auto").tool_choice_respected
    assert not check_tool_calls(text, TOOLS, "required").tool_choice_respected
    named = {"type": "function", "function": {"name": "get_time"}}
    assert not check_tool_calls(text, TOOLS, named).tool_choice_respected
    weather = message(call("get_weather", '{"city": "Paris"}'))
    assert check_tool_calls(weather, TOOLS, "required").tool_choice_respected
    assert not check_tool_calls(weather, TOOLS, named).tool_choice_respected
    assert not check_tool_calls(weather, TOOLS, "none").tool_choice_respected


def test_no_tools_offered():
    check, _ = only(message(call("get_weather", '{"city": "Paris"}')), None)
    assert not check.tool_exists


def test_legacy_function_call():
    msg = {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "get_time", "arguments": "{}"},
    }
    signals = check_tool_calls(msg, TOOLS)
    assert signals.n_calls == 1 and signals.score == 1.0


def test_litellm_message_objects():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = pytest.importorskip("litellm")
    resp = litellm.ModelResponse(
        id="x",
        created=1,
        model="gpt-4o-mini",
        object="chat.completion",
        choices=[
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": message(
                    call("get_weather", '{"city": "Paris"}', "a"),
                    call("get_weather", '{"town": "Paris"}', "b"),
                ),
            }
        ],
    )
    signals = check_tool_calls(resp.choices[0].message, TOOLS)
    assert [c.ok for c in signals.calls] == [True, False]
    assert [c.id for c in signals.calls] == ["a", "b"]
    answer = ModelAnswer.from_response(resp)  # the one parser, as the engine reads it
    assert [c.ok for c in check_tool_calls(answer.message(), TOOLS).calls] == [True, False]
    finish = message_signals(answer.message(), answer.finish_reason)
    assert finish.has_tool_calls and not finish.empty_content
    assert not finish.truncated


# ---------------------------------------------------------------- finish state


def test_finish_signals():
    s = message_signals({"role": "assistant", "content": "Par"}, "length")
    assert s.truncated and not s.empty_content and not s.refused
    s = message_signals({"role": "assistant", "content": None, "refusal": "I can't help."}, "stop")
    assert s.refused and s.empty_content
    s = message_signals({"role": "assistant", "content": "  \n"}, "stop")
    assert s.empty_content and not s.truncated
    s = message_signals({"role": "assistant", "content": ""}, "content_filter")
    assert s.content_filtered and s.empty_content
    s = message_signals({"role": "assistant", "content": [{"type": "text", "text": "ok"}]}, "stop")
    assert not s.empty_content


def test_get_field_reads_dicts_objects_and_none():
    class Message:
        content = "hi"

    assert get_field({"content": "hi"}, "content") == "hi"
    assert get_field(Message(), "content") == "hi"
    assert get_field(Message(), "refusal", "none") == "none"
    assert get_field(None, "content", 3) == 3
    assert get_field({"content": None}, "content", 3) is None  # a present null stays null
