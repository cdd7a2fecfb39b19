"""Per-query supermodel lists (a cascade's prefixes along each query's own cost order).

`supermodel_values` and `BatchContext` take (n, M, k) masks, one list per query, so queries
whose orders differ are decided together. The values must be the textbook full-tensor ones
bit for bit (tests/replay_reference.py), and the cache must never serve a row the values of
another list than the one asked for.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_core import BatchContext, StagedEstimates, Uncertainty
from cascade_core.errors import InvalidInputError
from cascade_core.expected_max import error_samples, supermodel_values
from tests.conftest import random_covariance
from tests.replay_reference import reference_values


def random_uncertainty(rng: np.random.Generator, n_models: int, correlated: bool) -> Uncertainty:
    if correlated:
        return Uncertainty.from_covariance(random_covariance(rng, n_models, 0.3))
    return Uncertainty.independent_std(rng.uniform(0, 0.3, n_models))


def prefix_lists(rng: np.random.Generator, n_queries: int, n_models: int) -> np.ndarray:
    """Each query's prefixes along its own random order: (n, k, k), nested one model apart."""
    orders = np.argsort(rng.random((n_queries, n_models)), axis=1)
    rank = np.argsort(orders, axis=1)
    return rank[:, None, :] < np.arange(1, n_models + 1)[None, :, None]


def random_lists(rng: np.random.Generator, n_queries: int, n_models: int) -> np.ndarray:
    """Unrelated non-empty supermodels per query: (n, 4, k)."""
    masks = rng.random((n_queries, 4, n_models)) < 0.4
    masks[np.arange(n_queries)[:, None], np.arange(4)[None, :], rng.integers(n_models)] = True
    return masks


@given(
    seed=st.integers(0, 10_000),
    n_queries=st.integers(1, 30),
    n_models=st.integers(1, 8),
    chunk=st.integers(1, 40),
    n_samples=st.sampled_from([2, 16, 128]),
    correlated=st.booleans(),
    nested=st.booleans(),
)
@settings(max_examples=120, deadline=None)
def test_per_query_values_are_the_full_tensor_values_bit_for_bit(
    seed, n_queries, n_models, chunk, n_samples, correlated, nested
):
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0, 1, (n_queries, n_models))
    uncertainty = random_uncertainty(rng, n_models, correlated)
    lists = prefix_lists if nested else random_lists
    masks = lists(rng, n_queries, n_models)
    values = supermodel_values(quality, error_samples(uncertainty, n_samples), masks, chunk)
    for query in range(n_queries):
        expected = reference_values(
            quality[query : query + 1],
            uncertainty.factor,
            uncertainty.independent,
            masks[query],
            n_samples,
        )[0]
        np.testing.assert_array_equal(values[query], expected)


def context_for(n_queries: int, n_models: int, seed: int, **options: int) -> BatchContext:
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0, 1, (n_queries, n_models))
    cost = rng.uniform(0.1, 1.0, (n_queries, n_models))
    uncertainty = random_uncertainty(rng, n_models, True)
    staged = StagedEstimates(cost, lambda ran: (quality, uncertainty))
    return BatchContext(staged, **options)


def test_cached_rows_serve_only_the_lists_they_were_computed_for():
    """Rows asked for with one order, then another, then the first again: each answer is
    what a fresh context computes for that very list, never a stale row."""
    context = context_for(40, 6, seed=1, chunk_queries=7)
    rng = np.random.default_rng(2)
    state = frozenset({2})
    first, second = prefix_lists(rng, 40, 6), prefix_lists(rng, 40, 6)
    rows = np.arange(0, 40, 3)
    answers = [context.values(state, masks[rows], True, rows) for masks in (first, second, first)]
    for masks, got in zip((first, second, first), answers, strict=True):
        fresh = context_for(40, 6, seed=1).values(state, masks[rows], True, rows)
        np.testing.assert_array_equal(got, fresh)
    assert not np.array_equal(answers[0], answers[1])
    # Part of the rows again, interleaved with rows never asked for: the same values.
    part = np.array([0, 1, 3, 4, 9])
    again = context.values(state, first[part], True, part)
    np.testing.assert_array_equal(again[[0, 2, 4]], answers[2][[0, 1, 3]])


def test_per_query_lists_under_a_starved_cache_change_nothing():
    roomy = context_for(30, 5, seed=3)
    starved = context_for(30, 5, seed=3, chunk_queries=2, max_cache_bytes=0)
    masks = prefix_lists(np.random.default_rng(4), 30, 5)
    rows = np.arange(30)
    for state in (frozenset({0}), frozenset({1, 3}), frozenset({0})):
        for expectation in (True, False):
            np.testing.assert_array_equal(
                starved.values(state, masks, expectation, rows),
                roomy.values(state, masks, expectation, rows),
            )
        assert starved.cached_states == 1


def test_a_list_per_query_must_match_the_rows():
    context = context_for(10, 4, seed=5)
    masks = prefix_lists(np.random.default_rng(6), 3, 4)
    with pytest.raises(InvalidInputError, match="3 per-query lists for 5 queries"):
        context.values(frozenset(), masks, True, np.arange(5))


def test_values_served_from_the_cache_cannot_be_written_through():
    """A group of every query gets a view into the cache, not a copy: it must be read-only,
    or a strategy writing into its values would change every later replay."""
    context = context_for(12, 4, seed=7)
    rows = np.arange(12)
    shared = np.eye(4, dtype=bool)
    per_query = prefix_lists(np.random.default_rng(8), 12, 4)
    for masks in (shared, per_query):
        values = context.values(frozenset(), masks, True, rows)
        with pytest.raises(ValueError, match="read-only"):
            values[0, 0] = 0.0
        np.testing.assert_array_equal(context.values(frozenset(), masks, True, rows), values)
