"""Fitting lambda (or the threshold) to an average-cost budget on calibration data."""

from __future__ import annotations

from dataclasses import replace

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
