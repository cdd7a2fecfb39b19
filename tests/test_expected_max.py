"""E[max] must be right: closed form for two normals, a large Monte Carlo for more."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_core import Uncertainty
from cascade_core.errors import InvalidInputError
from cascade_core.expected_max import (
    _standard_normal_samples,
    expected_max,
    expected_max_two_normals,
)
from tests.conftest import random_covariance


@given(
    mean_a=st.floats(0, 1),
    mean_b=st.floats(0, 1),
    std_a=st.floats(0.0, 0.4),
    std_b=st.floats(0.0, 0.4),
    correlation=st.floats(-0.9, 0.9),
)
@settings(max_examples=200, deadline=None)
def test_two_normals_match_clark_closed_form(mean_a, mean_b, std_a, std_b, correlation):
    covariance = np.array(
        [[std_a**2, correlation * std_a * std_b], [correlation * std_a * std_b, std_b**2]]
    )
    value = expected_max(
        np.array([mean_a, mean_b]), Uncertainty.from_covariance(covariance), np.ones(2), 4096
    )[0]
    exact = expected_max_two_normals(mean_a, mean_b, std_a, std_b, correlation)
    assert value == pytest.approx(exact, abs=2e-3 * max(std_a, std_b, 1e-3))


def test_closed_form_against_known_value():
    # Two independent standard normals: E[max] = 1/sqrt(pi).
    assert expected_max_two_normals(0.0, 0.0, 1.0, 1.0) == pytest.approx(1 / np.sqrt(np.pi))


@pytest.mark.parametrize("n_models", [3, 5, 8])
@pytest.mark.parametrize("correlated", [True, False])
def test_many_normals_match_a_million_sample_monte_carlo(n_models, correlated):
    rng = np.random.default_rng(n_models)
    mean = rng.uniform(0.2, 0.8, n_models)
    if correlated:
        covariance = random_covariance(rng, n_models, 0.2)
        uncertainty = Uncertainty.from_covariance(covariance)
    else:
        covariance = np.diag(rng.uniform(0.0, 0.05, n_models))
        uncertainty = Uncertainty.independent_variance(np.diag(covariance))
    draws = rng.multivariate_normal(mean, covariance, size=1_000_000)
    monte_carlo = draws.max(axis=1).mean()
    standard_error = draws.max(axis=1).std() / 1000.0
    for n_samples in (128, 4096):
        value = expected_max(mean, uncertainty, np.ones(n_models), n_samples)[0]
        tolerance = 4 * standard_error + (0.01 if n_samples == 128 else 2e-3)
        assert value == pytest.approx(monte_carlo, abs=tolerance)


@given(seed=st.integers(0, 10_000), n_models=st.integers(1, 7))
@settings(max_examples=100, deadline=None)
def test_at_least_max_of_means_and_grows_with_the_set(seed, n_models):
    rng = np.random.default_rng(seed)
    mean = rng.uniform(0, 1, n_models)
    uncertainty = Uncertainty.from_covariance(random_covariance(rng, n_models, 0.3))
    masks = rng.random((20, n_models)) < 0.5
    masks[:, 0] = True
    values = expected_max(mean, uncertainty, masks)
    for mask, value in zip(masks, values, strict=True):
        assert value >= mean[mask].max() - 1e-12
    # Adding one model never lowers the value (same samples for every set).
    bigger = masks.copy()
    bigger[:, rng.integers(n_models)] = True
    assert (expected_max(mean, uncertainty, bigger) >= values - 1e-12).all()


def test_single_model_value_is_exactly_its_mean():
    mean = np.array([0.3, 0.7, 0.5])
    uncertainty = Uncertainty.independent_std([0.2, 0.1, 0.3])
    values = expected_max(mean, uncertainty, np.eye(3, dtype=bool))
    np.testing.assert_allclose(values, mean, atol=1e-12)


def test_zero_uncertainty_is_max_of_means():
    mean = np.array([0.3, 0.7, 0.5])
    masks = np.array([[1, 0, 1], [1, 1, 1]], dtype=bool)
    np.testing.assert_allclose(expected_max(mean, Uncertainty.none(3), masks), [0.5, 0.7])


def test_batch_of_queries_matches_one_at_a_time():
    rng = np.random.default_rng(3)
    quality = rng.uniform(0, 1, (6, 4))
    uncertainty = Uncertainty.from_covariance(random_covariance(rng, 4, 0.2))
    masks = np.array([[1, 1, 0, 0], [0, 1, 1, 1], [1, 1, 1, 1]], dtype=bool)
    batch = expected_max(quality, uncertainty, masks)
    for row, query in enumerate(quality):
        np.testing.assert_allclose(batch[row], expected_max(query, uncertainty, masks))


VALUE_IN_A_FRESH_PROCESS = """
import numpy as np
from cascade_core import Uncertainty
from cascade_core.expected_max import expected_max
print(repr(float(expected_max(np.array([0.4, 0.5, 0.45]), Uncertainty.independent_std(
    [0.2, 0.1, 0.3]), np.ones(3))[0])))
"""


def test_decisions_are_deterministic():
    """The same inputs give the same value from fresh objects, after the sample cache is
    emptied, and in a fresh interpreter: the samples come from a fixed seed, not from state
    left behind by an earlier call."""
    mean = np.array([0.4, 0.5, 0.45])
    first = expected_max(mean, Uncertainty.independent_std([0.2, 0.1, 0.3]), np.ones(3))[0]
    _standard_normal_samples.cache_clear()
    second = expected_max(mean, Uncertainty.independent_std([0.2, 0.1, 0.3]), np.ones(3))[0]
    assert first == second
    fresh = subprocess.run(
        [sys.executable, "-c", VALUE_IN_A_FRESH_PROCESS],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert float(fresh.stdout) == first
    # The value is a real expectation, not the max of the means the samples could collapse to.
    assert first > mean.max() + 0.01


def test_bad_inputs_are_refused():
    with pytest.raises(InvalidInputError, match="power of two"):
        expected_max(np.array([0.5, 0.6]), Uncertainty.none(2), np.ones(2), n_samples=100)
    with pytest.raises(InvalidInputError, match="at least one model"):
        expected_max(np.array([0.5, 0.6]), Uncertainty.none(2), np.zeros(2))
    with pytest.raises(InvalidInputError, match="positive semi-definite"):
        Uncertainty.from_covariance(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(InvalidInputError, match="covers 3 models"):
        expected_max(np.array([0.5, 0.6]), Uncertainty.none(3), np.ones(2))
