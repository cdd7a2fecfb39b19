"""Meeting an average-cost budget: the one home of the parameter grid and the gamma mixing, for
`bench` and `calibrate` (through `cascade_core.fitting.budget`, which brackets a budget on
replayed policies) and the engine (`lambdas_for_cost` on a saved curve).

The average cost is a step function of lambda (or of the threshold), so no single value meets
a budget exactly. As in the paper, the fitter brackets the step where the cost crosses the
budget and mixes the policy just above it (spends more) with the policy just below it (spends
less): the expensive one is used with probability
``gamma = (B - cost_cheap) / (cost_expensive - cost_cheap)``, which makes the expected average
cost equal the budget.

Bracketing starts from one grid of parameter values (`parameter_grid`): lambda relative to
1 / (mean cost), since quality differences range over about 1e-3..1 and cost differences over
about 1e-3..1 times the mean cost, so 1e-4..1e4 covers every switch point; thresholds from
above 1 (never stop early) down to 0. The same grid is the lambda curve `calibrate` saves, from
which the engine meets any ``target_cost_usd`` (`lambdas_for_cost`) without refitting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from cascade_core.errors import InvalidInputError
from cascade_core.estimates import FloatArray
from cascade_core.strategies.base import Strategy
from cascade_core.strategies.mixed import MixedStrategy

LAMBDA_DECADES = (-4.0, 4.0)
GRID_PER_DECADE = 8
THRESHOLD_GRID = 41

Parameter = float | tuple[float, ...]


def parameter_grid(strategy: Strategy, mean_cost: float) -> list[float]:
    """Parameter values ordered from the most to the least expensive policy."""
    if strategy.cost_rises_with_parameter:  # threshold: above 1 never stops early
        return [float(v) for v in np.linspace(1.0 + 1e-9, 0.0, THRESHOLD_GRID)]
    scale = 1.0 / max(float(mean_cost), 1e-300)
    low, high = LAMBDA_DECADES
    count = int((high - low) * GRID_PER_DECADE) + 1
    return [0.0, *(float(v) for v in scale * np.logspace(low, high, count))]


def mixing_gamma(budget: float, cost_cheap: float, cost_expensive: float) -> float:
    """P(expensive policy) so that the expected average cost equals ``budget``."""
    if cost_expensive <= cost_cheap:
        return 0.0
    return float(np.clip((budget - cost_cheap) / (cost_expensive - cost_cheap), 0.0, 1.0))


def mix(cheap: Strategy, expensive: Strategy, gamma: float, seed: int = 0) -> Strategy:
    """``expensive`` with probability gamma per query, else ``cheap`` (one policy if gamma=0)."""
    if gamma <= 0.0 or cheap == expensive:
        return cheap
    return MixedStrategy(cheap=cheap, expensive=expensive, gamma=gamma, seed=seed)


def lambdas_for_cost(
    curve: Sequence[Mapping[str, Any]], target: float
) -> tuple[float, float, float]:
    """(cheap lambda, expensive lambda, gamma) whose mixed average cost is ``target``, from a
    saved curve of ``{"lambda", "cost_usd"}`` points."""
    points = sorted(curve, key=lambda p: float(p["lambda"]))
    if float(points[0]["cost_usd"]) <= target:
        lam = float(points[0]["lambda"])
        return lam, lam, 0.0
    for over, under in pairwise(points):
        if float(under["cost_usd"]) <= target:
            gamma = mixing_gamma(target, float(under["cost_usd"]), float(over["cost_usd"]))
            return float(under["lambda"]), float(over["lambda"]), gamma
    cheapest = min(float(p["cost_usd"]) for p in points)
    raise InvalidInputError(
        f"budget.target_cost_usd: {target:.6g} USD is below the cheapest average cost the "
        f"calibration reached ({cheapest:.6g} USD per request); raise the target"
    )


def budget_grid(
    cost_matrix: FloatArray, n_points: int, breakpoints: Sequence[float] = ()
) -> Sequence[float]:
    """Budgets from the cheapest to the most expensive model's average cost.

    Without ``breakpoints`` they are evenly spaced. With them (costs where a cost-quality
    curve bends, such as the models of the single-model hull), each segment between
    consecutive breakpoints gets the same number of evenly spaced budgets, about
    ``n_points`` in all. Why: an AUC interpolates linearly between the budgets it measured,
    and when one model is far dearer than the rest (GPT-4 next to open models, a 405B next
    to a 70B) evenly spaced budgets leave one or two points for the cheap segments where the
    curve rises most, so the chord under-measures every strategy's curve there.
    """
    averages = np.asarray(cost_matrix, float).mean(axis=0)
    low, high = float(averages.min()), float(averages.max())
    knots = np.unique(np.clip([low, *breakpoints, high], low, high))
    if knots.size < 2:
        return list(np.linspace(low, high, n_points))
    per_segment = -(-n_points // (knots.size - 1))
    segments = [np.linspace(a, b, per_segment + 1) for a, b in pairwise(knots)]
    return [float(b) for b in np.unique(np.concatenate(segments))]
