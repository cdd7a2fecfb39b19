"""Finding the best supermodel: a pruned search for one query, plain enumeration for batches.

The value of a supermodel is the sample average of a pointwise maximum (see
``cascade_core.expected_max``), so it is submodular in the set. That makes the pruning rule
exact: if adding model m to M does not pay for itself (value gain < lambda * cost_m), adding m to
any superset of M does not either, so no supermodel containing M + m needs to be expanded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

from cascade_core.estimates import FloatArray

# Objectives closer than this are ties; ties go to the smaller (earlier generated) supermodel so
# that models adding nothing are never run because of rounding.
TIE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class SearchResult:
    members: tuple[int, ...]
    value: float
    objective: float
    expanded: int


def best_supermodel(
    samples: FloatArray,
    cost: FloatArray,
    lam: float,
    ran: frozenset[int],
    max_size: int,
    prune: bool = True,
) -> SearchResult:
    """Level-wise search over supermodels of ``ran`` with at most ``max_size`` models.

    ``samples`` has shape (S, k): joint samples of the true qualities. Each level adds one model
    with an index above the last one added, so every set is generated once; the frontier keeps,
    per set, its per-sample maximum so a child costs one ``np.maximum``.
    """
    n_models = samples.shape[1]
    ran_mask = np.zeros(n_models, dtype=bool)
    ran_mask[list(ran)] = True
    ran_idx = np.flatnonzero(ran_mask)
    free = np.flatnonzero(~ran_mask)
    average = np.full(samples.shape[0], 1.0 / samples.shape[0])
    free_samples = np.ascontiguousarray(samples[:, free].T)  # (F, S)
    free_cost = cost[free]
    base_cost = float(cost[ran_idx].sum())
    if len(ran_idx):
        frontier_max = samples[:, ran_idx].max(axis=1)[None, :]
        frontier_value = frontier_max @ average
        best = SearchResult(
            tuple(int(i) for i in ran_idx),
            float(frontier_value[0]),
            float(frontier_value[0] - lam * base_cost),
            1,
        )
    else:
        frontier_max = np.full((1, samples.shape[0]), -np.inf)
        frontier_value = np.array([-np.inf])
        best = SearchResult((), -np.inf, -np.inf, 0)
    frontier_cost = np.array([base_cost])
    frontier_members = np.zeros((1, 0), dtype=np.intp)
    # Which free models each frontier set may still add: those above its last added model
    # whose marginal gain over the set's parent paid for itself (submodularity: a gain that
    # was negative there is negative here too, so such sets are dominated).
    frontier_allowed = np.ones((1, len(free)), dtype=bool)
    later = np.arange(len(free))
    expanded = best.expanded
    for _ in range(min(max_size, n_models) - len(ran_idx)):
        parents, positions = np.nonzero(frontier_allowed)
        if parents.size == 0:
            break
        child_max = np.maximum(frontier_max[parents], free_samples[positions])
        child_value = child_max @ average
        child_cost = frontier_cost[parents] + free_cost[positions]
        child_objective = child_value - lam * child_cost
        expanded += parents.size
        top = int(np.argmax(child_objective))
        if child_objective[top] > best.objective + TIE_TOLERANCE:
            members = (*ran_idx, *free[frontier_members[parents[top]]], free[positions[top]])
            best = SearchResult(
                tuple(sorted(int(i) for i in members)),
                float(child_value[top]),
                float(child_objective[top]),
                expanded,
            )
        if prune:
            gain = child_value - frontier_value[parents] - lam * free_cost[positions]
            paid = gain >= 0
        else:
            gain = np.full(parents.size, np.inf)
            paid = np.ones(parents.size, dtype=bool)
        gain_by_parent = np.zeros(frontier_allowed.shape)
        gain_by_parent[parents, positions] = np.where(paid, gain, -1.0)
        keep = np.flatnonzero(paid)
        frontier_allowed = (gain_by_parent[parents[keep]] >= 0) & (later > positions[keep, None])
        if prune:
            # Branch and bound: a superset of a child can gain at most the sum of the positive
            # gains its additions had over the child's parent (submodularity again).
            bound = child_objective[keep] + np.where(
                frontier_allowed, gain_by_parent[parents[keep]], 0.0
            ).sum(axis=1)
            promising = bound > best.objective
            keep, frontier_allowed = keep[promising], frontier_allowed[promising]
        frontier_max = child_max[keep]
        frontier_value = child_value[keep]
        frontier_cost = child_cost[keep]
        frontier_members = np.concatenate(
            [frontier_members[parents[keep]], positions[keep, None]], axis=1
        )
    return SearchResult(best.members, best.value, best.objective, expanded)


@lru_cache(maxsize=4096)
def supermodel_masks(ran: frozenset[int], n_models: int, max_size: int) -> FloatArray:
    """Every supermodel of ``ran`` with at most ``max_size`` models, ``ran`` itself first."""
    free = [m for m in range(n_models) if m not in ran]
    rows = []
    if ran:
        rows.append(tuple(ran))
    for extra in range(1, max(0, max_size - len(ran)) + 1):
        for added in combinations(free, extra):
            rows.append((*ran, *added))
    masks = np.zeros((len(rows), n_models), dtype=bool)
    for i, members in enumerate(rows):
        masks[i, list(members)] = True
    masks.setflags(write=False)
    return masks
