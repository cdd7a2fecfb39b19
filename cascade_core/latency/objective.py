"""The one rule that prices time like money: ``cost = USD + w_ttft * E[ttft] + w_total * E[total]``.

Why one function: the live engine (its per-model cost vector), the hedge decision and the
replay's quality-vs-latency curve must trade seconds against dollars identically, or a
policy tuned offline would not be the policy served. Weights are USD per second, so the
strategies' lambda (quality points per USD) applies to the priced cost unchanged.

Zero weights (the default) price nothing: the priced cost is the USD cost itself, exactly,
and an unknown expectation (a model never observed) adds nothing either.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cascade_core.errors import InvalidInputError
from cascade_core.validation import Number, validate_as

UsdPerSecond = Annotated[Number, Field(ge=0.0)]


class LatencyWeights(BaseModel):
    """What one second of waiting is worth, in USD: until the first token the caller sees
    (``ttft_usd_per_s``, what a chat UI feels) and until the answer is complete
    (``total_usd_per_s``, what an agent or a voice pipeline waits for)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, hide_input_in_errors=True
    )

    ttft_usd_per_s: UsdPerSecond = Field(
        0.0, description="USD one second of time to first token is worth (>= 0)"
    )
    total_usd_per_s: UsdPerSecond = Field(
        0.0, description="USD one second of total answer time is worth (>= 0)"
    )

    @classmethod
    def parse(
        cls, value: Any, source: str = "latency_weights", at: tuple[str, ...] = ()
    ) -> LatencyWeights:
        """Weights from a mapping (a request parameter, a config section) or weights; bad
        input is one `InvalidInputError` line naming the field (``at``: where the weights
        sit inside ``source``)."""
        if isinstance(value, cls):
            return value
        if value is None:
            return NO_LATENCY_PRICE
        if not isinstance(value, dict):
            where = f"{source}: {'.'.join(at)}" if at else source
            raise InvalidInputError(
                f"{where}: expected a mapping such as {{'ttft_usd_per_s': 0.001, "
                f"'total_usd_per_s': 0.0}}, got {type(value).__name__}"
            )
        return validate_as(cls, value, source, at)

    @property
    def is_zero(self) -> bool:
        return self.ttft_usd_per_s == 0.0 and self.total_usd_per_s == 0.0

    def priced(
        self,
        usd: float | np.ndarray,
        ttft_s: float | np.ndarray | None,
        total_s: float | np.ndarray | None,
    ) -> float | np.ndarray:
        """USD plus the priced expected times; an unknown time (None or NaN) is priced at 0.

        Works on scalars and on arrays alike (one entry per model, or per replayed query),
        so the engine and the replay call the same arithmetic.
        """
        if self.is_zero:
            return usd
        return usd + self.ttft_usd_per_s * _known(ttft_s) + self.total_usd_per_s * _known(total_s)


def _known(seconds: float | np.ndarray | None) -> float | np.ndarray:
    if seconds is None:
        return 0.0
    if np.ndim(seconds) == 0:
        value = float(seconds)  # type: ignore[arg-type]
        return value if np.isfinite(value) else 0.0
    array = np.asarray(seconds, dtype=float)
    return np.where(np.isfinite(array), array, 0.0)


# Time is free: the priced cost is the USD cost itself (every weight's default).
NO_LATENCY_PRICE = LatencyWeights()


def priced_cost(
    usd: float | np.ndarray,
    ttft_s: float | np.ndarray | None,
    total_s: float | np.ndarray | None,
    weights: LatencyWeights = NO_LATENCY_PRICE,
) -> float | np.ndarray:
    """``weights.priced(usd, ttft_s, total_s)``: the function form for callers holding arrays."""
    return weights.priced(usd, ttft_s, total_s)
