"""Selection strategies: routing, threshold cascade, optimal cascade and cascade routing."""

from __future__ import annotations

from typing import Any

from cascade_core.errors import InvalidInputError
from cascade_core.strategies.base import STOP, Decision, StateGroup, Strategy
from cascade_core.strategies.cascade_routing import CascadeRouting
from cascade_core.strategies.mixed import MixedStrategy
from cascade_core.strategies.optimal_cascade import OptimalCascade
from cascade_core.strategies.routing import Routing
from cascade_core.strategies.threshold_cascade import ThresholdCascade

STRATEGIES: dict[str, type[Strategy]] = {
    "routing": Routing,
    "threshold_cascade": ThresholdCascade,
    "optimal_cascade": OptimalCascade,
    "cascade_routing": CascadeRouting,
}


def make_strategy(name: str, **parameters: Any) -> Strategy:
    """Build a strategy by name, e.g. ``make_strategy("cascade_routing", lam=1e4)``."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise InvalidInputError(
            f"strategy: unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}"
        ) from None
    try:
        return cls(**parameters)
    except TypeError as error:
        raise InvalidInputError(f"strategy {name!r}: {error}") from None


__all__ = [
    "STOP",
    "STRATEGIES",
    "CascadeRouting",
    "Decision",
    "MixedStrategy",
    "OptimalCascade",
    "Routing",
    "StateGroup",
    "Strategy",
    "ThresholdCascade",
    "make_strategy",
]
