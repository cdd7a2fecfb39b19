"""The paper's synthetic estimators for data without quality signals (e.g. RouterBench).

RouterBench logs no logprobs, so the paper (Dekoninck et al., arXiv 2410.10347, Sec. 5 and
its code ``eth-sri/cascade-routing``, ``GroundTruthQualityComputer``) evaluates strategies
with estimates made from the ground truth on purpose: per query and model,

* ex-ante estimate  = truth + N(0, sigma_before^2),
* post-hoc estimate = truth + N(0, sigma_after^2)  (the answer reveals more, so less noise),

each then mapped back to the quality scale by a per-model linear regression of the truth on
the noisy value (the best linear estimate of the truth given the noisy number). The
uncertainty of a model that has not run is sigma_m = std(ex-ante - post-hoc) per model, of
one that ran 0; errors are independent across models (the noise is).

Noise levels, taken from the paper's ``scripts/routerbench.py``:

    level    sigma_before  sigma_after
    low          0.6           0.3
    medium       1.6           0.8
    high         2.4           1.2

The paper also perturbs the cost estimates (e.g. low: N(0, 2e-4) before, N(0, 5e-5) after).
We do not: on replay data the logged cost is the cost estimate (it is what was paid), so only
quality estimation differs between the levels. The regressions and sigma are fitted on the
training part; the noise of every split is drawn from its own seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cascade_core.estimates import Uncertainty
from cascade_core.replay import ReplayDataset
from cascade_core.replay.simulate import StagedEstimates


@dataclass(frozen=True)
class NoiseLevel:
    """Standard deviations of the Gaussian noise added to the truth, before and after a run."""

    name: str
    before: float
    after: float


NOISE_LEVELS: dict[str, NoiseLevel] = {
    "low": NoiseLevel("low", 0.6, 0.3),
    "medium": NoiseLevel("medium", 1.6, 0.8),
    "high": NoiseLevel("high", 2.4, 1.2),
}


def noise_level(name: str) -> NoiseLevel:
    try:
        return NOISE_LEVELS[name]
    except KeyError:
        raise ValueError(
            f"unknown noise level {name!r}; choose one of {', '.join(NOISE_LEVELS)}"
        ) from None


def _linear_fit(noisy: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, least squares truth ~ intercept + slope * noisy."""
    centred = noisy - noisy.mean(axis=0)
    variance = (centred**2).sum(axis=0)
    slope = np.where(
        variance > 0,
        (centred * (truth - truth.mean(axis=0))).sum(axis=0) / np.where(variance > 0, variance, 1),
        0.0,
    )
    return slope, truth.mean(axis=0) - slope * noisy.mean(axis=0)


@dataclass(frozen=True)
class NoisyOracleEstimator:
    """Fitted calibration (slope, intercept) per model for both noise draws, and sigma."""

    level: NoiseLevel
    model_names: tuple[str, ...]
    slope_before: np.ndarray
    intercept_before: np.ndarray
    slope_after: np.ndarray
    intercept_after: np.ndarray
    sigma: np.ndarray

    def estimates(self, dataset: ReplayDataset, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(ex-ante, post-hoc) estimates (n, k) in [0, 1] for a replay, noise from ``seed``."""
        truth = dataset.select_models(self.model_names).quality
        before, after = _draw(truth, self.level, seed)
        ante = np.clip(self.intercept_before + self.slope_before * before, 0.0, 1.0)
        post = np.clip(self.intercept_after + self.slope_after * after, 0.0, 1.0)
        return ante, post

    def staged(self, dataset: ReplayDataset, seed: int) -> StagedEstimates:
        """Staged estimates with the logged cost: post-hoc once a model ran, else ex-ante."""
        data = dataset.select_models(self.model_names)
        ante, post = self.estimates(data, seed)
        k = len(self.model_names)
        sigma = self.sigma

        def estimator(ran: frozenset[int]) -> tuple[np.ndarray, Uncertainty]:
            mask = np.zeros(k, dtype=bool)
            mask[list(ran)] = True
            return np.where(mask, post, ante), Uncertainty.independent_std(
                np.where(mask, 0.0, sigma)
            )

        return StagedEstimates(data.cost, estimator)


def _draw(truth: np.ndarray, level: NoiseLevel, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    before = truth + rng.normal(0.0, level.before, truth.shape)
    after = truth + rng.normal(0.0, level.after, truth.shape)
    return before, after


def fit_noisy_oracle(
    fit_data: ReplayDataset, level: NoiseLevel | str, seed: int = 0
) -> NoisyOracleEstimator:
    """Fit the per-model calibration and sigma on ``fit_data`` (a training part)."""
    level = noise_level(level) if isinstance(level, str) else level
    truth = fit_data.quality
    before, after = _draw(truth, level, seed)
    slope_b, icpt_b = _linear_fit(before, truth)
    slope_a, icpt_a = _linear_fit(after, truth)
    ante = np.clip(icpt_b + slope_b * before, 0.0, 1.0)
    post = np.clip(icpt_a + slope_a * after, 0.0, 1.0)
    return NoisyOracleEstimator(
        level=level,
        model_names=tuple(fit_data.model_names),
        slope_before=slope_b,
        intercept_before=icpt_b,
        slope_after=slope_a,
        intercept_after=icpt_a,
        sigma=(ante - post).std(axis=0),
    )
