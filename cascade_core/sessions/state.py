"""What the engine remembers about one session (an agent run or a conversation) between turns.

Small on purpose: the session store may be Redis shared by several gateway replicas, so the
state holds labels, hashes and counts, never message text, and every collection in it is
bounded. Spend is not part of this document: it is a counter the store updates atomically
(see `store`), so that concurrent turns of one session can never both spend its last dollar.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from cascade_core.errors import InvalidInputError
from cascade_core.sessions.prefix import ServedPrefix

# The most recent tool-call ids kept per session: an agent only ever answers the calls of its
# last turns, and a bound keeps a runaway loop from growing the state without end.
MAX_TOOL_CALLS = 256
SESSION_ID_MAX = 256


class SessionState(BaseModel):
    """One session between its turns (JSON-serialisable; unknown keys from other versions
    are ignored so replicas of different versions can share a store)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model: str | None = Field(None, description="the model whose answer the last turn returned")
    floor: str | None = Field(None, description="the highest tier that answered so far")
    floor_rank: int = Field(-1, description="that tier's position in the ladder")
    prefixes: dict[str, ServedPrefix] = Field(
        default_factory=dict, description="per model: the last prompt it was sent"
    )
    tool_calls: dict[str, str] = Field(
        default_factory=dict, description="tool-call id -> the model that issued it, oldest first"
    )
    turns: int = 0
    updated_at: float = 0.0

    def apply(self, update: SessionUpdate, now: float) -> SessionState:
        """This state with one finished request merged in.

        A merge rather than an overwrite, because two turns of one session may finish in
        either order: served prefixes are replaced per model, tool-call ids accumulate (the
        newest ``MAX_TOOL_CALLS`` kept), the floor only rises.
        """
        calls = {k: v for k, v in self.tool_calls.items() if k not in update.tool_calls}
        calls.update(update.tool_calls)
        if len(calls) > MAX_TOOL_CALLS:
            calls = dict(list(calls.items())[-MAX_TOOL_CALLS:])
        floor, rank = self.floor, self.floor_rank
        if update.floor is not None and update.floor_rank > rank:
            floor, rank = update.floor, update.floor_rank
        return SessionState(
            model=update.model if update.model is not None else self.model,
            floor=floor,
            floor_rank=rank,
            prefixes={**self.prefixes, **update.prefixes},
            tool_calls=calls,
            turns=self.turns + (1 if update.model is not None else 0),
            updated_at=now,
        )


@dataclass(frozen=True)
class SessionUpdate:
    """What one request adds to its session (the run computes it, the driver saves it)."""

    model: str | None = None
    floor: str | None = None
    floor_rank: int = -1
    prefixes: Mapping[str, ServedPrefix] = field(default_factory=dict)
    tool_calls: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionSnapshot:
    """A session as one request starts: its state and its spend (settled, and reserved by
    calls of other requests still in flight)."""

    session_id: str
    state: SessionState = field(default_factory=SessionState)
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    new: bool = True
    notes: tuple[str, ...] = ()  # what the store had to say (an unreadable state, ...)

    @property
    def committed_usd(self) -> float:
        """What the session has spent or may still be billed for right now."""
        return self.spent_usd + self.reserved_usd


def check_session_id(session_id: object) -> str:
    """A session id as the engine accepts it: a short non-empty string without control
    characters (it lands in traces and, hashed, in store keys)."""
    if (
        not isinstance(session_id, str)
        or not session_id.strip()
        or len(session_id) > SESSION_ID_MAX
        or not session_id.isprintable()
    ):
        raise InvalidInputError(
            f"session_id: give a non-empty printable string of at most {SESSION_ID_MAX} "
            "characters (a conversation or agent-run id, e.g. LangGraph's thread_id)"
        )
    return session_id
