"""E[max] of a multivariate normal: the value of a supermodel.

A supermodel M answers with the best of its models, so its quality is E[max_{m in M} Q_m] with
Q ~ N(mean, covariance). There is no closed form beyond two variables, so it is estimated on a
fixed set of quasi-random (scrambled Sobol) standard-normal samples shared by every supermodel
and every decision:

* fixed samples make every decision deterministic and repeatable;
* shared samples make the estimate exactly monotone and submodular in the set (it is an average
  of pointwise maxima), which is what makes the pruning in cascade routing exact;
* the samples are moment-matched (each column has mean 0 and variance 1 exactly), so a single
  model's value is exactly its mean and the estimate never drops below the max of the means.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.stats import norm, qmc

from cascade_core.errors import InvalidInputError
from cascade_core.estimates import FloatArray, Uncertainty

DEFAULT_SAMPLES = 128
_SOBOL_SEED = 20241014  # any fixed value: only repeatability matters


@lru_cache(maxsize=64)
def _standard_normal_samples(n_models: int, n_samples: int) -> FloatArray:
    sobol = qmc.Sobol(d=n_models, scramble=True, seed=_SOBOL_SEED)
    uniform = sobol.random(n_samples)
    samples = norm.ppf(uniform)
    samples -= samples.mean(axis=0)
    samples /= samples.std(axis=0)
    samples.setflags(write=False)
    return samples


def standard_normal_samples(n_models: int, n_samples: int = DEFAULT_SAMPLES) -> FloatArray:
    """Fixed, moment-matched quasi-random N(0, I) samples of shape (n_samples, n_models)."""
    if n_models < 1:
        raise InvalidInputError("n_models: the model list is empty; give at least one model")
    if n_samples < 2 or n_samples & (n_samples - 1):
        raise InvalidInputError(
            f"n_samples: must be a power of two >= 2 (Sobol balance), got {n_samples}"
        )
    return _standard_normal_samples(n_models, n_samples)


def error_samples(uncertainty: Uncertainty, n_samples: int = DEFAULT_SAMPLES) -> FloatArray:
    """The fixed error samples of an uncertainty model, (S, k), computed once per instance.

    An estimator reuses one ``Uncertainty`` per state across requests, so the matrix product
    with the factor is paid once, not per decision.
    """
    cache: dict[int, FloatArray] = uncertainty.__dict__.setdefault("_error_samples", {})
    if n_samples not in cache:
        noise = uncertainty.noise(standard_normal_samples(uncertainty.n_models, n_samples))
        noise.setflags(write=False)
        cache[n_samples] = noise
    return cache[n_samples]


def quality_samples(
    quality: FloatArray, uncertainty: Uncertainty, n_samples: int = DEFAULT_SAMPLES
) -> FloatArray:
    """Samples of the true qualities: shape (S, k), or (n, S, k) for a batch of queries."""
    quality = np.asarray(quality, dtype=float)
    n_models = quality.shape[-1]
    if uncertainty.n_models != n_models:
        raise InvalidInputError(
            f"uncertainty covers {uncertainty.n_models} models but quality has {n_models}"
        )
    noise = error_samples(uncertainty, n_samples)
    if quality.ndim == 1:
        return quality + noise
    return quality[:, None, :] + noise[None, :, :]


def expected_max(
    quality: FloatArray,
    uncertainty: Uncertainty,
    supermodels: FloatArray,
    n_samples: int = DEFAULT_SAMPLES,
) -> FloatArray:
    """E[max] for each supermodel (rows of a boolean (M, k) mask), for one query or a batch.

    ``quality`` of shape (k,) gives an (M,) result; of shape (n, k) an (n, M) result.
    """
    masks = np.asarray(supermodels, dtype=bool)
    if masks.ndim == 1:
        masks = masks[None, :]
    if not masks.any(axis=1).all():
        raise InvalidInputError("supermodels: every supermodel needs at least one model")
    samples = quality_samples(quality, uncertainty, n_samples)
    if samples.ndim == 2:
        excluded = np.where(masks, 0.0, -np.inf)[:, None, :]
        return (samples[None, :, :] + excluded).max(axis=-1).mean(axis=-1)
    # One supermodel at a time bounds memory at (n, S, |M|).
    result = np.empty((samples.shape[0], masks.shape[0]))
    for j, mask in enumerate(masks):
        result[:, j] = samples[:, :, mask].max(axis=-1).mean(axis=-1)
    return result


def expected_max_two_normals(
    mean_a: float, mean_b: float, std_a: float, std_b: float, correlation: float = 0.0
) -> float:
    """Clark's (1961) closed form for E[max(A, B)] of a bivariate normal."""
    theta_sq = std_a**2 + std_b**2 - 2.0 * correlation * std_a * std_b
    if theta_sq <= 0.0:
        return max(mean_a, mean_b)
    theta = float(np.sqrt(theta_sq))
    alpha = (mean_a - mean_b) / theta
    return float(mean_a * norm.cdf(alpha) + mean_b * norm.cdf(-alpha) + theta * norm.pdf(alpha))
