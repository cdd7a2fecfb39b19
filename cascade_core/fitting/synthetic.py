"""The paper's synthetic estimators for data without quality signals (e.g. RouterBench).

RouterBench logs no logprobs, so the paper (Dekoninck et al., arXiv 2410.10347, Sec. 5 and
its code ``eth-sri/cascade-routing``, ``GroundTruthQualityComputer``) evaluates strategies
with estimates made from the ground truth on purpose: per query and model,

* ex-ante estimate  = truth + N(0, sigma_before^2),
* post-hoc estimate = truth + N(0, sigma_after^2)  (the answer reveals more, so less noise),

each then mapped back to a probability of being right by a per-model regression fitted on
the training part. The uncertainty of a model that has not run is sigma_m = std(ex-ante -
post-hoc) per model, of one that ran 0; errors are independent across models (the noise is).

The regression is logistic, not the paper's linear one: for a 0/1 truth and
x = truth + N(0, sigma^2), the best estimate P(truth = 1 | x) is exactly logistic in x (Bayes
with two equal-variance Gaussians), while a line clipped to [0, 1] mis-states it away from
the middle, which is where cascade routing compares one model's chance against another's.
After a run the estimate conditions on both numbers the system has seen (the ex-ante one
and the post-hoc one), as the real estimators keep the ex-ante features in every state.
Chosen on 3-fold cross-validation of the RouterBench train split (docs/bench.md).

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
from cascade_core.estimators.logistic import LogisticModel, fit_logistic
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


@dataclass(frozen=True)
class NoisyOracleEstimator:
    """Fitted per model: P(right) from its ex-ante noisy value (``before``), and from both
    noisy values once it ran (``after``); sigma of the ex-ante estimates."""

    level: NoiseLevel
    model_names: tuple[str, ...]
    before: tuple[LogisticModel, ...]
    after: tuple[LogisticModel, ...]
    sigma: np.ndarray

    def estimates(self, dataset: ReplayDataset, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(ex-ante, post-hoc) estimates (n, k) in [0, 1] for a replay, noise from ``seed``."""
        truth = dataset.select_models(self.model_names).quality
        before, after = _draw(truth, self.level, seed)
        return _calibrated(self.before, self.after, before, after)

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


def _inputs(before: np.ndarray, after: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Model j's regression inputs, for fitting and predicting alike: its ex-ante draw, and
    once it ran both of its draws."""
    return before[:, [j]], np.column_stack([before[:, j], after[:, j]])


def _calibrated(
    fitted_before: tuple[LogisticModel, ...],
    fitted_after: tuple[LogisticModel, ...],
    before: np.ndarray,
    after: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The (ex-ante, post-hoc) probabilities (n, k) of the noisy draws."""
    inputs = [_inputs(before, after, j) for j in range(len(fitted_before))]
    ante = np.column_stack([m.predict(x) for m, (x, _) in zip(fitted_before, inputs, strict=True)])
    post = np.column_stack([m.predict(x) for m, (_, x) in zip(fitted_after, inputs, strict=True)])
    return ante, post


def fit_noisy_oracle(
    fit_data: ReplayDataset, level: NoiseLevel | str, seed: int = 0
) -> NoisyOracleEstimator:
    """Fit the per-model calibrations and sigma on ``fit_data`` (a training part)."""
    level = noise_level(level) if isinstance(level, str) else level
    truth = fit_data.quality
    before, after = _draw(truth, level, seed)
    inputs = [_inputs(before, after, j) for j in range(truth.shape[1])]
    fitted_before = tuple(fit_logistic(x, truth[:, j]) for j, (x, _) in enumerate(inputs))
    fitted_after = tuple(fit_logistic(x, truth[:, j]) for j, (_, x) in enumerate(inputs))
    ante, post = _calibrated(fitted_before, fitted_after, before, after)
    return NoisyOracleEstimator(
        level=level,
        model_names=tuple(fit_data.model_names),
        before=fitted_before,
        after=fitted_after,
        sigma=(ante - post).std(axis=0),
    )
