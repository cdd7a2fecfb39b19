"""Draining an engine stream in tests, into the text the caller saw and the final result.

Every drain checks the stream's contract on the way, so no test can read a result off a
malformed stream: only text deltas, then one `Finished` that ends it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable

from cascade_core.engine import CascadeResult, Finished, StreamEvent, TextDelta


def drain(events: Iterable[StreamEvent]) -> tuple[str, CascadeResult]:
    """The streamed text and the result of a sync stream (or of events already collected)."""
    events = list(events)
    assert events and isinstance(events[-1], Finished), (
        f"the stream did not end with Finished: {[type(e).__name__ for e in events[-3:]]}"
    )
    assert all(isinstance(e, TextDelta) for e in events[:-1]), (
        f"not only text before Finished: {sorted({type(e).__name__ for e in events[:-1]})}"
    )
    return "".join(e.text for e in events[:-1]), events[-1].result


async def adrain(events: AsyncIterable[StreamEvent]) -> tuple[str, CascadeResult]:
    """As `drain`, for an async stream."""
    return drain([e async for e in events])


def drain_answer(events: Iterable[StreamEvent]) -> CascadeResult:
    """The result of a stream whose text is exactly the final answer (so no rejected draft
    reached the caller)."""
    text, result = drain(events)
    assert text == result.content
    return result
