"""A policy mixed from two others, drawn once per query: how a budget is met exactly."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cascade_core.errors import InvalidInputError
from cascade_core.estimates import FloatArray
from cascade_core.strategies.base import StateGroup, Strategy


@dataclass(frozen=True)
class MixedStrategy(Strategy):
    """Use ``expensive`` with probability ``gamma`` and ``cheap`` otherwise, per query.

    A query's policy is fixed by its uniform draw (`StateGroup.draws`), so it never switches
    policy between steps: live the engine draws from the request, in replay the draws are
    `query_draws`, from a generator seeded by ``seed``.
    """

    cheap: Strategy
    expensive: Strategy
    gamma: float
    seed: int = 0
    name = "mixed"

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise InvalidInputError(f"gamma: must lie in [0, 1], got {self.gamma}")

    def for_query(self, draw: float) -> Strategy:
        dear, inner = self._split(np.array([draw]))
        return (self.expensive if dear[0] else self.cheap).for_query(float(inner[0]))

    @property
    def mixture(self) -> tuple[tuple[float, Strategy], ...]:
        return tuple(
            (weight * inner, policy)
            for weight, part in ((1.0 - self.gamma, self.cheap), (self.gamma, self.expensive))
            for inner, policy in part.mixture
        )

    def query_draws(self, n_queries: int) -> FloatArray:
        return np.random.default_rng(self.seed).random(n_queries)

    def decide_batch(self, group: StateGroup) -> np.ndarray:
        """Each query decided by its own policy: the group split by the queries' draws."""
        if group.draws is None:
            raise InvalidInputError(
                "a mixed policy picks per query: give the group each query's draw "
                "(StateGroup.draws; Strategy.query_draws makes repeatable ones)"
            )
        choice = np.empty(group.quality.shape[0], dtype=np.intp)
        dear, inner = self._split(group.draws)
        for rows, policy in ((~dear, self.cheap), (dear, self.expensive)):
            positions = np.flatnonzero(rows)
            if positions.size:
                part = replace(group.subset(positions), draws=inner[positions])
                choice[positions] = policy.decide_batch(part)
        return choice

    def _split(self, draws: FloatArray) -> tuple[np.ndarray, FloatArray]:
        """Which draws pick ``expensive``, and each draw rescaled to [0, 1) within its side,
        so a mixed policy inside this one draws independently of this one's pick."""
        g = self.gamma
        dear = draws < g
        inner = np.where(dear, draws / max(g, 1e-300), (draws - g) / max(1.0 - g, 1e-300))
        return dear, np.clip(inner, 0.0, np.nextafter(1.0, 0.0))
