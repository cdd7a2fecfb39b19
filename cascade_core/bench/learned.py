"""`cascade-router bench PATH --learned sw,mf`: learned ex-ante estimators in the offline
evaluation, with RouteLLM's metrics for two-model settings (docs/routellm.md).

Per split (the bench's train/test, or for a routellm_evals folder each task split by prompt):

1. routers and regressions are fitted on every training row; Σ_R and every budget parameter
   on the out-of-fold estimates of the same rows (cross-fitting, as the plain bench); test is
   never fitted on;
2. estimators: "base" = the bench's logistic estimator (log prompt length, task tag, post-hoc
   signals where logged), and per learned router the same estimator plus the router's
   cross-fitted scores (`cascade_core.learned.estimator`); routing and cascade routing on each;
3. two models only: RouteLLM's own router per learned scorer, P(strong wins) thresholded at
   the share of strong calls each budget buys (thresholds on the routers' OOF train scores);
4. metrics: the bench's AUC/APGR/CPT on the cost axis with 95% bootstrap CIs, and for two
   models RouteLLM's: APGR and CPT(50%/80%) on the strong-call-share axis, the strong-call
   share and the cost reduction at 95% of the strong model's quality, next to random routing
   at the same share (APGR 0.5 by construction), with paired bootstrap CIs.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cascade_core.bench.data import BenchSplit, load_bench_data
from cascade_core.bench.evaluate import (
    DEFAULT_BUDGETS,
    Curve,
    bench_budgets,
    bench_candidates,
    expected_outcome,
)
from cascade_core.fitting import (
    crossfit_staged,
    fit_best_to_budgets,
    fit_quality_estimator,
    staged_estimates,
)
from cascade_core.learned.embeddings import embed_texts, get_embedder
from cascade_core.learned.estimator import fit_learned_estimator
from cascade_core.learned.routers import make_scorer, strong_win_probability
from cascade_core.learned.thresholds import strong_share_for_budget, threshold_for_share
from cascade_core.replay import ReplayDataset, apgr, cpt
from cascade_core.replay.metrics import curve_metrics, json_safe
from cascade_core.replay.routellm import load_routellm_evals
from cascade_core.replay.simulate import BatchContext, StagedEstimates

LEARNED_STRATEGIES = ("routing", "cascade_routing")
QUALITY_TARGET = 0.95  # RouteLLM's headline: cost at 95% of the strong model's quality
TEST_FRACTION = 0.5


@dataclass
class ShareCurve(Curve):
    """A `Curve` that also knows, per budget and query, the (expected) strong-model call."""

    query_strong: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


@dataclass
class LearnedSplitResult:
    name: str
    n_fit: int
    n_calibration: int
    n_test: int
    models: list[str]
    estimators: dict[str, str]
    metrics: dict[str, dict[str, object]]
    routellm: dict[str, dict[str, object]]
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ data
def is_routellm_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "mmlu").is_dir() or any(path.glob("gsm8k_responses.csv*")))


def split_by_prompt(data: ReplayDataset, test_fraction: float = TEST_FRACTION, salt: str = "0"):
    """Train/test by prompt text: a prompt's SHA-256 (with ``salt``) decides its side, so
    duplicate prompts never straddle the split and the split does not depend on file order."""
    bucket = np.array(
        [
            int(hashlib.sha256(f"{salt}:{p}".encode()).hexdigest()[:8], 16) / 16**8
            for p in data.prompts
        ]
    )
    test = bucket < test_fraction
    return data.subset(~test, name=f"{data.name}[train]"), data.subset(test, name=data.name)


def learned_splits(
    path: Path, models: Sequence[str] | None, only: Sequence[str] | None
) -> tuple[list[BenchSplit], list[str]]:
    notes: list[str] = []
    if is_routellm_folder(path):
        splits = []
        for name, data in load_routellm_evals(path).items():
            if models:
                data = data.select_models(models).sorted_by_cost()
            train, test = split_by_prompt(data)
            splits.append(BenchSplit(name, train, test))
        notes.append(
            f"routellm_evals: each task split by prompt hash, {TEST_FRACTION:.0%} of prompts test"
        )
    else:
        bench_data = load_bench_data(path, models)
        splits, notes = bench_data.splits, list(bench_data.notes)
    if only:
        splits = [s for s in splits if s.name in only]
        if not splits:
            raise ValueError(f"no split named {', '.join(only)}")
    return splits, notes


# ------------------------------------------------------------------ curves
def share_sweep(candidates, calib_ctx, calib, test_ctx, test, budgets, name) -> ShareCurve:
    """`bench.evaluate.sweep` that also keeps the (expected) strong-model call per query."""
    strong = int(np.argmax(test.mean_cost()))
    fitted = fit_best_to_budgets(candidates, calib_ctx, budgets, calib.cost, calib.quality)
    rows = [expected_outcome(f.strategy, test_ctx, test.cost, test.quality) for _, f in fitted]
    return ShareCurve(
        name,
        np.array([r[0] for r in rows]),
        np.array([r[1] for r in rows]),
        query_strong=np.array([r[2][:, strong] for r in rows]),
    )


def threshold_curve(calib_scores, test_scores, calib, test, budgets, name) -> ShareCurve:
    """RouteLLM's router: strong model when P(strong wins) > threshold; one threshold per
    budget, calibrated to the share of strong calls that budget buys on calibration."""
    cw, cs = calib.mean_cost()[0], calib.mean_cost()[-1]
    costs, quals, strongs = [], [], []
    for b in budgets:
        t = threshold_for_share(calib_scores, strong_share_for_budget(b, cw, cs))
        pick = (test_scores > t).astype(int)
        rows = np.arange(test.n_queries)
        costs.append(test.cost[rows, pick])
        quals.append(test.quality[rows, pick])
        strongs.append(pick.astype(float))
    return ShareCurve(name, np.array(costs), np.array(quals), query_strong=np.array(strongs))


@dataclass(frozen=True)
class ExAnteCost:
    """Per-model cost estimate known before a call, fitted on the fitting rows: a line in
    the prompt's input tokens when they are logged, else the model's mean cost. The replay
    pays the logged cost; deciding on it would leak the answer's length (output tokens)."""

    intercept: np.ndarray
    slope: np.ndarray

    @classmethod
    def fit(cls, data: ReplayDataset) -> ExAnteCost:
        k = data.n_models
        if data.tokens_in is None or not np.all(np.isfinite(data.tokens_in)):
            return cls(data.mean_cost(), np.zeros(k))
        a, b = np.zeros(k), np.zeros(k)
        for m in range(k):
            x, y = data.tokens_in[:, m], data.cost[:, m]
            if np.ptp(x) > 0:
                b[m], a[m] = np.polyfit(x, y, 1)
            else:
                a[m] = y.mean()
        return cls(a, np.maximum(b, 0.0))

    def __call__(self, data: ReplayDataset) -> np.ndarray:
        if data.tokens_in is None or not np.any(self.slope):
            return np.tile(self.intercept, (data.n_queries, 1))
        return np.maximum(self.intercept + self.slope * data.tokens_in, 1e-12)


# ------------------------------------------------------------------ RouteLLM metrics
def _routellm_point(share, quality, cost, qw, qs, cw, cs) -> dict[str, float]:
    nan = float("nan")
    if qs <= qw or cs <= cw:
        return dict.fromkeys(("apgr", "cpt50", "cpt80", "share95", "cost_reduction95"), nan)
    target = QUALITY_TARGET * qs
    f95 = (target - qw) / (qs - qw)
    c95 = cpt(cost, quality, qw, qs, f95, x_lo=cw) if f95 > 0 else cw
    s95 = cpt(share, quality, qw, qs, f95) if f95 > 0 else 0.0
    return {
        "apgr": apgr(share, quality, qw, qs),
        "cpt50": 100 * cpt(share, quality, qw, qs, 0.5),
        "cpt80": 100 * cpt(share, quality, qw, qs, 0.8),
        "share95": 100 * s95,
        "cost_reduction95": 100 * (1 - c95 / cs) if not math.isnan(c95) else nan,
    }


def routellm_metrics(test: ReplayDataset, curves: dict[str, ShareCurve], n_boot: int, seed: int):
    """RouteLLM's metrics per curve and for random routing, with paired bootstrap CIs."""
    n = test.n_queries

    def values(rows: np.ndarray) -> np.ndarray:
        q, c = test.quality[rows].mean(axis=0), test.cost[rows].mean(axis=0)
        qw, qs, cw, cs = q[0], q[-1], c[0], c[-1]
        out = []
        for curve in curves.values():
            m = _routellm_point(
                curve.query_strong[:, rows].mean(axis=1),
                curve.query_quality[:, rows].mean(axis=1),
                curve.query_cost[:, rows].mean(axis=1),
                qw,
                qs,
                cw,
                cs,
            )
            out.append([m[key] for key in KEYS])
        share = np.array([0.0, 1.0])
        m = _routellm_point(share, np.array([qw, qs]), np.array([cw, cs]), qw, qs, cw, cs)
        out.append([m[key] for key in KEYS])
        return np.array(out)

    point = values(np.arange(n))
    rng = np.random.default_rng(seed)
    boot = np.array([values(rng.integers(0, n, n)) for _ in range(n_boot)])
    with np.errstate(all="ignore"):
        low = np.nanquantile(boot, 0.025, axis=0)
        high = np.nanquantile(boot, 0.975, axis=0)
        # The paired difference to random routing of the APGR, per curve.
        diff = boot[:, :-1, 0] - boot[:, -1:, 0]
        dlow, dhigh = np.nanquantile(diff, [0.025, 0.975], axis=0)
    result: dict[str, dict[str, object]] = {}
    for i, name in enumerate([*curves, "random"]):
        entry: dict[str, object] = {}
        for j, key in enumerate(KEYS):
            entry[key] = float(point[i, j])
            entry[f"{key}_ci"] = [float(low[i, j]), float(high[i, j])]
        if name != "random":
            entry["apgr_minus_random_ci"] = [float(dlow[i]), float(dhigh[i])]
        result[name] = entry
    return result


KEYS = ("apgr", "cpt50", "cpt80", "share95", "cost_reduction95")


# ------------------------------------------------------------------ one split
def evaluate_learned_split(
    split: BenchSplit,
    learners: Sequence[str],
    *,
    embedder_name: str = "minilm",
    cache_dir: str | Path | None = None,
    strategies: Sequence[str] = LEARNED_STRATEGIES,
    n_budgets: int = DEFAULT_BUDGETS,
    n_boot: int = 1000,
    seed: int = 0,
) -> LearnedSplitResult:
    train, test = split.train, split.test
    k = test.n_models
    budgets = bench_budgets(train, n_budgets)
    notes: list[str] = []
    embedder = get_embedder(embedder_name) if learners else None
    emb = {}
    if embedder is not None:
        all_emb = embed_texts(train.prompts + test.prompts, embedder, cache_dir)
        emb = {"train": all_emb[: train.n_queries], "test": all_emb[train.n_queries :]}
        notes.append(f"embeddings: {embedder.model_id} ({all_emb.shape[1]} dims, cached)")

    estimators: dict[str, str] = {}
    curves: dict[str, ShareCurve] = {}
    ex_ante_cost = ExAnteCost.fit(train)
    train_cost, test_cost = ex_ante_cost(train), ex_ante_cost(test)
    notes.append("strategies decide on ex-ante cost estimates (train rows); they pay logged costs")

    def add(label: str, calib_staged: StagedEstimates, test_staged: StagedEstimates, kind: str):
        estimators[label] = f"post-hoc {kind}, cross-fitted; budgets on out-of-fold estimates"
        calib_ctx, test_ctx = BatchContext(calib_staged), BatchContext(test_staged)
        for name in strategies:
            curves[f"{name}[{label}]"] = share_sweep(
                bench_candidates(name, k),
                calib_ctx,
                train,
                test_ctx,
                test,
                budgets,
                f"{name}[{label}]",
            )

    base = fit_quality_estimator(train, seed=seed)
    add(
        "base",
        crossfit_staged(base, train_cost),
        staged_estimates(base, test, cost=test_cost),
        base.spec.posthoc_source,
    )
    for learner in learners:
        est = fit_learned_estimator(
            lambda learner=learner: make_scorer(learner), train, emb["train"], seed=seed
        )
        add(
            learner,
            crossfit_staged(est.estimator, train_cost),
            est.staged(test, emb["test"], cost=test_cost),
            est.estimator.spec.posthoc_source,
        )
        if k == 2:
            cs = strong_win_probability(est.train_scores)
            ts = strong_win_probability(est.scorer.score(emb["test"], test.prompts))
            label = f"routellm_threshold[{learner}]"
            curves[label] = threshold_curve(cs, ts, train, test, budgets, label)
    metrics, _ = curve_metrics(
        test, {n: (c.query_cost, c.query_quality) for n, c in curves.items()}, n_boot, seed
    )
    routellm = routellm_metrics(test, curves, n_boot, seed) if k == 2 else {}
    return LearnedSplitResult(
        name=split.name,
        n_fit=train.n_queries,
        n_calibration=train.n_queries,
        n_test=test.n_queries,
        models=list(test.model_names),
        estimators=estimators,
        metrics=metrics,
        routellm=routellm,
        notes=notes,
    )


def run_learned_bench(
    path: str | Path,
    learners: Sequence[str],
    *,
    models: Sequence[str] | None = None,
    only: Sequence[str] | None = None,
    embedder_name: str = "minilm",
    cache_dir: str | Path | None = None,
    n_budgets: int = DEFAULT_BUDGETS,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[list[LearnedSplitResult], float, list[str]]:
    start = time.perf_counter()
    splits, notes = learned_splits(Path(path), models, only)
    results = [
        evaluate_learned_split(
            s,
            learners,
            embedder_name=embedder_name,
            cache_dir=cache_dir,
            n_budgets=n_budgets,
            n_boot=n_boot,
            seed=seed,
        )
        for s in splits
    ]
    return results, time.perf_counter() - start, notes


# ------------------------------------------------------------------ output
def _f(x: object, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}f}"


def format_learned(results: Sequence[LearnedSplitResult], seconds: float) -> str:
    lines: list[str] = []
    for r in results:
        lines.append(
            f"{r.name}  (test {r.n_test}, fit {r.n_fit}, calibration {r.n_calibration};"
            f" models {', '.join(r.models)})"
        )
        for label, desc in r.estimators.items():
            lines.append(f"  estimator {label}: {desc}")
        lines.append(f"{'strategy':<34} {'AUC':>6}  {'95% CI':<16} {'APGR$':>6}")
        for name, m in r.metrics.items():
            lo, hi = m["ci"]  # type: ignore[misc]
            lines.append(
                f"{name:<34} {m['auc']:>6.2f}  [{lo:6.2f}, {hi:6.2f}]  {_f(m.get('apgr'), 3):>6}"
            )
        if r.routellm:
            lines.append("RouteLLM metrics (x = share of strong-model calls; 95% bootstrap CIs)")
            lines.append(
                f"{'router':<34} {'APGR':>6} {'[95% CI]':<15} {'vs random':<17}"
                f" {'CPT50%':>6} {'CPT80%':>6} {'strong@95%':>10} {'cost red.@95%':>17}"
            )
            for name, m in r.routellm.items():
                a_lo, a_hi = m["apgr_ci"]  # type: ignore[misc]
                d = m.get("apgr_minus_random_ci")
                vs = f"[{d[0]:+.3f}, {d[1]:+.3f}]" if d else ""  # type: ignore[index]
                c_lo, c_hi = m["cost_reduction95_ci"]  # type: ignore[misc]
                lines.append(
                    f"{name:<34} {m['apgr']:>6.3f} [{a_lo:.3f}, {a_hi:.3f}] {vs:<17}"
                    f" {_f(m['cpt50']):>6} {_f(m['cpt80']):>6} {_f(m['share95']):>10}"
                    f" {_f(m['cost_reduction95']):>5} [{_f(c_lo)}, {_f(c_hi)}]"
                )
        for note in r.notes:
            lines.append(f"note: {note}")
        lines.append("")
    lines.append("APGR$: APGR on the cost axis (bench); AUC as in docs/bench.md.")
    lines.append(
        "strong@95% / cost red.@95%: share of strong calls (%) and dollar cost reduction (%) vs"
        " the strong model alone at 95% of its quality."
    )
    lines.append(f"total {seconds:.1f} s")
    return "\n".join(lines)


def learned_to_json(results: Sequence[LearnedSplitResult], seconds: float, settings: dict) -> dict:
    return json_safe(
        {
            "datasets": [
                {
                    "name": r.name,
                    "n_test": r.n_test,
                    "n_fit": r.n_fit,
                    "n_calibration": r.n_calibration,
                    "models": r.models,
                    "estimators": r.estimators,
                    "strategies": r.metrics,
                    "routellm": r.routellm,
                    "notes": r.notes,
                }
                for r in results
            ],
            "seconds": seconds,
            "settings": settings,
        }
    )
