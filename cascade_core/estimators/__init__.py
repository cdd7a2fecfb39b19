"""Quality estimators as the live engine applies them (no replay data needed).

* `features`: post-hoc / ex-ante feature assembly per state (set of models already run).
* `logistic`: a numpy-only logistic regression (fitted with scipy, no scikit-learn needed).
* `quality`: a calibrated P(correct) per (model, state) and Σ_R, applied to one query or many.
* `profile`: versioned JSON save/load.

Fitting them on logged replays (cross-fitting, diagnostics, the paper's synthetic
estimators, budgets) is `cascade_core.fitting`, a layer above the replay.
"""

from cascade_core.estimators.features import (
    FeatureSpec,
    FeatureTable,
    QueryObservation,
    posthoc_from_confidence,
    posthoc_from_logprobs,
    table_from_observation,
)
from cascade_core.estimators.logistic import LogisticModel, fit_logistic
from cascade_core.estimators.profile import (
    PROFILE_VERSION,
    ProfileVersionError,
    load_profile,
    profile_from_dict,
    profile_to_dict,
    save_profile,
)
from cascade_core.estimators.quality import CrossFit, EstimatorChoice, LogisticQualityEstimator

__all__ = [
    "PROFILE_VERSION",
    "CrossFit",
    "EstimatorChoice",
    "FeatureSpec",
    "FeatureTable",
    "LogisticModel",
    "LogisticQualityEstimator",
    "ProfileVersionError",
    "QueryObservation",
    "fit_logistic",
    "load_profile",
    "posthoc_from_confidence",
    "posthoc_from_logprobs",
    "profile_from_dict",
    "profile_to_dict",
    "save_profile",
    "table_from_observation",
]
