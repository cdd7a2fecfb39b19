"""The offline evaluation: fit on train, sweep budgets, score on test, as DESIGN.md defines.

Per split (one task, or pooled):

1. estimators are cross-fitted on every training row (`fit_quality_estimator`); with several
   tasks one estimator is fitted on the pooled train (task features share strength) and
   serves every split. Σ_R and every strategy's budget parameter are fitted on the
   out-of-fold (OOF) estimates of the split's training rows; the test split is never fitted
   on. With ``--noise`` the paper's noisy ground truth is fitted on train and the budgets on
   the same rows with fresh noise;
2. the ladder: models dominated on train (another costs at most 1% more and is more
   accurate) are skipped, unless cascade routing on the calibration rows reaches a higher AUC
   with every model; both are reported;
3. for about 30 budgets (>= 20) from the cheapest to the most expensive model's mean train
   cost, in equal numbers on each segment of the train hull (`bench_budgets`), each
   strategy is fitted to the budget (`cascade_core.fitting.budget`) and
   replayed on test; cascade routing's first step (plan it, or draft the cheapest model,
   `CascadeRouting.draft`) is chosen per budget by the quality each reaches on the
   calibration rows at that budget (`bench_candidates`); a fitted policy that mixes two
   parameter values (probability gamma) is scored by its expectation per query, which is
   what the random mix spends and earns on average;
4. baselines: the per-step threshold cascade tuned on train (`threshold_baseline`), on every
   model and on the undominated ones;
5. the curve of (mean cost, mean quality) points gives the AUC, APGR, CPT(50%/80%) and the
   cost share at 95% of the best model's quality (`replay.metrics.curve_metrics`), with a
   paired bootstrap over test queries for 95% intervals; the estimators' log loss, Brier
   score and calibration error per (model, state) on test.

With a fitted profile (`bench --profile`, from `cascade-router calibrate`) nothing is fitted
but the budgets: the profile's estimators, exactly as the live engine uses them, score the
whole training split (for the budget parameters) and the test split.

With a latency weight W (`bench --latency-weight`, `bench.latency`) steps 2-4 run on the
priced cost USD + W * seconds, train and test alike (the strategies decide on it), and the
fitted policies are scored twice on test: quality against USD as above, and quality against
the seconds each query waited, with the same baselines on that axis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cascade_core.bench.data import BenchSplit
from cascade_core.bench.latency import latency_axis, priced_split
from cascade_core.bench.threshold_baseline import fit_thresholds, replay_thresholds
from cascade_core.budget import budget_grid
from cascade_core.estimates import Uncertainty
from cascade_core.estimators import LogisticQualityEstimator
from cascade_core.fitting import (
    crossfit_staged,
    estimator_diagnostics,
    fit_best_to_budgets,
    fit_noisy_oracle,
    fit_quality_estimator,
    spec_for_dataset,
    staged_estimates,
)
from cascade_core.replay import ReplayDataset, dataset_auc, single_model_points
from cascade_core.replay.metrics import curve_metrics, dominated_models, linear_hull
from cascade_core.replay.simulate import (
    BatchContext,
    StagedEstimates,
    run_batch,
    sequential_latency,
)
from cascade_core.strategies import (
    CascadeRouting,
    OptimalCascade,
    Routing,
    Strategy,
    ThresholdCascade,
)
from cascade_core.strategies.cascade_routing import FIRST_STEPS

STRATEGY_NAMES: tuple[str, ...] = (
    "routing",
    "threshold_cascade",
    "optimal_cascade",
    "cascade_routing",
)
BASELINE = "per_step_threshold"
# About ten budgets per segment of the train hull (three segments on both shared data sets),
# the paper's density; fewer under-measure the curves where they rise most (`budget_grid`).
DEFAULT_BUDGETS = 30
DEFAULT_BOOTSTRAP = 1000
# Exact cascade routing enumerates every supermodel: 2^k per state. Up to 6 models that is at
# most 64 and fast; beyond, supermodels are capped at this many models (11 models: 232 sets
# instead of 2048), which the paper also does on RouterBench (max depth) to keep it tractable.
EXACT_MAX_MODELS = 6
CAPPED_DEPTH = 3


def make_bench_strategy(name: str, n_models: int) -> Strategy:
    """The strategies compared, with the settings documented above."""
    if name == "routing":
        return Routing()
    if name == "threshold_cascade":
        return ThresholdCascade()
    if name == "optimal_cascade":
        return OptimalCascade()
    if name == "cascade_routing":
        return CascadeRouting(max_depth=None if n_models <= EXACT_MAX_MODELS else CAPPED_DEPTH)
    raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGY_NAMES)}")


def bench_candidates(name: str, n_models: int) -> tuple[Strategy, ...]:
    """The policies one strategy's curve chooses among per budget on the calibration rows:
    for cascade routing, its first step planned and drafted (`CascadeRouting.draft`, whose
    doc says why neither is right for every ladder and budget); one policy otherwise."""
    strategy = make_bench_strategy(name, n_models)
    if name == "cascade_routing":
        return tuple(replace(strategy, draft=draft) for draft in FIRST_STEPS)
    return (strategy,)


@dataclass
class Curve:
    """A budget sweep on test: per budget the expected per-query cost and quality, and the
    expected models run (n_budgets, n_test, k) when the sweep kept them."""

    name: str
    query_cost: np.ndarray  # (n_budgets, n_test)
    query_quality: np.ndarray
    query_ran: np.ndarray | None = None
    # per budget, the index of the candidate policy chosen on the calibration rows
    chosen: list[int] = field(default_factory=list)

    def query_latency(self, latency_s: np.ndarray) -> np.ndarray:
        """(n_budgets, n_test) expected seconds waited (`sequential_latency`)."""
        if self.query_ran is None:
            raise ValueError(f"{self.name}: this sweep did not keep which models ran")
        return sequential_latency(self.query_ran, latency_s)

    @property
    def costs(self) -> np.ndarray:
        return self.query_cost.mean(axis=1)

    @property
    def qualities(self) -> np.ndarray:
        return self.query_quality.mean(axis=1)


@dataclass
class AxisResult:
    """Metrics of the same fitted policies read on another axis than USD (latency): per curve
    the metrics and points, and each model alone as (axis value, quality)."""

    unit: str
    metrics: dict[str, dict[str, object]]
    curves: dict[str, tuple[list[float], list[float]]]
    single_models: dict[str, tuple[float, float]]


@dataclass
class SplitResult:
    name: str
    n_train_fit: int
    n_calibration: int
    n_test: int
    estimator: str
    budgets: list[float]
    metrics: dict[str, dict[str, object]]
    curves: dict[str, tuple[list[float], list[float]]]
    single_models: dict[str, tuple[float, float]]
    notes: list[str] = field(default_factory=list)
    ladder: list[str] = field(default_factory=list)
    dominated: list[str] = field(default_factory=list)
    diagnostics: list[dict[str, Any]] = field(default_factory=list)
    latency_weight: float | None = None
    latency: AxisResult | None = None


def expected_outcome(
    strategy: Strategy, context: BatchContext, cost: np.ndarray, quality: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Per-query expected cost, quality and models run (n, k) of a fitted policy: the
    expectation over the fixed policies of its `mixture` (one policy for a plain strategy, the
    two a budget mixes with probability gamma), so the bench scores what a query can expect
    rather than one draw."""
    parts = []
    for weight, policy in strategy.mixture:
        outcome = run_batch(policy, context)
        parts.append(
            (
                weight * outcome.cost(cost),
                weight * outcome.quality(quality),
                weight * outcome.ran.astype(float),
            )
        )
    return tuple(sum(column) for column in zip(*parts, strict=True))


def sweep(
    candidates: Sequence[Strategy],
    calibration: BatchContext,
    calibration_data: ReplayDataset,
    test_context: BatchContext,
    test: ReplayDataset,
    budgets: Sequence[float],
) -> Curve:
    """Fit to every budget on calibration the candidate that reaches the best calibration
    quality there (`fit_best_to_budgets`), replay each fitted policy on test."""
    fits = fit_best_to_budgets(
        candidates, calibration, budgets, calibration_data.cost, calibration_data.quality
    )
    rows = [expected_outcome(f.strategy, test_context, test.cost, test.quality) for _, f in fits]
    return Curve(
        candidates[0].name,
        np.array([r[0] for r in rows]),
        np.array([r[1] for r in rows]),
        np.array([r[2] for r in rows]),
        [i for i, _ in fits],
    )


def bench_budgets(train: ReplayDataset, n_budgets: int) -> list[float]:
    """The budgets every strategy and baseline is fitted to and scored at: about
    ``n_budgets``, spread in equal numbers over the segments between the models of the
    train split's single-model hull (`budget_grid`), so the curves are measured densely
    where they bend. Train only: the test split never shapes the grid."""
    hull_costs, _ = linear_hull(*single_model_points(train))
    return [float(b) for b in budget_grid(train.cost, n_budgets, breakpoints=hull_costs)]


def select_columns(staged: StagedEstimates, columns: Sequence[int]) -> StagedEstimates:
    """The staged estimates of the models ``columns`` only (a sub-ladder)."""
    cols = [int(c) for c in columns]
    memo: dict[frozenset[int], Uncertainty] = {}

    def estimator(ran: frozenset[int]) -> tuple[np.ndarray, Uncertainty]:
        quality, uncertainty = staged.state(frozenset(cols[i] for i in ran))
        if ran not in memo:
            if uncertainty.independent:
                memo[ran] = Uncertainty.independent_std(uncertainty.factor[cols])
            else:
                memo[ran] = Uncertainty.from_covariance(uncertainty.covariance[np.ix_(cols, cols)])
        return quality[:, cols], memo[ran]

    return StagedEstimates(staged.cost[:, cols], estimator)


@dataclass
class _Estimates:
    """Staged estimates of the calibration rows and of test, models in ``names`` order."""

    names: list[str]
    calibration: StagedEstimates
    test: StagedEstimates
    kind: str
    n_fit: int
    fitted: LogisticQualityEstimator | None = None


def _estimates(
    split: BenchSplit,
    noise: str | None,
    seed: int,
    profile: LogisticQualityEstimator | None,
    shared: tuple[LogisticQualityEstimator, np.ndarray] | None,
) -> _Estimates:
    if profile is not None:
        names = list(profile.spec.model_names)
        _check_profile(split, profile)
        train = split.train.select_models(names)
        return _Estimates(
            names,
            staged_estimates(profile, train),
            staged_estimates(profile, split.test),
            "fitted profile",
            0,
            profile,
        )
    if noise is None and spec_for_dataset(split.train).posthoc_source != "none":
        if shared is None:
            estimator = fit_quality_estimator(split.train, seed=seed)
            rows = np.arange(split.train.n_queries)
            where = "this split's train"
        else:
            estimator, rows = shared
            where = "the pooled train"
        # The signal read after a model ran, named as the profile names it: "confidence"
        # is a logged confidence_logprob (the cascade logs' P(True), a verifier's P(yes)).
        kind = f"logistic on {estimator.spec.posthoc_source} signals, cross-fitted on {where}"
        names = list(estimator.spec.model_names)
        train = split.train.select_models(names)
        return _Estimates(
            names,
            crossfit_staged(estimator, train.cost, rows),
            staged_estimates(estimator, split.test),
            kind,
            estimator.crossfit.n_rows if estimator.crossfit else 0,
            estimator,
        )
    level = noise or "low"
    oracle = fit_noisy_oracle(split.train, level, seed=seed)
    # Each draw has its own seed: the test noise is never seen while fitting.
    return _Estimates(
        list(oracle.model_names),
        oracle.staged(split.train, seed + 1),
        oracle.staged(split.test, seed + 2),
        f"noisy ground truth ({level})",
        split.train.n_queries,
    )


def _check_profile(split: BenchSplit, profile: LogisticQualityEstimator) -> None:
    names = list(profile.spec.model_names)
    if set(names) != set(split.test.model_names):
        raise ValueError(
            f"--profile: fitted for models {names}, but {split.name} logs "
            f"{list(split.test.model_names)}; pass --models to select the profile's models or "
            "calibrate a profile for these"
        )
    logged = spec_for_dataset(split.test).posthoc_source
    if profile.spec.posthoc_source not in ("none", logged):
        raise ValueError(
            f"--profile: fitted on {profile.spec.posthoc_source!r} signals, but {split.name} "
            f"logs {logged!r}; evaluate it on logs with the same signals (calibrate "
            "--save-replay writes them)"
        )


def choose_ladder(
    train: ReplayDataset,
    calibration: StagedEstimates,
    budgets: Sequence[float],
    contexts: Callable[[list[int]], BatchContext],
) -> tuple[list[int], list[int], str]:
    """(ladder columns cheapest first, dominated columns, why): the undominated models unless
    cascade routing on the calibration rows does better with all of them."""
    order = [int(j) for j in np.argsort(train.mean_cost(), kind="stable")]
    dominated = dominated_models(train)
    undominated = [j for j in order if j not in dominated]
    if not dominated:
        return order, [], "no model is dominated on train"

    def calibration_auc(columns: list[int]) -> float:
        data = train.select_models([train.model_names[j] for j in columns])
        candidates = bench_candidates("cascade_routing", len(columns))
        context = contexts(columns)
        curve = sweep(candidates, context, data, context, data, budgets)
        return dataset_auc(train, curve.costs, curve.qualities)

    skip, keep = calibration_auc(undominated), calibration_auc(order)
    if keep > skip:
        return (
            order,
            dominated,
            (
                f"dominated models kept: cascade routing on the calibration rows reaches AUC "
                f"{keep:.2f} with them, {skip:.2f} without"
            ),
        )
    return (
        undominated,
        dominated,
        (f"dominated models skipped (calibration AUC {skip:.2f} without, {keep:.2f} with)"),
    )


def evaluate_split(
    split: BenchSplit,
    *,
    strategies: Sequence[str] = STRATEGY_NAMES,
    noise: str | None = None,
    n_budgets: int = DEFAULT_BUDGETS,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    profile: LogisticQualityEstimator | None = None,
    shared: tuple[LogisticQualityEstimator, np.ndarray] | None = None,
    latency_weight: float | None = None,
) -> SplitResult:
    """Score every strategy and the baselines on ``split.test``; see the module doc.

    ``shared``: an estimator fitted on a pooled train and the rows of this split's train in
    it (`run_bench` passes it so one fit serves every split). ``latency_weight``: USD per
    second of waiting; fit on the priced cost and also score against latency (the logs must
    carry ``latency_ms``).
    """
    fit_split = split if latency_weight is None else priced_split(split, latency_weight)
    est = _estimates(fit_split, noise, seed, profile, shared)
    train = fit_split.train.select_models(est.names)
    test = split.test.select_models(est.names)
    budgets = bench_budgets(train, n_budgets)

    def calibration_context(columns: list[int]) -> BatchContext:
        return BatchContext(select_columns(est.calibration, columns))

    ladder, dominated, why = choose_ladder(train, est.calibration, budgets, calibration_context)
    names = [est.names[j] for j in ladder]
    calib_ctx = calibration_context(ladder)
    test_ctx = BatchContext(select_columns(est.test, ladder))
    calib_data, test_data = train.select_models(names), test.select_models(names)
    k = len(ladder)
    curves = {
        name: sweep(bench_candidates(name, k), calib_ctx, calib_data, test_ctx, test_data, budgets)
        for name in strategies
    }
    for curve in curves.values():  # the strategies ran the ladder's models: test's columns
        curve.query_ran = _widen(curve.query_ran, ladder, test.n_models)
    notes = [why]
    if "cascade_routing" in curves:
        drafted = sum(curves["cascade_routing"].chosen)
        notes.append(
            f"cascade_routing: the cheapest model drafts first at {drafted} of {len(budgets)} "
            "budgets, where that reached the higher quality on the calibration rows"
        )
    baseline_ladders = [("", list(np.argsort(train.mean_cost(), kind="stable")))]
    if dominated:
        baseline_ladders.append(
            ("_undominated", [j for j in baseline_ladders[0][1] if j not in dominated])
        )
    for suffix, order in baseline_ladders:
        fitted = fit_thresholds(train, order, budgets)
        if fitted is not None:
            costs, qualities, ran = replay_thresholds(test, order, fitted)
            curves[BASELINE + suffix] = Curve(BASELINE + suffix, costs, qualities, ran)
    if any(BASELINE in c for c in curves):
        notes.append(
            f"{BASELINE}: one threshold per step on each model's raw confidence, cheapest "
            "first, grid-searched on train per budget"
        )
    if "cascade_routing" in strategies and k > EXACT_MAX_MODELS:
        notes.append(f"cascade_routing: supermodels capped at {CAPPED_DEPTH} models ({k} models)")
    metrics, points = curve_metrics(
        test, {n: (c.query_cost, c.query_quality) for n, c in curves.items()}, n_boot, seed
    )
    costs, quals = single_model_points(test)
    diagnostics = [] if est.fitted is None else estimator_diagnostics(est.fitted, test)
    latency = None
    if latency_weight is not None:
        latency = latency_result(curves, test, n_boot, seed)
        notes.append(
            f"latency weight {latency_weight:g} USD/s: strategies and baselines fitted on"
            " USD + weight x seconds; scored against USD and against seconds"
        )
    return SplitResult(
        name=split.name,
        n_train_fit=est.n_fit,
        n_calibration=train.n_queries,
        n_test=test.n_queries,
        estimator=est.kind,
        budgets=budgets,
        metrics=metrics,
        curves=points,
        single_models={
            m: (float(c), float(q)) for m, c, q in zip(test.model_names, costs, quals, strict=True)
        },
        notes=notes,
        ladder=names,
        dominated=[est.names[j] for j in dominated],
        diagnostics=diagnostics,
        latency_weight=latency_weight,
        latency=latency,
    )


def _widen(ran: np.ndarray | None, columns: Sequence[int], n_models: int) -> np.ndarray | None:
    """Run indicators of a sub-ladder (its columns are ``columns`` of the full model list)
    in the full list's columns."""
    if ran is None or list(columns) == list(range(n_models)):
        return ran
    full = np.zeros((*ran.shape[:-1], n_models), dtype=ran.dtype)
    full[..., list(columns)] = ran
    return full


def latency_result(
    curves: dict[str, Curve], test: ReplayDataset, n_boot: int, seed: int
) -> AxisResult:
    """The curves (their models run in ``test``'s columns) read against seconds waited, with
    the single models, their linear hull and the oracle (the fastest best model per query)
    on the latency axis, and the same paired bootstrap resamples as the USD axis (same
    seed)."""
    axis = latency_axis(test)
    on_axis = {
        name: (curve.query_latency(axis.cost), curve.query_quality)
        for name, curve in curves.items()
    }
    metrics, points = curve_metrics(axis, on_axis, n_boot, seed)
    seconds, quals = single_model_points(axis)
    return AxisResult(
        unit="s",
        metrics=metrics,
        curves=points,
        single_models={
            m: (float(t), float(q))
            for m, t, q in zip(test.model_names, seconds, quals, strict=True)
        },
    )


__all__ = [
    "BASELINE",
    "STRATEGY_NAMES",
    "AxisResult",
    "Curve",
    "SplitResult",
    "bench_candidates",
    "choose_ladder",
    "dominated_models",
    "evaluate_split",
    "expected_outcome",
    "make_bench_strategy",
    "select_columns",
    "sweep",
]
