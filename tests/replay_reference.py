"""Plain reference computations of the replay, written for clarity, never for memory or speed.

They are what `cascade_core.replay.simulate` is checked against (tests/test_replay_scale.py) and the
baseline that benchmarks/replay_scale.py measures the chunked path against. Nothing here
shares code with the package's E[max] path: samples are the textbook Q = mean + L z on the
fixed standard-normal draws, for every query at once.
"""

from __future__ import annotations

import numpy as np

from cascade_core.expected_max import DEFAULT_SAMPLES, standard_normal_samples
from cascade_core.replay.simulate import StagedEstimates
from cascade_core.strategies import STOP, StateGroup, Strategy


def reference_values(
    quality: np.ndarray, factor: np.ndarray, independent: bool, masks: np.ndarray, n_samples: int
) -> np.ndarray:
    """E[max] of every supermodel for every query, (n, M), from the full (n, S, k) tensor."""
    z = standard_normal_samples(quality.shape[1], n_samples)
    noise = z * factor if independent else z @ factor.T
    samples = quality[:, None, :] + noise[None, :, :]
    return np.stack([samples[:, :, mask].max(axis=2).mean(axis=1) for mask in masks], axis=1)


class UnchunkedContext:
    """The replay context as it was first written: each state's full sample tensor is kept.

    Duck-types `BatchContext` for `run_batch` and the budget fitters.
    """

    def __init__(self, staged: StagedEstimates, n_samples: int = DEFAULT_SAMPLES) -> None:
        self.staged = staged
        self.n_samples = n_samples
        self._values: dict[tuple[frozenset[int], bool, bytes], np.ndarray] = {}
        self._samples: dict[frozenset[int], np.ndarray] = {}

    @property
    def sample_bytes(self) -> int:
        return sum(s.nbytes for s in self._samples.values())

    def expected_max(self, ran: frozenset[int], masks: np.ndarray, expectation: bool):
        columns = []
        for mask in masks:
            key = (ran, expectation, np.packbits(mask).tobytes())
            if key not in self._values:
                self._values[key] = self._evaluate(ran, mask, expectation)
            columns.append(self._values[key])
        return np.stack(columns, axis=1)

    def _evaluate(self, ran: frozenset[int], mask: np.ndarray, expectation: bool):
        quality, uncertainty = self.staged.state(ran)
        if not expectation:
            return quality[:, mask].max(axis=1)
        if ran not in self._samples:
            z = standard_normal_samples(quality.shape[1], self.n_samples)
            factor = uncertainty.factor
            noise = z * factor if uncertainty.independent else z @ factor.T
            self._samples[ran] = quality[:, None, :] + noise[None, :, :]
        return self._samples[ran][:, :, mask].max(axis=2).mean(axis=1)

    def group(self, ran: frozenset[int], rows: np.ndarray) -> StateGroup:
        quality, uncertainty = self.staged.state(ran)
        return StateGroup(
            ran=ran,
            quality=quality[rows],
            cost=self.staged.cost[rows],
            uncertainty=uncertainty,
            expected_max=lambda masks, expectation, within=None: self._group_values(
                ran, rows if within is None else rows[within], np.asarray(masks, bool), expectation
            ),
        )

    def _group_values(self, ran, rows, masks, expectation):
        """(M, k) supermodels for every row, or (len(rows), M, k) one list per row."""
        if masks.ndim == 2:
            return self.expected_max(ran, masks, expectation)[rows]
        n_rows, n_supermodels, k = masks.shape
        distinct, inverse = np.unique(masks.reshape(-1, k), axis=0, return_inverse=True)
        columns = self.expected_max(ran, distinct, expectation)[rows]
        return columns[np.repeat(np.arange(n_rows), n_supermodels), inverse.ravel()].reshape(
            n_rows, n_supermodels
        )


def replay_one_at_a_time(
    strategy: Strategy, staged: StagedEstimates, n_samples: int = DEFAULT_SAMPLES
) -> tuple[np.ndarray, np.ndarray]:
    """(ran (n, k), answer (n,)) by the plain definition: each query alone, step by step.

    A mixed policy draws per query from the generator seeded by the strategy, as `run_batch`
    documents. The answer is the run model of highest final quality; ties go to the cheaper
    model, then to the lower index (cascade_core/answer_choice.py's rule, live and replay).
    """
    n, k = staged.n_queries, staged.n_models
    policies = [strategy.for_query(float(d)) for d in strategy.query_draws(n)]
    ran = np.zeros((n, k), dtype=bool)
    answer = np.empty(n, dtype=np.intp)
    for query, policy in enumerate(policies):
        state: frozenset[int] = frozenset()
        for _ in range(k + 1):
            quality, uncertainty = staged.state(state)
            row = quality[query : query + 1]

            def evaluate(masks, expectation, row=row, uncertainty=uncertainty):
                if not expectation:
                    return np.stack([row[:, mask].max(axis=1) for mask in masks], axis=1)
                factor, independent = uncertainty.factor, uncertainty.independent
                return reference_values(row, factor, independent, masks, n_samples)

            group = StateGroup(
                ran=state,
                quality=row,
                cost=staged.cost[query : query + 1],
                uncertainty=uncertainty,
                expected_max=evaluate,
            )
            choice = int(policy.decide_batch(group)[0])
            if choice == STOP:
                break
            state = state | {choice}
        ran[query, sorted(state)] = True
        quality, _ = staged.state(state)
        cost = staged.cost[query]
        answer[query] = max(state, key=lambda m: (quality[query, m], -cost[m], -m))
    return ran, answer
