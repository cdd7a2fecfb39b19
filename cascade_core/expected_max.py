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
# Working memory of one chunk of queries in `supermodel_values`: small enough to stay in
# cache-friendly territory, large enough that per-call overhead is negligible.
CHUNK_BYTES = 16 * 2**20
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
    """Samples of the true qualities of one query: shape (S, k).

    Only for one query: a batch's (n, S, k) tensor is what `supermodel_values` avoids
    building, since it grows with the batch.
    """
    quality = np.asarray(quality, dtype=float)
    if quality.ndim != 1:
        raise InvalidInputError(
            f"quality: expected one query's estimates (k,), got shape {quality.shape}; "
            "use expected_max for a batch"
        )
    _check_models(quality, uncertainty)
    return quality + error_samples(uncertainty, n_samples)


def supermodel_values(
    quality: FloatArray,
    noise: FloatArray,
    masks: FloatArray,
    chunk_queries: int | None = None,
) -> FloatArray:
    """Sample mean of the pointwise max over each supermodel: (n, M) for quality (n, k).

    ``masks`` are boolean: (M, k) supermodels shared by every query, or (n, M, k) one list per
    query (a cascade's prefixes along each query's own order). ``noise`` (S, k) are the error
    samples added to every query's means (one zero row gives the max of the means exactly).
    Queries are taken ``chunk_queries`` at a time (by default as many as fit in
    `CHUNK_BYTES`), so memory stays O(chunk x S x (k + M)) whatever n is. Chunking does not
    change a single bit of the result: each value depends only on its own query's samples,
    and is reduced over the same contiguous sample axis. A supermodel that extends one
    computed before it by one model (prefixes of a cascade, supersets of the run set) costs
    one elementwise maximum.
    """
    quality = np.asarray(quality, dtype=float)
    noise = np.asarray(noise, dtype=float)
    masks = np.asarray(masks, dtype=bool)
    n_queries, n_models = quality.shape
    n_samples = noise.shape[0]
    n_supermodels = masks.shape[-2]
    if masks.ndim == 3 and masks.shape[0] != n_queries:
        raise InvalidInputError(
            f"supermodels: {masks.shape[0]} per-query lists for {n_queries} queries"
        )
    if chunk_queries is None:
        per_query = 8 * n_samples * (2 * n_models + n_supermodels + 1)
        chunk_queries = max(1, CHUNK_BYTES // per_query)
    result = np.empty((n_queries, n_supermodels))
    for start in range(0, n_queries, chunk_queries):
        stop = min(start + chunk_queries, n_queries)
        if masks.ndim == 2:
            result[start:stop] = _shared_values(quality[start:stop], noise, masks)
        else:
            result[start:stop] = _per_query_values(quality[start:stop], noise, masks[start:stop])
    return result


def _shared_values(quality: FloatArray, noise: FloatArray, masks: FloatArray) -> FloatArray:
    """One chunk's values of supermodels shared by its queries: (c, M)."""
    # (k, c, S): each model's samples contiguous, so a supermodel's max is elementwise
    # maxima of (c, S) blocks instead of a reduction over a short axis.
    samples = quality.T[:, :, None] + noise.T[:, None, :]
    result = np.empty((quality.shape[0], len(masks)))
    maxima: list[FloatArray] = []
    for j, (parent, added) in enumerate(_fold_plans(masks.shape, masks.tobytes())):
        if parent < 0:
            best = samples[added[0]].copy()
            for m in added[1:]:
                np.maximum(best, samples[m], out=best)
        else:
            best = np.maximum(maxima[parent], samples[added[0]])
        maxima.append(best)
        result[:, j] = best.mean(axis=1)
    return result


def _per_query_values(quality: FloatArray, noise: FloatArray, masks: FloatArray) -> FloatArray:
    """One chunk's values of per-query supermodels (c, M, k): (c, M).

    A list whose every query's supermodel is the previous one plus one model (prefixes along
    per-query orders) folds that model in by a gather and one elementwise maximum; any other
    is the maximum over its members, non-members masked to -inf (never a maximum, since
    every supermodel has a member). Both are exact maxima of the same samples.
    """
    n_queries = quality.shape[0]
    # (c, k, S): a query's model samples contiguous, gathered per query by model index.
    samples = quality[:, :, None] + noise.T[None, :, :]
    every = np.arange(n_queries)
    result = np.empty((n_queries, masks.shape[1]))
    best: FloatArray | None = None
    for j in range(masks.shape[1]):
        mask = masks[:, j]
        added = mask & ~masks[:, j - 1] if j else mask
        if best is not None and (added.sum(axis=1) == 1).all() and (mask >= masks[:, j - 1]).all():
            best = np.maximum(best, samples[every, added.argmax(axis=1)])
        else:
            best = np.where(mask[:, :, None], samples, -np.inf).max(axis=1)
        result[:, j] = best.mean(axis=1)
    return result


@lru_cache(maxsize=1024)
def _fold_plans(shape: tuple[int, ...], packed: bytes) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """Per supermodel: an earlier one it extends by one model (-1: none), and what to add.

    The maximum is exact in any order, so folding onto a subset's maxima gives the very same
    values as folding every model. Cached by the masks' bytes: a replay asks for the same
    lists of supermodels in every state it revisits.
    """
    masks = np.frombuffer(packed, dtype=bool).reshape(shape)
    seen: dict[frozenset[int], int] = {}
    plans = []
    for j, mask in enumerate(masks):
        members = [int(m) for m in np.flatnonzero(mask)]
        key = frozenset(members)
        extends = next((m for m in members if key - {m} in seen), None)
        if extends is None:
            plans.append((-1, tuple(members)))
        else:
            plans.append((seen[key - {extends}], (extends,)))
        seen.setdefault(key, j)
    return tuple(plans)


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
    quality = np.asarray(quality, dtype=float)
    _check_models(quality, uncertainty)
    noise = error_samples(uncertainty, n_samples)
    if quality.ndim == 1:
        return supermodel_values(quality[None, :], noise, masks)[0]
    return supermodel_values(quality, noise, masks)


def _check_models(quality: FloatArray, uncertainty: Uncertainty) -> None:
    n_models = quality.shape[-1]
    if uncertainty.n_models != n_models:
        raise InvalidInputError(
            f"uncertainty covers {uncertainty.n_models} models but quality has {n_models}"
        )


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
