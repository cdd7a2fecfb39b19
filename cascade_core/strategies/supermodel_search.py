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

from cascade_core.errors import InvalidInputError
from cascade_core.estimates import FloatArray

# Objectives closer than this are ties; ties go to the smaller (earlier generated) supermodel so
# that models adding nothing are never run because of rounding.
TIE_TOLERANCE = 1e-12


# Each evaluated supermodel holds S floats; this bounds a decision's memory to about 1 GB.
MAX_SUPERMODELS = 1_000_000


class SearchTooLargeError(InvalidInputError):
    """The exact search space is too large for this ladder and lambda."""


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
    per set, its per-sample maximum so a child costs one ``np.maximum``. Two exact prunings
    (both from submodularity) keep the frontier small:

    * a model whose gain over a set's parent did not pay for itself is never added to the set;
    * a set is not expanded when even the sum of its remaining positive gains cannot lift it
      above the best objective found so far (branch and bound).
    """
    n_models = samples.shape[1]
    ran_mask = np.zeros(n_models, dtype=bool)
    ran_mask[list(ran)] = True
    ran_idx = np.flatnonzero(ran_mask)
    free = np.flatnonzero(~ran_mask)
    free_samples = np.ascontiguousarray(samples[:, free].T)  # (F, S)
    free_price = lam * cost[free]
    average = np.full(samples.shape[0], 1.0 / samples.shape[0])
    if len(ran_idx):
        frontier_max = samples[:, ran_idx].max(axis=1)[None, :]
        value = float(frontier_max[0] @ average)
        price = lam * float(cost[ran_idx].sum())
        best = SearchResult(tuple(int(i) for i in ran_idx), value, value - price, 1)
    else:
        frontier_max = np.full((1, samples.shape[0]), -np.inf)
        price = 0.0
        best = SearchResult((), -np.inf, -np.inf, 0)
    frontier_objective = np.array([best.objective])
    frontier_price = np.array([price])
    frontier_allowed = np.ones((1, len(free)), dtype=bool)
    later = np.arange(len(free))
    # Per level: each frontier set's parent row and added position, to rebuild the winner.
    lineage: list[tuple[np.ndarray, np.ndarray]] = []
    winner: tuple[int, int] | None = None
    expanded = best.expanded
    best_value, best_objective = best.value, best.objective
    # pair_gain[x, m]: objective gain of adding m to ran + {x}; by submodularity it caps the
    # gain of adding m to any set that contains x. Filled once pairs are evaluated.
    pair_gain = np.full((len(free), len(free)), np.inf)
    single_value = np.zeros(len(free))
    n_levels = min(max_size, n_models) - len(ran_idx)
    for level in range(n_levels):
        parents, positions = np.nonzero(frontier_allowed)
        if parents.size == 0:
            break
        if expanded + parents.size > MAX_SUPERMODELS:
            raise SearchTooLargeError(
                f"exact cascade routing would evaluate more than {MAX_SUPERMODELS:,} supermodels "
                f"of {n_models} models at lambda={lam:.4g}; set max_depth (e.g. 3) or use the "
                "greedy variant for ladders this large"
            )
        child_max = np.maximum(frontier_max[parents], free_samples[positions])
        child_value = child_max @ average
        child_price = frontier_price[parents] + free_price[positions]
        child_objective = child_value - child_price
        expanded += parents.size
        lineage.append((parents, positions))
        top = int(np.argmax(child_objective))
        if child_objective[top] > best_objective + TIE_TOLERANCE:
            best_value, best_objective = float(child_value[top]), float(child_objective[top])
            winner = (len(lineage) - 1, top)
        remaining = n_levels - level - 1  # models a child may still add
        if remaining == 0:
            break
        if prune:
            gain = child_objective - frontier_objective[parents]  # value gain minus its price
            paid = gain >= 0
        else:
            gain = np.full(parents.size, np.inf)
            paid = np.ones(parents.size, dtype=bool)
        gain_by_parent = np.full(frontier_allowed.shape, -1.0)
        gain_by_parent[parents, positions] = gain
        if level == 0:
            single_value[positions] = child_value
        elif level == 1 and prune:
            first = lineage[0][1][lineage[1][0][parents]]  # the model each pair started from
            pair_gain[first, positions] = gain
            pair_gain[positions, first] = child_value - single_value[positions] - free_price[first]
        keep = np.flatnonzero(paid)
        inherited = np.minimum(gain_by_parent[parents[keep]], pair_gain[positions[keep]])
        allowed = (inherited >= 0) & (later > positions[keep, None])
        if prune:
            # A superset can gain at most the positive gains its additions had one level up,
            # and only the best one of them when a single model may still be added.
            caps = np.where(allowed, inherited, 0.0)
            upside = caps.max(axis=1, initial=0.0) if remaining == 1 else caps.sum(axis=1)
            bound = child_objective[keep] + upside
            promising = bound > best_objective
            keep, allowed = keep[promising], allowed[promising]
        frontier_allowed = allowed
        frontier_max = child_max[keep]
        frontier_objective = child_objective[keep]
        frontier_price = child_price[keep]
        lineage.append((keep, np.empty(0, dtype=np.intp)))
    members = list(ran_idx)
    if winner is not None:
        members += [int(free[p]) for p in _rebuild(lineage, *winner)]
    return SearchResult(
        tuple(sorted(int(m) for m in members)), best_value, best_objective, expanded
    )


def _rebuild(lineage, level: int, row: int) -> list[int]:
    """Follow parent pointers from a child back to the root; return the added positions.

    ``lineage`` alternates (parents, positions) of the children of a level with
    (kept rows, unused) that map the next level's parent rows back to those children.
    """
    added = []
    while level >= 0:
        parents, positions = lineage[level]
        added.append(int(positions[row]))
        parent = int(parents[row])
        if level == 0:
            break
        kept_rows, _ = lineage[level - 1]
        row = int(kept_rows[parent])
        level -= 2
    return added


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
