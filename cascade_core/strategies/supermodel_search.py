"""Finding the best supermodel: a pruned search for one query, plain enumeration for batches.

The value of a supermodel is the sample average of a pointwise maximum (see
``cascade_core.expected_max``), so it is submodular in the set. That makes the pruning rule
exact: if adding model m to M does not pay for itself (value gain < lambda * cost_m), adding m to
any superset of M does not either, so no supermodel containing M + m needs to be expanded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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
) -> SearchResult:
    """The best supermodel of ``ran`` with at most ``max_size`` models, found exactly.

    ``samples`` has shape (S, k): joint samples of the true qualities. Sets of one and of two
    added models are scored in one vectorized pass each; larger sets grow level by level from
    the pairs, each adding a model with an index above its last one, so every set is generated
    once. Two exact prunings, both from submodularity, keep the frontier small:

    * a model whose gain over a set does not pay for its price is never added to a superset
      of that set (and models that do not pay next to ``ran`` alone are dropped at once);
    * a set is not expanded when even the sum of its remaining positive gain caps cannot lift
      it above the best objective found so far (branch and bound).

    Per-array-operation overhead dominates at ladder sizes of ten or so, which is why the
    first two levels are special-cased: a typical 11-model decision is a few dozen operations.
    """
    n_samples, n_models = samples.shape
    ran_idx = sorted(ran)
    free = _free_models(ran, n_models)
    average = _average(n_samples)
    base_price = lam * sum(float(cost[m]) for m in ran_idx)
    base_max = samples[:, ran_idx].max(axis=1) if ran_idx else None
    base_objective = -np.inf if base_max is None else float(base_max @ average) - base_price
    best = _Best(tuple(ran_idx), base_objective, base_price)
    depth = min(max_size, n_models) - len(ran_idx)
    if depth < 1 or not len(free):
        return best.result(1 if ran_idx else 0)

    free_samples = samples.T[free]  # (F, S)
    single_max = free_samples if base_max is None else np.maximum(free_samples, base_max)
    free_price = lam * cost[free]
    single_objective = single_max @ average - free_price - base_price
    expanded = (1 if ran_idx else 0) + len(free)
    best.offer(single_objective, base_price + free_price, lambda i: (free[i],))
    if base_max is not None:
        paying = np.flatnonzero(single_objective >= base_objective)
        if len(paying) < len(free):
            free, free_samples, single_max = free[paying], free_samples[paying], single_max[paying]
            free_price, single_objective = free_price[paying], single_objective[paying]
    n_free = len(free)
    if depth < 2 or n_free < 2:
        return best.result(expanded)

    first, second = _pairs(n_free)
    _check_size(expanded + len(first), n_models, lam)
    expanded += len(first)
    pair_max = np.maximum(single_max[first], free_samples[second])
    pair_price = free_price[first] + free_price[second] + base_price
    pair_objective = pair_max @ average - pair_price
    best.offer(pair_objective, pair_price, lambda p: (free[first[p]], free[second[p]]))
    if depth < 3 or n_free < 3:
        return best.result(expanded)
    # gain[i, j]: the objective gain of adding j to ran + {i}. It caps the gain of adding j to
    # any set containing i, so two models can share an optimal set only if both gains are >= 0.
    gain = np.full((n_free, n_free), -np.inf)
    gain[first, second] = pair_objective - single_objective[first]
    gain[second, first] = pair_objective - single_objective[second]
    gain[np.minimum(gain, gain.T) < 0] = -np.inf
    # The frontier is the last level's sets; ``rows`` are those that may still grow, each with
    # a cap per free model on the gain of adding it (-inf where it may not be added).
    lineage = [(first, second)]
    frontier_max, frontier_objective, frontier_price = pair_max, pair_objective, pair_price
    rows = np.flatnonzero(gain[first, second] > -np.inf)
    caps = _growth_caps(
        np.minimum(gain[first[rows]], gain[second[rows]]),
        second[rows],
        pair_objective[rows],
        best.objective,
        depth - 2,
    )
    for level in range(3, depth + 1):
        grown, positions = np.nonzero(caps >= 0)
        if not grown.size:
            break
        _check_size(expanded + grown.size, n_models, lam)
        expanded += grown.size
        parents = rows[grown]
        lineage.append((parents, positions))
        child_max = np.maximum(frontier_max[parents], free_samples[positions])
        child_price = frontier_price[parents] + free_price[positions]
        child_objective = child_max @ average - child_price
        best.offer(
            child_objective,
            child_price,
            lambda c, lineage=tuple(lineage): free[_rebuild(lineage, c)],
        )
        if level == depth:
            break
        child_gain = child_objective - frontier_objective[parents]
        # The gain of adding m to a set caps it for every superset, so for the set's children.
        sibling_gain = np.full(caps.shape, -np.inf)
        sibling_gain[grown, positions] = child_gain
        rows = np.flatnonzero(child_gain >= 0)
        caps = _growth_caps(
            np.minimum(sibling_gain[grown[rows]], gain[positions[rows]]),
            positions[rows],
            child_objective[rows],
            best.objective,
            depth - level,
        )
        frontier_max, frontier_objective, frontier_price = child_max, child_objective, child_price
    return best.result(expanded)


def _growth_caps(
    caps: FloatArray, added: np.ndarray, objective: FloatArray, best_objective: float, more: int
) -> FloatArray:
    """Which models each growing set may add, as gain caps (-inf: may not add).

    A set only adds models above the one it added last (so each set is generated once), and
    only if its capped upside, at most ``more`` models, can still beat the best objective
    found (branch and bound).
    """
    caps = np.where(_later(caps.shape[1])[added], caps, -np.inf)
    positive = np.maximum(caps, 0.0)
    upside = positive.max(axis=1) if more == 1 else positive.sum(axis=1)
    caps[objective + upside <= best_objective] = -np.inf
    return caps


def _rebuild(lineage: Sequence[tuple[np.ndarray, np.ndarray]], row: int) -> list[int]:
    """The free-model positions of one set of the last level, from its parent pointers.

    ``lineage[0]`` holds the pairs (first, second); each later level (parents, positions).
    """
    added = []
    for parents, positions in reversed(lineage[1:]):
        added.append(int(positions[row]))
        row = int(parents[row])
    first, second = lineage[0]
    return [int(first[row]), int(second[row]), *reversed(added)]


class _Best:
    """The best supermodel so far. A later one must win by more than the tie tolerance, so ties
    go to the smaller (earlier generated) set and no model runs because of rounding."""

    def __init__(self, members: tuple[int, ...], objective: float, price: float) -> None:
        self.base = members
        self.members = members
        self.objective = objective
        self.price = price

    def offer(
        self, objectives: FloatArray, prices: FloatArray, added: Callable[[int], Iterable[int]]
    ) -> None:
        top = int(objectives.argmax())
        objective = objectives.item(top)
        if objective > self.objective + TIE_TOLERANCE:
            self.objective = objective
            self.price = prices.item(top)
            self.members = tuple(sorted((*self.base, *(int(m) for m in added(top)))))

    def result(self, expanded: int) -> SearchResult:
        value = self.objective + self.price if self.members else -np.inf
        return SearchResult(self.members, value, self.objective, expanded)


def _check_size(count: int, n_models: int, lam: float) -> None:
    if count > MAX_SUPERMODELS:
        raise SearchTooLargeError(
            f"exact cascade routing would evaluate more than {MAX_SUPERMODELS:,} supermodels "
            f"of {n_models} models at lambda={lam:.4g}; set max_depth (e.g. 3) or use the "
            "greedy variant for ladders this large"
        )


# Index helpers, cached: building them per decision would cost more than the search itself.


@lru_cache(maxsize=256)
def _free_models(ran: frozenset[int], n_models: int) -> np.ndarray:
    return _frozen(np.array([m for m in range(n_models) if m not in ran], dtype=np.intp))


@lru_cache(maxsize=16)
def _average(n_samples: int) -> FloatArray:
    return _frozen(np.full(n_samples, 1.0 / n_samples))


@lru_cache(maxsize=256)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    first, second = np.triu_indices(n, 1)
    return _frozen(first), _frozen(second)


@lru_cache(maxsize=256)
def _later(n: int) -> np.ndarray:
    """``_later(n)[j, m]``: model m comes after model j."""
    return _frozen(np.triu(np.ones((n, n), dtype=bool), 1))


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


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
