"""Optimal routing: run exactly one model, argmax_i q_i - lambda * c_i on ex-ante estimates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from cascade_core.errors import InvalidInputError
from cascade_core.strategies.base import STOP, StateGroup, Strategy, check_parameter

TieBreak = Literal["cheapest", "most_expensive"]


def argmax_with_tie_break(
    objective: np.ndarray, cost: np.ndarray, tie_break: TieBreak
) -> np.ndarray:
    """Row-wise argmax; among exact ties the cheapest or the most expensive model wins.

    The two tie-breaking rules are the two policies that a budget is mixed between: at the
    lambda where the average cost crosses the budget, cheapest-tie spends less than the budget
    and most-expensive-tie spends more.
    """
    best = objective.max(axis=1, keepdims=True)
    tied = objective >= best - 1e-12 * np.maximum(1.0, np.abs(best))
    if tie_break == "cheapest":
        return np.where(tied, cost, np.inf).argmin(axis=1)
    return np.where(tied, cost, -np.inf).argmax(axis=1)


@dataclass(frozen=True)
class Routing(Strategy):
    """Pick one model up front from ex-ante estimates; never look at its answer."""

    lam: float = 0.0
    tie_break: TieBreak = "cheapest"
    name = "routing"
    max_answers = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "lam", check_parameter("lam", self.lam))
        if isinstance(self.lam, tuple):
            raise InvalidInputError("lam: routing makes one decision; give a single number")
        if self.tie_break not in ("cheapest", "most_expensive"):
            raise InvalidInputError(
                f"tie_break: must be 'cheapest' or 'most_expensive', got {self.tie_break!r}"
            )

    def decide_batch(self, group: StateGroup) -> np.ndarray:
        if group.ran:
            return np.full(group.quality.shape[0], STOP)
        objective = group.quality - self.lam * group.cost
        return argmax_with_tie_break(objective, group.cost, self.tie_break)
