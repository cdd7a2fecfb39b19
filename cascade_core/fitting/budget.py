"""Fitting a strategy's budget parameter (lambda or threshold) to an average-cost budget on
replayed calibration data: bracket the budget on the grid of `cascade_core.budget`, bisect,
and mix the two policies around it with that module's gamma (its docstring says why)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cascade_core.budget import Parameter, mix, mixing_gamma, parameter_grid
from cascade_core.errors import InvalidInputError
from cascade_core.estimates import FloatArray
from cascade_core.replay.simulate import BatchContext, run_batch
from cascade_core.strategies.base import Strategy

# Bisection steps after bracketing on the grid: one budget alone is refined to float
# precision; a sweep of many budgets shares its replays and needs fewer.
EXACT_STEPS = 48
SWEEP_STEPS = 8


@dataclass(frozen=True)
class BudgetFit:
    """The fitted policy and what it reaches on the calibration data (expected values)."""

    strategy: Strategy
    parameter_cheap: Parameter
    parameter_expensive: Parameter
    gamma: float
    budget: float
    cost: float
    quality: float


class _Measure:
    """Average true cost and quality of a strategy per parameter value, memoised."""

    def __init__(
        self,
        strategy: Strategy,
        context: BatchContext,
        true_cost: FloatArray,
        true_quality: FloatArray | None,
    ) -> None:
        self.strategy, self.context = strategy, context
        self.cost = np.asarray(true_cost, float)
        self.quality = None if true_quality is None else np.asarray(true_quality, float)
        self._memo: dict[Parameter, tuple[float, float]] = {}

    def __call__(self, parameter: Parameter) -> tuple[float, float]:
        if parameter not in self._memo:
            outcome = run_batch(self.strategy.with_parameter(parameter), self.context)
            quality = (
                float("nan")
                if self.quality is None
                else float(outcome.quality(self.quality).mean())
            )
            self._memo[parameter] = (float(outcome.cost(self.cost).mean()), quality)
        return self._memo[parameter]


def _fit_scale(
    measure: _Measure,
    parameter: Callable[[float], Parameter],
    grid: Sequence[float],
    budget: float,
    steps: int,
    seed: int,
) -> BudgetFit:
    """Bracket ``budget`` on ``grid`` (most expensive first), bisect, and mix the two ends."""
    costs = [measure(parameter(v))[0] for v in grid]
    if costs[0] <= budget:  # the most expensive policy fits
        return _result(measure, parameter(grid[0]), parameter(grid[0]), 0.0, budget, seed)
    under = next((i for i, c in enumerate(costs) if c <= budget), len(grid) - 1)
    over_value, under_value = grid[under - 1], grid[under]
    geometric = not measure.strategy.cost_rises_with_parameter and over_value > 0
    for _ in range(steps):
        middle = (
            float(np.sqrt(over_value * under_value))
            if geometric
            else (over_value + under_value) / 2
        )
        if measure(parameter(middle))[0] > budget:
            over_value = middle
        else:
            under_value = middle
    cheap, dear = parameter(under_value), parameter(over_value)
    gamma = mixing_gamma(budget, measure(cheap)[0], measure(dear)[0])
    return _result(measure, cheap, dear, gamma, budget, seed)


def _result(
    measure: _Measure, cheap: Parameter, dear: Parameter, gamma: float, budget: float, seed: int
) -> BudgetFit:
    cost_cheap, quality_cheap = measure(cheap)
    cost_dear, quality_dear = measure(dear)
    strategy = mix(
        measure.strategy.with_parameter(cheap), measure.strategy.with_parameter(dear), gamma, seed
    )
    return BudgetFit(
        strategy=strategy,
        parameter_cheap=cheap,
        parameter_expensive=dear,
        gamma=gamma,
        budget=budget,
        cost=gamma * cost_dear + (1 - gamma) * cost_cheap,
        quality=gamma * quality_dear + (1 - gamma) * quality_cheap,
    )


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
    scale fitted to the budget) when the strategy takes per-step lambdas.
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
    measure = _Measure(strategy, context, cost_matrix, true_quality)
    grid = parameter_grid(strategy, float(cost_matrix.mean()))
    if measure(grid[-1])[0] > budget * (1 + 1e-12):
        raise InvalidInputError(
            f"budget: {budget:.6g} USD is below what {strategy.name} spends at its cheapest "
            f"({measure(grid[-1])[0]:.6g} USD per query); raise the budget"
        )
    if per_step and strategy.budget_parameter == "lam":
        return _fit_per_step(measure, grid, budget, context.staged.n_models, seed)
    return _fit_scale(measure, float, grid, budget, EXACT_STEPS, seed)


def _fit_per_step(
    measure: _Measure, grid: Sequence[float], budget: float, n_models: int, seed: int
) -> BudgetFit:
    """Coordinate search over relative per-step weights; each candidate is refit to the budget.

    Starts from equal lambdas (which the paper finds to work well) and keeps a change only when
    it raises the calibration quality at the same budget.
    """

    def fit(weights: np.ndarray) -> BudgetFit:
        def parameter(scale: float) -> tuple[float, ...]:
            return tuple(float(w * scale) for w in weights)

        return _fit_scale(measure, parameter, grid, budget, EXACT_STEPS, seed)

    weights = np.ones(max(1, n_models - 1))
    best = fit(weights)
    for _ in range(2):
        improved = False
        for step in range(len(weights)):
            for factor in (0.5, 2.0):
                trial = weights.copy()
                trial[step] *= factor
                candidate = fit(trial)
                if candidate.quality > best.quality + 1e-12:
                    best, weights, improved = candidate, trial, True
        if not improved:
            break
    return best


def fit_to_budgets(
    strategy: Strategy,
    context: BatchContext,
    budgets: Sequence[float],
    true_cost: FloatArray,
    true_quality: FloatArray | None = None,
    seed: int = 0,
) -> list[Strategy]:
    """One fitted policy per budget, sharing every replay across budgets (a sweep).

    A budget below the cheapest policy gets that policy (a sweep plots what it reaches).
    """
    return [
        f.strategy for f in _sweep_fits(strategy, context, budgets, true_cost, true_quality, seed)
    ]


def fit_best_to_budgets(
    candidates: Sequence[Strategy],
    context: BatchContext,
    budgets: Sequence[float],
    true_cost: FloatArray,
    true_quality: FloatArray,
    seed: int = 0,
) -> list[tuple[int, BudgetFit]]:
    """Per budget, (index, fit) of the candidate policy that reaches the highest quality on
    the calibration data at that budget (`best_fit`): a design choice such as cascade
    routing's first step, made on calibration rows, where each budget may want another."""
    if not candidates:
        raise InvalidInputError("candidates: give at least one strategy")
    sweeps = [_sweep_fits(c, context, budgets, true_cost, true_quality, seed) for c in candidates]
    return [best_fit(fits) for fits in zip(*sweeps, strict=True)]


def best_fit(fits: Sequence[BudgetFit]) -> tuple[int, BudgetFit]:
    """(index, fit) of the fit `best_within_budget` picks among fits to one budget."""
    costs, qualities = [f.cost for f in fits], [f.quality for f in fits]
    index = best_within_budget(costs, qualities, fits[0].budget)
    return index, fits[index]


def best_within_budget(
    costs: Sequence[float], qualities: Sequence[float | None], budget: float
) -> int:
    """Which of several policies fitted to one budget to keep: the highest calibration
    quality among those that meet the budget, the first on ties or unknown quality; the
    cheapest when none meets it (a budget below every candidate's cheapest policy)."""
    within = [i for i, c in enumerate(costs) if c <= budget * (1 + 1e-9) + 1e-15]
    if not within:
        return min(range(len(costs)), key=lambda i: costs[i])
    best = within[0]
    for i in within[1:]:
        quality, incumbent = qualities[i], qualities[best]
        if quality is not None and (incumbent is None or quality > incumbent + 1e-12):
            best = i
    return best


def _sweep_fits(
    strategy: Strategy,
    context: BatchContext,
    budgets: Sequence[float],
    true_cost: FloatArray,
    true_quality: FloatArray | None,
    seed: int,
) -> list[BudgetFit]:
    measure = _Measure(strategy, context, true_cost, true_quality)
    grid = parameter_grid(strategy, float(measure.cost.mean()))
    return [_fit_scale(measure, float, grid, float(b), SWEEP_STEPS, seed) for b in budgets]
