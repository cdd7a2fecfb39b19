"""Session policies and tool-loop continuity, as plans and through the real engine.

The engine runs the scripted two-model agent of session_fixtures on the FAKE caching provider
over HTTP (LiteLLM and the OpenAI client included): "small" breaks its tool calls on turns
marked "hard", so a cascade escalates those to "big".
"""

from __future__ import annotations

from typing import Any

import pytest
import session_fixtures
from scripted_openai_server import Rejected, Reply
from session_fixtures import SYSTEM, TOOLS, agent_script, make_engine

from cascade_core.engine import CascadeEngine, CascadeResult
from cascade_core.errors import InvalidInputError
from cascade_core.sessions import SessionState, plan_turn
from cascade_core.sessions.policy import tool_result_ids

fake = session_fixtures.fake
LABELS = ["small", "mid", "big"]


# -- plans ------------------------------------------------------------------------------------


def _tool_turn(*ids: str) -> list[dict[str, Any]]:
    calls = [
        {"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ids
    ]
    return [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        *({"role": "tool", "tool_call_id": i, "content": "r"} for i in ids),
    ]


def test_a_tool_result_goes_back_to_the_model_that_issued_the_call() -> None:
    state = SessionState(model="small", tool_calls={"a": "mid", "b": "mid"})
    plan = plan_turn("per_turn", "continue", state, _tool_turn("a", "b"), LABELS)
    assert (plan.first, plan.exclusive) == (1, True)
    assert "mid issued tool call 'b'" in plan.first_reason
    assert tool_result_ids(_tool_turn("a", "b")) == ["a", "b"]


def test_tool_loop_decide_lets_the_policy_decide_tool_results() -> None:
    state = SessionState(model="big", tool_calls={"a": "mid"})
    plan = plan_turn("sticky", "decide", state, _tool_turn("a"), LABELS)
    assert (plan.first, plan.exclusive) == (2, False)


def test_an_unknown_tool_call_is_decided_by_the_policy_and_noted() -> None:
    plan = plan_turn("per_turn", "continue", SessionState(), _tool_turn("zzz"), LABELS)
    assert plan.first is None and not plan.excluded
    assert "did not issue" in plan.notes[0]


def test_sticky_starts_with_the_session_model_and_per_turn_does_not() -> None:
    user = [{"role": "user", "content": "next"}]
    state = SessionState(model="mid", floor="big", floor_rank=2)
    assert plan_turn("sticky", "continue", state, user, LABELS).first == 1
    assert plan_turn("per_turn", "continue", state, user, LABELS).first is None
    gone = SessionState(model="retired-model")  # a ladder changed since: nothing is forced
    assert plan_turn("sticky", "continue", gone, user, LABELS).first is None


def test_escalate_only_excludes_the_tiers_below_the_floor_but_never_the_issuer() -> None:
    user = [{"role": "user", "content": "next"}]
    state = SessionState(model="big", floor="big", floor_rank=2, tool_calls={"a": "small"})
    assert set(plan_turn("escalate_only", "continue", state, user, LABELS).excluded) == {0, 1}
    plan = plan_turn("escalate_only", "continue", state, _tool_turn("a"), LABELS)
    assert plan.first == 0 and set(plan.excluded) == {1}


# -- through the engine -----------------------------------------------------------------------


def _turns(engine: CascadeEngine, session: str, prompts: list[str]) -> list[CascadeResult]:
    """Run user turns of one session, each followed by its tool result (a tool loop)."""
    messages: list[dict[str, Any]] = [SYSTEM]
    results = []
    for prompt in prompts:
        messages.append({"role": "user", "content": prompt})
        result = engine.run(messages, session_id=session, tools=TOOLS, max_tokens=40)
        results.append(result)
        messages.append(result.answer.message())
        for call in result.answer.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": "42"})
        if result.answer.tool_calls:
            follow = engine.run(messages, session_id=session, tools=TOOLS, max_tokens=40)
            results.append(follow)
            messages.append(follow.answer.message())
    return results


def _models(result: CascadeResult) -> list[str]:
    return [run.model for run in result.trace.runs if run.status != "skipped"]


def test_per_turn_decides_every_user_turn_afresh_and_keeps_tool_loops(fake) -> None:
    engine = make_engine(fake.api_base)
    hard, follow, easy, easy_follow = _turns(engine, "per-turn", ["hard one", "easy one"])
    assert _models(hard) == ["small", "big"] and hard.model == "big"
    assert _models(follow) == ["big"] and follow.trace.stop_reason.startswith("tool-loop")
    assert _models(easy) == ["small"] and _models(easy_follow) == ["small"]
    assert follow.trace.session.policy == "per_turn"


def test_sticky_keeps_the_session_model_after_an_escalation(fake) -> None:
    engine = make_engine(fake.api_base, session={"policy": "sticky"})
    results = _turns(engine, "sticky", ["hard one", "easy one", "hard again"])
    assert [r.model for r in results] == ["big"] * 6
    later = results[2]
    assert _models(later)[0] == "big"
    assert later.trace.decisions[0] == "sticky: the session's model big runs first"


def test_sticky_on_an_easy_session_stays_on_the_cheap_model(fake) -> None:
    engine = make_engine(fake.api_base, session={"policy": "sticky"})
    results = _turns(engine, "easy", ["easy one", "easy two"])
    assert {run.model for r in results for run in r.trace.runs} == {"small"}


def test_escalate_only_never_drops_below_the_floor(fake) -> None:
    engine = make_engine(fake.api_base, session={"policy": "escalate_only"})
    results = _turns(engine, "floor", ["hard one", "easy one"])
    easy = results[2]
    assert easy.model == "big"
    skipped = [run for run in easy.trace.runs if run.status == "skipped"]
    assert [(r.model, r.reason) for r in skipped] == [
        ("small", "escalate_only: below the session's tier floor big")
    ]


def test_tool_loop_decide_lets_the_cascade_switch_models_mid_loop(fake) -> None:
    engine = make_engine(fake.api_base, session={"tool_loop": "decide"})
    hard, follow = _turns(engine, "decide", ["hard one"])
    assert hard.model == "big"
    assert follow.model == "small"  # the cheap model answers the big model's tool result
    assert not follow.trace.stop_reason.startswith("tool-loop")


def test_continuity_is_released_when_the_issuing_model_fails(fake) -> None:
    """The issuer is down when its tool result comes back: the others get the turn, with
    the history converted for them (the call is still paired with its result)."""

    def script(model: str, body: dict[str, Any]) -> Reply:
        if model == "big" and body["messages"][-1]["role"] == "tool":
            raise Rejected(503, "overloaded")
        return agent_script(model, body)

    fake.script = script
    engine = make_engine(fake.api_base)
    hard, follow = _turns(engine, "released", ["hard one"])
    assert hard.model == "big" and follow.model == "small"
    assert [r.status for r in follow.trace.runs] == ["failed", "ok"]
    assert any("continuity released" in note for note in follow.trace.session.notes)


def test_without_a_session_nothing_is_remembered(fake) -> None:
    engine = make_engine(fake.api_base, session={"policy": "sticky"})
    messages = [SYSTEM, {"role": "user", "content": "hard one"}]
    first = engine.run(messages, tools=TOOLS, max_tokens=40)
    again = engine.run(messages, tools=TOOLS, max_tokens=40)
    assert first.trace.session is None and _models(again) == ["small", "big"]


@pytest.mark.parametrize("bad", ["", "   ", "x" * 257, "line\nbreak", 42, b"bytes"])
def test_bad_session_ids_are_refused_in_one_line(fake, bad: object) -> None:
    engine = make_engine(fake.api_base)
    with pytest.raises(InvalidInputError, match="session_id") as caught:
        engine.run([{"role": "user", "content": "hi"}], session_id=bad)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)
    assert not fake.requests  # refused before any call
