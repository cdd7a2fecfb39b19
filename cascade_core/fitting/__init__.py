"""Fitting estimators and budgets on logged replays: the offline half of
`cascade_core.estimators` (which the live engine applies) and of `cascade_core.budget`.

* `features`: the feature spec and table of a whole `ReplayDataset`.
* `quality`: cross-fitted (model, state) regressions and Σ_R; OOF and replay staged estimates.
* `diagnostics`: log loss, Brier score and calibration error per (model, state).
* `synthetic`: ground truth plus Gaussian noise (low/medium/high), for data without signals.
* `budget`: a strategy's lambda or threshold fitted to an average-cost budget by replay.

It sits above `cascade_core.replay` (it reads ReplayDataset and runs the replay) and below
`bench`, `calibrate` and `learned`; the engine never imports it.
"""

from cascade_core.fitting.budget import (
    BudgetFit,
    best_within_budget,
    fit_best_to_budgets,
    fit_budget,
    fit_to_budgets,
)
from cascade_core.fitting.diagnostics import estimator_diagnostics
from cascade_core.fitting.features import spec_for_dataset, table_from_dataset
from cascade_core.fitting.quality import (
    crossfit_staged,
    fit_quality_estimator,
    oof_covariances,
    staged_estimates,
)
from cascade_core.fitting.synthetic import (
    NOISE_LEVELS,
    NoiseLevel,
    NoisyOracleEstimator,
    fit_noisy_oracle,
    noise_level,
)

__all__ = [
    "NOISE_LEVELS",
    "BudgetFit",
    "NoiseLevel",
    "NoisyOracleEstimator",
    "best_within_budget",
    "crossfit_staged",
    "estimator_diagnostics",
    "fit_best_to_budgets",
    "fit_budget",
    "fit_noisy_oracle",
    "fit_quality_estimator",
    "fit_to_budgets",
    "noise_level",
    "oof_covariances",
    "spec_for_dataset",
    "staged_estimates",
    "table_from_dataset",
]
