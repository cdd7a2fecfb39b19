"""The drivers' side of sessions: the store calls around one request, sync and async twins.

`CascadeRun` never performs I/O; a store call is I/O (Redis), so the four drivers do it
through one `SessionLink` per request: ``load`` before the run, ``holding`` around every
model call (reserve the call's worst case against the session cap, then settle it with the
actual cost) and ``saving`` around the whole request (save the run's session update, also
when the request fails). A request without a session gets `NO_SESSION`, whose operations do
nothing, so the drivers have one shape.

When a call's outcome is unknown (the task was cancelled or the stream abandoned mid-call),
its reservation is settled as spent: the provider may have billed it, and the cap must hold.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cascade_core.engine.config import RouterConfig, SessionSpec
from cascade_core.engine.trace import CascadeResult
from cascade_core.errors import InvalidInputError
from cascade_core.sessions.state import SessionSnapshot, check_session_id
from cascade_core.sessions.store import (
    InMemorySessionStore,
    RedisSessionStore,
    Reservation,
    SessionStore,
)

if TYPE_CHECKING:
    from cascade_core.engine.cascade_run import CascadeRun, ModelCall

# Slack on top of a call's own time limit before its reservation lapses.
HOLD_SLACK_S = 60.0


def build_store(spec: SessionSpec) -> SessionStore:
    """The store a config's ``session`` section names."""
    if spec.store == "memory":
        return InMemorySessionStore(spec.max_sessions, spec.ttl_s)
    url = spec.url
    if spec.url_env is not None:
        url = os.environ.get(spec.url_env)
        if not url:
            raise InvalidInputError(
                f"session.url_env: environment variable {spec.url_env} is not set"
            )
    assert url is not None  # SessionSpec requires url or url_env for redis
    return RedisSessionStore(url, spec.ttl_s, spec.prefix)


def hold_seconds(config: RouterConfig) -> float:
    """How long a reservation outlives its call at most: every retry timing out, plus slack."""
    return (config.num_retries + 1) * config.timeout_s + HOLD_SLACK_S


@dataclass
class Outcome:
    """Filled by the driver when the request produced a result."""

    result: CascadeResult | None = None


class SessionLink:
    """One request's store operations for session ``session_id``."""

    def __init__(
        self, store: SessionStore, session_id: str, cap_usd: float | None, hold_s: float
    ) -> None:
        self.store = store
        self.session_id = check_session_id(session_id)
        self.cap_usd = cap_usd
        self.hold_s = hold_s

    # -- sync -----------------------------------------------------------------------------

    def load(self) -> SessionSnapshot | None:
        return self.store.load(self.session_id)

    @contextlib.contextmanager
    def holding(self, run: CascadeRun, call: ModelCall) -> Iterator[bool]:
        """Around one model call: yields False when the session cap refused it (the run
        already knows; the driver moves on), else settles the call's cost on the way out."""
        hold = _Hold(self, run, call)
        granted = hold.reserve is None or hold.granted(self.store.reserve(*hold.reserve))
        try:
            yield granted
        finally:
            if granted:
                run.note_session_spend(self.store.settle(*hold.settlement()))

    @contextlib.contextmanager
    def saving(self, run: CascadeRun) -> Iterator[Outcome]:
        outcome = Outcome()
        try:
            yield outcome
        finally:
            if (update := run.session_update(outcome.result)) is not None:
                self.store.save(self.session_id, update)

    # -- async ----------------------------------------------------------------------------

    async def aload(self) -> SessionSnapshot | None:
        return await self.store.aload(self.session_id)

    @contextlib.asynccontextmanager
    async def aholding(self, run: CascadeRun, call: ModelCall) -> AsyncIterator[bool]:
        hold = _Hold(self, run, call)
        granted = hold.reserve is None or hold.granted(await self.store.areserve(*hold.reserve))
        try:
            yield granted
        finally:
            if granted:
                run.note_session_spend(await self.store.asettle(*hold.settlement()))

    @contextlib.asynccontextmanager
    async def asaving(self, run: CascadeRun) -> AsyncIterator[Outcome]:
        outcome = Outcome()
        try:
            yield outcome
        finally:
            if (update := run.session_update(outcome.result)) is not None:
                await self.store.asave(self.session_id, update)


class _Hold:
    """One call's reservation against the session cap, free of I/O: what to reserve, what a
    grant means for the run, and what to settle (the sync and async links share it)."""

    def __init__(self, link: SessionLink, run: CascadeRun, call: ModelCall) -> None:
        self.link, self.run, self.call = link, run, call
        self.token: str | None = None
        self.reserve: tuple[str, float, float, float] | None = (
            None
            if call.reservation_usd is None
            else (link.session_id, call.reservation_usd, call_cap(link.cap_usd), link.hold_s)
        )
        self.spent_before, self.runs_before = run.spent, len(run.trace.runs)

    def granted(self, grant: Reservation) -> bool:
        """Take the store's answer; a refusal is the run's to handle (it decides again)."""
        if not grant.granted:
            self.run.session_refused(self.call, grant.committed_usd)
            return False
        self.token = grant.token
        return True

    def settlement(self) -> tuple[str, str | None, float]:
        """The store's settle arguments: the call's actual cost when the run recorded its
        outcome, else (cancelled, abandoned mid-call) its reservation, what it may have been
        billed at most."""
        run, call = self.run, self.call
        if len(run.trace.runs) > self.runs_before:
            cost = run.spent - self.spent_before
        else:
            cost = call.reservation_usd or 0.0
        return self.link.session_id, self.token, cost


class _NoSession:
    """The link of a request without a session: nothing to load, hold or save."""

    def load(self) -> None:
        return None

    async def aload(self) -> None:
        return None

    @contextlib.contextmanager
    def holding(self, run: Any, call: Any) -> Iterator[bool]:
        yield True

    @contextlib.asynccontextmanager
    async def aholding(self, run: Any, call: Any) -> AsyncIterator[bool]:
        yield True

    @contextlib.contextmanager
    def saving(self, run: Any) -> Iterator[Outcome]:
        yield Outcome()

    @contextlib.asynccontextmanager
    async def asaving(self, run: Any) -> AsyncIterator[Outcome]:
        yield Outcome()


NO_SESSION = _NoSession()


def call_cap(cap_usd: float | None) -> float:
    """A reservation is only made under a cap, so it is never None here."""
    assert cap_usd is not None
    return cap_usd
