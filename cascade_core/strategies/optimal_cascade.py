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
        lengths = np.arange(step, order.shape[1] + 1)
        if (order == order[0]).all():  # one order: the prefixes are shared by every query
            prefixes = prefix_masks(order[:1], lengths, n_models)[0]
            value = group.expected_max(prefixes, self.expectation)
            price = prefix_prices(group.cost, prefixes[None])
        else:  # each query's own prefixes, evaluated together
            prefixes = prefix_masks(order, lengths, n_models)
            value = group.expected_max(prefixes, self.expectation)
            price = prefix_prices(group.cost, prefixes)
        objective = value - per_step_value(self.lam, step) * price
        go_on = objective[:, 1:].max(axis=1, initial=-np.inf) > objective[:, 0] + TIE_TOLERANCE
        return np.where(go_on, order[:, step], STOP)


def prefix_masks(order: np.ndarray, lengths: np.ndarray, n_models: int) -> np.ndarray:
    """(n, L, k) masks of each row's first ``lengths`` models along its ``order`` (n, <= k)."""
    rank = np.full((order.shape[0], n_models), n_models)
    np.put_along_axis(rank, order, np.arange(order.shape[1])[None, :], axis=1)
    return rank[:, None, :] < lengths[None, :, None]


def prefix_prices(cost: np.ndarray, prefixes: np.ndarray) -> np.ndarray:
    """Total cost of each prefix, (n, L), for prefixes (n or 1, L, k).

    A sum over each row's own contiguous model axis, so a query's price does not depend on
    which other queries share its batch (a matrix product may block differently by shape),
    and the live path (a batch of one) prices exactly as the replay does.
    """
    return (cost[:, None, :] * prefixes).sum(axis=2)
