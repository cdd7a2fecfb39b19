"""The offline evaluation: fit on train, sweep budgets, score on test, as DESIGN.md defines.

Per split (one task, or pooled):

1. the training data is split in half per task (seeded): estimators are fitted on the first
   half; the second half measures the error covariance Σ_R and fits every strategy's budget
   parameter (lambda or threshold; `bench.budgets`, the same bracketing and gamma mixing as
   `fit_budget`, shared across budgets); the test split is never fitted on;
2. for >= 20 budgets evenly spaced between the cheapest and the most expensive model's mean
   cost (on the calibration half), each strategy is fitted to the budget and replayed on test;
   a fitted policy that mixes two parameter values (probability gamma) is scored by its
   expectation per query, which is what the random mix spends and earns on average;
3. the curve of (mean cost, mean quality) points gives the AUC, APGR and CPT(50%/80%), and a
   paired bootstrap over test queries gives 95% intervals.

Estimators: logistic per (model, state) when the data logs a quality signal (logprobs or a
confidence) and no noise level is forced, else the paper's noisy ground truth (`--noise`).
With a fitted profile (`bench --profile`, from `cascade-router calibrate`) nothing is fitted
but the budgets: the profile's estimators, exactly as the live engine uses them, score the
whole training split (for the budget parameters) and the test split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cascade_core.batch import BatchContext, StagedEstimates, run_batch
from cascade_core.bench.budgets import fit_to_budgets
from cascade_core.bench.data import BenchSplit
from cascade_core.budget import budget_grid
from cascade_core.estimators import (
    LogisticQualityEstimator,
    fit_noisy_oracle,
    fit_quality_estimator,
    spec_for_dataset,
)
from cascade_core.replay import (
    ReplayDataset,
    apgr,
    auc,
    auc_range,
    cpt,
    linear_hull,
    single_model_points,
)
from cascade_core.strategies import (
    CascadeRouting,
    OptimalCascade,
    Routing,
    Strategy,
    ThresholdCascade,
)
from cascade_core.strategies.mixed import MixedStrategy

STRATEGY_NAMES: tuple[str, ...] = (
    "routing",
    "threshold_cascade",
    "optimal_cascade",
    "cascade_routing",
)
DEFAULT_BUDGETS = 20
DEFAULT_BOOTSTRAP = 1000
# Exact cascade routing enumerates every supermodel: 2^k per state. Up to 6 models that is at
# most 64 and fast; beyond, supermodels are capped at this many models (11 models: 232 sets
# instead of 2048), which the paper also does on RouterBench (max depth) to keep it tractable.
EXACT_MAX_MODELS = 6
CAPPED_DEPTH = 3
# Σ measured against "all models ran" overstates what running a few cheap models reveals,
# which makes E[max] overvalue them. The scale applied to Σ is chosen on the calibration half
# (never on test) from this grid; 1.0 is Σ exactly as defined.
SIGMA_SCALES: tuple[float, ...] = (0.0, 0.25, 1.0)


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


@dataclass
class Curve:
    """A strategy's budget sweep on test: per budget the expected per-query cost and quality."""

    name: str
    query_cost: np.ndarray  # (n_budgets, n_test)
    query_quality: np.ndarray

    @property
    def costs(self) -> np.ndarray:
        return self.query_cost.mean(axis=1)

    @property
    def qualities(self) -> np.ndarray:
        return self.query_quality.mean(axis=1)


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


def _expected_outcome(strategy: Strategy, context: BatchContext, test: ReplayDataset):
    """Per-query expected cost and quality of a (possibly mixed) fitted policy on test."""

    def one(s: Strategy) -> tuple[np.ndarray, np.ndarray]:
        outcome = run_batch(s, context)
        return outcome.cost(test.cost), outcome.quality(test.quality)

    if not isinstance(strategy, MixedStrategy):
        return one(strategy)
    cheap_cost, cheap_quality = one(strategy.cheap)
    dear_cost, dear_quality = one(strategy.expensive)
    g = strategy.gamma
    return g * dear_cost + (1 - g) * cheap_cost, g * dear_quality + (1 - g) * cheap_quality


def sweep(
    strategy: Strategy,
    calibration: BatchContext,
    calibration_data: ReplayDataset,
    test_context: BatchContext,
    test: ReplayDataset,
    budgets: Sequence[float],
) -> Curve:
    costs, qualities = [], []
    fitted = fit_to_budgets(
        strategy, calibration, budgets, calibration_data.cost, calibration_data.quality
    )
    for policy in fitted:
        cost, quality = _expected_outcome(policy, test_context, test)
        costs.append(cost)
        qualities.append(quality)
    return Curve(strategy.name, np.array(costs), np.array(qualities))


def _staged_pair(
    split: BenchSplit, fit: ReplayDataset, calib: ReplayDataset, noise: str | None, seed: int
) -> tuple[StagedEstimates, StagedEstimates, str, LogisticQualityEstimator | None]:
    if noise is None and spec_for_dataset(fit).posthoc_source != "none":
        estimator = fit_quality_estimator(fit, calib)
        return estimator.staged(calib), estimator.staged(split.test), "logistic", estimator
    level = noise or "low"
    oracle = fit_noisy_oracle(fit, level, seed=seed)
    # Each split draws its own noise: the test noise is never seen while fitting.
    return (
        oracle.staged(calib, seed + 1),
        oracle.staged(split.test, seed + 2),
        f"noisy ground truth ({level})",
        None,
    )


def _profile_pair(
    split: BenchSplit, profile: LogisticQualityEstimator
) -> tuple[ReplayDataset, ReplayDataset]:
    """Train and test in the profile's model order, after checking the profile fits them."""
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
    return split.train.select_models(names), split.test.select_models(names)


def _choose_sigma_scale(
    estimator: LogisticQualityEstimator,
    calib: ReplayDataset,
    budgets: Sequence[float],
    n_models: int,
) -> tuple[float, LogisticQualityEstimator]:
    """Pick the Σ scale with the best cascade-routing AUC on the calibration half."""
    lo, hi, floor = auc_range(calib)
    best: tuple[float, float, LogisticQualityEstimator] | None = None
    strategy = make_bench_strategy("cascade_routing", n_models)
    for scale in SIGMA_SCALES:
        scaled = estimator.with_sigma_scale(scale)
        context = BatchContext(scaled.staged(calib))
        curve = sweep(strategy, context, calib, context, calib, budgets)
        value = auc(curve.costs, curve.qualities, lo, hi, floor) if hi > lo else 0.0
        if best is None or value >= best[0]:  # ties go to the larger scale (closer to Σ)
            best = (value, scale, scaled)
    assert best is not None
    return best[1], best[2]


def evaluate_split(
    split: BenchSplit,
    *,
    strategies: Sequence[str] = STRATEGY_NAMES,
    noise: str | None = None,
    n_budgets: int = DEFAULT_BUDGETS,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    profile: LogisticQualityEstimator | None = None,
) -> SplitResult:
    """Fit on ``split.train`` (or take ``profile``'s estimators) and score every strategy on
    ``split.test``."""
    notes: list[str] = []
    if profile is not None:
        calib, test = _profile_pair(split, profile)
        n_fit = 0  # nothing is fitted but the budgets
        staged_calib, staged_test = profile.staged(calib), profile.staged(test)
        kind, estimator = "fitted profile", None
        notes.append("estimators from the profile; budgets fitted on the whole train split")
    else:
        fit, calib = split.train.split(0.5, seed=seed)
        test, n_fit = split.test, fit.n_queries
        staged_calib, staged_test, kind, estimator = _staged_pair(split, fit, calib, noise, seed)
    k = test.n_models
    budgets = [float(b) for b in budget_grid(calib.cost, n_budgets)]
    if estimator is not None and "cascade_routing" in strategies:
        scale, estimator = _choose_sigma_scale(estimator, calib, budgets, k)
        staged_calib, staged_test = estimator.staged(calib), estimator.staged(test)
        kind += f", sigma scale {scale:g}"
    calib_context, test_context = BatchContext(staged_calib), BatchContext(staged_test)
    curves = {
        name: sweep(make_bench_strategy(name, k), calib_context, calib, test_context, test, budgets)
        for name in strategies
    }
    if "cascade_routing" in strategies and k > EXACT_MAX_MODELS:
        notes.append(f"cascade_routing: supermodels capped at {CAPPED_DEPTH} models ({k} models)")
    metrics, curve_points = _metrics(test, curves, n_boot, seed)
    costs, quals = single_model_points(test)
    return SplitResult(
        name=split.name,
        n_train_fit=n_fit,
        n_calibration=calib.n_queries,
        n_test=test.n_queries,
        estimator=kind,
        budgets=budgets,
        metrics=metrics,
        curves=curve_points,
        single_models={
            m: (float(c), float(q)) for m, c, q in zip(test.model_names, costs, quals, strict=True)
        },
        notes=notes,
    )


def _metrics(test: ReplayDataset, curves: dict[str, Curve], n_boot: int, seed: int):
    n = test.n_queries
    cost_q, qual_q = test.cost, test.quality
    # Oracle per query: cheapest among the best models on that query.
    best = qual_q.max(axis=1, keepdims=True)
    pick = np.where(qual_q >= best, cost_q, np.inf).argmin(axis=1)
    oracle_cost = cost_q[np.arange(n), pick]
    oracle_quality = qual_q[np.arange(n), pick]

    def aucs(rows: np.ndarray) -> np.ndarray:
        mc, mq = cost_q[rows].mean(axis=0), qual_q[rows].mean(axis=0)
        lo, hi, floor = float(mc.min()), float(mc.max()), float(mq.min())
        values = [
            auc(
                c.query_cost[:, rows].mean(axis=1),
                c.query_quality[:, rows].mean(axis=1),
                lo,
                hi,
                floor,
            )
            for c in curves.values()
        ]
        hx, hy = linear_hull(mc, mq)
        values.append(auc(hx, hy, lo, hi, floor))
        ox, oy = linear_hull(
            np.append(mc, oracle_cost[rows].mean()), np.append(mq, oracle_quality[rows].mean())
        )
        values.append(auc(ox, oy, lo, hi, floor))
        return np.array(values)

    point = aucs(np.arange(n))
    rng = np.random.default_rng(seed)
    boot = np.array([aucs(rng.integers(0, n, n)) for _ in range(n_boot)])
    low, high = np.quantile(boot, [0.025, 0.975], axis=0)

    mean_cost, mean_quality = test.mean_cost(), test.mean_quality()
    weak, strong = int(np.argmin(mean_cost)), int(np.argmax(mean_cost))
    c_weak, c_strong = float(mean_cost[weak]), float(mean_cost[strong])
    q_weak, q_strong = float(mean_quality[weak]), float(mean_quality[strong])

    def routellm(costs: np.ndarray, quals: np.ndarray) -> dict[str, float]:
        if q_strong == q_weak or c_strong == c_weak:
            return {"apgr": float("nan"), "cpt50": float("nan"), "cpt80": float("nan")}
        share = lambda x: 100.0 * (x - c_weak) / (c_strong - c_weak)  # noqa: E731
        return {
            "apgr": apgr(costs, quals, q_weak, q_strong, x_lo=c_weak, x_hi=c_strong),
            "cpt50": share(cpt(costs, quals, q_weak, q_strong, 0.5, x_lo=c_weak)),
            "cpt80": share(cpt(costs, quals, q_weak, q_strong, 0.8, x_lo=c_weak)),
        }

    metrics: dict[str, dict[str, object]] = {}
    points: dict[str, tuple[list[float], list[float]]] = {}
    for i, (name, curve) in enumerate(curves.items()):
        metrics[name] = {
            "auc": float(point[i]),
            "ci": [float(low[i]), float(high[i])],
            **routellm(curve.costs, curve.qualities),
        }
        points[name] = (curve.costs.tolist(), curve.qualities.tolist())
    hx, hy = linear_hull(mean_cost, mean_quality)
    j = len(curves)
    metrics["linear"] = {
        "auc": float(point[j]),
        "ci": [float(low[j]), float(high[j])],
        **routellm(hx, hy),
    }
    points["linear"] = (hx.tolist(), hy.tolist())
    metrics["oracle"] = {
        "auc": float(point[j + 1]),
        "ci": [float(low[j + 1]), float(high[j + 1])],
        "cost": float(oracle_cost.mean()),
        "quality": float(oracle_quality.mean()),
    }
    return metrics, points
