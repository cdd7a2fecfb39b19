"""When each model call of a request started and ended, and which decision started it.

Spans need this per call; the trace keeps only each call's latency. The engine's drivers all
go through ``CascadeEngine.start()`` and the run's public ``next_call`` / ``record_*``
methods, so ``ObservedEngine`` watches exactly those, for requests run inside ``recording()``
and for no others (a request outside it gets the plain run: nothing is recorded, nothing
costs). The engine could offer this as an observer argument of ``CascadeRun``; until it
does, this module is the one place that knows the run's call protocol.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from cascade_core.engine import CascadeEngine, CascadeRun, ModelCall, ModelRun
from cascade_core.engine.ladder import LadderModel


@dataclass
class CallRecord:
    """One model call: its model, decision, wall-clock start and end (ns since the epoch),
    outcome. The model is kept whole, not as a ladder index: the verifier's index names no
    rung."""

    model: LadderModel
    decision: str
    started_ns: int
    ended_ns: int | None = None
    run: ModelRun | None = None


@dataclass
class CallLog:
    """The calls of one request, in order."""

    calls: list[CallRecord] = field(default_factory=list)

    def open_call(self) -> CallRecord | None:
        """The call in progress (streaming live, for a final model), if any."""
        if self.calls and self.calls[-1].ended_ns is None:
            return self.calls[-1]
        return None


_current: ContextVar[CallLog | None] = ContextVar("cascade_call_log", default=None)


@contextmanager
def recording() -> Iterator[CallLog]:
    """Record the calls of the requests that the engine starts inside this block."""
    log = CallLog()
    token = _current.set(log)
    try:
        yield log
    finally:
        _current.reset(token)


class ObservedEngine(CascadeEngine):
    """A ``CascadeEngine`` whose runs report their calls to the current ``CallLog``."""

    def start(self, messages: list[dict[str, Any]], **params: Any) -> CascadeRun:
        run = super().start(messages, **params)
        log = _current.get()
        if log is None:
            return run
        return _ObservedRun(run, log)  # type: ignore[return-value]


class _ObservedRun:
    """Delegates everything to the run; notes each call's start and end on the way."""

    def __init__(self, run: CascadeRun, log: CallLog) -> None:
        self._run = run
        self._log = log

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run, name)

    def next_call(self) -> ModelCall | None:
        call = self._run.next_call()
        if call is not None:
            decisions = self._run.trace.decisions
            self._log.calls.append(
                CallRecord(call.model, decisions[-1] if decisions else "", time.time_ns())
            )
        return call

    def record_answer(self, call: ModelCall, *args: Any, **kwargs: Any) -> None:
        self._finish(call, self._run.record_answer, args, kwargs)

    def record_failure(self, call: ModelCall, *args: Any, **kwargs: Any) -> None:
        self._finish(call, self._run.record_failure, args, kwargs)

    def record_aborted(self, call: ModelCall, *args: Any, **kwargs: Any) -> None:
        self._finish(call, self._run.record_aborted, args, kwargs)

    def _finish(self, call: ModelCall, record: Any, args: Any, kwargs: Any) -> None:
        runs = self._run.trace.runs
        before = len(runs)
        record(call, *args, **kwargs)
        ended = time.time_ns()
        for entry in reversed(self._log.calls):
            if entry.model.index == call.model.index and entry.ended_ns is None:
                entry.ended_ns = ended
                entry.run = runs[-1] if len(runs) > before else None
                break
