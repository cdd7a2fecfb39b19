"""The replay path: run a strategy over a whole batch of queries without calling any LLM.

Queries are advanced step by step; at each step the ones in the same state (same set of models
run) are decided together by the strategy's vectorised rule. A ``BatchContext`` caches E[max]
per (state, supermodel) for all queries, so sweeping lambda over a calibration set computes
each expectation once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cascade_core.errors import InvalidInputError
from cascade_core.estimates import FloatArray, Uncertainty, check_cost, check_quality
from cascade_core.expected_max import DEFAULT_SAMPLES, quality_samples
from cascade_core.strategies.base import STOP, StateGroup, Strategy
from cascade_core.strategies.mixed import MixedStrategy

StateEstimator = Callable[[frozenset[int]], tuple[FloatArray, Uncertainty]]


class StagedEstimates:
    """Estimates for n queries in every state: ``state(ran)`` gives (quality (n, k), uncertainty).

    The estimator is called lazily and memoised, since a replay only visits a few states.
    """

    def __init__(self, cost: FloatArray, estimator: StateEstimator) -> None:
        self.cost = check_cost("cost", cost)
        if self.cost.ndim != 2:
            raise InvalidInputError(
                f"cost: expected shape (n_queries, n_models), got {self.cost.shape}"
            )
        self._estimator = estimator
        self._states: dict[frozenset[int], tuple[FloatArray, Uncertainty]] = {}

    @property
    def n_queries(self) -> int:
        return int(self.cost.shape[0])

    @property
    def n_models(self) -> int:
        return int(self.cost.shape[1])

    def state(self, ran: frozenset[int]) -> tuple[FloatArray, Uncertainty]:
        if ran not in self._states:
            quality, uncertainty = self._estimator(ran)
            quality = check_quality(f"quality given models {sorted(ran)} ran", quality)
            if quality.shape != self.cost.shape:
                raise InvalidInputError(
                    f"quality given models {sorted(ran)} ran has shape {quality.shape}, "
                    f"but cost has shape {self.cost.shape}; they must agree"
                )
            if uncertainty.n_models != self.n_models:
                raise InvalidInputError(
                    f"uncertainty given models {sorted(ran)} ran covers "
                    f"{uncertainty.n_models} models, expected {self.n_models}"
                )
            self._states[ran] = (quality, uncertainty)
        return self._states[ran]

    @classmethod
    def from_arrays(
        cls,
        ex_ante: FloatArray,
        post_hoc: FloatArray,
        cost: FloatArray,
        ex_ante_std: float | FloatArray = 0.0,
        post_hoc_std: float | FloatArray = 0.0,
    ) -> StagedEstimates:
        """The simplest estimator: a model's estimate switches from ex-ante to post-hoc once it
        has run, with independent errors of the given standard deviations."""
        ex_ante = check_quality("ex_ante", ex_ante)
        post_hoc = check_quality("post_hoc", post_hoc)
        if ex_ante.shape != post_hoc.shape:
            raise InvalidInputError(
                f"ex_ante and post_hoc shapes disagree: {ex_ante.shape} vs {post_hoc.shape}"
            )
        n_models = ex_ante.shape[1]
        ante_std = np.broadcast_to(np.asarray(ex_ante_std, dtype=float), (n_models,))
        post_std = np.broadcast_to(np.asarray(post_hoc_std, dtype=float), (n_models,))

        def estimator(ran: frozenset[int]) -> tuple[FloatArray, Uncertainty]:
            mask = np.zeros(n_models, dtype=bool)
            mask[list(ran)] = True
            quality = np.where(mask, post_hoc, ex_ante)
            return quality, Uncertainty.independent_std(np.where(mask, post_std, ante_std))

        return cls(cost, estimator)


class BatchContext:
    """A replay set-up: staged estimates plus a cache of E[max] values shared across runs."""

    def __init__(self, staged: StagedEstimates, n_samples: int = DEFAULT_SAMPLES) -> None:
        self.staged = staged
        self.n_samples = n_samples
        self._values: dict[tuple[frozenset[int], bool, bytes], FloatArray] = {}
        self._samples: dict[frozenset[int], FloatArray] = {}

    def expected_max(self, ran: frozenset[int], masks: FloatArray, expectation: bool) -> FloatArray:
        """E[max] (or max of means) of each supermodel for every query: shape (n, M)."""
        columns = []
        for mask in masks:
            key = (ran, expectation, np.packbits(mask).tobytes())
            if key not in self._values:
                self._values[key] = self._evaluate(ran, mask, expectation)
            columns.append(self._values[key])
        return np.stack(columns, axis=1)

    def _evaluate(self, ran: frozenset[int], mask: FloatArray, expectation: bool) -> FloatArray:
        quality, uncertainty = self.staged.state(ran)
        if not expectation:
            return quality[:, mask].max(axis=1)
        if ran not in self._samples:
            self._samples[ran] = quality_samples(quality, uncertainty, self.n_samples)
        return self._samples[ran][:, :, mask].max(axis=2).mean(axis=1)

    def group(self, ran: frozenset[int], rows: np.ndarray) -> StateGroup:
        quality, uncertainty = self.staged.state(ran)

        def evaluate(masks: FloatArray, expectation: bool) -> FloatArray:
            return self.expected_max(ran, masks, expectation)[rows]

        return StateGroup(
            ran=ran,
            quality=quality[rows],
            cost=self.staged.cost[rows],
            uncertainty=uncertainty,
            expected_max=evaluate,
        )


@dataclass(frozen=True)
class BatchOutcome:
    """Which models ran for each query (n, k) and whose answer was returned (n,)."""

    ran: np.ndarray
    answer: np.ndarray

    def cost(self, true_cost: FloatArray) -> FloatArray:
        """Per-query cost actually paid: every model that ran is paid for."""
        return (self.ran * true_cost).sum(axis=1)

    def quality(self, true_quality: FloatArray) -> FloatArray:
        return true_quality[np.arange(len(self.answer)), self.answer]


def run_batch(strategy: Strategy, context: BatchContext) -> BatchOutcome:
    """Replay ``strategy`` on every query of ``context``.

    A ``MixedStrategy`` draws its policy once per query from a generator seeded by the
    strategy, so a replay is repeatable.
    """
    if isinstance(strategy, MixedStrategy):
        draws = np.random.default_rng(strategy.seed).random(context.staged.n_queries)
        use_expensive = draws < strategy.gamma
        cheap = run_batch(strategy.cheap, context)
        expensive = run_batch(strategy.expensive, context)
        return BatchOutcome(
            ran=np.where(use_expensive[:, None], expensive.ran, cheap.ran),
            answer=np.where(use_expensive, expensive.answer, cheap.answer),
        )
    staged = context.staged
    n_queries, n_models = staged.n_queries, staged.n_models
    ran = np.zeros((n_queries, n_models), dtype=bool)
    active = np.ones(n_queries, dtype=bool)
    for _ in range(n_models + 1):
        rows_active = np.flatnonzero(active)
        if rows_active.size == 0:
            break
        for state, rows in _groups_by_state(ran, rows_active):
            choice = np.asarray(strategy.decide_batch(context.group(state, rows)))
            stop = choice == STOP
            if (~stop).any() and ran[rows[~stop], choice[~stop]].any():
                raise RuntimeError(f"{strategy.name} chose a model that already ran")
            active[rows[stop]] = False
            ran[rows[~stop], choice[~stop]] = True
    if not ran.any(axis=1).all():
        raise RuntimeError(f"{strategy.name} stopped a query without running any model")
    answer = np.empty(n_queries, dtype=np.intp)
    for state, rows in _groups_by_state(ran, np.arange(n_queries)):
        quality, _ = staged.state(state)
        answer[rows] = np.where(ran[rows], quality[rows], -np.inf).argmax(axis=1)
    return BatchOutcome(ran=ran, answer=answer)


def _groups_by_state(ran: np.ndarray, rows: np.ndarray) -> list[tuple[frozenset[int], np.ndarray]]:
    states, inverse = np.unique(ran[rows], axis=0, return_inverse=True)
    inverse = inverse.ravel()
    return [
        (frozenset(int(i) for i in np.flatnonzero(state)), rows[inverse == j])
        for j, state in enumerate(states)
    ]
