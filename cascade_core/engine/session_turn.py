"""What a session contributes to one request's run, free of I/O like the run itself.

The driver loads the session's snapshot from the store and hands it to `CascadeRun`; this
object then holds everything the run needs from it: the policy's plan for the turn, the
prompt prefix each model has already been sent (for cache-aware expected costs), the
per-session budget left, and, at the end, the update the driver saves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from cascade_core.engine.ladder import LadderModel
from cascade_core.engine.prompt_tokens import UNBILLED_FIELDS
from cascade_core.engine.trace import CascadeResult, SessionTrace
from cascade_core.sessions.policy import SessionPolicy, ToolLoop, TurnPlan, plan_turn
from cascade_core.sessions.prefix import ServedPrefix, prefix_chain
from cascade_core.sessions.state import SessionSnapshot, SessionUpdate

# Fields that shape the prompt a provider caches besides the messages: whatever is billed as
# input (tools, schemas, unknown extras) and the tool choice.
_HEAD_EXTRA = frozenset({"tools", "tool_choice"})
# Refusals of one model's reservation (other requests of the session took the budget first)
# after which the run stops trying that model.
MAX_REFUSALS = 3


def prompt_head(params: Mapping[str, Any]) -> dict[str, Any]:
    """The non-message part of a request that is part of its cached prompt prefix."""
    return {
        k: v
        for k, v in params.items()
        if k != "messages" and (k in _HEAD_EXTRA or k not in UNBILLED_FIELDS)
    }


def asks_cache_write(params: Mapping[str, Any]) -> bool:
    """Whether a request marks a prompt prefix for caching (Anthropic's ``cache_control``)."""

    def marked(value: Any) -> bool:
        if isinstance(value, Mapping):
            return "cache_control" in value or any(marked(v) for v in value.values())
        if isinstance(value, list):
            return any(marked(v) for v in value)
        return False

    return marked(params.get("messages")) or marked(params.get("tools"))


class SessionTurn:
    """One request's view of its session."""

    def __init__(
        self,
        snapshot: SessionSnapshot,
        policy: SessionPolicy,
        tool_loop: ToolLoop,
        cap_usd: float | None,
        ladder: Sequence[LadderModel],
        messages: Sequence[Mapping[str, Any]],
        base_params: Sequence[Mapping[str, Any]],
    ) -> None:
        self.snapshot = snapshot
        self.state = snapshot.state
        self.cap_usd = cap_usd
        self.plan: TurnPlan = plan_turn(
            policy, tool_loop, self.state, messages, [m.label for m in ladder]
        )
        self.chains = [prefix_chain(prompt_head(p), p["messages"]) for p in base_params]
        self.cached_tokens = [
            served.cached_tokens(chain) if (served := self.state.prefixes.get(m.label)) else 0
            for m, chain in zip(ladder, self.chains, strict=True)
        ]
        # What the session had spent or reserved when the run started, other requests' calls
        # included; the run adds its own spend, and a refused reservation refreshes this.
        self.others_usd = snapshot.committed_usd
        self.refusals: Counter[int] = Counter()
        self.trace = SessionTrace(
            session_id=snapshot.session_id,
            policy=policy,
            tool_loop=tool_loop,
            new=snapshot.new,
            notes=[*snapshot.notes, *self.plan.notes],
            cap_usd=cap_usd,
            spend_before_usd=snapshot.committed_usd,
        )

    # -- the per-session budget -----------------------------------------------------------

    def allowance(self, own_spent: float) -> float | None:
        """USD the session cap leaves for the next call (None: no cap)."""
        if self.cap_usd is None:
            return None
        return self.cap_usd - (self.others_usd + own_spent)

    def describe_cap(self, own_spent: float) -> str:
        return (
            f"session cost cap: {self.cap_usd:.6g} USD per session, "
            f"{self.others_usd + own_spent:.6g} USD spent or reserved"
        )

    def refused(self, model: int, committed_usd: float, own_spent: float) -> bool:
        """A reservation was refused: learn the session's real spend; True when the model
        should no longer be tried."""
        self.others_usd = max(self.others_usd, committed_usd - own_spent)
        self.refusals[model] += 1
        return self.refusals[model] >= MAX_REFUSALS

    def note_spend(self, spent_usd: float) -> None:
        self.trace.spend_after_usd = spent_usd

    # -- the update saved after the request -----------------------------------------------

    def update(
        self,
        ladder: Sequence[LadderModel],
        billed: Sequence[int],
        base_params: Sequence[Mapping[str, Any]],
        input_tokens: Sequence[int],
        result: CascadeResult | None,
    ) -> SessionUpdate:
        """Models that were billed have the prompt they were sent in their cache; the
        answering model becomes the session's model and issuer of its tool calls."""
        prefixes: dict[str, ServedPrefix] = {}
        for index in billed:
            model = ladder[index]
            messages = base_params[index]["messages"]
            prefixes[model.label] = ServedPrefix.served(
                self.chains[index],
                input_tokens[index],
                messages,
                model.count_message_tokens,
                self.state.prefixes.get(model.label),
            )
        if result is None:
            return SessionUpdate(prefixes=prefixes)
        calls = {
            str(call["id"]): result.model
            for call in result.answer.tool_calls
            if isinstance(call.get("id"), str) and call["id"]
        }
        floor, rank = self.state.floor, self.state.floor_rank
        if result.model_index > rank:
            floor, rank = result.model, result.model_index
        return SessionUpdate(
            model=result.model, floor=floor, floor_rank=rank, prefixes=prefixes, tool_calls=calls
        )
