"""Property tests of the strategies on random instances (DESIGN.md, "The math")."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_core import (
    BatchContext,
    CascadeRouting,
    OptimalCascade,
    QueryEstimates,
    Routing,
    StagedEstimates,
    ThresholdCascade,
    Uncertainty,
    run_batch,
)
from cascade_core.expected_max import expected_max
from tests.conftest import random_covariance


def random_instance(seed: int, n_models: int):
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0, 1, n_models)
    cost = rng.uniform(0.1, 1.0, n_models)
    covariance = random_covariance(rng, n_models, rng.uniform(0.0, 0.3))
    lam = float(rng.choice([0.0, 0.01, 0.05, 0.2, 1.0]))
    ran = frozenset(int(i) for i in np.flatnonzero(rng.random(n_models) < 0.3))
    return QueryEstimates.create(quality, cost, covariance=covariance), lam, ran


def brute_force_best(estimates: QueryEstimates, lam: float, ran: frozenset[int], max_size: int):
    """Every supermodel of ``ran``, no pruning: the plain definition."""
    n_models = estimates.n_models
    free = [m for m in range(n_models) if m not in ran]
    candidates = [tuple(sorted(ran))] if ran else []
    for size in range(1, max_size - len(ran) + 1):
        candidates += [tuple(sorted((*ran, *extra))) for extra in combinations(free, size)]
    masks = np.zeros((len(candidates), n_models), dtype=bool)
    for row, members in enumerate(candidates):
        masks[row, list(members)] = True
    values = expected_max(estimates.quality, estimates.uncertainty, masks)
    objective = values - lam * (masks @ estimates.cost)
    return float(objective.max())


@given(seed=st.integers(0, 100_000), n_models=st.integers(1, 8))
@settings(max_examples=150, deadline=None)
def test_exact_cascade_routing_equals_brute_force(seed, n_models):
    estimates, lam, ran = random_instance(seed, n_models)
    decision = CascadeRouting(lam=lam).decide(estimates, ran)
    assert decision.objective == pytest.approx(
        brute_force_best(estimates, lam, ran, n_models), abs=1e-9
    )
    assert set(decision.plan) >= ran


@pytest.mark.parametrize("seed", range(12))
def test_exact_search_equals_brute_force_on_eleven_model_ladders(seed):
    """Ladders as large as the latency benchmark's, with prices spanning 1e-4..10 quality
    points, where winners of three or more models exercise the deep levels of the search."""
    rng = np.random.default_rng(seed)
    n_models = 11
    quality = rng.uniform(0.2, 0.95, n_models)
    cost = np.exp(rng.uniform(np.log(1e-6), np.log(1e-3), n_models))
    covariance = random_covariance(rng, n_models, 0.1) + np.diag(np.full(n_models, 0.005))
    lam = float(np.exp(rng.uniform(np.log(1e2), np.log(1e4))))
    estimates = QueryEstimates.create(quality, cost, covariance=covariance)
    ran = frozenset(int(i) for i in rng.choice(n_models, size=seed % 3, replace=False))
    decision = CascadeRouting(lam=lam).decide(estimates, ran)
    assert decision.objective == pytest.approx(
        brute_force_best(estimates, lam, ran, n_models), abs=1e-9
    )


@given(seed=st.integers(0, 100_000), n_models=st.integers(1, 8), depth=st.integers(1, 4))
@settings(max_examples=80, deadline=None)
def test_max_depth_equals_brute_force_up_to_that_size(seed, n_models, depth):
    estimates, lam, ran = random_instance(seed, n_models)
    size = max(min(depth, n_models), len(ran))
    decision = CascadeRouting(lam=lam, max_depth=depth).decide(estimates, ran)
    assert decision.objective == pytest.approx(
        brute_force_best(estimates, lam, ran, size), abs=1e-9
    )
    assert len(decision.plan) <= size


@given(seed=st.integers(0, 100_000), n_models=st.integers(1, 8))
@settings(max_examples=100, deadline=None)
def test_greedy_objective_never_beats_exact(seed, n_models):
    estimates, lam, ran = random_instance(seed, n_models)
    greedy = CascadeRouting(lam=lam, variant="greedy").decide(estimates, ran)
    exact = CascadeRouting(lam=lam).decide(estimates, ran)
    assert greedy.objective <= exact.objective + 1e-12


@given(seed=st.integers(0, 100_000), n_models=st.integers(1, 7))
@settings(max_examples=60, deadline=None)
def test_single_query_and_batch_paths_agree(seed, n_models):
    rng = np.random.default_rng(seed)
    n_queries = 12
    ex_ante = rng.uniform(0, 1, (n_queries, n_models))
    post_hoc = np.clip(ex_ante + rng.normal(0, 0.2, ex_ante.shape), 0, 1)
    cost = rng.uniform(0.1, 1, (n_queries, n_models))
    staged = StagedEstimates.from_arrays(ex_ante, post_hoc, cost, 0.2, 0.02)
    context = BatchContext(staged)
    for strategy in (
        CascadeRouting(lam=0.1),
        CascadeRouting(lam=0.1, variant="greedy"),
        CascadeRouting(lam=0.1, variant="no_expect"),
        CascadeRouting(lam=0.1, max_depth=2),
        CascadeRouting(lam=0.1, draft=True),
        OptimalCascade(lam=0.1),
        ThresholdCascade(threshold=0.6),
        Routing(lam=0.1),
    ):
        batch = run_batch(strategy, context)
        for query in range(n_queries):
            ran, answer = run_live(strategy, staged, query)
            assert ran == frozenset(np.flatnonzero(batch.ran[query])), strategy
            assert answer == batch.answer[query]


def run_live(strategy, staged: StagedEstimates, query: int):
    """The live loop, one query at a time, as the engine runs it."""
    ran: frozenset[int] = frozenset()
    while True:
        quality, uncertainty = staged.state(ran)
        estimates = QueryEstimates(quality[query], staged.cost[query], uncertainty)
        decision = strategy.decide(estimates, ran)
        if decision.stop:
            break
        ran = ran | {decision.next_model}
    quality, _ = staged.state(ran)
    cost = staged.cost[query]
    # Highest final quality; ties to the cheaper model, then the lower index.
    answer = max(ran, key=lambda m: (quality[query, m], -cost[m], -m))
    return ran, answer


@given(seed=st.integers(0, 100_000), n_models=st.integers(1, 8))
@settings(max_examples=60, deadline=None)
def test_zero_lambda_with_perfect_estimates_answers_with_the_best_model(seed, n_models):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0, 1, (5, n_models))
    cost = rng.uniform(0.1, 1, (5, n_models))
    context = BatchContext(StagedEstimates.from_arrays(truth, truth, cost))
    for strategy in (
        CascadeRouting(lam=0.0),
        CascadeRouting(lam=0.0, variant="greedy"),
        Routing(lam=0.0),
        OptimalCascade(lam=0.0),
    ):
        outcome = run_batch(strategy, context)
        np.testing.assert_allclose(outcome.quality(truth), truth.max(axis=1))


@given(seed=st.integers(0, 100_000), n_models=st.integers(1, 8))
@settings(max_examples=60, deadline=None)
def test_huge_lambda_runs_only_the_cheapest_model(seed, n_models):
    rng = np.random.default_rng(seed)
    ex_ante = rng.uniform(0, 1, (5, n_models))
    post_hoc = rng.uniform(0, 1, (5, n_models))
    cost = rng.uniform(0.1, 1, (5, n_models))
    context = BatchContext(StagedEstimates.from_arrays(ex_ante, post_hoc, cost, 0.3, 0.01))
    for strategy in (
        CascadeRouting(lam=1e9),
        CascadeRouting(lam=1e9, max_depth=3),
        Routing(lam=1e9),
        OptimalCascade(lam=1e9),
        ThresholdCascade(threshold=0.0),
    ):
        outcome = run_batch(strategy, context)
        assert outcome.ran.sum(axis=1).tolist() == [1] * 5
        assert outcome.answer.tolist() == cost.argmin(axis=1).tolist()


@given(seed=st.integers(0, 100_000), n_models=st.integers(1, 8))
@settings(max_examples=60, deadline=None)
def test_routing_is_cascade_routing_without_post_hoc_information(seed, n_models):
    # Nothing is learnt from running a model: post-hoc equals ex-ante and there is no
    # uncertainty to resolve, so the optimal cascade router runs exactly the routed model.
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0, 1, (8, n_models))
    cost = rng.uniform(0.1, 1, (8, n_models))
    lam = float(rng.choice([0.0, 0.1, 1.0]))
    context = BatchContext(StagedEstimates.from_arrays(quality, quality, cost))
    routed = run_batch(Routing(lam=lam), context)
    for variant in ("exact", "greedy", "no_expect"):
        cascaded = run_batch(CascadeRouting(lam=lam, variant=variant), context)
        np.testing.assert_array_equal(cascaded.ran, routed.ran)


def test_threshold_cascade_stops_at_the_first_confident_model():
    estimates = QueryEstimates.create([0.4, 0.8, 0.9], [1.0, 2.0, 3.0], std=[0.1, 0.1, 0.1])
    cascade = ThresholdCascade(threshold=0.7)
    assert cascade.decide(estimates, []).next_model == 0
    assert cascade.decide(estimates, [0]).next_model == 1
    assert cascade.decide(estimates, [0, 1]).stop


def test_optimal_cascade_uses_one_lambda_per_step():
    estimates = QueryEstimates.create([0.5, 0.6, 0.9], [1.0, 1.0, 1.0], std=[0.0, 0.2, 0.2])
    # After the first model: cheap lambda at step 1 continues, huge lambda at step 1 stops.
    assert not OptimalCascade(lam=(0.0, 0.0)).decide(estimates, [0]).stop
    assert OptimalCascade(lam=(0.0, 100.0)).decide(estimates, [0]).stop


def test_decision_explains_itself():
    estimates = QueryEstimates.create([0.5, 0.9], [1.0, 10.0], std=[0.3, 0.3])
    decision = CascadeRouting(lam=0.01).decide(estimates, [])
    assert decision.next_model == 0 and "best supermodel" in decision.reason
    assert set(decision.plan) == {0, 1}
    stop = CascadeRouting(lam=10.0).decide(
        QueryEstimates(estimates.quality, estimates.cost, Uncertainty.none(2)), [0]
    )
    assert stop.stop and "stop" in stop.reason
