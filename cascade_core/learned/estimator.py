"""Learned ex-ante scores as features of the calibrated quality estimator.

The scores of a learned router (`routers`) are not probabilities of a correct answer; cascade
routing needs calibrated P(correct) per model and state. So the scores enter the existing
logistic estimator (`cascade_core.estimators`) through its user-embedding slot, next to prompt
length, task and the post-hoc signals of the models that ran. On the rows the regressions are
fitted on, the scores are cross-fitted (each fold scored by a router trained on the other
folds), so the regressions learn how reliable an out-of-sample score is; the regressions
are themselves cross-fitted (`fit_quality_estimator`), so Σ_R and budgets are fitted on
out-of-fold estimates. New prompts are scored by the router trained on every training row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cascade_core.estimators import LogisticQualityEstimator
from cascade_core.fitting import fit_quality_estimator, staged_estimates
from cascade_core.learned.routers import ExAnteScorer, crossfit_scores
from cascade_core.replay import ReplayDataset
from cascade_core.replay.simulate import StagedEstimates


@dataclass
class LearnedQualityEstimator:
    """A fitted router plus the logistic estimator that uses its scores as features."""

    scorer: ExAnteScorer
    estimator: LogisticQualityEstimator
    train_scores: np.ndarray | None = None  # out-of-fold router scores of the training rows

    @property
    def name(self) -> str:
        return self.scorer.name

    def features(self, dataset: ReplayDataset, embeddings: np.ndarray) -> np.ndarray:
        return self.scorer.score(embeddings, dataset.prompts)

    def staged(
        self, dataset: ReplayDataset, embeddings: np.ndarray, cost: np.ndarray | None = None
    ) -> StagedEstimates:
        features = self.features(dataset, embeddings)
        return staged_estimates(self.estimator, dataset, cost=cost, embeddings=features)


def fit_learned_estimator(
    factory: Callable[[], ExAnteScorer],
    train: ReplayDataset,
    embeddings: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
) -> LearnedQualityEstimator:
    """Fit the router on every training row and cross-fit the regressions on its
    out-of-fold scores; test data is never touched."""
    k = train.n_models
    oof = crossfit_scores(
        factory, embeddings, train.quality, folds=folds, seed=seed, prompts=train.prompts
    )
    scorer = factory().fit(embeddings, k, quality=train.quality, prompts=train.prompts)
    estimator = fit_quality_estimator(train, fit_embeddings=oof, n_folds=folds, seed=seed)
    return LearnedQualityEstimator(scorer, estimator, oof)
