"""Learned ex-ante scores as features of the calibrated quality estimator.

The scores of a learned router (`routers`) are not probabilities of a correct answer; cascade
routing needs calibrated P(correct) per model and state. So the scores enter the existing
logistic estimator (`cascade_core.estimators`) through its user-embedding slot, next to prompt
length, task and the post-hoc signals of the models that ran. On the rows the regressions are
fitted on, the scores are cross-fitted (each fold scored by a router trained on the other
folds), so the regressions learn how reliable an out-of-sample score is; Σ_R is measured on
the holdout with the router trained on all fitting rows, the one used on new prompts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cascade_core.batch import StagedEstimates
from cascade_core.estimators import LogisticQualityEstimator, fit_quality_estimator
from cascade_core.learned.routers import ExAnteScorer, crossfit_scores
from cascade_core.replay import ReplayDataset


@dataclass
class LearnedQualityEstimator:
    """A fitted router plus the logistic estimator that uses its scores as features."""

    scorer: ExAnteScorer
    estimator: LogisticQualityEstimator

    @property
    def name(self) -> str:
        return self.scorer.name

    def features(self, dataset: ReplayDataset, embeddings: np.ndarray) -> np.ndarray:
        return self.scorer.score(embeddings, dataset.prompts)

    def staged(
        self, dataset: ReplayDataset, embeddings: np.ndarray, cost: np.ndarray | None = None
    ) -> StagedEstimates:
        features = self.features(dataset, embeddings)
        return self.estimator.staged(dataset, cost=cost, embeddings=features)

    def with_sigma_scale(self, scale: float) -> LearnedQualityEstimator:
        return LearnedQualityEstimator(self.scorer, self.estimator.with_sigma_scale(scale))


def fit_learned_estimator(
    factory: Callable[[], ExAnteScorer],
    fit_data: ReplayDataset,
    holdout: ReplayDataset,
    fit_embeddings: np.ndarray,
    holdout_embeddings: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
) -> LearnedQualityEstimator:
    """Fit the router on ``fit_data`` (cross-fitted scores for the regressions) and Σ_R on
    ``holdout``; neither touches test data."""
    k = fit_data.n_models
    oof = crossfit_scores(
        factory, fit_embeddings, fit_data.quality, folds=folds, seed=seed, prompts=fit_data.prompts
    )
    scorer = factory().fit(fit_embeddings, k, quality=fit_data.quality, prompts=fit_data.prompts)
    estimator = fit_quality_estimator(
        fit_data,
        holdout,
        fit_embeddings=oof,
        holdout_embeddings=scorer.score(holdout_embeddings, holdout.prompts),
    )
    return LearnedQualityEstimator(scorer, estimator)
