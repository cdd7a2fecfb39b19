"""Fitting one strategy to many budgets at once on calibration data.

`cascade_core.budget.fit_budget` brackets and bisects from scratch for every budget (about
50 replays each). A sweep of 20+ budgets shares most of that work, so here the parameter
(lambda or threshold) is first evaluated on one coarse grid, each budget is bracketed between
two neighbouring grid values, refined by a short bisection, and the two policies either side
are mixed with probability gamma exactly as `fit_budget` does (same `MixedStrategy`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cascade_core.batch import BatchContext, run_batch
from cascade_core.strategies import Strategy
from cascade_core.strategies.mixed import MixedStrategy

# Lambda grid relative to 1 / (mean cost): quality differences range over about 1e-3..1 and
# cost differences over about 1e-3..1 times the mean cost, so 1e-4..1e4 covers every switch
# point; 4 values per decade keep neighbouring grid costs close before refining.
LAMBDA_DECADES = (-4.0, 4.0)
GRID_PER_DECADE = 4
THRESHOLD_GRID = 41
REFINE_STEPS = 10


class _Calibration:
    """Mean cost and quality of a strategy per parameter value, memoised."""

    def __init__(self, strategy: Strategy, context: BatchContext, cost, quality) -> None:
        self.strategy, self.context = strategy, context
        self.cost, self.quality = np.asarray(cost, float), np.asarray(quality, float)
        self.memo: dict[float, tuple[float, float]] = {}

    def __call__(self, value: float) -> tuple[float, float]:
        if value not in self.memo:
            outcome = run_batch(self.strategy.with_parameter(value), self.context)
            self.memo[value] = (
                float(outcome.cost(self.cost).mean()),
                float(outcome.quality(self.quality).mean()),
            )
        return self.memo[value]


def _grid(strategy: Strategy, cost: np.ndarray) -> list[float]:
    """Parameter values ordered from the most to the least expensive policy."""
    if strategy.cost_rises_with_parameter:  # threshold: above 1 never stops early
        return list(np.linspace(1.0 + 1e-9, 0.0, THRESHOLD_GRID))
    scale = 1.0 / max(float(cost.mean()), 1e-300)
    lo, hi = LAMBDA_DECADES
    count = int((hi - lo) * GRID_PER_DECADE) + 1
    return [0.0, *(scale * np.logspace(lo, hi, count))]


def fit_to_budgets(
    strategy: Strategy,
    context: BatchContext,
    budgets: Sequence[float],
    true_cost: np.ndarray,
    true_quality: np.ndarray,
    seed: int = 0,
) -> list[Strategy]:
    """One fitted policy per budget (a `MixedStrategy` where two values are mixed)."""
    measure = _Calibration(strategy, context, true_cost, true_quality)
    grid = _grid(strategy, measure.cost)
    costs = [measure(v)[0] for v in grid]
    fitted: list[Strategy] = []
    for budget in budgets:
        if costs[0] <= budget:  # the most expensive policy fits
            fitted.append(strategy.with_parameter(grid[0]))
            continue
        # First grid value that spends at most the budget; the one before spends more.
        under = next((i for i, c in enumerate(costs) if c <= budget), len(grid) - 1)
        over_value, under_value = grid[under - 1], grid[under]
        for _ in range(REFINE_STEPS):
            middle = (over_value + under_value) / 2
            if measure(middle)[0] > budget:
                over_value = middle
            else:
                under_value = middle
        cost_over, cost_under = measure(over_value)[0], measure(under_value)[0]
        gamma = 0.0 if cost_over <= cost_under else (budget - cost_under) / (cost_over - cost_under)
        gamma = float(np.clip(gamma, 0.0, 1.0))
        cheap = strategy.with_parameter(under_value)
        dear = strategy.with_parameter(over_value)
        fitted.append(
            cheap
            if gamma == 0.0 or cheap == dear
            else MixedStrategy(cheap=cheap, expensive=dear, gamma=gamma, seed=seed)
        )
    return fitted
