"""Fitting lambda (or the threshold) to an average-cost budget on calibration data."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_core import (
    BatchContext,
    CascadeRouting,
    MixedStrategy,
    OptimalCascade,
    Routing,
    StagedEstimates,
    ThresholdCascade,
    budget_grid,
    fit_budget,
    run_batch,
)
from cascade_core.errors import InvalidInputError
from cascade_core.replay import auc


def calibration(seed: int = 0, n_queries: int = 300, n_models: int = 4):
    rng = np.random.default_rng(seed)
    skill = np.linspace(0.3, 0.9, n_models)
    truth = (rng.random((n_queries, n_models)) < skill).astype(float)
    ex_ante = np.clip(skill + rng.normal(0, 0.1, (n_queries, n_models)), 0, 1)
    post_hoc = np.clip(0.7 * truth + 0.3 * skill + rng.normal(0, 0.1, truth.shape), 0, 1)
    cost = np.tile(np.geomspace(1e-5, 1e-3, n_models), (n_queries, 1))
    staged = StagedEstimates.from_arrays(ex_ante, post_hoc, cost, 0.3, 0.1)
    return BatchContext(staged), truth, cost


@pytest.mark.parametrize(
    "strategy",
    [
        Routing(),
        ThresholdCascade(),
        OptimalCascade(),
        CascadeRouting(),
        CascadeRouting(variant="greedy"),
    ],
    ids=lambda s: f"{s.name}-{getattr(s, 'variant', '')}",
)
def test_fitted_policy_meets_the_budget_when_replayed(strategy):
    """The fitted mix, replayed with many draws, spends the budget on average.

    Checked against the replays, not the fit's own arithmetic: the two policies must lie
    either side of the budget, the reported quality must be theirs, and the realised average
    cost over 40 seeds must match the budget within its exact sampling error (each query uses
    the dearer policy with probability gamma, independently).
    """
    context, truth, cost = calibration()
    for budget in budget_grid(cost, 5)[1:-1]:
        fit = fit_budget(strategy, context, budget, true_quality=truth)
        cheap = run_batch(strategy.with_parameter(fit.parameter_cheap), context)
        dear = run_batch(strategy.with_parameter(fit.parameter_expensive), context)
        cheap_cost, dear_cost = cheap.cost(cost), dear.cost(cost)
        assert cheap_cost.mean() <= budget * (1 + 1e-12)
        assert dear_cost.mean() >= budget * (1 - 1e-12) or fit.gamma == 0.0
        gamma = fit.gamma
        expected_quality = (
            gamma * dear.quality(truth).mean() + (1 - gamma) * cheap.quality(truth).mean()
        )
        assert fit.quality == pytest.approx(expected_quality, abs=1e-12)
        assert isinstance(fit.strategy, MixedStrategy)
        seeds = 40
        realised = [
            run_batch(replace(fit.strategy, seed=s), context).cost(cost).mean()
            for s in range(seeds)
        ]
        spread = dear_cost - cheap_cost
        sd_one = np.sqrt(gamma * (1 - gamma) * (spread**2).sum()) / len(spread)
        assert sd_one > 0
        z = (np.mean(realised) - budget) / (sd_one / np.sqrt(seeds))
        assert abs(z) < 4.5, (budget, np.mean(realised), sd_one)


def test_more_budget_never_buys_less_quality_for_cascade_routing():
    context, truth, cost = calibration(1)
    qualities = [
        fit_budget(CascadeRouting(), context, b, true_quality=truth).quality
        for b in budget_grid(cost, 6)
    ]
    assert qualities[-1] >= qualities[0]


def test_budget_above_the_most_expensive_policy_uses_lambda_zero():
    context, truth, _ = calibration()
    fit = fit_budget(CascadeRouting(), context, 1.0, true_quality=truth)
    assert fit.parameter_cheap == 0.0 and not isinstance(fit.strategy, MixedStrategy)


def test_per_step_lambdas_find_a_better_policy_that_replays_as_reported():
    """At a tight budget, stopping rules that differ per step beat one shared lambda.

    The fitter only keeps improvements, so "never worse" holds by construction; a strict
    gain holds only if the optimal cascade really applies a different lambda at each step.
    The gain is then confirmed by replaying the per-step policy itself.
    """
    context, truth, cost = calibration(0)
    budget = budget_grid(cost, 5)[1]
    shared = fit_budget(OptimalCascade(), context, budget, true_quality=truth)
    per_step = fit_budget(OptimalCascade(), context, budget, true_quality=truth, per_step=True)
    lambdas = per_step.parameter_cheap
    assert isinstance(lambdas, tuple) and len(set(lambdas)) > 1
    assert per_step.quality > shared.quality + 0.005
    cheap = run_batch(OptimalCascade(lam=lambdas), context)
    dear = run_batch(OptimalCascade(lam=per_step.parameter_expensive), context)
    gamma = per_step.gamma
    assert per_step.quality == pytest.approx(
        gamma * dear.quality(truth).mean() + (1 - gamma) * cheap.quality(truth).mean(), abs=1e-12
    )
    assert cheap.cost(cost).mean() <= budget * (1 + 1e-12) <= dear.cost(cost).mean() * (1 + 2e-12)


def test_budget_below_the_cheapest_model_is_refused():
    context, _, cost = calibration()
    with pytest.raises(InvalidInputError, match="below the cheapest model"):
        fit_budget(CascadeRouting(), context, cost.min() / 2)
    with pytest.raises(InvalidInputError, match="budget"):
        fit_budget(CascadeRouting(), context, float("nan"))


@settings(max_examples=200)
@given(
    costs=st.lists(st.floats(1e-7, 1e-2), min_size=1, max_size=8),
    breakpoints=st.lists(st.floats(0.0, 2e-2), max_size=6),
    n_points=st.integers(2, 60),
)
def test_budget_grid_spans_the_costs_and_every_segment(costs, breakpoints, n_points) -> None:
    """Sorted, unique, from the cheapest to the dearest average cost, every breakpoint inside
    that range is a budget, and each segment between two of them gets its share."""
    cost = np.array([costs, costs])
    low, high = min(costs), max(costs)
    grid = np.array(budget_grid(cost, n_points, breakpoints=breakpoints))
    assert grid[0] == pytest.approx(low) and grid[-1] == pytest.approx(high)
    assert np.all(np.diff(grid) > 0) or grid.size == 1 or low == high
    knots = np.unique(np.clip([low, *breakpoints, high], low, high))
    for knot in knots:
        assert np.isclose(grid, knot, rtol=1e-12, atol=0).any()
    if knots.size >= 2:
        assert grid.size >= n_points
        per_segment = [((grid > a) & (grid <= b)).sum() for a, b in pairwise(knots)]
        assert max(per_segment) - min(per_segment) <= 1


def test_hull_budgets_measure_a_piecewise_linear_curve_exactly() -> None:
    """A curve that rises steeply over the cheap 5% of the cost range, then slowly (as with
    one model far dearer than the rest): measured at budgets that include its bends, the AUC
    is the exact area; at evenly spaced budgets the first chord cuts the steep rise off."""
    knots_x = np.array([1.0, 3.0, 5.0, 100.0])
    knots_y = np.array([0.40, 0.80, 0.86, 0.90])
    cost = np.array([knots_x, knots_x])

    def measured(budgets) -> float:
        return auc(budgets, np.interp(budgets, knots_x, knots_y), 1.0, 100.0, 0.40)

    # the curve is linear between its knots: its area is the trapezoids over them
    exact = 100 * float(np.sum(np.diff(knots_x) * (knots_y[1:] + knots_y[:-1]) / 2)) / 99.0
    on_hull = measured(np.array(budget_grid(cost, 20, breakpoints=knots_x)))
    even = measured(np.array(budget_grid(cost, 20)))
    assert on_hull == pytest.approx(exact, abs=1e-9)
    assert even < exact - 0.3
