"""The classic threshold cascade: run models cheapest first, stop once the answer looks good."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cascade_core.errors import InvalidInputError
from cascade_core.strategies.base import (
    STOP,
    StateGroup,
    Strategy,
    check_parameter,
    cost_order,
    per_step_value,
)


@dataclass(frozen=True)
class ThresholdCascade(Strategy):
    """Stop when the post-hoc quality of the model just run reaches ``threshold`` (per step).

    ``order`` fixes the cascade order; by default models run cheapest first by their cost
    estimate for the query.
    """

    threshold: float | tuple[float, ...] = 0.5
    order: Sequence[int] | None = None
    name = "threshold_cascade"
    budget_parameter = "threshold"
    cost_rises_with_parameter = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold", check_parameter("threshold", self.threshold))
        if self.order is not None:
            object.__setattr__(self, "order", check_order(self.order))

    def decide_batch(self, group: StateGroup) -> np.ndarray:
        n_queries = group.quality.shape[0]
        order = resolve_order(self.order, group.cost)
        step = group.step
        if (ends := order_ends(order, step)) is not None:
            return ends
        last_run = order[:, step - 1]
        last_quality = group.quality[np.arange(n_queries), last_run]
        accept = last_quality >= per_step_value(self.threshold, step - 1)
        return np.where(accept, STOP, order[:, step])


def check_order(order: Sequence[int]) -> tuple[int, ...]:
    """A cascade order: distinct, non-negative model indices."""
    values = tuple(int(i) for i in order)
    if not values:
        raise InvalidInputError("order: give at least one model index")
    if len(set(values)) != len(values) or min(values) < 0:
        raise InvalidInputError(f"order: model indices must be distinct and >= 0, got {values}")
    return values


def order_ends(order: np.ndarray, step: int) -> np.ndarray | None:
    """What a cascade over ``order`` (n, k) does at the ends of its order, whatever its stop
    rule: run each query's first model at step 0, stop once the order is used up; None in
    between, where the stop rule decides."""
    if step == 0:
        return order[:, 0].copy()
    if step >= order.shape[1]:
        return np.full(order.shape[0], STOP)
    return None


def resolve_order(order: Sequence[int] | None, cost: np.ndarray) -> np.ndarray:
    """A fixed order for every query, or each query's own cheapest-first order."""
    if order is None:
        return cost_order(cost)
    if max(order) >= cost.shape[1]:
        raise InvalidInputError(
            f"order: index {max(order)} is out of range for {cost.shape[1]} models"
        )
    return np.broadcast_to(np.asarray(order), (cost.shape[0], len(order)))
