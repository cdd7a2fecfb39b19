"""Fit a profile from calibration data: the quality estimators, then lambda.

The profile is the version-1 estimator profile (`cascade_core.estimators.profile`) with an
optional ``"budget"`` key that version-1 readers ignore:

* ``curve``: for a grid of lambdas, the average cost (and quality on labelled rows) the
  configured strategy reaches on the calibration prompts. The engine turns any
  ``budget.target_cost_usd`` into a lambda pair and a mixing probability from it.
* ``lambda`` / ``lambda_expensive`` / ``gamma``: the policy fitted to ``--budget`` or
  ``--target-quality`` (expensive lambda used with probability gamma), the engine's default
  when the config sets neither ``lambda`` nor ``target_cost_usd``.
* ``strategy``: the strategy all of it was fitted for. With cascade routing's ``draft:
  auto`` and a budget or target, both first steps (`CascadeRouting.draft`) are fitted and
  the one with the higher quality on the labelled rows at the budget is kept (for a target
  quality: the one that reaches it cheaper), the rule `bench` applies per budget
  (`best_within_budget`); the curve is that first step's.

Lambda is tuned against the *estimated* costs the engine sees before each call, and its
average spend is measured with the costs really paid; neither needs a reference answer.

The estimators are cross-fitted on every labelled row (`fit_quality_estimator`, the fitter
`bench` uses): on labelled rows lambda sees their out-of-fold estimates, on unlabelled rows the
full-data regressions the profile serves. So what is learnt here is what the engine serves,
and no budget is tuned on estimates fitted to the same answers. The profile's
``calibration`` section names the models dominated on the labelled rows and, per (model,
state), what cross-validation chose (``fit``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cascade_core.budget import parameter_grid
from cascade_core.engine.config import StrategySpec
from cascade_core.errors import InvalidInputError
from cascade_core.estimators import LogisticQualityEstimator, profile_to_dict
from cascade_core.estimators.features import COMBINED_SOURCE
from cascade_core.fitting import (
    best_within_budget,
    fit_budget,
    fit_quality_estimator,
    staged_estimates,
    table_from_dataset,
)
from cascade_core.replay import ReplayDataset
from cascade_core.replay.metrics import dominated_models
from cascade_core.replay.simulate import BatchContext, StagedEstimates, run_batch
from cascade_core.strategies import make_strategy
from cascade_core.strategies.cascade_routing import FIRST_STEPS


@dataclass(frozen=True)
class CalibrationData:
    """All complete rows, which of them are labelled, and both cost matrices (n, k)."""

    dataset: ReplayDataset
    labelled: np.ndarray
    estimated_cost: np.ndarray

    @property
    def true_cost(self) -> np.ndarray:
        return self.dataset.cost


def fit_estimator(data: CalibrationData, *, verifier: bool = False) -> LogisticQualityEstimator:
    """The estimators, fitted on the signals the engine will measure: token logprobs, and
    with a ``verifier`` its P(yes) as the ``confidence_logprob`` signal."""
    labelled = data.dataset.subset(np.flatnonzero(data.labelled), name="labelled")
    if labelled.n_queries < 2:
        raise InvalidInputError(
            f"calibrate: {labelled.n_queries} labelled row(s) with answers from every model; "
            "give references (or --profile to reuse fitted estimators and tune lambda only)"
        )
    estimator = fit_quality_estimator(labelled)
    source = estimator.spec.posthoc_source
    if verifier and source not in ("confidence", COMBINED_SOURCE):
        raise InvalidInputError(
            "calibrate: the verifier judged none of these answers (every one came with token "
            "logprobs), so its P(yes) cannot be fitted; set verifier.verify to always, or "
            "remove verifier"
        )
    if not verifier and source != "logprobs":
        raise InvalidInputError(
            "calibrate: the ladder returned no token logprobs, which the live engine's fitted "
            "profiles need without a verifier; set supports_logprobs for models that return "
            "them, or configure a verifier (its P(yes) is then the signal)"
        )
    return estimator


def calibration_estimates(
    estimator: LogisticQualityEstimator, data: CalibrationData
) -> StagedEstimates:
    """Estimates of every calibration row: out-of-fold on the labelled rows the estimator
    was cross-fitted on (in order), the profile's regressions elsewhere."""
    labelled = np.flatnonzero(data.labelled)
    crossfit = estimator.crossfit
    if crossfit is None or crossfit.n_rows != labelled.size:  # a reused profile
        return staged_estimates(estimator, data.dataset, cost=data.estimated_cost)
    table = table_from_dataset(
        estimator.spec, data.dataset.select_models(estimator.spec.model_names)
    )

    def state(ran: frozenset[int]):
        key = tuple(sorted(ran))
        quality = estimator.quality(table, key)
        quality[labelled] = crossfit.quality[key]
        return quality, estimator.uncertainty(key)

    return StagedEstimates(data.estimated_cost, state)


def lambda_curve(
    strategy_spec: StrategySpec, estimator: LogisticQualityEstimator, data: CalibrationData
) -> list[dict[str, float | None]]:
    """(lambda, mean true cost, mean quality on labelled rows, escalation rate) per value of
    the budget module's lambda grid."""
    context = BatchContext(calibration_estimates(estimator, data))
    strategy = make_strategy(strategy_spec.name, **strategy_spec.parameters(0.0))
    points = []
    for lam in parameter_grid(strategy, float(data.estimated_cost.mean())):
        outcome = run_batch(strategy.with_parameter(lam), context)
        points.append(_point(lam, outcome, data))
    return points


def _point(lam: float, outcome: Any, data: CalibrationData) -> dict[str, float | None]:
    quality = outcome.quality(data.dataset.quality)[data.labelled]
    return {
        "lambda": lam,
        "cost_usd": float(outcome.cost(data.true_cost).mean()),
        "quality": float(quality.mean()) if quality.size else None,
        "escalation_rate": float((outcome.ran.sum(axis=1) > 1).mean()),
    }


def budget_for_quality(curve: list[dict[str, float | None]], target: float) -> float:
    """The least average cost at which mixing two curve points reaches ``target`` quality."""
    points = sorted(
        (p for p in curve if p["quality"] is not None), key=lambda p: (p["cost_usd"], p["lambda"])
    )
    if not points:
        raise InvalidInputError("--target-quality needs labelled rows (references)")
    best = max(p["quality"] for p in points)  # type: ignore[type-var]
    if target > best + 1e-12:
        raise InvalidInputError(
            f"--target-quality {target}: the best the ladder reaches here is {best:.4g}"
        )
    previous = None
    for point in points:
        if point["quality"] >= target:  # type: ignore[operator]
            if previous is None or previous["quality"] >= point["quality"]:  # type: ignore[operator]
                return float(point["cost_usd"])  # type: ignore[arg-type]
            share = (target - previous["quality"]) / (point["quality"] - previous["quality"])  # type: ignore[operator]
            return float(previous["cost_usd"] + share * (point["cost_usd"] - previous["cost_usd"]))  # type: ignore[operator]
        if previous is None or point["quality"] > previous["quality"]:  # type: ignore[operator]
            previous = point
    raise AssertionError("unreachable: target <= best")


def fit_policy(
    strategy_spec: StrategySpec,
    estimator: LogisticQualityEstimator,
    data: CalibrationData,
    budget_usd: float,
) -> dict[str, Any]:
    """Lambda(s) meeting ``budget_usd`` on average over the calibration prompts."""
    context = BatchContext(calibration_estimates(estimator, data))
    strategy = make_strategy(strategy_spec.name, **strategy_spec.parameters(0.0))
    fitted = fit_budget(strategy, context, budget_usd, true_cost=data.true_cost)
    cheap = float(fitted.parameter_cheap)  # type: ignore[arg-type]
    dear = float(fitted.parameter_expensive)  # type: ignore[arg-type]
    gamma = float(fitted.gamma)
    # Expected values of the mixture (a replay would draw the mixing per row, adding noise).
    low = _point(cheap, run_batch(strategy.with_parameter(cheap), context), data)
    high = _point(dear, run_batch(strategy.with_parameter(dear), context), data)

    def mix(name: str) -> float | None:
        if low[name] is None or high[name] is None:
            return None
        return gamma * high[name] + (1 - gamma) * low[name]  # type: ignore[operator]

    return {
        "lambda": cheap,
        "lambda_expensive": dear,
        "gamma": gamma,
        "expected_cost_usd": mix("cost_usd"),
        "expected_quality": mix("quality"),
        "expected_escalation_rate": mix("escalation_rate"),
    }


def build_profile(
    strategy_spec: StrategySpec,
    estimator: LogisticQualityEstimator,
    data: CalibrationData,
    *,
    budget_usd: float | None = None,
    target_quality: float | None = None,
) -> dict[str, Any]:
    """The profile dict (estimators, and the budget section when it applies)."""
    names = list(estimator.spec.model_names)
    profile = profile_to_dict(estimator)
    summary: dict[str, Any] = {
        "rows": data.dataset.n_queries,
        "labelled_rows": int(data.labelled.sum()),
        "model_quality": _mean_quality(data),
        "model_cost_usd": dict(zip(names, data.true_cost.mean(axis=0).tolist(), strict=True)),
        "dominated_models": _dominated(data),
        "fit": _fit_summary(estimator),
    }
    profile["calibration"] = summary
    if strategy_spec.name == "threshold_cascade":
        if budget_usd is not None or target_quality is not None:
            raise InvalidInputError(
                "calibrate: --budget/--target-quality tune lambda, which threshold_cascade "
                "does not use; pick a lambda strategy or set its threshold in the config"
            )
        return profile
    choices = first_step_choices(strategy_spec)
    curves = [lambda_curve(spec, estimator, data) for spec in choices]
    if target_quality is not None:
        budgets = [_budget_for_quality(curve, target_quality) for curve in curves]
        reachable = [i for i, b in enumerate(budgets) if b is not None]
        if not reachable:
            budget_for_quality(curves[0], target_quality)  # raises, naming the best reached
        chosen = min(reachable, key=lambda i: (budgets[i], i))
        budget_usd = budgets[chosen]
        policies = {chosen: fit_policy(choices[chosen], estimator, data, budget_usd)}
    elif budget_usd is not None:
        policies = {0: fit_policy(choices[0], estimator, data, budget_usd)}
        for i, spec in enumerate(choices[1:], start=1):
            try:
                policies[i] = fit_policy(spec, estimator, data, budget_usd)
            except InvalidInputError:  # the budget is below what this first step spends
                continue
        fitted = list(policies)
        chosen = fitted[
            best_within_budget(
                [policies[i]["expected_cost_usd"] for i in fitted],
                [policies[i]["expected_quality"] for i in fitted],
                budget_usd,
            )
        ]
    else:
        policies, chosen = {}, 0
    section: dict[str, Any] = {
        "strategy": choices[chosen].model_dump(),
        "curve": curves[chosen],
        "target_cost_usd": budget_usd,
        "target_quality": target_quality,
        "lambda": None,
    }
    if chosen in policies:
        section.update(policies[chosen])
    profile["budget"] = section
    return profile


def first_step_choices(spec: StrategySpec) -> list[StrategySpec]:
    """The strategies calibrate fits and chooses among: cascade routing with ``draft: auto``
    both ways (planned first), any other spec as it is."""
    if spec.name != "cascade_routing" or spec.draft != "auto":
        return [spec]
    return [spec.model_copy(update={"draft": draft}) for draft in FIRST_STEPS]


def _budget_for_quality(curve: list[dict[str, float | None]], target: float) -> float | None:
    try:
        return budget_for_quality(curve, target)
    except InvalidInputError:
        return None


def _mean_quality(data: CalibrationData) -> dict[str, float | None]:
    names = data.dataset.model_names
    if not data.labelled.any():
        return dict.fromkeys(names)
    means = data.dataset.quality[data.labelled].mean(axis=0)
    return {n: (None if math.isnan(v) else float(v)) for n, v in zip(names, means, strict=True)}


def _dominated(data: CalibrationData) -> list[str]:
    """Models dominated on the labelled rows (`replay.metrics.dominated_models`)."""
    if not data.labelled.any():
        return []
    labelled = data.dataset.subset(np.flatnonzero(data.labelled))
    return [labelled.model_names[j] for j in dominated_models(labelled)]


def _fit_summary(estimator: LogisticQualityEstimator) -> list[dict[str, Any]]:
    """Per (model, state): the features and penalty CV chose and its CV log loss, next to the
    floor's (the calibrated own signal); empty for a reused profile."""
    if estimator.crossfit is None:
        return []
    names = estimator.spec.model_names
    return [
        {
            "model": names[m],
            "ran": [names[r] for r in state],
            "features": choice.features,
            "l2": choice.l2,
            "cv_log_loss": choice.cv_log_loss,
            "floor_cv_log_loss": choice.floor_cv_log_loss,
            "sigma_scale": estimator.crossfit.sigma_scales[state],
        }
        for (m, state), choice in estimator.crossfit.choices.items()
    ]
