"""Fitted quality estimators: a calibrated P(correct) per (model, set of models already run).

Why one logistic regression per (model, state) rather than one per model: after running R,
what the answers of R reveal changes the estimate of *every* model, not only of those that
ran (a confident, agreeing pair of small models makes a large model's success likely too).
Each (m, R) model sees exactly the features available in state R (`features.FeatureSpec`).

Uncertainty: the selection core treats the final quality as a normal around the current
estimate. Its covariance in state R is measured, not assumed: Σ_R is the covariance of
(estimate given R - estimate given all models) on held-back data, i.e. on rows of the
training split that were not used to fit the regressions, so it reflects real
out-of-sample error. In the state "all models ran" the estimate is final and Σ is 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from cascade_core.batch import StagedEstimates
from cascade_core.estimates import QueryEstimates, Uncertainty
from cascade_core.estimators.features import (
    FeatureSpec,
    FeatureTable,
    QueryObservation,
    spec_for_dataset,
    table_from_dataset,
    table_from_observation,
)
from cascade_core.estimators.logistic import LogisticModel, fit_logistic
from cascade_core.replay import ReplayDataset

StateKey = tuple[int, ...]
# Fitting one regression per (model, state) costs k * 2^k fits; beyond this many models the
# caller should select models first (the message says so) instead of waiting minutes.
MAX_FITTED_MODELS = 10


def all_states(n_models: int) -> Iterator[StateKey]:
    """Every subset of the models, smallest first, as sorted tuples."""
    for size in range(n_models + 1):
        yield from combinations(range(n_models), size)


@dataclass
class LogisticQualityEstimator:
    """Per state: one `LogisticModel` per model and the error covariance Σ_R.

    Immutable after fitting; the per-state `Uncertainty` objects are cached so their error
    samples are computed once and shared by every request.
    """

    spec: FeatureSpec
    models: dict[StateKey, list[LogisticModel]]
    covariances: dict[StateKey, np.ndarray]
    _uncertainty: dict[StateKey, Uncertainty] = field(default_factory=dict, repr=False)

    @property
    def n_models(self) -> int:
        return self.spec.n_models

    def with_sigma_scale(self, scale: float) -> LogisticQualityEstimator:
        """The same regressions with every Σ_R multiplied by ``scale`` (>= 0).

        Why: Σ_R is measured against the estimate given *all* models, which overstates what
        running only a few more models reveals; a caller may shrink it, choosing the factor on
        calibration data (the bench does). The scaled Σ is what a saved profile then holds.
        """
        if not scale >= 0:
            raise ValueError(f"scale: must be >= 0, got {scale}")
        return LogisticQualityEstimator(
            spec=self.spec,
            models=self.models,
            covariances={s: c * scale for s, c in self.covariances.items()},
        )

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

    def state_estimator(
        self, table: FeatureTable
    ) -> Callable[[frozenset[int]], tuple[np.ndarray, Uncertainty]]:
        """The callable `StagedEstimates` expects, for the queries of ``table``."""

        def estimator(ran: frozenset[int]) -> tuple[np.ndarray, Uncertainty]:
            return self.quality(table, ran), self.uncertainty(ran)

        return estimator

    def staged(
        self,
        dataset: ReplayDataset,
        cost: np.ndarray | None = None,
        embeddings: np.ndarray | None = None,
    ) -> StagedEstimates:
        """Staged estimates for a replay; costs default to the logged cost (what replay pays)."""
        data = dataset.select_models(self.spec.model_names)
        table = table_from_dataset(self.spec, data, embeddings)
        return StagedEstimates(data.cost if cost is None else cost, self.state_estimator(table))

    def predict_one(
        self, observation: QueryObservation, ran: frozenset[int] | StateKey
    ) -> tuple[np.ndarray, Uncertainty]:
        """Live path: quality (k,) of one query in state ``ran`` and its uncertainty."""
        table = table_from_observation(self.spec, observation)
        return self.quality(table, ran)[0], self.uncertainty(ran)

    def estimates_one(
        self, observation: QueryObservation, ran: frozenset[int] | StateKey, cost: np.ndarray
    ) -> QueryEstimates:
        """`predict_one` plus a cost vector, ready for `Strategy.decide`."""
        quality, uncertainty = self.predict_one(observation, ran)
        return QueryEstimates(
            quality=quality, cost=np.asarray(cost, float), uncertainty=uncertainty
        )


def fit_quality_estimator(
    fit_data: ReplayDataset,
    holdout: ReplayDataset,
    *,
    spec: FeatureSpec | None = None,
    fit_embeddings: np.ndarray | None = None,
    holdout_embeddings: np.ndarray | None = None,
) -> LogisticQualityEstimator:
    """Fit the regressions on ``fit_data`` and Σ_R on ``holdout`` (disjoint rows of train).

    With an empty holdout Σ is measured on ``fit_data`` instead, which understates the error;
    give a holdout whenever the data allows.
    """
    spec = spec or spec_for_dataset(
        fit_data, 0 if fit_embeddings is None else fit_embeddings.shape[1]
    )
    if spec.n_models > MAX_FITTED_MODELS:
        raise ValueError(
            f"{spec.n_models} models need {spec.n_models * 2**spec.n_models} regressions; "
            f"select at most {MAX_FITTED_MODELS} models (bench --models) or use --noise"
        )
    data = fit_data.select_models(spec.model_names)
    table = table_from_dataset(spec, data, fit_embeddings)
    models: dict[StateKey, list[LogisticModel]] = {}
    for state in all_states(spec.n_models):
        x = table.state_matrix(state)
        models[state] = [fit_logistic(x, data.quality[:, m]) for m in range(spec.n_models)]
    estimator = LogisticQualityEstimator(spec=spec, models=models, covariances={})
    held = holdout if holdout.n_queries >= 2 else fit_data
    held_table = table_from_dataset(
        spec,
        held.select_models(spec.model_names),
        holdout_embeddings if held is holdout else fit_embeddings,
    )
    estimator.covariances.update(error_covariances(estimator, held_table))
    return estimator


def error_covariances(
    estimator: LogisticQualityEstimator, table: FeatureTable
) -> dict[StateKey, np.ndarray]:
    """Σ_R = Cov(estimate given R - estimate given all models) over the rows of ``table``."""
    k = estimator.n_models
    final = estimator.quality(table, tuple(range(k)))
    covariances: dict[StateKey, np.ndarray] = {}
    for state in all_states(k):
        if len(state) == k:
            covariances[state] = np.zeros((k, k))
            continue
        error = estimator.quality(table, state) - final
        cov = np.atleast_2d(np.cov(error, rowvar=False))
        covariances[state] = (cov + cov.T) / 2  # exact symmetry for the PSD check
    return covariances
