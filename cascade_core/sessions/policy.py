"""Session policies: how what a session did so far constrains the next request's cascade.

A policy never picks models itself. It turns the session state into a `TurnPlan` that the
run applies through the ordinary strategy contract: models it excludes are set aside like
skipped models (quality 0, never run), and a fixed first call is the state the strategy then
decides from. The strategy still chooses everything else, with its usual cost/quality rule.

Policies (``session.policy``):

``per_turn`` (default)
    Every user turn is decided afresh, as without a session; the session still brings
    tool-loop continuity, prompt-cache-aware costs and the per-session budget. Use it when
    turns are independent questions that merely share a chat window.
``sticky``
    The session's model (the one whose answer the last turn returned) runs first; the strategy
    then decides from that state, so a passing answer is kept and a failing draft escalates.
    Use it for agents: difficulty is usually a property of the whole task, the session model
    keeps its prompt cache warm, and no cheap draft is paid for again on every turn of a task
    that already proved hard. With a ``routing`` strategy (which never looks at answers) the
    first routed model stays for the whole session.
``escalate_only``
    Models below the highest tier that has answered in this session are excluded, so the
    session's tier never drops (the ladder is ordered cheapest first). Use it when a weaker
    model must not take over a conversation a stronger one has shaped (style, commitments
    made), while the cascade may still escalate further.

Tool-loop continuity (``session.tool_loop``): ``continue`` (default) sends a request whose
last message is a tool result to the model that issued that tool call, alone, and the run is
final after it: tool-call ids, reasoning blocks and their signatures belong to the model that
started the loop, and the cascade decides afresh on the next user turn. If that model fails,
the plan is released and the strategy decides among the others, with the history converted
for them (`messages`). ``decide`` lets the policy decide tool-result requests too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cascade_core.sessions.state import SessionState

SessionPolicy = Literal["per_turn", "sticky", "escalate_only"]
ToolLoop = Literal["continue", "decide"]
POLICIES: tuple[str, ...] = ("per_turn", "sticky", "escalate_only")


@dataclass(frozen=True)
class TurnPlan:
    """What the session imposes on one request (nothing, for a new session or ``per_turn``).

    ``first`` is the ladder index the run calls before asking the strategy; ``exclusive``
    means the run ends once ``first`` answers usably (tool-loop continuity); ``excluded``
    maps ladder indices to why they may not run.
    """

    first: int | None = None
    first_reason: str = ""
    exclusive: bool = False
    excluded: Mapping[int, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def tool_result_ids(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The tool-call ids answered by the trailing tool messages (empty unless the request
    ends with a tool result)."""
    ids: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        call_id = message.get("tool_call_id")
        if isinstance(call_id, str) and call_id:
            ids.append(call_id)
    return ids[::-1]


def plan_turn(
    policy: SessionPolicy,
    tool_loop: ToolLoop,
    state: SessionState,
    messages: Sequence[Mapping[str, Any]],
    labels: Sequence[str],
) -> TurnPlan:
    """The plan for one request of a session whose models are ``labels`` (ladder order)."""
    index = {label: i for i, label in enumerate(labels)}
    notes: list[str] = []
    ids = tool_result_ids(messages)
    if ids and tool_loop == "continue":
        issuers = [state.tool_calls[i] for i in ids if i in state.tool_calls]
        issuer = issuers[-1] if issuers else None
        if issuer in index:
            return TurnPlan(
                first=index[issuer],
                first_reason=(
                    f"tool-loop continuity: {issuer} issued tool call {ids[-1]!r}, so it "
                    "continues the loop alone"
                ),
                exclusive=True,
                excluded=_floor_exclusions(policy, state, index, keep=index[issuer]),
            )
        notes.append(
            f"tool result for call {ids[-1]!r} that this session did not issue (or has "
            f"forgotten): decided by the {policy} policy"
        )
    excluded = _floor_exclusions(policy, state, index)
    if policy == "sticky" and state.model in index:
        return TurnPlan(
            first=index[state.model],
            first_reason=f"sticky: the session's model {state.model} runs first",
            excluded=excluded,
            notes=tuple(notes),
        )
    return TurnPlan(excluded=excluded, notes=tuple(notes))


def _floor_exclusions(
    policy: SessionPolicy, state: SessionState, index: Mapping[str, int], keep: int = -1
) -> dict[int, str]:
    """``escalate_only``: the ladder models below the session's tier floor."""
    if policy != "escalate_only" or state.floor not in index:
        return {}
    floor = index[state.floor]
    return {
        i: f"escalate_only: below the session's tier floor {state.floor}"
        for i in range(floor)
        if i != keep
    }
