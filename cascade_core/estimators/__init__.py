"""Quality and cost estimators fitted on logs, and the paper's synthetic ones.

* `features`: post-hoc / ex-ante feature assembly per state (set of models already run).
* `logistic`: a numpy-only logistic regression (fitted with scipy, no scikit-learn needed).
* `quality`: cross-fitted, calibrated P(correct) per (model, state) and Σ_R from OOF rows.
* `diagnostics`: log loss, Brier score and calibration error per (model, state).
* `synthetic`: ground truth plus Gaussian noise (low/medium/high), for data without signals.
* `costs`: token-price cost estimates and the logged cost for replays.
* `profile`: versioned JSON save/load.
"""

from cascade_core.estimators.costs import (
    TokenCostModel,
    expected_output_tokens,
    litellm_prices,
)
from cascade_core.estimators.features import (
    FeatureSpec,
    FeatureTable,
    QueryObservation,
    posthoc_from_confidence,
    posthoc_from_logprobs,
    spec_for_dataset,
    table_from_dataset,
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
from cascade_core.estimators.quality import (
    CrossFit,
    EstimatorChoice,
    LogisticQualityEstimator,
    fit_quality_estimator,
    oof_covariances,
)
from cascade_core.estimators.synthetic import (
    NOISE_LEVELS,
    NoiseLevel,
    NoisyOracleEstimator,
    fit_noisy_oracle,
    noise_level,
)

__all__ = [
    "NOISE_LEVELS",
    "PROFILE_VERSION",
    "CrossFit",
    "EstimatorChoice",
    "FeatureSpec",
    "FeatureTable",
    "LogisticModel",
    "LogisticQualityEstimator",
    "NoiseLevel",
    "NoisyOracleEstimator",
    "ProfileVersionError",
    "QueryObservation",
    "TokenCostModel",
    "expected_output_tokens",
    "fit_logistic",
    "fit_noisy_oracle",
    "fit_quality_estimator",
    "litellm_prices",
    "load_profile",
    "noise_level",
    "oof_covariances",
    "posthoc_from_confidence",
    "posthoc_from_logprobs",
    "profile_from_dict",
    "profile_to_dict",
    "save_profile",
    "spec_for_dataset",
    "table_from_dataset",
    "table_from_observation",
]
