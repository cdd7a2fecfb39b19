"""The chunked replay is the plain computation, bit for bit, and its memory is bounded.

The references (tests/replay_reference.py) build every state's full (queries x samples x
models) tensor, or replay each query alone; `BatchContext` computes values in chunks of
queries, caches only values and may drop them. Outcomes, budget-sweep curves and AUCs must
be identical, not close: a value that differs in its last bit can flip a decision at the
lambdas where the budget fitter bisects.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_core import BatchContext, MixedStrategy, StagedEstimates, Uncertainty, run_batch
from cascade_core.bench.evaluate import STRATEGY_NAMES, bench_candidates, sweep
from cascade_core.budget import budget_grid
from cascade_core.errors import InvalidInputError
from cascade_core.expected_max import DEFAULT_SAMPLES, error_samples, supermodel_values
from cascade_core.fitting import fit_noisy_oracle
from cascade_core.replay import ReplayDataset, auc, auc_range
from cascade_core.strategies import CascadeRouting, OptimalCascade, Strategy
from cascade_core.strategies.supermodel_search import supermodel_masks
from tests.conftest import random_covariance
from tests.replay_reference import UnchunkedContext, reference_values, replay_one_at_a_time
from tests.synthetic_routerbench import routerbench_like


def dataset(n_queries: int, n_models: int, seed: int) -> ReplayDataset:
    data = routerbench_like(n_queries, seed)
    keep = np.linspace(0, data.n_models - 1, n_models).round().astype(int)
    return data.select_models([data.model_names[i] for i in keep])


def staged_for(data: ReplayDataset, correlated: bool, seed: int, **options: int) -> StagedEstimates:
    """Noisy-oracle estimates with independent errors (as `NoisyOracleEstimator.staged`
    builds them), or the same means with a correlated Σ."""
    oracle = fit_noisy_oracle(data, "low", seed=seed)
    if not correlated and not options:
        return oracle.staged(data, seed + 1)
    ante, post = oracle.estimates(data, seed + 1)
    k = data.n_models
    rng = np.random.default_rng(seed)
    full = random_covariance(rng, k, 0.3) + np.diag(oracle.sigma**2)

    def estimator(ran: frozenset[int]) -> tuple[np.ndarray, Uncertainty]:
        mask = np.zeros(k, dtype=bool)
        mask[list(ran)] = True
        if not correlated:
            return np.where(mask, post, ante), Uncertainty.independent_std(
                np.where(mask, 0.0, oracle.sigma)
            )
        pending = (~mask).astype(float)
        covariance = full * np.outer(pending, pending)
        return np.where(mask, post, ante), Uncertainty.from_covariance(covariance)

    return StagedEstimates(data.cost, estimator, **options)


def parameter_values(strategy: Strategy, cost: np.ndarray) -> list[float]:
    if strategy.cost_rises_with_parameter:
        return [0.2, 0.5, 0.8]
    scale = 1.0 / cost.mean()
    return [0.0, 0.1 * scale, 1.0 * scale, 10.0 * scale]


CASES = [(11, False), (11, True), (5, True)]  # depth-capped (11 models) and exact (5)


@pytest.mark.parametrize(("n_models", "correlated"), CASES)
@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_chunked_replay_equals_replaying_each_query_alone(name, n_models, correlated):
    data = dataset(60, n_models, seed=n_models)
    staged = staged_for(data, correlated, seed=3)
    context = BatchContext(staged, chunk_queries=7)
    policies = [
        base.with_parameter(v)
        for base in bench_candidates(name, n_models)
        for v in parameter_values(base, data.cost)
    ]
    policies.append(MixedStrategy(cheap=policies[-1], expensive=policies[1], gamma=0.4, seed=5))
    for policy in policies:
        outcome = run_batch(policy, context)
        ran, answer = replay_one_at_a_time(policy, staged)
        np.testing.assert_array_equal(outcome.ran, ran, err_msg=str(policy))
        np.testing.assert_array_equal(outcome.answer, answer, err_msg=str(policy))


@pytest.mark.parametrize(("n_models", "correlated"), [(11, False), (6, True)])
@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_budget_sweep_and_auc_equal_the_unchunked_reference(name, n_models, correlated):
    """The bench's sweep (budgets fitted on calibration, replayed on test), both ways."""
    calibration = dataset(120, n_models, seed=1)
    test = dataset(90, n_models, seed=2)
    staged_calibration = staged_for(calibration, correlated, seed=4)
    staged_test = staged_for(test, correlated, seed=4)
    budgets = budget_grid(calibration.cost, 20)
    candidates = bench_candidates(name, n_models)

    def curve(context_of):
        return sweep(
            candidates,
            context_of(staged_calibration),
            calibration,
            context_of(staged_test),
            test,
            budgets,
        )

    chunked = curve(lambda staged: BatchContext(staged, chunk_queries=16))
    reference = curve(UnchunkedContext)
    np.testing.assert_array_equal(chunked.query_cost, reference.query_cost)
    np.testing.assert_array_equal(chunked.query_quality, reference.query_quality)
    limits = auc_range(test)
    assert auc(chunked.costs, chunked.qualities, *limits) == auc(
        reference.costs, reference.qualities, *limits
    )
    # The sweep is not degenerate: the fitted policies spend different amounts.
    assert len(np.unique(reference.costs)) >= 5


@pytest.mark.parametrize("correlated", [False, True])
def test_dropping_cached_values_and_estimates_changes_nothing(correlated):
    """With no room for values or estimates every state is recomputed: nothing may differ."""
    data = dataset(80, 11, seed=7)
    roomy = BatchContext(staged_for(data, correlated, seed=8, max_cache_bytes=1 << 30))
    starved_staged = staged_for(data, correlated, seed=8, max_cache_bytes=0)
    starved = BatchContext(starved_staged, chunk_queries=3, max_cache_bytes=0)
    for base in (c for name in STRATEGY_NAMES for c in bench_candidates(name, 11)):
        for value in parameter_values(base, data.cost):
            policy = base.with_parameter(value)
            expected, got = run_batch(policy, roomy), run_batch(policy, starved)
            np.testing.assert_array_equal(got.ran, expected.ran)
            np.testing.assert_array_equal(got.answer, expected.answer)
            assert starved.cached_states <= 1  # only the state used last is kept
    assert roomy.cache_bytes > 0 and roomy.staged.n_states == starved_staged.n_states > 11


def test_cache_stays_within_its_bound_or_holds_one_state():
    data = dataset(300, 11, seed=9)
    staged = staged_for(data, False, seed=10)
    policies = [
        CascadeRouting(lam=scale / data.cost.mean(), max_depth=3) for scale in (0.1, 1.0, 10.0)
    ]
    unbounded = BatchContext(staged)
    for policy in policies:
        run_batch(policy, unbounded)
    limit = unbounded.cache_bytes // 3
    bounded = BatchContext(staged, max_cache_bytes=limit)
    for policy in policies:
        run_batch(policy, bounded)
        assert bounded.cache_bytes <= limit or bounded.cached_states == 1
    assert 1 <= bounded.cached_states < unbounded.cached_states


def test_replay_memory_is_values_not_samples():
    """The unchunked replay held one (queries x samples x models) tensor per visited state;
    the chunked one holds values, a few per supermodel, plus one chunk: its whole traced
    peak (estimates and decision temporaries included) is a small fraction of that."""
    data = dataset(1500, 11, seed=11)
    staged = staged_for(data, False, seed=12)
    policy = CascadeRouting(lam=1.0 / data.cost.mean(), max_depth=3)
    tracemalloc.start()
    try:
        context = BatchContext(staged, chunk_queries=64)
        run_batch(policy, context)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one_state = data.n_queries * DEFAULT_SAMPLES * data.n_models * 8
    assert context.cached_states >= 20
    assert peak < context.cached_states * one_state / 20


@given(
    seed=st.integers(0, 10_000),
    n_queries=st.integers(1, 40),
    n_models=st.integers(1, 8),
    chunk=st.integers(1, 50),
    n_samples=st.sampled_from([2, 16, 128]),
    correlated=st.booleans(),
)
@settings(max_examples=120, deadline=None)
def test_supermodel_values_are_the_full_tensor_values_bit_for_bit(
    seed, n_queries, n_models, chunk, n_samples, correlated
):
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0, 1, (n_queries, n_models))
    if correlated:
        uncertainty = Uncertainty.from_covariance(random_covariance(rng, n_models, 0.3))
    else:
        uncertainty = Uncertainty.independent_std(rng.uniform(0, 0.3, n_models))
    ran = frozenset(int(m) for m in np.flatnonzero(rng.random(n_models) < 0.3))
    masks = np.vstack([supermodel_masks(ran, n_models, n_models), rng.random((5, n_models)) < 0.5])
    masks[:, rng.integers(n_models)] = True
    masks = masks[rng.permutation(len(masks))]  # subsets need not come first
    expected = reference_values(
        quality, uncertainty.factor, uncertainty.independent, masks, n_samples
    )
    values = supermodel_values(quality, error_samples(uncertainty, n_samples), masks, chunk)
    np.testing.assert_array_equal(values, expected)


def test_bad_chunk_size_is_refused():
    staged = staged_for(dataset(5, 3, seed=0), False, seed=0)
    with pytest.raises(InvalidInputError, match="chunk_queries"):
        BatchContext(staged, chunk_queries=0)


def test_expectation_off_is_the_exact_max_of_the_means():
    data = dataset(50, 6, seed=13)
    staged = staged_for(data, True, seed=14)
    masks = supermodel_masks(frozenset({1}), 6, 3)
    values = BatchContext(staged, chunk_queries=4).expected_max(frozenset({1}), masks, False)
    quality, _ = staged.state(frozenset({1}))
    expected = np.stack([quality[:, mask].max(axis=1) for mask in masks], axis=1)
    np.testing.assert_array_equal(values, expected)
    # and with expectation the values differ (the uncertainty is not ignored)
    with_noise = BatchContext(staged).expected_max(frozenset({1}), masks, True)
    assert (with_noise > expected + 1e-6).any()


def test_optimal_cascade_on_per_query_orders_equals_reference():
    """Queries whose cost orders differ (generated answers) split states finely."""
    data = dataset(150, 11, seed=15)
    orders = np.unique(np.argsort(data.cost, axis=1, kind="stable"), axis=0)
    assert len(orders) > 3
    staged = staged_for(data, True, seed=16)
    policy = OptimalCascade(lam=1.0 / data.cost.mean())
    chunked = run_batch(policy, BatchContext(staged, chunk_queries=5))
    reference = run_batch(policy, UnchunkedContext(staged))
    np.testing.assert_array_equal(chunked.ran, reference.ran)
    np.testing.assert_array_equal(chunked.answer, reference.answer)
