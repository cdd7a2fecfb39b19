"""Cascade routing: after running the set R, pick the best supermodel M ⊇ R and act on it.

Supermodels are scored by E[max quality] - lambda * cost. If the best is R itself, stop and
answer with the run model of highest post-hoc quality; otherwise run the cheapest model of the
winner that has not run yet, then decide again with the new post-hoc estimates.

``draft=True`` runs the cheapest model first, whatever the estimates, and routes from there.
Why: a supermodel is charged all its members' prices, although the cascade may stop after its
cheapest, so the score undervalues "draft cheap, escalate only if unsure" exactly where the
cheap model's post-hoc signal is informative and its price small (a self-verification P(True)
ahead of a model nine times dearer), and the plan then routes past a draft worth running.
Which of the two first steps pays is a property of the ladder and the budget, so it is chosen
on calibration data (`cascade_core.fitting.budget.fit_best_to_budgets`), not assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cascade_core.errors import InvalidInputError
from cascade_core.estimates import QueryEstimates, as_model_set
from cascade_core.expected_max import DEFAULT_SAMPLES, quality_samples
from cascade_core.strategies.base import (
    STOP,
    Decision,
    StateGroup,
    Strategy,
    check_parameter,
    cost_order,
    per_step_value,
)
from cascade_core.strategies.supermodel_search import (
    TIE_TOLERANCE,
    best_supermodel,
    supermodel_masks,
)

Variant = Literal["exact", "greedy", "no_expect"]
# The first steps a fit chooses between on calibration data (module doc), in order of
# preference on ties: planned (the paper's), then the cheapest model drafting.
FIRST_STEPS: tuple[bool, ...] = (False, True)
VARIANTS: tuple[str, ...] = ("exact", "greedy", "no_expect")


@dataclass(frozen=True)
class CascadeRouting(Strategy):
    """Variants: ``exact`` (all supermodels, pruned), ``greedy`` (R and R plus one model),
    ``no_expect`` (max of the means instead of E[max]); ``max_depth`` caps the supermodel size;
    ``draft`` runs the cheapest model first (module doc).
    """

    lam: float | tuple[float, ...] = 0.0
    variant: Variant = "exact"
    max_depth: int | None = None
    n_samples: int = DEFAULT_SAMPLES
    draft: bool = False
    name = "cascade_routing"

    def __post_init__(self) -> None:
        object.__setattr__(self, "lam", check_parameter("lam", self.lam))
        if self.variant not in VARIANTS:
            raise InvalidInputError(
                f"variant: unknown cascade routing variant {self.variant!r}; "
                f"choose one of {', '.join(VARIANTS)}"
            )
        if self.max_depth is not None and self.max_depth < 1:
            raise InvalidInputError(f"max_depth: must be >= 1 or None, got {self.max_depth}")

    def max_size(self, ran: frozenset[int], n_models: int) -> int:
        """Largest supermodel considered in state ``ran``."""
        limit = n_models if self.max_depth is None else min(self.max_depth, n_models)
        if self.variant == "greedy":
            limit = min(limit, len(ran) + 1)
        return max(limit, len(ran))

    def decide(self, estimates: QueryEstimates, ran: Sequence[int] | np.ndarray = ()) -> Decision:
        ran_set = as_model_set(ran, estimates.n_models)
        if self.draft and not ran_set:
            cheapest = int(cost_order(estimates.cost)[0])
            return Decision(cheapest, f"run model {cheapest}: the cheapest model drafts first")
        if self.variant == "no_expect":
            samples = estimates.quality[None, :]
        else:
            samples = quality_samples(estimates.quality, estimates.uncertainty, self.n_samples)
        result = best_supermodel(
            samples,
            estimates.cost,
            per_step_value(self.lam, len(ran_set)),
            ran_set,
            self.max_size(ran_set, estimates.n_models),
        )
        to_run = [m for m in result.members if m not in ran_set]
        if not to_run:
            return Decision(
                None,
                f"stop: no supermodel beats the {len(ran_set)} model(s) already run",
                result.members,
                result.objective,
            )
        next_model = min(to_run, key=lambda m: (estimates.cost[m], m))
        return Decision(
            next_model,
            f"run model {next_model}: best supermodel is {list(result.members)}",
            result.members,
            result.objective,
        )

    def decide_batch(self, group: StateGroup) -> np.ndarray:
        if self.draft and group.step == 0:
            return cost_order(group.cost)[:, 0].copy()
        masks = supermodel_masks(
            group.ran, group.n_models, self.max_size(group.ran, group.n_models)
        )
        value = group.expected_max(masks, self.variant != "no_expect")
        # value - lambda * price, in place: the (queries x supermodels) temporaries are the
        # largest arrays of a replay step, and allocating them costs more than the arithmetic.
        objective = group.cost @ masks.T
        np.multiply(objective, per_step_value(self.lam, group.step), out=objective)
        np.subtract(value, objective, out=objective)
        near_best = objective >= objective.max(axis=1, keepdims=True) - TIE_TOLERANCE
        best = masks[near_best.argmax(axis=1)]  # the first (smallest) of tied supermodels
        new = best.copy()
        new[:, list(group.ran)] = False
        next_model = np.where(new, group.cost, np.inf).argmin(axis=1)
        return np.where(new.any(axis=1), next_model, STOP)
