"""Quality estimators: a calibrated P(correct) per (model, set of models already run).

Why one logistic regression per (model, state) rather than one per model: after running R,
what the answers of R reveal changes the estimate of *every* model, not only of those that
ran (a confident, agreeing pair of small models makes a large model's success likely too).
Each (m, R) model sees exactly the features available in state R (`features.FeatureSpec`).

This module is what the live engine applies (a loaded profile, one query at a time). How the
regressions and Σ_R are chosen and fitted on labelled logs (cross-fitting, the Platt floor,
the honest scale of Σ) is `cascade_core.fitting.quality`, which reads replay data; the
`CrossFit` it leaves on a fitted estimator is plain arrays, kept here so a fitted and a loaded
estimator are one type.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from cascade_core.estimates import Uncertainty
from cascade_core.estimators.features import (
    FeatureSpec,
    FeatureTable,
    QueryObservation,
    table_from_observation,
)
from cascade_core.estimators.logistic import LogisticModel

StateKey = tuple[int, ...]
# Fitting one regression per (model, state) costs k * 2^k fits; beyond this many models the
# caller should select models first (the message says so) instead of waiting minutes.
MAX_FITTED_MODELS = 10


def all_states(n_models: int) -> Iterator[StateKey]:
    """Every subset of the models, smallest first, as sorted tuples."""
    for size in range(n_models + 1):
        yield from combinations(range(n_models), size)


@dataclass(frozen=True)
class EstimatorChoice:
    """What cross-validation chose for one (model, state), and the losses it compared."""

    features: str  # "floor" | "full" | "full_task_slopes"
    l2: float
    cv_log_loss: float
    floor_cv_log_loss: float


@dataclass
class CrossFit:
    """Out-of-fold estimates on the rows an estimator was fitted on, in their order.

    ``quality[R]`` (n, k) are the OOF estimates in state R and ``target`` the true qualities;
    the budgets and Σ are fitted on these. Not saved in a profile: a profile serves new
    queries, which the full-data regressions estimate.
    """

    quality: dict[StateKey, np.ndarray]
    target: np.ndarray
    choices: dict[tuple[int, StateKey], EstimatorChoice]
    sigma_scales: dict[StateKey, float]

    @property
    def n_rows(self) -> int:
        return int(self.target.shape[0])


@dataclass
class LogisticQualityEstimator:
    """Per state: one `LogisticModel` per model and the error covariance Σ_R.

    Immutable after fitting; the per-state `Uncertainty` objects are cached so their error
    samples are computed once and shared by every request. ``crossfit`` is set by the fitter
    (None for a loaded profile).
    """

    spec: FeatureSpec
    models: dict[StateKey, list[LogisticModel]]
    covariances: dict[StateKey, np.ndarray]
    crossfit: CrossFit | None = field(default=None, repr=False, compare=False)
    _uncertainty: dict[StateKey, Uncertainty] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def n_models(self) -> int:
        return self.spec.n_models

    def quality(self, table: FeatureTable, ran: frozenset[int] | StateKey) -> np.ndarray:
        """Estimated P(correct) (n, k) for every query of ``table`` in state ``ran``."""
        key = tuple(sorted(ran))
        x = table.state_matrix(key)
        return np.stack([model.predict(x) for model in self.models[key]], axis=1)

    def uncertainty(self, ran: frozenset[int] | StateKey) -> Uncertainty:
        key = tuple(sorted(ran))
        if key not in self._uncertainty:
            self._uncertainty[key] = Uncertainty.from_covariance(self.covariances[key])
        return self._uncertainty[key]

    def predict_one(
        self, observation: QueryObservation, ran: frozenset[int] | StateKey
    ) -> tuple[np.ndarray, Uncertainty]:
        """Live path: quality (k,) of one query in state ``ran`` and its uncertainty."""
        table = table_from_observation(self.spec, observation)
        return self.quality(table, ran)[0], self.uncertainty(ran)
