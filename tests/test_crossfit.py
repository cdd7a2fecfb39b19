"""Cross-fitted estimators, the measured Σ, the budget sweep and the bench's baselines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cascade_core.bench.evaluate import expected_outcome
from cascade_core.bench.threshold_baseline import apply_thresholds, fit_thresholds
from cascade_core.budget import budget_grid, lambdas_for_cost
from cascade_core.fitting import (
    crossfit_staged,
    fit_budget,
    fit_quality_estimator,
    fit_to_budgets,
    staged_estimates,
)
from cascade_core.fitting.diagnostics import calibration_error, estimator_diagnostics
from cascade_core.fitting.quality import cv_folds, honest_scale, log_loss
from cascade_core.replay import ReplayDataset
from cascade_core.replay.metrics import cost_share_at, dominated_models, json_safe
from cascade_core.replay.simulate import BatchContext, StagedEstimates
from cascade_core.strategies import CascadeRouting, ThresholdCascade


def replay(n: int, seed: int, tasks=("a", "b"), informative: bool = True) -> ReplayDataset:
    """Three models; each logs a confidence that tracks its correctness when informative."""
    rng = np.random.default_rng(seed)
    skill = np.array([0.5, 0.7, 0.9])
    truth = (rng.random((n, 3)) < skill).astype(float)
    if informative:
        conf = np.log(np.clip(0.35 + 0.4 * truth + rng.normal(0, 0.15, truth.shape), 1e-3, 1))
    else:
        conf = np.log(rng.uniform(0.2, 1.0, truth.shape))
    return ReplayDataset(
        name="synthetic",
        model_names=["small", "medium", "large"],
        query_ids=[f"q{i}" for i in range(n)],
        prompts=["x" * (5 + i % 7) for i in range(n)],
        tasks=[tasks[i % len(tasks)] for i in range(n)],
        quality=truth,
        cost=np.tile([1e-5, 5e-5, 2e-4], (n, 1)),
        signals={"confidence_logprob": conf},
    )


def test_folds_are_balanced_within_each_task() -> None:
    tasks = ["a"] * 23 + ["b"] * 7
    fold = cv_folds(tasks, 5, seed=3)
    for task in ("a", "b"):
        counts = np.bincount(fold[np.array(tasks) == task], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_out_of_fold_estimates_are_never_fitted_on_their_own_row() -> None:
    """Flipping one row's label changes the full-data fit but not that row's OOF estimate
    beyond what the CV choice of penalty can move it (same folds, same choice)."""
    data = replay(150, 0)
    fitted = fit_quality_estimator(data, seed=1)
    flipped = data.subset(np.arange(150))
    flipped.quality[7, 2] = 1 - flipped.quality[7, 2]
    refit = fit_quality_estimator(flipped, seed=1)
    state = (2,)
    same_choice = fitted.crossfit.choices[(2, state)] == refit.crossfit.choices[(2, state)]
    if same_choice:
        assert refit.crossfit.quality[state][7, 2] == pytest.approx(
            fitted.crossfit.quality[state][7, 2], abs=1e-12
        )
    # the in-sample (full-data) regression does see the flip
    table_rows = data.subset([7])
    before = staged_estimates(fitted, table_rows).state(frozenset(state))[0][0, 2]
    after = staged_estimates(refit, table_rows).state(frozenset(state))[0][0, 2]
    assert before != after


def test_cv_keeps_the_floor_when_extra_features_are_noise() -> None:
    """With 30 columns of pure noise next to the signal, CV keeps the calibrated own signal
    for the model that ran; the full model would only fit noise."""
    data = replay(120, 2)
    noise = np.random.default_rng(5).normal(size=(120, 30))
    fitted = fit_quality_estimator(data, fit_embeddings=noise, seed=0)
    for m in range(3):
        assert fitted.crossfit.choices[(m, (m,))].features == "floor"


def test_floor_is_a_monotone_calibration_of_the_own_signal() -> None:
    data = replay(300, 4)
    fitted = fit_quality_estimator(data)
    state = (1,)
    quality = staged_estimates(fitted, data).state(frozenset(state))[0][:, 1]
    if fitted.crossfit.choices[(1, state)].features == "floor":
        for task in ("a", "b"):
            rows = np.flatnonzero(np.array(data.tasks) == task)
            order = np.argsort(data.signals["confidence_logprob"][rows, 1])
            assert np.all(np.diff(quality[rows][order]) >= -1e-12)


def test_estimates_after_a_run_beat_the_base_rate_out_of_fold() -> None:
    data = replay(400, 6)
    fitted = fit_quality_estimator(data)
    oof = fitted.crossfit.quality
    for m in range(3):
        assert log_loss(data.quality[:, m], oof[(m,)][:, m]) < log_loss(
            data.quality[:, m], oof[()][:, m]
        )


def test_sigma_scale_is_zero_when_running_more_reveals_nothing() -> None:
    data = replay(300, 8, informative=False)
    fitted = fit_quality_estimator(data)
    assert fitted.crossfit.sigma_scales[()] == 0.0
    assert np.allclose(fitted.covariances[()], 0.0)
    assert np.allclose(fitted.covariances[(0, 1, 2)], 0.0)


def test_honest_scale_matches_the_measured_gain() -> None:
    """When the final estimates are the truth, running everything gains a known amount; the
    scale is the one at which the normal model predicts exactly that gain."""
    rng = np.random.default_rng(0)
    n = 2000
    target = (rng.random((n, 2)) < [0.5, 0.5]).astype(float)
    now = np.full((n, 2), 0.5)
    final = target * 0.98 + 0.01
    cov = np.cov(final - now, rowvar=False)
    scale = honest_scale(now, final, target, cov, ())
    assert 0.0 < scale <= 1.0
    # measured: 1 - P(both wrong) = 0.75 vs answering with model 0 (0.5): gain 0.25
    measured = target.max(axis=1).mean() - target[:, 0].mean()
    from cascade_core.estimates import Uncertainty
    from cascade_core.expected_max import error_samples

    noise = error_samples(Uncertainty.from_covariance(cov))
    predicted = ((now[:, None, :] + scale * noise[None]).max(axis=2).mean(axis=1) - 0.5).mean()
    if scale < 1.0:
        assert predicted == pytest.approx(measured, abs=1e-3)
    assert honest_scale(now, now, target, cov, ()) == 0.0


def test_diagnostics_score_the_estimates() -> None:
    data = replay(200, 9)
    fitted = fit_quality_estimator(data.subset(np.arange(100)))
    rows = estimator_diagnostics(fitted, data.subset(np.arange(100, 200)))
    assert len(rows) == 3 * 5  # empty state, each model alone, all models
    for row in rows:
        assert row["log_loss"] > 0 and 0 <= row["brier"] <= 1 and 0 <= row["ece"] <= 1


def test_calibration_error_of_a_calibrated_and_a_biased_estimate() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(float)
    assert calibration_error(y, p) < 0.02
    assert calibration_error(y, np.clip(p + 0.2, 0, 1)) > 0.1


def test_sweep_policies_spend_exactly_each_budget_in_expectation() -> None:
    data = replay(300, 10)
    fitted = fit_quality_estimator(data)
    staged = crossfit_staged(fitted, data.cost)
    context = BatchContext(staged)
    strategy = CascadeRouting()
    budgets = budget_grid(data.cost, 6)[1:-1]
    policies = fit_to_budgets(strategy, context, budgets, data.cost, data.quality)
    for budget, policy in zip(budgets, policies, strict=True):
        cost, _, _ = expected_outcome(policy, context, data.cost, data.quality)
        assert cost.mean() <= budget * (1 + 1e-9)
        assert cost.mean() == pytest.approx(budget, rel=2e-2)
    single = fit_budget(strategy, context, budgets[1], true_quality=data.quality)
    assert single.cost == pytest.approx(budgets[1], rel=1e-6)


def test_lambda_curve_mix_is_the_budget_mix() -> None:
    """The engine's target_cost_usd (from a saved curve) and fit_budget mix the same way."""
    curve = [{"lambda": 0.0, "cost_usd": 9.0}, {"lambda": 2.0, "cost_usd": 3.0}]
    assert lambdas_for_cost(curve, 5.0) == (2.0, 0.0, pytest.approx(1 / 3))


def test_dominated_models_are_the_priced_alike_and_worse() -> None:
    data = replay(200, 11)
    data.cost[:, 0] = 5.04e-5  # same price as medium (within 1%), less accurate
    assert dominated_models(data) == [0]
    data.cost[:, 0] = 4.0e-5
    assert dominated_models(data) == []


def test_cost_share_at_95_percent_of_the_best_model() -> None:
    model_costs, model_quality = np.array([1.0, 4.0]), np.array([0.5, 0.8])
    # the curve reaches 0.76 (95% of 0.8) halfway between (2, 0.72) and (3, 0.8)
    assert cost_share_at([1.0, 2.0, 3.0], [0.5, 0.72, 0.8], model_costs, model_quality) == (
        pytest.approx(100 * 2.5 / 4.0)
    )
    assert np.isnan(cost_share_at([1.0, 2.0], [0.5, 0.6], model_costs, model_quality))


def test_json_safe_replaces_nan_at_any_depth() -> None:
    value = {"a": [1.0, float("nan"), {"b": (float("nan"), 2)}]}
    assert json_safe(value) == {"a": [1.0, None, {"b": [None, 2]}]}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), budget_share=st.floats(0.0, 1.0))
def test_threshold_baseline_respects_its_train_budget_and_beats_the_cheapest(
    seed: int, budget_share: float
) -> None:
    """Any data, any budget between the cheapest and dearest model: the tuned thresholds
    spend at most the budget on train and are at least as accurate as the cheapest model
    alone (always stopping at step one is among the candidates)."""
    data = replay(60, seed)
    low, high = data.mean_cost().min(), data.mean_cost().max()
    budget = float(low + budget_share * (high - low))
    order = [0, 1, 2]
    fitted = fit_thresholds(data, order, [budget])
    assert fitted is not None and len(fitted[0]) == 2
    cost, quality = apply_thresholds(data, order, fitted)
    assert cost.mean() <= budget * (1 + 1e-9)
    assert quality.mean() >= data.quality[:, 0].mean() - 1e-12


def test_threshold_baseline_needs_a_logged_signal() -> None:
    data = replay(40, 1)
    silent = ReplayDataset(
        **{**data.__dict__, "signals": {}},
    )
    assert fit_thresholds(silent, [0, 1, 2], [1e-4]) is None


def test_threshold_strategy_on_calibrated_estimates_still_replays() -> None:
    data = replay(200, 12)
    fitted = fit_quality_estimator(data)
    context = BatchContext(crossfit_staged(fitted, data.cost))
    (policy,) = fit_to_budgets(ThresholdCascade(), context, [1e-4], data.cost, data.quality)
    _, _, ran = expected_outcome(policy, context, data.cost, data.quality)
    assert ran.shape == (200, 3) and np.all(ran.sum(axis=1) >= 1)
    assert isinstance(context.staged, StagedEstimates)
