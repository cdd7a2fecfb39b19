"""Metrics of the offline evaluation, exactly as DESIGN.md ("Evaluation") defines them.

A strategy swept over budgets gives points (average cost, average quality). The metrics:

* `auc` - the paper's AUC (Dekoninck et al., arXiv 2410.10347): area under the linearly
  interpolated quality-vs-cost curve over [cost_lo, cost_hi] = [mean cost of the cheapest
  model, mean cost of the most expensive model], divided by the range, x100. Rules:
  points are sorted by cost (ties by quality) and taken *as they are*: a non-monotone curve
  is not smoothed, made monotone or hulled (as in the paper's code), so a strategy whose
  quality drops with budget is charged for it; left of the first point the curve holds
  ``floor_quality`` (the worst single model's quality), right of the last point it stays
  at the last point's quality; points outside the range still shape the segments that cross
  into it, and only the part of the curve inside [cost_lo, cost_hi] is integrated.
* `oracle_point` - per query the cheapest model among those with the best quality on that
  query (for 0/1 data: the cheapest correct model; if none is correct, the cheapest model).
* `single_model_points` and `linear_hull` - each model alone, and the upper convex hull of
  those points (what mixing two models at random achieves; "linear" in the tables).
* `apgr` and `cpt` - RouteLLM's two-model metrics (Ong et al. 2024, lm-sys/RouteLLM
  ``routellm/evals/evaluate.py``). With weak/strong model qualities w and s and
  PGR(q) = (q - w) / (s - w):
  APGR = (1 / (x_hi - x_lo)) * integral over [x_lo, x_hi] of PGR(curve(x)) dx, with x the
  share of strong-model calls (x_lo=0, x_hi=1) or the cost (weak cost .. strong cost).
  RouteLLM computes (trapz(q) - trapz(w)) / (trapz(s) - trapz(w)) over its sorted points,
  which is the same number when the sweep spans [0, 1]; outside the points we use the AUC's
  extension rules (hold w before the first point, flat after the last).
  CPT(f) = the smallest x at which the interpolated curve reaches w + f (s - w) (RouteLLM
  reports it in percent and uses ``np.interp``, which presumes a monotone curve; we take the
  first crossing, so non-monotone curves are handled), NaN when the curve never gets there.
* `bootstrap_ci` - percentile intervals from resampling queries with replacement; one
  resample feeds every strategy, so intervals of differences are paired.
* `cost_share_at` - the cost at which a curve first reaches a share (95%) of the best single
  model's quality, as a percentage of that model's cost: what a user asks ("how much of the
  best model's bill buys 95% of its accuracy?"), NaN when never reached.
* `dominated_models` - models another model matches in price (within 1%) and beats in mean
  quality: a strategy that may run them can only lose AUC on average.
* `curve_metrics` - all of the above for several swept strategies on one test set, next to the
  linear hull and the oracle, with paired bootstrap intervals of the AUCs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .dataset import ReplayDataset

__all__ = [
    "CurvePoint",
    "Interval",
    "apgr",
    "auc",
    "auc_range",
    "bootstrap_ci",
    "cost_share_at",
    "cpt",
    "curve_metrics",
    "dataset_auc",
    "dominated_models",
    "json_safe",
    "linear_hull",
    "oracle_point",
    "single_model_points",
]


class CurvePoint(NamedTuple):
    """One (average cost, average quality) point."""

    cost: float
    quality: float


class Interval(NamedTuple):
    """A confidence interval; arrays when the bootstrapped statistic is a vector."""

    low: float | np.ndarray
    high: float | np.ndarray


# ---------------------------------------------------------------------------- curves
def _sorted_curve(xs: ArrayLike, ys: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(xs, dtype=float).ravel()
    y = np.asarray(ys, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"costs and qualities differ in length: {x.size} vs {y.size}")
    if x.size == 0:
        raise ValueError("need at least one point")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("points must be finite (no NaN/inf)")
    order = np.lexsort((y, x))
    return x[order], y[order]


def _area(x: np.ndarray, y: np.ndarray, lo: float, hi: float, floor: float) -> float:
    """Integral over [lo, hi] of the piecewise-linear curve through sorted (x, y), holding
    ``floor`` left of x[0] and y[-1] right of x[-1]."""
    area = floor * max(0.0, min(x[0], hi) - lo)
    area += y[-1] * max(0.0, hi - max(x[-1], lo))
    if x.size > 1:
        x0, x1, y0, y1 = x[:-1], x[1:], y[:-1], y[1:]
        a = np.maximum(x0, lo)
        b = np.minimum(x1, hi)
        width = x1 - x0
        # Position within the segment as a clipped fraction (no slope: a tiny width would
        # overflow it), so interpolated values stay between the segment's end values.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ta = np.where(width > 0, np.clip((a - x0) / width, 0.0, 1.0), 0.0)
            tb = np.where(width > 0, np.clip((b - x0) / width, 0.0, 1.0), 0.0)
        ya = y0 + ta * (y1 - y0)
        yb = y0 + tb * (y1 - y0)
        area += float(np.sum(np.where(b > a, (b - a) * (ya + yb) / 2.0, 0.0)))
    return float(area)


def auc(
    costs: ArrayLike,
    qualities: ArrayLike,
    cost_lo: float,
    cost_hi: float,
    floor_quality: float,
) -> float:
    """The paper's AUC (x100) of the points (costs[i], qualities[i]); rules in the module doc."""
    if not cost_hi > cost_lo:
        raise ValueError(f"cost_hi ({cost_hi}) must exceed cost_lo ({cost_lo})")
    x, y = _sorted_curve(costs, qualities)
    return (
        100.0
        * _area(x, y, float(cost_lo), float(cost_hi), float(floor_quality))
        / (cost_hi - cost_lo)
    )


def single_model_points(dataset: ReplayDataset) -> tuple[np.ndarray, np.ndarray]:
    """(mean cost, mean quality) of each model alone, in ``dataset.model_names`` order."""
    return dataset.mean_cost(), dataset.mean_quality()


def auc_range(dataset: ReplayDataset) -> tuple[float, float, float]:
    """(cost_lo, cost_hi, floor_quality) for `auc` on this dataset: the cheapest and most
    expensive model's mean cost and the worst model's mean quality."""
    costs, quals = single_model_points(dataset)
    return float(costs.min()), float(costs.max()), float(quals.min())


def dataset_auc(dataset: ReplayDataset, costs: ArrayLike, qualities: ArrayLike) -> float:
    """`auc` with the range and floor taken from ``dataset`` (the usual call)."""
    return auc(costs, qualities, *auc_range(dataset))


def oracle_point(dataset: ReplayDataset) -> CurvePoint:
    """The physical limit: per query, the cheapest of the models with the best quality on it.

    For 0/1 data that is the cheapest correct model, or the cheapest model when none is
    correct (an answer still has to come from somewhere). Costs compare per query.
    """
    q, c = dataset.quality, dataset.cost
    best = q.max(axis=1, keepdims=True)
    masked = np.where(q >= best, c, np.inf)
    pick = masked.argmin(axis=1)
    rows = np.arange(dataset.n_queries)
    return CurvePoint(float(c[rows, pick].mean()), float(q[rows, pick].mean()))


def linear_hull(costs: ArrayLike, qualities: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Upper convex hull of single-model points, from the cheapest point up to the best one.

    Randomly mixing two models reaches any point on the segment between them, so this curve
    is the baseline a selection strategy has to beat. Points past the best quality (dearer
    and worse) are left out; `auc` extends the curve flat from there.
    """
    x, y = _sorted_curve(costs, qualities)
    # Keep only the best quality at each cost (sorted ascending by quality within ties).
    last_of_cost = np.append(x[1:] != x[:-1], True)
    x, y = x[last_of_cost], y[last_of_cost]
    hull: list[int] = []
    for i in range(x.size):
        while len(hull) >= 2:
            o, a = hull[-2], hull[-1]
            cross = (x[a] - x[o]) * (y[i] - y[o]) - (y[a] - y[o]) * (x[i] - x[o])
            if cross >= 0:  # a lies on or below the chord o -> i
                hull.pop()
            else:
                break
        hull.append(i)
    h = np.asarray(hull)
    top = int(np.argmax(y[h]))
    return x[h[: top + 1]], y[h[: top + 1]]


# ---------------------------------------------------------------------------- RouteLLM
def _gap(weak_quality: float, strong_quality: float) -> float:
    gap = float(strong_quality) - float(weak_quality)
    if gap == 0:
        raise ValueError("weak and strong quality are equal: the performance gap is undefined")
    return gap


def apgr(
    xs: ArrayLike,
    qualities: ArrayLike,
    weak_quality: float,
    strong_quality: float,
    *,
    x_lo: float = 0.0,
    x_hi: float = 1.0,
) -> float:
    """Average performance gap recovered (RouteLLM) over [x_lo, x_hi]; see the module doc.

    ``xs`` is the share of strong-model calls in [0, 1] by default, or costs with x_lo/x_hi
    set to the weak and strong model's cost. 1.0 means the strong model's quality at every x.
    """
    if not x_hi > x_lo:
        raise ValueError(f"x_hi ({x_hi}) must exceed x_lo ({x_lo})")
    gap = _gap(weak_quality, strong_quality)
    x, y = _sorted_curve(xs, qualities)
    mean_q = _area(x, y, float(x_lo), float(x_hi), float(weak_quality)) / (x_hi - x_lo)
    return (mean_q - float(weak_quality)) / gap


def cpt(
    xs: ArrayLike,
    qualities: ArrayLike,
    weak_quality: float,
    strong_quality: float,
    fraction: float,
    *,
    x_lo: float = 0.0,
) -> float:
    """Call-performance threshold (RouteLLM): the smallest x (strong-call share, or cost) at
    which the curve reaches ``weak + fraction * (strong - weak)``; CPT(50%) is
    ``cpt(..., fraction=0.5)``. NaN if never reached; ``x_lo`` if the weak model suffices.
    """
    gap = _gap(weak_quality, strong_quality)
    target = float(weak_quality) + float(fraction) * gap
    if fraction <= 0:
        return float(x_lo)
    x, y = _sorted_curve(xs, qualities)
    hits = np.flatnonzero(y >= target if gap > 0 else y <= target)
    if hits.size == 0:
        return float("nan")
    i = int(hits[0])
    if i == 0:
        return float(max(x[0], x_lo))
    x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
    return float(x0 + (target - y0) / (y1 - y0) * (x1 - x0))


# ---------------------------------------------------------------------------- bootstrap
def bootstrap_ci(
    values_fn: Callable[[np.ndarray], float | ArrayLike],
    n_queries: int,
    *,
    n_boot: int = 1000,
    seed: int | None = 0,
    level: float = 0.95,
) -> Interval:
    """Percentile bootstrap interval of a statistic over queries.

    ``values_fn(indices)`` gets one resample of query indices (with replacement, length
    ``n_queries``) and returns the statistic, a float or a vector (e.g. one AUC per
    strategy, or a difference of AUCs). All strategies see the same resample, which is what
    makes comparisons paired. A fixed ``seed`` gives the same interval every run.
    """
    if n_queries < 1 or n_boot < 1:
        raise ValueError("n_queries and n_boot must be positive")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    samples = np.asarray(
        [
            np.asarray(values_fn(rng.integers(0, n_queries, size=n_queries)), dtype=float)
            for _ in range(n_boot)
        ]
    )
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha], axis=0)
    if np.ndim(low) == 0:
        return Interval(float(low), float(high))
    return Interval(low, high)


# ---------------------------------------------------------------------------- whole sweeps
QUALITY_SHARE = 0.95
# Mean costs within this relative margin count as the same price for dominance.
SAME_PRICE = 0.01


def dominated_models(dataset: ReplayDataset, same_price: float = SAME_PRICE) -> list[int]:
    """Columns of the models for which another costs at most ``same_price`` more on average
    and is more accurate, on ``dataset``."""
    cost, quality = dataset.mean_cost(), dataset.mean_quality()
    k = len(cost)
    return [
        j
        for j in range(k)
        if any(
            i != j and cost[i] <= cost[j] * (1 + same_price) and quality[i] > quality[j]
            for i in range(k)
        )
    ]


def cost_share_at(
    costs: ArrayLike,
    qualities: ArrayLike,
    model_costs: np.ndarray,
    model_qualities: np.ndarray,
    share: float = QUALITY_SHARE,
) -> float:
    """Cost (% of the best single model's cost) where the curve first reaches ``share`` of
    that model's quality; NaN when it never does."""
    best = int(np.argmax(model_qualities))
    target = float(model_qualities[best])
    if target <= 0:
        return float("nan")
    x = cpt(costs, qualities, 0.0, target, share, x_lo=float(np.min(model_costs)))
    return 100.0 * x / float(model_costs[best])


def _routellm_on_cost(xs, ys, mean_cost: np.ndarray, mean_quality: np.ndarray):
    """APGR and CPT(50/80%) on the cost axis, weak = cheapest, strong = dearest model; CPTs
    in % of the cheapest-to-dearest cost range."""
    weak, strong = int(np.argmin(mean_cost)), int(np.argmax(mean_cost))
    c_weak, c_strong = float(mean_cost[weak]), float(mean_cost[strong])
    q_weak, q_strong = float(mean_quality[weak]), float(mean_quality[strong])
    if q_strong == q_weak or c_strong == c_weak:
        return {"apgr": math.nan, "cpt50": math.nan, "cpt80": math.nan}

    def share(x: float) -> float:
        return 100.0 * (x - c_weak) / (c_strong - c_weak)

    return {
        "apgr": apgr(xs, ys, q_weak, q_strong, x_lo=c_weak, x_hi=c_strong),
        "cpt50": share(cpt(xs, ys, q_weak, q_strong, 0.5, x_lo=c_weak)),
        "cpt80": share(cpt(xs, ys, q_weak, q_strong, 0.8, x_lo=c_weak)),
    }


def curve_metrics(
    test: ReplayDataset,
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    n_boot: int,
    seed: int = 0,
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[list[float], list[float]]]]:
    """Metrics per swept strategy on ``test`` plus "linear" and "oracle"; and the curves.

    ``curves[name]`` = (per-budget, per-query expected cost, and quality), both (B, n). AUC
    intervals come from ``n_boot`` paired resamples of the queries (none when 0: NaN).
    """
    n = test.n_queries
    cost_q, qual_q = test.cost, test.quality
    best = qual_q.max(axis=1, keepdims=True)
    pick = np.where(qual_q >= best, cost_q, np.inf).argmin(axis=1)
    oracle_cost = cost_q[np.arange(n), pick]
    oracle_quality = qual_q[np.arange(n), pick]

    def aucs(rows: np.ndarray) -> np.ndarray:
        mc, mq = cost_q[rows].mean(axis=0), qual_q[rows].mean(axis=0)
        lo, hi, floor = float(mc.min()), float(mc.max()), float(mq.min())
        values = [
            auc(c[:, rows].mean(axis=1), q[:, rows].mean(axis=1), lo, hi, floor)
            for c, q in curves.values()
        ]
        values.append(auc(*linear_hull(mc, mq), lo, hi, floor))
        ox, oy = linear_hull(
            np.append(mc, oracle_cost[rows].mean()), np.append(mq, oracle_quality[rows].mean())
        )
        values.append(auc(ox, oy, lo, hi, floor))
        return np.array(values)

    point = aucs(np.arange(n))
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        boot = np.array([aucs(rng.integers(0, n, n)) for _ in range(n_boot)])
        low, high = np.quantile(boot, [0.025, 0.975], axis=0)
    else:
        low = high = np.full(point.shape, math.nan)
    mean_cost, mean_quality = test.mean_cost(), test.mean_quality()
    metrics: dict[str, dict[str, Any]] = {}
    points: dict[str, tuple[list[float], list[float]]] = {}
    hull = linear_hull(mean_cost, mean_quality)
    swept = {name: (c.mean(axis=1), q.mean(axis=1)) for name, (c, q) in curves.items()}
    for i, (name, (xs, ys)) in enumerate([*swept.items(), ("linear", hull)]):
        metrics[name] = {
            "auc": float(point[i]),
            "ci": [float(low[i]), float(high[i])],
            **_routellm_on_cost(xs, ys, mean_cost, mean_quality),
            "cost95_share": cost_share_at(xs, ys, mean_cost, mean_quality),
        }
        points[name] = (np.asarray(xs).tolist(), np.asarray(ys).tolist())
    metrics["oracle"] = {
        "auc": float(point[-1]),
        "ci": [float(low[-1]), float(high[-1])],
        "cost": float(oracle_cost.mean()),
        "quality": float(oracle_quality.mean()),
    }
    return metrics, points


def json_safe(value: Any) -> Any:
    """NaN is not JSON: an undefined metric (e.g. a CPT never reached) becomes null, in any
    nesting of dicts, lists and tuples."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return value
