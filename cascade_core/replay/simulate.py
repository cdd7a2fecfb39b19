"""The replay path: run a strategy over a whole batch of queries without calling any LLM.

Queries are advanced step by step; at each step the ones in the same state (same set of models
run) are decided together by the strategy's vectorised rule. A ``BatchContext`` caches E[max]
per (query, state, supermodel), so sweeping lambda over a calibration set computes each
expectation once, and bounds the memory that cache may take.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

import numpy as np

from cascade_core.answer_choice import choose_answers
from cascade_core.errors import InvalidInputError
from cascade_core.estimates import FloatArray, Uncertainty, check_cost, check_quality
from cascade_core.expected_max import DEFAULT_SAMPLES, error_samples, supermodel_values
from cascade_core.strategies.base import STOP, StateGroup, Strategy

# Per memo (a context's values, a replay's estimates); the bench holds two of each per process.
DEFAULT_CACHE_BYTES = 1 << 30

K = TypeVar("K")
V = TypeVar("V")
StateEstimator = Callable[[frozenset[int]], tuple[FloatArray, Uncertainty]]


class StagedEstimates:
    """Estimates for n queries in every state: ``state(ran)`` gives (quality (n, k), uncertainty).

    The estimator is called lazily and memoised, since a replay only visits some states. The
    memo keeps at most ``max_cache_bytes`` of estimates (least recently used states dropped),
    so ``estimator`` must be a function of ``ran`` alone: a dropped state is estimated again.
    """

    def __init__(
        self,
        cost: FloatArray,
        estimator: StateEstimator,
        *,
        max_cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.cost = check_cost("cost", cost)
        if self.cost.ndim != 2:
            raise InvalidInputError(
                f"cost: expected shape (n_queries, n_models), got {self.cost.shape}"
            )
        self._estimator = estimator
        self._states: _BoundedCache[frozenset[int], tuple[FloatArray, Uncertainty]] = _BoundedCache(
            max_cache_bytes, lambda entry: int(entry[0].nbytes)
        )
        self._visited: set[frozenset[int]] = set()

    @property
    def n_queries(self) -> int:
        return int(self.cost.shape[0])

    @property
    def n_models(self) -> int:
        return int(self.cost.shape[1])

    @property
    def n_states(self) -> int:
        """How many distinct states have been estimated (a replay's footprint grows with it)."""
        return len(self._visited)

    def state(self, ran: frozenset[int]) -> tuple[FloatArray, Uncertainty]:
        cached = self._states.get(ran)
        if cached is not None:
            return cached
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
        self._states.put(ran, (quality, uncertainty))
        self._visited.add(ran)
        return quality, uncertainty

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
    """A replay set-up: staged estimates plus a bounded cache of E[max] values across runs.

    What is cached is the values, one float per (query, state, supermodel), not the samples
    behind them: a state's samples are (n x S x k) floats, which for RouterBench's 36k queries
    and 11 models is 400 MB per state, while its values are a few MB. Values are what makes a
    budget sweep fast (a few hundred replays revisit the same states), so they are computed
    once per query and supermodel, only for the queries that reach the state, in chunks of
    ``chunk_queries`` queries (`supermodel_values`). Past ``max_cache_bytes`` the least
    recently used state's values are dropped and recomputed when needed again, bit for bit
    the same, so memory is bounded whatever the strategy or ladder size.
    """

    def __init__(
        self,
        staged: StagedEstimates,
        n_samples: int = DEFAULT_SAMPLES,
        *,
        chunk_queries: int | None = None,
        max_cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        if chunk_queries is not None and chunk_queries < 1:
            raise InvalidInputError(f"chunk_queries: must be >= 1, got {chunk_queries}")
        self.staged = staged
        self.n_samples = n_samples
        self.chunk_queries = chunk_queries
        self.max_cache_bytes = max_cache_bytes
        # Keyed by (state, expectation, 0 for shared supermodels or M for per-query lists).
        self._tables: _BoundedCache[tuple[frozenset[int], bool, int], _ValueTable | _RowTable]
        self._tables = _BoundedCache(max_cache_bytes, lambda table: table.nbytes)

    @property
    def cache_bytes(self) -> int:
        """Memory held by cached values now (above ``max_cache_bytes`` only for one state)."""
        return self._tables.nbytes

    @property
    def cached_states(self) -> int:
        """How many (state, expectation) value tables the cache holds now."""
        return len(self._tables)

    def expected_max(self, ran: frozenset[int], masks: FloatArray, expectation: bool) -> FloatArray:
        """E[max] (or max of means) of each supermodel for every query: shape (n, M)."""
        return self.values(ran, masks, expectation, np.arange(self.staged.n_queries))

    def values(
        self, ran: frozenset[int], masks: FloatArray, expectation: bool, rows: np.ndarray
    ) -> FloatArray:
        """E[max] (or max of means) of each supermodel for the queries ``rows``: (len(rows), M).

        ``masks`` are (M, k) supermodels shared by the rows or (len(rows), M, k) one list per
        row (`supermodel_values`). Only values not cached yet are computed.
        """
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim == 3:
            return self._per_query_values(ran, masks, expectation, rows)
        key = (ran, expectation, 0)
        table = self._tables.get(key)
        if not isinstance(table, _ValueTable):
            table = _ValueTable(self.staged.n_queries)
        columns, filled = table.columns_of(masks)
        missing = ~filled[rows]
        if missing.any():
            todo = rows[missing]
            table.store(todo, columns, self._compute(ran, masks, expectation, todo))
            filled[todo] = True
        self._tables.put(key, table)  # newest, so it stays whatever its size
        return table.block(rows, columns)

    def _per_query_values(
        self, ran: frozenset[int], masks: np.ndarray, expectation: bool, rows: np.ndarray
    ) -> FloatArray:
        if masks.shape[0] != len(rows):
            raise InvalidInputError(
                f"supermodels: {masks.shape[0]} per-query lists for {len(rows)} queries"
            )
        key = (ran, expectation, masks.shape[1])
        table = self._tables.get(key)
        if not isinstance(table, _RowTable):
            table = _RowTable(self.staged.n_queries, masks.shape[1], self.staged.n_models)
        missing = table.missing(rows, masks)
        if missing.any():
            todo = rows[missing]
            todo_masks = masks[missing]
            table.store(todo, todo_masks, self._compute(ran, todo_masks, expectation, todo))
        self._tables.put(key, table)
        return table.rows(rows)

    def _compute(
        self, ran: frozenset[int], masks: np.ndarray, expectation: bool, rows: np.ndarray
    ) -> FloatArray:
        quality, uncertainty = self.staged.state(ran)
        if expectation:
            noise = error_samples(uncertainty, self.n_samples)
        else:  # one zero sample: the max of the means, exactly
            noise = np.zeros((1, self.staged.n_models))
        return supermodel_values(quality[rows], noise, masks, self.chunk_queries)

    def group(self, ran: frozenset[int], rows: np.ndarray) -> StateGroup:
        quality, uncertainty = self.staged.state(ran)

        def evaluate(
            masks: FloatArray, expectation: bool, within: np.ndarray | None = None
        ) -> FloatArray:
            """Values for the group, or for the group's rows ``within`` (positions in it), so
            a strategy deciding a group in parts pays only for each part."""
            return self.values(ran, masks, expectation, rows if within is None else rows[within])

        return StateGroup(
            ran=ran,
            quality=quality[rows],
            cost=self.staged.cost[rows],
            uncertainty=uncertainty,
            expected_max=evaluate,
        )


class _BoundedCache(Generic[K, V]):
    """Entries by recency of use; past ``max_bytes`` the least recently used are dropped.

    The newest entry always stays, so the bound is ``max_bytes`` or one entry, whichever is
    larger. ``put`` again after an entry grows, so its size is counted anew.
    """

    def __init__(self, max_bytes: int, size: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._size = size
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V) -> None:
        size = self._size(value)
        previous = self._entries.pop(key, None)
        self.nbytes += size - (0 if previous is None else previous[1])
        self._entries[key] = (value, size)
        while self.nbytes > self.max_bytes and len(self._entries) > 1:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.nbytes -= dropped


class _ValueTable:
    """One state's values of shared supermodels for every query of a replay.

    Columns are supermodels, added as strategies ask for them (capacity doubles, so adding
    them one order group at a time stays linear). Each list of supermodels asked for keeps
    which rows it has computed, so a lookup is one gather, not a scan for missing values.
    """

    def __init__(self, n_queries: int) -> None:
        self._data = np.empty((n_queries, 0))
        self._width = 0
        self._columns: dict[bytes, int] = {}
        self._lookups: dict[tuple[tuple[int, ...], bytes], tuple[np.ndarray, np.ndarray]] = {}

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes) + sum(f.nbytes for _, f in self._lookups.values())

    def columns_of(self, masks: FloatArray) -> tuple[np.ndarray, np.ndarray]:
        """The column of each supermodel (rows of ``masks``), adding the new ones, and the
        rows computed for this list (to be updated by the caller as it stores them)."""
        lookup = (masks.shape, masks.tobytes())
        if lookup not in self._lookups:
            keys = [np.packbits(mask).tobytes() for mask in masks]
            for key in dict.fromkeys(keys):
                if key not in self._columns:
                    self._columns[key] = len(self._columns)
            self._reserve(len(self._columns))
            columns = np.array([self._columns[k] for k in keys], dtype=np.intp)
            columns.setflags(write=False)
            self._lookups[lookup] = (columns, np.zeros(self._data.shape[0], dtype=bool))
        return self._lookups[lookup]

    def store(self, rows: np.ndarray, columns: np.ndarray, values: FloatArray) -> None:
        self._data[np.ix_(rows, columns)] = values

    def block(self, rows: np.ndarray, columns: np.ndarray) -> FloatArray:
        start = int(columns[0])
        if (columns == np.arange(start, start + len(columns))).all():
            return _read_only(self._data[_as_slice(rows), start : start + len(columns)])
        return self._data[np.ix_(rows, columns)]

    def _reserve(self, width: int) -> None:
        if width > self._data.shape[1]:
            capacity = max(width, 2 * self._data.shape[1])
            data = np.empty((self._data.shape[0], capacity))
            data[:, : self._width] = self._data[:, : self._width]
            self._data = data
        self._width = width


class _RowTable:
    """One state's values of per-query supermodel lists (M each) for every query of a replay.

    A row's values are kept with the masks they were computed for, and served only while a
    lookup asks for those very masks (another order recomputes the row), so memory is
    O(queries x M) whatever the number of distinct supermodels across queries. A row never
    computed has an all-false list, which no lookup asks for (every supermodel has a member).
    """

    def __init__(self, n_queries: int, n_supermodels: int, n_models: int) -> None:
        self._values = np.empty((n_queries, n_supermodels))
        self._masks = np.zeros((n_queries, n_supermodels, n_models), dtype=bool)

    @property
    def nbytes(self) -> int:
        return int(self._values.nbytes + self._masks.nbytes)

    def missing(self, rows: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Which of ``rows`` have no values for their ``masks`` (len(rows), M, k)."""
        return ~(self._masks[rows] == masks).reshape(len(rows), -1).all(axis=1)

    def store(self, rows: np.ndarray, masks: np.ndarray, values: FloatArray) -> None:
        self._masks[rows] = masks
        self._values[rows] = values

    def rows(self, rows: np.ndarray) -> FloatArray:
        return _read_only(self._values[_as_slice(rows)])


def _as_slice(rows: np.ndarray) -> slice | np.ndarray:
    """Rows that are a contiguous ascending range as a slice (a view, no copy: a group of
    every query is the largest read of a replay step), else the rows themselves."""
    if len(rows) and (np.diff(rows) == 1).all():
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


def _read_only(values: FloatArray) -> FloatArray:
    """A view into the cache must not be written through."""
    values.setflags(write=False)
    return values


def sequential_latency(ran: np.ndarray, latency_s: FloatArray) -> FloatArray:
    """Seconds a replayed query waits: the sum of the logged latencies of the models it ran.

    A cascade calls its models one after another, and the logs hold whole calls, so each
    draft's time to first token is its total time (a buffered draft shows nothing until it
    is judged) and the answer's first token arrives when the last call ends: TTFT and total
    are both this sum. ``ran`` is (..., n, k) run indicators, or the expected ones of a
    mixed policy (the sum is linear, so it gives the expected latency); ``latency_s`` is
    (n, k).
    """
    return (np.asarray(ran, dtype=float) * latency_s).sum(axis=-1)


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

    def latency(self, latency_s: FloatArray) -> FloatArray:
        """Per-query seconds waited (`sequential_latency`)."""
        return sequential_latency(self.ran, latency_s)


def run_batch(strategy: Strategy, context: BatchContext) -> BatchOutcome:
    """Replay ``strategy`` on every query of ``context``.

    Each query keeps one draw (`StateGroup.draws`) from ``strategy.query_draws``, so a policy
    that picks per query (`MixedStrategy`) picks repeatably, and the same as live.
    """
    staged = context.staged
    n_queries, n_models = staged.n_queries, staged.n_models
    ran = np.zeros((n_queries, n_models), dtype=bool)
    active = np.ones(n_queries, dtype=bool)
    draws = strategy.query_draws(n_queries)
    for _ in range(n_models + 1):
        rows_active = np.flatnonzero(active)
        if rows_active.size == 0:
            break
        for state, rows in _groups_by_state(ran, rows_active):
            group = replace(context.group(state, rows), draws=draws[rows])
            choice = np.asarray(strategy.decide_batch(group))
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
        answer[rows] = choose_answers(quality[rows], ran[rows], staged.cost[rows])
    return BatchOutcome(ran=ran, answer=answer)


def _groups_by_state(ran: np.ndarray, rows: np.ndarray) -> list[tuple[frozenset[int], np.ndarray]]:
    """The queries ``rows`` grouped by the set of models they ran, each group in row order."""
    selected = ran[rows]
    if selected.shape[1] <= 62:  # one integer code per set: a 1-d sort instead of row-wise
        codes = selected.astype(np.int64) @ (np.int64(1) << np.arange(selected.shape[1]))
        _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    else:
        _, first, inverse = np.unique(selected, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse))[:-1]
    return [
        (frozenset(int(i) for i in np.flatnonzero(selected[f])), group)
        for f, group in zip(first, np.split(rows[order], bounds), strict=True)
    ]
