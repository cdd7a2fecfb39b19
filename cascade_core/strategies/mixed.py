"""A policy mixed from two others, drawn once per query: how a budget is met exactly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cascade_core.errors import InvalidInputError
from cascade_core.estimates import QueryEstimates
from cascade_core.strategies.base import Decision, StateGroup, Strategy


@dataclass(frozen=True)
class MixedStrategy(Strategy):
    """Use ``expensive`` with probability ``gamma`` and ``cheap`` otherwise, per query.

    The draw is made once per query (``draw`` in [0, 1)), so a query never switches policy
    between steps. In replay, draws come from a seeded generator; live, from the engine.
    """

    cheap: Strategy
    expensive: Strategy
    gamma: float
    seed: int = 0
    name = "mixed"

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise InvalidInputError(f"gamma: must lie in [0, 1], got {self.gamma}")

    def pick(self, draw: float) -> Strategy:
        """The policy for one query, given its uniform draw."""
        return self.expensive if draw < self.gamma else self.cheap

    def decide(self, estimates: QueryEstimates, ran=(), draw: float = 0.5) -> Decision:
        return self.pick(draw).decide(estimates, ran)

    def decide_batch(self, group: StateGroup) -> np.ndarray:
        raise TypeError("a MixedStrategy draws per query; replay it with run_batch")
