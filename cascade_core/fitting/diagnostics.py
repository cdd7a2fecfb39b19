"""How good the quality estimates are as probabilities, per (model, state).

A strategy trusts an estimate of 0.8 to be right 80% of the time; these scores say whether it
is. Log loss (what the fitter minimises), the Brier score (mean squared error of the
probability) and the expected calibration error (ECE: 10 equal-width bins, the gap between
mean estimate and accuracy, weighted by the bin's share of rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cascade_core.estimators.quality import LogisticQualityEstimator, StateKey
from cascade_core.fitting.features import table_from_dataset
from cascade_core.fitting.quality import log_loss
from cascade_core.replay import ReplayDataset

ECE_BINS = 10


def brier(target: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((np.asarray(p) - np.asarray(target)) ** 2))


def calibration_error(target: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over ``bins`` equal-width bins of the estimate."""
    p, target = np.asarray(p, float), np.asarray(target, float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(float(target[inside].mean() - p[inside].mean()))
    return total


def scores(target: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "log_loss": log_loss(target, p),
        "brier": brier(target, p),
        "ece": calibration_error(target, p),
    }


def estimator_diagnostics(
    estimator: LogisticQualityEstimator,
    dataset: ReplayDataset,
    states: Sequence[StateKey] | None = None,
) -> list[dict[str, Any]]:
    """Per (model, state): the scores of its estimates on ``dataset`` and, for a fitted
    estimator, what CV chose and the CV log loss of the choice and of the floor.

    ``states`` defaults to the empty state, each model alone, and all models.
    """
    k = estimator.n_models
    names = estimator.spec.model_names
    data = dataset.select_models(names)
    table = table_from_dataset(estimator.spec, data)
    if states is None:
        states = [(), *((m,) for m in range(k)), tuple(range(k))]
    rows: list[dict[str, Any]] = []
    for state in states:
        predicted = estimator.quality(table, state)
        for m in range(k):
            entry: dict[str, Any] = {
                "model": names[m],
                "ran": [names[r] for r in state],
                **scores(data.quality[:, m], predicted[:, m]),
            }
            if estimator.crossfit is not None:
                choice = estimator.crossfit.choices[(m, tuple(state))]
                entry.update(
                    features=choice.features,
                    l2=choice.l2,
                    cv_log_loss=choice.cv_log_loss,
                    floor_cv_log_loss=choice.floor_cv_log_loss,
                )
            rows.append(entry)
    return rows
