"""Fitting a strategy's cost/quality trade-off to an average-cost budget on calibration data.

The average cost is a step function of lambda (or of the threshold), so no single value meets
a budget exactly. As in the paper, the fitter brackets the step where the cost crosses the
budget and mixes the policy just above it (spends more) with the policy just below it (spends
less): the expensive one is used with probability
``gamma = (B - cost_cheap) / (cost_expensive - cost_cheap)``, which makes the expected average
cost equal the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cascade_core.batch import BatchContext, run_batch
from cascade_core.errors import InvalidInputError
from cascade_core.estimates import FloatArray
from cascade_core.strategies.base import Strategy
from cascade_core.strategies.mixed import MixedStrategy

_BISECTION_STEPS = 48


@dataclass(frozen=True)
class BudgetFit:
    """The fitted policy and what it reaches on the calibration data (expected values)."""

    strategy: Strategy
    parameter_cheap: float | tuple[float, ...]
    parameter_expensive: float | tuple[float, ...]
    gamma: float
    budget: float
    cost: float
    quality: float


def fit_budget(
    strategy: Strategy,
    context: BatchContext,
    budget: float,
    *,
    true_cost: FloatArray | None = None,
    true_quality: FloatArray | None = None,
    per_step: bool = False,
    seed: int = 0,
) -> BudgetFit:
    """Find the budget parameter (lambda or threshold) so the average cost meets ``budget``.

    ``true_cost``/``true_quality`` (n, k) are what the calibration queries really cost and
    scored; cost defaults to the cost estimates, quality to NaN when unknown. ``per_step``
    additionally tunes one lambda per step (relative weights by coordinate search, overall
    scale by bisection) when the strategy takes per-step lambdas.
    """
    cost_matrix = context.staged.cost if true_cost is None else np.asarray(true_cost, float)
    if cost_matrix.shape != context.staged.cost.shape:
        raise InvalidInputError(
            f"true_cost has shape {cost_matrix.shape}, expected {context.staged.cost.shape}"
        )
    if not np.isfinite(budget) or budget < 0:
        raise InvalidInputError(f"budget: must be a finite cost >= 0 USD, got {budget}")
    cheapest = float(cost_matrix.min(axis=1).mean())
    if budget < cheapest * (1 - 1e-9):
        raise InvalidInputError(
            f"budget: {budget:.6g} USD is below the cheapest model's average cost "
            f"({cheapest:.6g} USD per query); raise the budget"
        )
    evaluator = _Evaluator(strategy, context, cost_matrix, true_quality)
    if per_step and strategy.budget_parameter == "lam":
        return _fit_per_step(evaluator, budget, context.staged.n_models, seed)
    return evaluator.fit(1.0, budget, seed)


class _Evaluator:
    """Average cost and quality of a strategy at a parameter value, memoised."""

    def __init__(self, strategy, context, cost_matrix, true_quality) -> None:
        self.strategy = strategy
        self.context = context
        self.cost_matrix = cost_matrix
        self.true_quality = None if true_quality is None else np.asarray(true_quality, float)
        self._memo: dict[object, tuple[float, float]] = {}

    def measure(self, parameter) -> tuple[float, float]:
        key = parameter if not isinstance(parameter, np.ndarray) else tuple(parameter)
        if key not in self._memo:
            outcome = run_batch(self.strategy.with_parameter(key), self.context)
            cost = float(outcome.cost(self.cost_matrix).mean())
            quality = (
                float(outcome.quality(self.true_quality).mean())
                if self.true_quality is not None
                else float("nan")
            )
            self._memo[key] = (cost, quality)
        return self._memo[key]

    def fit(self, weights, budget: float, seed: int) -> BudgetFit:
        """Bisection on the scale of the parameter (times ``weights`` for per-step lambdas)."""

        def parameter(scale: float):
            if isinstance(weights, np.ndarray):
                return tuple(float(w * scale) for w in weights)
            return float(scale)

        rises = self.strategy.cost_rises_with_parameter
        low, high = self._bracket(parameter, budget, rises)
        if low is None:  # the most expensive policy already fits the budget
            return self._result(parameter(high), parameter(high), 1.0, budget, seed)
        for _ in range(_BISECTION_STEPS):
            middle = (
                (low + high) / 2 if rises else float(np.sqrt(low * high)) if low > 0 else high / 2
            )
            if self.measure(parameter(middle))[0] > budget:
                low = middle
            else:
                high = middle
        # ``low`` spends more than the budget, ``high`` at most the budget.
        cost_expensive = self.measure(parameter(low))[0]
        cost_cheap = self.measure(parameter(high))[0]
        gamma = (
            0.0
            if cost_expensive <= cost_cheap
            else (budget - cost_cheap) / (cost_expensive - cost_cheap)
        )
        return self._result(
            parameter(high), parameter(low), float(np.clip(gamma, 0, 1)), budget, seed
        )

    def _bracket(self, parameter, budget: float, rises: bool):
        """Return (over, under): values whose cost is above / at most the budget."""
        if rises:  # threshold: 0 stops at once, above 1 never stops
            if self.measure(parameter(1.0 + 1e-9))[0] <= budget:
                return None, 1.0 + 1e-9
            if self.measure(parameter(0.0))[0] > budget:
                raise InvalidInputError(
                    f"budget: {budget:.6g} USD is below what {self.strategy.name} spends at its "
                    "cheapest; raise the budget"
                )
            return 1.0 + 1e-9, 0.0
        if self.measure(parameter(0.0))[0] <= budget:
            return None, 0.0
        over, scale = 0.0, 1.0 / max(float(self.cost_matrix.mean()), 1e-300)
        for _ in range(200):
            if self.measure(parameter(scale))[0] <= budget:
                return over, scale
            over, scale = scale, scale * 2.0
        raise InvalidInputError(
            f"budget: {budget:.6g} USD cannot be met by {self.strategy.name} at any lambda; "
            "raise the budget"
        )

    def _result(self, cheap_parameter, expensive_parameter, gamma, budget, seed) -> BudgetFit:
        cost_cheap, quality_cheap = self.measure(cheap_parameter)
        cost_expensive, quality_expensive = self.measure(expensive_parameter)
        cheap = self.strategy.with_parameter(cheap_parameter)
        expensive = self.strategy.with_parameter(expensive_parameter)
        mixed: Strategy = (
            cheap
            if gamma == 0.0 or cheap == expensive
            else MixedStrategy(cheap=cheap, expensive=expensive, gamma=gamma, seed=seed)
        )
        return BudgetFit(
            strategy=mixed,
            parameter_cheap=cheap_parameter,
            parameter_expensive=expensive_parameter,
            gamma=gamma,
            budget=budget,
            cost=gamma * cost_expensive + (1 - gamma) * cost_cheap,
            quality=gamma * quality_expensive + (1 - gamma) * quality_cheap,
        )


def _fit_per_step(evaluator: _Evaluator, budget: float, n_models: int, seed: int) -> BudgetFit:
    """Coordinate search over relative per-step weights; each candidate is refit to the budget.

    Starts from equal lambdas (which the paper finds to work well) and keeps a change only when
    it raises the calibration quality at the same budget.
    """
    weights = np.ones(max(1, n_models - 1))
    best = evaluator.fit(weights, budget, seed)
    for _ in range(2):
        improved = False
        for step in range(len(weights)):
            for factor in (0.5, 2.0):
                trial = weights.copy()
                trial[step] *= factor
                candidate = evaluator.fit(trial, budget, seed)
                if candidate.quality > best.quality + 1e-12:
                    best, weights, improved = candidate, trial, True
        if not improved:
            break
    return best


def budget_grid(cost_matrix: FloatArray, n_points: int) -> Sequence[float]:
    """Budgets evenly spaced between the cheapest and the most expensive model's average cost."""
    averages = np.asarray(cost_matrix, float).mean(axis=0)
    return list(np.linspace(averages.min(), averages.max(), n_points))
