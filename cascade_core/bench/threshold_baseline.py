"""The careful user's baseline: a per-step threshold cascade tuned on train by grid search.

Models run cheapest first (train mean cost). After step j the cascade stops when model j's
*raw* confidence (its primary signal: ``confidence_logprob``, or the mean token logprob) is at
least tau_j; the last model always answers. Each step's candidate thresholds are +inf (never
stop there) and the train quantiles of that model's confidence at levels 0, 1/G, ..,
(G-1)/G (level 0 always stops). For each budget the threshold vector with the best train
accuracy among those whose train mean cost is within the budget is kept (ties: the cheaper),
and applied unchanged to test. No mixing: a user sets one threshold per step.

A per-model monotone calibration of the signal would change nothing here (one threshold per
model is invariant to a monotone map of that model's signal), so the raw signal is the
calibrated one for this baseline. A missing confidence never stops the cascade.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np

from cascade_core.fitting.features import spec_for_dataset, table_from_dataset
from cascade_core.replay import ReplayDataset

GRID = 20
# At most this many threshold vectors are scored on train (G shrinks for long ladders).
MAX_VECTORS = 50_000
_CHUNK_CELLS = 4_000_000


def raw_confidence(data: ReplayDataset) -> np.ndarray | None:
    """(n, k) primary signal per model, -inf where missing; None when nothing is logged."""
    spec = spec_for_dataset(data)
    primary = spec.primary_signal
    if primary is None:
        return None
    table = table_from_dataset(spec, data)
    values = table.posthoc[:, :, spec.posthoc_names.index(primary)]
    return np.where(np.isnan(values), -np.inf, values)


def grid_size(n_steps: int) -> int:
    return max(1, min(GRID, int(MAX_VECTORS ** (1 / max(n_steps, 1))) - 1))


def _outcomes(conf, cost, quality, order, taus_index, candidates):
    """Mean cost and quality (over rows) of each threshold vector (rows of ``taus_index``)."""
    n = conf.shape[0]
    steps = len(order) - 1
    accept = [conf[:, order[j]][None, :] >= candidates[j][:, None] for j in range(steps)]
    mean_cost = np.empty(len(taus_index))
    mean_quality = np.empty(len(taus_index))
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    for lo in range(0, len(taus_index), chunk):
        part = taus_index[lo : lo + chunk]
        active = np.ones((len(part), n), dtype=bool)
        paid = np.zeros((len(part), n))
        got = np.zeros((len(part), n))
        for j, m in enumerate(order):
            paid += active * cost[None, :, m]
            stop = active if j == steps else active & accept[j][part[:, j]]
            got += stop * quality[None, :, m]
            active &= ~stop
        mean_cost[lo : lo + chunk] = paid.mean(axis=1)
        mean_quality[lo : lo + chunk] = got.mean(axis=1)
    return mean_cost, mean_quality


def fit_thresholds(
    train: ReplayDataset, order: Sequence[int], budgets: Sequence[float]
) -> list[tuple[float, ...]] | None:
    """One threshold per step (all but the last model of ``order``) per budget; None when the
    data logs no confidence."""
    conf = raw_confidence(train)
    if conf is None:
        return None
    order = list(order)
    if len(order) == 1:
        return [() for _ in budgets]
    size = grid_size(len(order) - 1)
    candidates = []
    for m in order[:-1]:
        finite = conf[:, m][np.isfinite(conf[:, m])]
        levels = np.quantile(finite, np.arange(size) / size) if finite.size else np.array([])
        candidates.append(np.concatenate([[np.inf], np.unique(levels)]))
    index = np.array(list(product(*[range(len(c)) for c in candidates])), dtype=int)
    mean_cost, mean_quality = _outcomes(conf, train.cost, train.quality, order, index, candidates)
    fitted = []
    for budget in budgets:
        ok = np.flatnonzero(mean_cost <= budget * (1 + 1e-12))
        if ok.size == 0:
            ok = np.array([int(np.argmin(mean_cost))])
        top = mean_quality[ok].max()
        tied = ok[mean_quality[ok] >= top - 1e-12]
        pick = tied[np.argmin(mean_cost[tied])]
        fitted.append(tuple(float(candidates[j][index[pick, j]]) for j in range(len(order) - 1)))
    return fitted


def apply_thresholds(
    test: ReplayDataset, order: Sequence[int], fitted: Sequence[tuple[float, ...]]
) -> tuple[np.ndarray, np.ndarray]:
    """Per budget and test query: the cost paid and the quality got, (B, n) each."""
    costs, qualities, _ = replay_thresholds(test, order, fitted)
    return costs, qualities


def replay_thresholds(
    test: ReplayDataset, order: Sequence[int], fitted: Sequence[tuple[float, ...]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`apply_thresholds` plus which models ran: (B, n) cost, (B, n) quality, (B, n, k) ran
    (from which `sequential_latency` gives the seconds waited)."""
    conf = raw_confidence(test)
    assert conf is not None, "fit_thresholds returned thresholds, so confidences are logged"
    n = test.n_queries
    costs, qualities, runs = [], [], []
    for taus in fitted:
        paid, got = np.zeros(n), np.zeros(n)
        ran = np.zeros((n, test.n_models), dtype=bool)
        active = np.ones(n, dtype=bool)
        for j, m in enumerate(order):
            paid += np.where(active, test.cost[:, m], 0.0)
            ran[:, m] = active
            stop = active if j == len(order) - 1 else active & (conf[:, m] >= taus[j])
            got[stop] = test.quality[stop, m]
            active &= ~stop
        costs.append(paid)
        qualities.append(got)
        runs.append(ran)
    return np.array(costs), np.array(qualities), np.array(runs)
