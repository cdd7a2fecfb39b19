"""Sessions: what the engine keeps between the requests of one conversation or agent run.

The engine imports this package; it imports nothing of the engine (only `cascade_core.errors`
and LiteLLM's model naming). `state` is the small typed document, `store` where it lives
(in-process LRU or Redis), `policy` how it constrains the next request, `messages` how a
history is made safe for another model, `prefix` the prompt prefix a model has been sent.
"""

from cascade_core.sessions.messages import Converted, Dialect, for_model, model_family
from cascade_core.sessions.policy import POLICIES, SessionPolicy, ToolLoop, TurnPlan, plan_turn
from cascade_core.sessions.prefix import ServedPrefix, prefix_chain
from cascade_core.sessions.state import SessionSnapshot, SessionState, SessionUpdate
from cascade_core.sessions.store import (
    InMemorySessionStore,
    RedisSessionStore,
    Reservation,
    SessionStore,
    SessionStoreError,
)

__all__ = [
    "POLICIES",
    "Converted",
    "Dialect",
    "InMemorySessionStore",
    "RedisSessionStore",
    "Reservation",
    "ServedPrefix",
    "SessionPolicy",
    "SessionSnapshot",
    "SessionState",
    "SessionStore",
    "SessionStoreError",
    "SessionUpdate",
    "ToolLoop",
    "TurnPlan",
    "for_model",
    "model_family",
    "plan_turn",
    "prefix_chain",
]
