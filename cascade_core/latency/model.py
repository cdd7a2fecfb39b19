"""Each ladder model's latency estimates and what they predict for its next call."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from cascade_core.latency.ewma import ALPHA, ewma


@dataclass(frozen=True)
class LatencyExpectation:
    """What a call is expected to take, in seconds (None: nothing observed yet).

    ``ttft_s`` is when the caller sees the first token: for a whole (unstreamed) call that is
    when the whole answer arrives, so it equals ``total_s``.
    """

    ttft_s: float | None = None
    total_s: float | None = None


NOTHING_KNOWN = LatencyExpectation()


@dataclass(frozen=True)
class ModelLatency:
    """One model's averages. ``total = ttft + s_per_token * (output_tokens - 1)``: the first
    token arrives after ``ttft``, each later one ``s_per_token`` after the previous."""

    ttft_s: float | None = None
    s_per_token: float | None = None
    output_tokens: float | None = None
    observations: int = 0

    def updated(
        self,
        *,
        ttft_s: float | None,
        total_s: float,
        output_tokens: int | None,
        complete: bool,
        alpha: float = ALPHA,
    ) -> ModelLatency:
        """The averages after one call.

        ``ttft_s`` is None for a whole call, whose first token is not observable: then the
        call's time beyond the expected TTFT is charged to its tokens (all of it before any
        streamed call has measured a TTFT). ``complete`` is False for a draft stopped early,
        whose token count says nothing about the model's answer lengths.
        """
        ttft = self.ttft_s if ttft_s is None else ewma(self.ttft_s, ttft_s, alpha)
        per_token = self.s_per_token
        if output_tokens is not None and output_tokens > 0:
            start = ttft_s if ttft_s is not None else (self.ttft_s or 0.0)
            gaps = max(output_tokens - 1, 1)
            per_token = ewma(self.s_per_token, max(total_s - start, 0.0) / gaps, alpha)
        tokens = self.output_tokens
        if complete and output_tokens is not None:
            tokens = ewma(self.output_tokens, float(output_tokens), alpha)
        return replace(
            self,
            ttft_s=ttft,
            s_per_token=per_token,
            output_tokens=tokens,
            observations=self.observations + 1,
        )

    def expect(self, *, max_tokens: int | None, streamed: bool) -> LatencyExpectation:
        """The next call's expected TTFT and total; its answer length is the average length,
        capped by ``max_tokens`` (``max_tokens`` itself before any answer was seen)."""
        tokens = self.output_tokens
        if max_tokens is not None:
            tokens = max_tokens if tokens is None else min(tokens, float(max_tokens))
        if tokens is None or self.s_per_token is None:
            total = None
        else:
            total = (self.ttft_s or 0.0) + self.s_per_token * max(tokens - 1.0, 0.0)
        if streamed:
            return LatencyExpectation(ttft_s=self.ttft_s, total_s=total)
        return LatencyExpectation(ttft_s=total, total_s=total)


class LatencyModel:
    """The latency estimates of one ladder, shared by every request of an engine.

    Thread-safe (one lock around each read and update) and bounded: one fixed-size entry per
    ladder model, named at construction; calls of other models are not learned from.
    """

    def __init__(
        self,
        models: Iterable[str],
        alpha: float = ALPHA,
        start: Mapping[str, ModelLatency] | None = None,
    ) -> None:
        """``start``: averages known before the first call (what `calibrate` measured and
        stored in the profile); live calls then move them like any earlier observation."""
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self._lock = threading.Lock()
        known = dict(start or {})
        self._models: dict[str, ModelLatency] = {m: known.get(m, ModelLatency()) for m in models}

    def observe(
        self,
        model: str,
        *,
        ttft_s: float | None,
        total_s: float,
        output_tokens: int | None,
        complete: bool = True,
    ) -> None:
        """Learn from one call of ``model`` (see `ModelLatency.updated`)."""
        with self._lock:
            current = self._models.get(model)
            if current is None:
                return
            self._models[model] = current.updated(
                ttft_s=ttft_s,
                total_s=total_s,
                output_tokens=output_tokens,
                complete=complete,
                alpha=self.alpha,
            )

    def averages(self, model: str) -> ModelLatency | None:
        """``model``'s averages at this moment (an immutable value), None if not in the ladder."""
        with self._lock:
            return self._models.get(model)

    def expect(self, model: str, *, max_tokens: int | None, streamed: bool) -> LatencyExpectation:
        current = self.averages(model)
        if current is None:
            return NOTHING_KNOWN
        return current.expect(max_tokens=max_tokens, streamed=streamed)

    def snapshot(self) -> dict[str, ModelLatency]:
        """Every model's averages at this moment (immutable values)."""
        with self._lock:
            return dict(self._models)
