"""The strategy contract shared by the live path (one query) and the replay path (a batch).

A strategy only answers one question: given what is known about a query after running the set
``ran`` of models, which model runs next, or stop? The live engine asks it once per step for one
request; the replay driver asks it once per step for every group of queries in the same state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from cascade_core.errors import InvalidInputError
from cascade_core.estimates import FloatArray, QueryEstimates, Uncertainty, as_model_set
from cascade_core.expected_max import expected_max

STOP = -1


@dataclass(frozen=True)
class Decision:
    """One step's verdict, kept in traces: what to run next and why."""

    next_model: int | None
    reason: str
    plan: tuple[int, ...] = ()
    objective: float = float("nan")

    @property
    def stop(self) -> bool:
        return self.next_model is None


@dataclass(frozen=True)
class StateGroup:
    """Queries that are all in the same state (same set of models already run).

    ``expected_max(masks, expectation, within=None)`` evaluates supermodels (boolean (M, k)
    masks) for these queries, or for the rows ``within`` (positions in the group) only; the
    replay driver backs it with a cache so repeated sweeps over lambda never recompute E[max].

    ``draws`` holds each query's uniform draw in [0, 1), fixed for the query across its steps:
    what a per-query policy (`MixedStrategy`) picks by. Deterministic strategies ignore it.
    """

    ran: frozenset[int]
    quality: FloatArray
    cost: FloatArray
    uncertainty: Uncertainty
    expected_max: Callable[..., FloatArray]
    draws: FloatArray | None = None

    @property
    def step(self) -> int:
        return len(self.ran)

    @property
    def n_models(self) -> int:
        return int(self.quality.shape[1])

    def subset(self, positions: np.ndarray) -> StateGroup:
        """The group of the queries at ``positions`` (indices into this group), in that
        order; E[max] is evaluated for those rows only."""
        parent = self.expected_max

        def evaluate(
            masks: FloatArray, expectation: bool, within: np.ndarray | None = None
        ) -> FloatArray:
            return parent(
                masks, expectation, within=positions if within is None else positions[within]
            )

        return StateGroup(
            ran=self.ran,
            quality=self.quality[positions],
            cost=self.cost[positions],
            uncertainty=self.uncertainty,
            expected_max=evaluate,
            draws=None if self.draws is None else self.draws[positions],
        )


def per_step_value(values: float | tuple[float, ...], step: int) -> float:
    """A parameter given once for all steps, or once per step (the last one repeats)."""
    if isinstance(values, tuple):
        return values[min(step, len(values) - 1)]
    return values


def check_parameter(name: str, value: float | Sequence[float], *, upper: float | None = None):
    """Validate a non-negative scalar or per-step parameter; return a float or tuple of floats."""
    values = np.atleast_1d(np.asarray(value, dtype=float))
    if values.ndim != 1 or values.size == 0:
        raise InvalidInputError(f"{name}: give a number or a non-empty list of numbers")
    if not np.isfinite(values).all() or (values < 0).any():
        raise InvalidInputError(f"{name}: must be finite and >= 0, got {value!r}")
    if upper is not None and (values > upper).any():
        raise InvalidInputError(f"{name}: must be <= {upper}, got {value!r}")
    if np.ndim(value) == 0:
        return float(values[0])
    return tuple(float(v) for v in values)


def cost_order(cost: FloatArray) -> FloatArray:
    """Model indices cheapest first (ties by index), per row for a 2-d cost array."""
    return np.argsort(cost, axis=-1, kind="stable")


class Strategy(ABC):
    """Base class: parameters are set in ``__init__`` and never change per request.

    ``budget_parameter`` names the field that trades cost against quality and ``cost_rises_with``
    tells the budget fitter which way it moves cost (True for thresholds, False for lambda).
    ``max_answers`` is the most usable answers the strategy ever looks at for one query (None:
    no fixed limit): the call that would bring that many is the last, so a driver may stream
    its answer live.
    """

    name: ClassVar[str]
    budget_parameter: ClassVar[str] = "lam"
    cost_rises_with_parameter: ClassVar[bool] = False
    max_answers: ClassVar[int | None] = None

    def decide(
        self,
        estimates: QueryEstimates,
        ran: Sequence[int] | FloatArray = (),
        draw: float | None = None,
    ) -> Decision:
        """Live path: one query (``draw``: its uniform draw, see `StateGroup.draws`). The
        default runs the batch rule on a batch of one."""
        ran_set = as_model_set(ran, estimates.n_models)
        group = single_query_group(estimates, ran_set, draw)
        choice = int(self.decide_batch(group)[0])
        if choice == STOP:
            return Decision(None, self._stop_reason(ran_set))
        return Decision(choice, f"{self.name}: run model {choice} next")

    @abstractmethod
    def decide_batch(self, group: StateGroup) -> np.ndarray:
        """Replay path: the next model index per query of the group, or ``STOP``."""

    def for_query(self, draw: float) -> Strategy:
        """The deterministic policy one query follows, given its uniform draw in [0, 1):
        the strategy itself, unless it mixes policies per query."""
        return self

    @property
    def mixture(self) -> tuple[tuple[float, Strategy], ...]:
        """The deterministic policies this strategy follows, each with its probability over
        queries: what an expected cost or quality is averaged over."""
        return ((1.0, self),)

    def query_draws(self, n_queries: int) -> FloatArray:
        """Repeatable draws for ``n_queries`` replayed queries (`StateGroup.draws`): the first
        numbers of a seeded generator, so a query's draw does not depend on how many follow
        it. A deterministic strategy reads none of them."""
        return np.random.default_rng(0).random(n_queries)

    def with_parameter(self, value: float | Sequence[float]) -> Strategy:
        """A copy with a new budget parameter (used by the budget fitter)."""
        return replace(self, **{self.budget_parameter: value})  # type: ignore[type-var]

    def _stop_reason(self, ran: frozenset[int]) -> str:
        return f"{self.name}: stop after running {sorted(ran)}"


def single_query_group(
    estimates: QueryEstimates, ran: frozenset[int], draw: float | None = None
) -> StateGroup:
    """Wrap one query's estimates (and its draw, when known) as a group of one."""

    def evaluate(
        masks: FloatArray, expectation: bool, within: np.ndarray | None = None
    ) -> FloatArray:
        uncertainty = estimates.uncertainty if expectation else Uncertainty.none(estimates.n_models)
        values = expected_max(estimates.quality, uncertainty, masks)[None, :]
        return values if within is None else values[within]

    return StateGroup(
        ran=ran,
        quality=estimates.quality[None, :],
        cost=estimates.cost[None, :],
        uncertainty=estimates.uncertainty,
        expected_max=evaluate,
        draws=None if draw is None else np.array([draw]),
    )
