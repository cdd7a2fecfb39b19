"""A numpy-only logistic regression: P(correct) from standardised features.

Why our own: the live path must not import scikit-learn, and a fitted model has to survive a
JSON round trip bit for bit. Fitting uses Newton's method on the same L2-penalised log-loss as
scikit-learn's default (``C = 1``), so results match sklearn's ``LogisticRegression`` closely;
prediction is one dot product and a sigmoid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import expit

from cascade_core.errors import InvalidInputError
from cascade_core.validation import StrictNumber, field_path, validate_as

# The L2 penalty on the weights of standardised features: 1.0 is scikit-learn's default C=1.
L2_PENALTY = 1.0
# A tiny penalty on the intercept keeps it finite when a model is always (or never) right in
# the fitting data; it shrinks a logit of 10 by well under 1e-3.
INTERCEPT_PENALTY = 1e-4
# A constant feature is given scale 1 so standardising never divides by zero.
_MIN_SCALE = 1e-12
# Newton stops once no coefficient moves by more than this (far below any effect on P), or
# after this many steps (convergence is quadratic; the cap is a safeguard).
_NEWTON_TOLERANCE = 1e-10
_NEWTON_STEPS = 50


@dataclass(frozen=True)
class LogisticModel:
    """``P = sigmoid(intercept + coef · (x - mean) / scale)``; NaN features count as the mean.

    Replacing a missing feature by its training mean is the neutral choice: the feature then
    contributes nothing and the other features (or the intercept, the base rate) decide.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @property
    def n_features(self) -> int:
        return int(self.coef.shape[0])

    def standardise(self, features: np.ndarray) -> np.ndarray:
        z = (np.asarray(features, dtype=float) - self.mean) / self.scale
        return np.where(np.isnan(z), 0.0, z)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """P(correct) for each row of ``features`` (n, d), or for one vector (d,)."""
        return expit(self.standardise(features) @ self.coef + self.intercept)

    def to_dict(self) -> dict[str, object]:
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(
        cls,
        data: Any,
        n_features: int | None = None,
        *,
        source: str = "logistic model",
        at: Sequence[str | int] = (),
    ) -> LogisticModel:
        """The model `to_dict` wrote, checked completely: finite numbers, positive scales,
        and ``n_features`` (default: as many as ``coef`` has) in each of mean, scale, coef.

        Errors are one `InvalidInputError` naming ``source`` and the field's location ``at``
        inside it, so a bad profile fails when it is loaded, not on every request.
        """
        fields = validate_as(LogisticModelFields, data, source, at)
        expected = len(fields.coef) if n_features is None else n_features
        for name in ("mean", "scale", "coef"):
            got = len(getattr(fields, name))
            if got != expected:
                raise InvalidInputError(
                    f"{source}: {field_path([*at, name])}: expected {expected} numbers, got {got}"
                )
        return cls(
            mean=np.asarray(fields.mean, dtype=float),
            scale=np.asarray(fields.scale, dtype=float),
            coef=np.asarray(fields.coef, dtype=float),
            intercept=fields.intercept,
        )


class LogisticModelFields(BaseModel):
    """The JSON shape of a `LogisticModel` (`LogisticModel.to_dict`)."""

    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True)

    mean: list[StrictNumber]
    scale: list[Annotated[StrictNumber, Field(gt=0)]]
    coef: list[StrictNumber]
    intercept: StrictNumber


def fit_logistic(
    features: np.ndarray, target: np.ndarray, *, l2: float = L2_PENALTY
) -> LogisticModel:
    """Fit on rows ``features`` (n, d) with targets in [0, 1] (graded scores are fine).

    Column means and standard deviations ignore NaN; a column that is NaN everywhere gets mean
    0 and scale 1 (it then never contributes).
    """
    x = np.asarray(features, dtype=float)
    y = np.asarray(target, dtype=float)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"features {x.shape} and target {y.shape} do not line up")
    with np.errstate(invalid="ignore"), _quiet_nan_warnings():
        mean = np.nanmean(x, axis=0) if x.shape[0] else np.zeros(x.shape[1])
        scale = np.nanstd(x, axis=0) if x.shape[0] else np.ones(x.shape[1])
    mean = np.where(np.isfinite(mean), mean, 0.0)
    scale = np.where(np.isfinite(scale) & (scale > _MIN_SCALE), scale, 1.0)
    z = (x - mean) / scale
    z = np.where(np.isnan(z), 0.0, z)
    d = z.shape[1]

    theta = _newton(np.concatenate([z, np.ones((z.shape[0], 1))], axis=1), y, l2)
    return LogisticModel(mean=mean, scale=scale, coef=theta[:d].copy(), intercept=float(theta[d]))


def _newton(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Newton's method on the penalised log-loss (the last column of ``x`` is the intercept).

    The loss is strictly convex (the penalty makes the Hessian positive definite), so Newton
    converges in a handful of steps; with a few dozen features each step is one small solve,
    far cheaper than a general-purpose optimiser for the k * 2^k fits of an estimator.
    """
    d = x.shape[1]
    penalty = np.full(d, l2)
    penalty[-1] = INTERCEPT_PENALTY
    theta = np.zeros(d)
    for _ in range(_NEWTON_STEPS):
        p = expit(x @ theta)
        grad = x.T @ (p - y) + penalty * theta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hessian, grad)
        theta = theta - step
        if np.max(np.abs(step)) < _NEWTON_TOLERANCE:
            break
    return theta


class _quiet_nan_warnings:
    """nanmean/nanstd warn on all-NaN columns, which are handled explicitly above."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)
