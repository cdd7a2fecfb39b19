"""Fitting lambda (or the threshold) to an average-cost budget on calibration data."""

from __future__ import annotations

import numpy as np
import pytest

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
def test_fitted_policy_meets_the_budget_in_expectation(strategy):
    context, truth, cost = calibration()
    for budget in budget_grid(cost, 5)[1:-1]:
        fit = fit_budget(strategy, context, budget, true_quality=truth)
        assert fit.cost == pytest.approx(budget, rel=1e-6)
        assert 0.0 <= fit.gamma <= 1.0
        assert 0.0 <= fit.quality <= 1.0
        # Replaying the fitted policy spends about the budget (random mixing per query).
        spent = run_batch(fit.strategy, context).cost(cost).mean()
        assert spent == pytest.approx(budget, rel=0.25)


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


def test_per_step_lambdas_are_never_worse_than_one_shared():
    context, truth, cost = calibration(2)
    budget = float(np.mean(budget_grid(cost, 3)))
    shared = fit_budget(OptimalCascade(), context, budget, true_quality=truth)
    per_step = fit_budget(OptimalCascade(), context, budget, true_quality=truth, per_step=True)
    assert isinstance(per_step.parameter_cheap, tuple)
    assert per_step.quality >= shared.quality - 1e-12
    assert per_step.cost == pytest.approx(budget, rel=1e-6)


def test_budget_below_the_cheapest_model_is_refused():
    context, _, cost = calibration()
    with pytest.raises(InvalidInputError, match="below the cheapest model"):
        fit_budget(CascadeRouting(), context, cost.min() / 2)
    with pytest.raises(InvalidInputError, match="budget"):
        fit_budget(CascadeRouting(), context, float("nan"))
