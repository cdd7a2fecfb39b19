"""The optimal cascade for a fixed order: continue while a longer prefix has a better value.

After running the first j models of the order, every longer prefix is scored by
E[max quality] - lambda_j * cost (post-hoc means for the models run, ex-ante for the rest); the
cascade runs model j+1 when some longer prefix beats the current one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cascade_core.strategies.base import (
    STOP,
    StateGroup,
    Strategy,
    check_parameter,
    per_step_value,
)
from cascade_core.strategies.supermodel_search import TIE_TOLERANCE
from cascade_core.strategies.threshold_cascade import check_order, resolve_order


@dataclass(frozen=True)
class OptimalCascade(Strategy):
    """``lam`` is one number for every step, or one per step (step j = after j models ran)."""

    lam: float | tuple[float, ...] = 0.0
    order: Sequence[int] | None = None
    expectation: bool = True
    name = "optimal_cascade"

    def __post_init__(self) -> None:
        object.__setattr__(self, "lam", check_parameter("lam", self.lam))
        if self.order is not None:
            object.__setattr__(self, "order", check_order(self.order))

    def decide_batch(self, group: StateGroup) -> np.ndarray:
        n_queries, n_models = group.quality.shape
        order = resolve_order(self.order, group.cost)
        step = group.step
        if step == 0:
            return order[:, 0].copy()
        if step >= order.shape[1]:
            return np.full(n_queries, STOP)
        lam = per_step_value(self.lam, step)
        result = np.full(n_queries, STOP)
        # Queries share prefixes only when they share the order; group them by order.
        orders, inverse = np.unique(order, axis=0, return_inverse=True)
        for k, row_order in enumerate(orders):
            rows = np.flatnonzero(inverse.ravel() == k)
            prefixes = np.zeros((len(row_order) - step + 1, n_models), dtype=bool)
            for length in range(step, len(row_order) + 1):
                prefixes[length - step, row_order[:length]] = True
            value = group.expected_max(prefixes, self.expectation)[rows]
            objective = value - lam * (group.cost[rows] @ prefixes.T)
            go_on = objective[:, 1:].max(axis=1, initial=-np.inf) > objective[:, 0] + TIE_TOLERANCE
            result[rows] = np.where(go_on, row_order[step], STOP)
        return result
