"""Regression tests for the defects of the public reference code listed in DESIGN.md."""

from __future__ import annotations

import numpy as np
import pytest

from cascade_core import (
    BatchContext,
    Routing,
    StagedEstimates,
    Uncertainty,
    fit_budget,
    run_batch,
)
from cascade_core.expected_max import expected_max, expected_max_two_normals


def test_independent_path_scales_by_standard_deviation_not_variance():
    # With variance 4 the samples must spread by 2; scaling by the variance would spread by 4.
    value = expected_max(
        np.array([0.0, 0.0]), Uncertainty.independent_variance([4.0, 4.0]), np.ones(2), 4096
    )[0]
    assert value == pytest.approx(expected_max_two_normals(0, 0, 2.0, 2.0), rel=5e-3)
    assert value != pytest.approx(expected_max_two_normals(0, 0, 4.0, 4.0), rel=0.1)


def test_independent_and_correlated_paths_agree_on_a_diagonal_covariance():
    mean = np.array([0.2, 0.5, 0.4])
    variance = np.array([0.04, 0.01, 0.09])
    independent = expected_max(mean, Uncertainty.independent_variance(variance), np.ones(3))
    correlated = expected_max(mean, Uncertainty.from_covariance(np.diag(variance)), np.ones(3))
    assert independent[0] == pytest.approx(correlated[0], abs=1e-12)


def test_routing_gamma_weights_the_expensive_policy_so_the_budget_is_met():
    # Two models with equal quality per query: lambda alone cannot land between their costs,
    # only the gamma mix can. An inverted gamma would spend 1 - gamma of the right share.
    rng = np.random.default_rng(0)
    n_queries = 400
    quality = np.column_stack([np.full(n_queries, 0.5), np.full(n_queries, 0.9)])
    cost = np.column_stack([np.full(n_queries, 1.0), np.full(n_queries, 3.0)])
    truth = (rng.random((n_queries, 2)) < quality).astype(float)
    context = BatchContext(StagedEstimates.from_arrays(quality, quality, cost))
    budget = 1.5  # 25% of queries on the expensive model
    fit = fit_budget(Routing(), context, budget, true_quality=truth)
    assert fit.cost == pytest.approx(budget)
    assert fit.gamma == pytest.approx(0.25, abs=1e-6)
    outcome = run_batch(fit.strategy, context)
    share_expensive = outcome.ran[:, 1].mean()
    assert share_expensive == pytest.approx(0.25, abs=0.06)


def test_output_cost_is_counted_once_per_query():
    # The replay charges each query exactly the logged cost of the models it ran; dividing the
    # output cost by the query count twice would make costs shrink with the batch size.
    quality = np.array([[0.9, 0.5]] * 10)
    cost = np.array([[2.0, 5.0]] * 10)
    outcome = run_batch(
        Routing(lam=0.0), BatchContext(StagedEstimates.from_arrays(quality, quality, cost))
    )
    assert outcome.cost(cost).mean() == pytest.approx(2.0)
    single = run_batch(
        Routing(lam=0.0),
        BatchContext(StagedEstimates.from_arrays(quality[:1], quality[:1], cost[:1])),
    )
    assert single.cost(cost[:1]).mean() == pytest.approx(2.0)
