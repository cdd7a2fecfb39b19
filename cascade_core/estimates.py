"""Per-query quality and cost estimates, and the uncertainty model around them.

The selection core never sees prompts or answers: it sees, per model, a quality mean in [0, 1],
a cost in USD, and how uncertain the quality means are. Everything is validated once here so
the strategies can stay free of defensive checks on their hot paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from cascade_core.errors import InvalidInputError

FloatArray = np.ndarray


def as_model_set(models: Iterable[int] | np.ndarray | None, n_models: int) -> frozenset[int]:
    """Normalise a collection of model indices (or a boolean mask) to a frozenset."""
    if models is None or (isinstance(models, (tuple, list, set, frozenset)) and not models):
        return frozenset()  # the first decision of every request: skip the array round trip
    if isinstance(models, (set, frozenset)):
        models = sorted(models)
    array = np.asarray(models, dtype=None if len(models) else np.intp)
    if array.dtype == bool:
        if array.shape != (n_models,):
            raise InvalidInputError(
                f"ran: a boolean mask must have one entry per model ({n_models}), "
                f"got shape {array.shape}"
            )
        return frozenset(int(i) for i in np.flatnonzero(array))
    chosen = frozenset(int(i) for i in array.ravel())
    bad = [i for i in chosen if not 0 <= i < n_models]
    if bad:
        raise InvalidInputError(f"ran: model indices {sorted(bad)} are outside 0..{n_models - 1}")
    return chosen


def check_quality(name: str, values: FloatArray) -> FloatArray:
    """Refuse NaN and values outside [0, 1]: every estimate is a probability of being right."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise InvalidInputError(f"{name}: the model list is empty; give at least one model")
    if np.isnan(values).any():
        raise InvalidInputError(f"{name}: contains NaN; give a quality estimate for every model")
    if (values < 0).any() or (values > 1).any():
        raise InvalidInputError(
            f"{name}: qualities must lie in [0, 1], got range "
            f"[{values.min():.4g}, {values.max():.4g}]; clip or rescale the estimates"
        )
    return values


def check_cost(name: str, values: FloatArray) -> FloatArray:
    """Refuse NaN, infinite and negative costs: a cost is a price actually paid in USD."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise InvalidInputError(f"{name}: the model list is empty; give at least one model")
    if not np.isfinite(values).all():
        raise InvalidInputError(f"{name}: contains NaN or infinity; give a finite USD cost")
    if (values < 0).any():
        raise InvalidInputError(f"{name}: costs must be >= 0 USD, got min {values.min():.4g}")
    return values


@dataclass(frozen=True)
class Uncertainty:
    """How far the quality means may be from the truth: a multivariate normal error model.

    The error covariance is factored once (``factor @ factor.T == covariance``) so each decision
    only multiplies fixed standard-normal samples by the factor. An eigen-decomposition is used
    instead of Cholesky because the covariance is singular by design: models that already ran
    have (close to) zero variance.
    """

    factor: FloatArray
    independent: bool

    @property
    def n_models(self) -> int:
        return int(self.factor.shape[0])

    @classmethod
    def independent_std(cls, std: Iterable[float] | FloatArray) -> Uncertainty:
        """Independent errors with the given standard deviations (not variances)."""
        std = np.asarray(std, dtype=float)
        if std.ndim != 1:
            raise InvalidInputError(f"std: expected a 1-d array, got shape {std.shape}")
        if not np.isfinite(std).all() or (std < 0).any():
            raise InvalidInputError("std: standard deviations must be finite and >= 0")
        return cls(factor=std.copy(), independent=True)

    @classmethod
    def independent_variance(cls, variance: Iterable[float] | FloatArray) -> Uncertainty:
        """Independent errors given as variances; the samples are scaled by their square root."""
        variance = np.asarray(variance, dtype=float)
        if not np.isfinite(variance).all() or (variance < 0).any():
            raise InvalidInputError("variance: variances must be finite and >= 0")
        return cls.independent_std(np.sqrt(variance))

    @classmethod
    def from_covariance(cls, covariance: FloatArray) -> Uncertainty:
        """Correlated errors; the covariance must be symmetric positive semi-definite."""
        cov = np.asarray(covariance, dtype=float)
        if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
            raise InvalidInputError(f"covariance: expected a square matrix, got shape {cov.shape}")
        if not np.isfinite(cov).all():
            raise InvalidInputError("covariance: contains NaN or infinity")
        if not np.allclose(cov, cov.T, atol=1e-10):
            raise InvalidInputError("covariance: must be symmetric")
        eigenvalues, eigenvectors = np.linalg.eigh(cov)
        tolerance = 1e-9 * max(1.0, float(np.abs(eigenvalues).max(initial=0.0)))
        if eigenvalues.min(initial=0.0) < -tolerance:
            raise InvalidInputError(
                f"covariance: not positive semi-definite (smallest eigenvalue "
                f"{eigenvalues.min():.3g}); estimate it from data or add a small ridge"
            )
        # The symmetric square root: for a diagonal covariance it is exactly diag(std), so the
        # correlated and independent paths see the same samples.
        root = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))
        return cls(factor=root @ eigenvectors.T, independent=False)

    @classmethod
    def none(cls, n_models: int) -> Uncertainty:
        """No uncertainty: E[max] collapses to the max of the means."""
        return cls.independent_std(np.zeros(n_models))

    @property
    def covariance(self) -> FloatArray:
        if self.independent:
            return np.diag(self.factor**2)
        return self.factor @ self.factor.T

    def noise(self, standard_normal: FloatArray) -> FloatArray:
        """Map standard-normal samples of shape (S, k) to error samples with this covariance."""
        if self.independent:
            return standard_normal * self.factor
        return standard_normal @ self.factor.T


@dataclass(frozen=True)
class QueryEstimates:
    """What the core knows about one query in one state (set of models already run).

    ``quality[m]`` is the post-hoc estimate for models that ran and the ex-ante estimate for the
    rest; ``cost[m]`` the (estimated) USD cost of running model m on this query.
    """

    quality: FloatArray
    cost: FloatArray
    uncertainty: Uncertainty

    def __post_init__(self) -> None:
        quality = check_quality("quality", self.quality)
        cost = check_cost("cost", self.cost)
        if quality.ndim != 1 or cost.shape != quality.shape:
            raise InvalidInputError(
                f"quality and cost must be 1-d with one entry per model; got shapes "
                f"{quality.shape} and {cost.shape}"
            )
        if self.uncertainty.n_models != quality.shape[0]:
            raise InvalidInputError(
                f"uncertainty covers {self.uncertainty.n_models} models but quality has "
                f"{quality.shape[0]}; build it for the same model list"
            )
        object.__setattr__(self, "quality", quality)
        object.__setattr__(self, "cost", cost)

    @property
    def n_models(self) -> int:
        return int(self.quality.shape[0])

    @classmethod
    def create(
        cls,
        quality: Iterable[float],
        cost: Iterable[float],
        *,
        covariance: FloatArray | None = None,
        std: Iterable[float] | None = None,
    ) -> QueryEstimates:
        """Convenience constructor: give a covariance (correlated) or std (independent)."""
        quality_arr = np.asarray(quality, dtype=float)
        if covariance is not None and std is not None:
            raise InvalidInputError("give either covariance or std, not both")
        if covariance is not None:
            uncertainty = Uncertainty.from_covariance(covariance)
        elif std is not None:
            uncertainty = Uncertainty.independent_std(std)
        else:
            uncertainty = Uncertainty.none(quality_arr.shape[0] if quality_arr.ndim else 0)
        return cls(quality=quality_arr, cost=np.asarray(cost, dtype=float), uncertainty=uncertainty)
