"""When to hedge: start the next model alongside a draft instead of after it.

A hedged escalation is the supermodel {draft, next} run concurrently instead of in sequence.
If the draft is escalated, the caller waits ``max(T_draft, ttft_next)`` for the first token
instead of ``T_draft + ttft_next`` (and ``max(T_draft, total_next)`` for the whole answer
instead of the sum): the hedge saves ``min(T_draft, ttft_next)`` and ``min(T_draft,
total_next)`` seconds, priced by the request's `LatencyWeights`. If the draft is accepted, the
next model is cancelled when the draft completes and its tokens until then are paid for
nothing. Hedge when the expected saving is worth more than the expected waste:

    P(escalate to next) * priced(0, saved_ttft, saved_total) > P(not) * wasted USD

Everything is in USD (the weights are USD per second), so no quality point is traded here:
the strategy already decided that the draft runs first; this only decides how the next call
is scheduled. Zero weights never hedge (the saving is priced at 0), so latency-blind
configurations keep today's sequential behaviour exactly.

``P(escalate)`` comes from the strategy itself: the draft's ex-ante quality is drawn at a
fixed grid of quantiles of its estimate's uncertainty and the strategy decides each draw as
if the draft had answered with that quality (`escalation_odds`). The other models keep their
ex-ante estimates (their update on the draft's evidence is not modelled: a fitted profile's
conditional regressions need features a draft that has not run does not have).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from cascade_core.estimates import QueryEstimates, Uncertainty
from cascade_core.latency import LatencyExpectation, LatencyWeights, ModelLatency
from cascade_core.strategies import Strategy

# Quantiles at which the draft's quality is drawn: a deterministic grid, so one request's
# hedge decision is repeatable (and costs a fixed nine strategy decisions).
QUANTILES = np.linspace(0.05, 0.95, 9)


@dataclass(frozen=True)
class EscalationOdds:
    """What the strategy would do after the draft, over the draws of its quality."""

    next_model: int | None  # the model run next most often after the draft (None: stop)
    p_next: float  # share of draws in which that model runs next


@dataclass(frozen=True)
class HedgeValue:
    """The decision's terms, kept in the trace."""

    p_escalate: float
    saved_usd: float  # priced latency saved if the draft is escalated
    wasted_usd: float  # the next model's cost until the draft completes, if accepted

    @property
    def worth_it(self) -> bool:
        return self.p_escalate * self.saved_usd > (1.0 - self.p_escalate) * self.wasted_usd

    def describe(self) -> str:
        return (
            f"P(escalate) {self.p_escalate:.2f} x latency saved {self.saved_usd:.3g} USD vs "
            f"{1.0 - self.p_escalate:.2f} x tokens wasted {self.wasted_usd:.3g} USD"
        )


def draft_std(uncertainty: Uncertainty, model: int) -> float:
    """The marginal standard deviation of ``model``'s quality estimate."""
    factor = uncertainty.factor
    if uncertainty.independent:
        return float(factor[model])
    return float(np.linalg.norm(factor[model]))


def escalation_odds(
    strategy: Strategy,
    estimates: QueryEstimates,
    ran: frozenset[int],
    draft: int,
) -> EscalationOdds:
    """The strategy's next model after ``draft`` across the draws of ``draft``'s quality."""
    std = draft_std(estimates.uncertainty, draft)
    mean = float(estimates.quality[draft])
    draws = np.clip(mean + std * norm.ppf(QUANTILES), 0.0, 1.0)
    after = ran | {draft}
    certain = _certain(estimates.uncertainty, draft)
    choices: Counter[int | None] = Counter()
    for quality in draws:
        values = estimates.quality.copy()
        values[draft] = quality
        decision = strategy.decide(QueryEstimates(values, estimates.cost, certain), after)
        choices[decision.next_model] += 1
    escalations = [(count, -m) for m, count in choices.items() if m is not None]
    if not escalations:
        return EscalationOdds(None, 0.0)
    count, negated = max(escalations)  # the most frequent; the cheaper index on a tie
    return EscalationOdds(-negated, count / len(draws))


def _certain(uncertainty: Uncertainty, model: int) -> Uncertainty:
    """The uncertainty once ``model`` has answered: its own error is gone."""
    factor = uncertainty.factor
    if uncertainty.independent:
        std = factor.copy()
        std[model] = 0.0
        return Uncertainty.independent_std(std)
    covariance = factor @ factor.T
    covariance[model, :] = 0.0
    covariance[:, model] = 0.0
    return Uncertainty.from_covariance(covariance)


def tokens_by(latency: ModelLatency, seconds: float, max_tokens: int) -> float:
    """Output tokens a call has streamed ``seconds`` after it started (its worst case,
    ``max_tokens``, when its speed is unknown)."""
    if latency.ttft_s is None or latency.s_per_token is None:
        return float(max_tokens)
    if seconds < latency.ttft_s:
        return 0.0
    if latency.s_per_token <= 0.0:
        return float(max_tokens)
    return float(min(max_tokens, 1.0 + (seconds - latency.ttft_s) / latency.s_per_token))


def hedge_value(
    weights: LatencyWeights,
    p_escalate: float,
    draft: LatencyExpectation,
    following: LatencyExpectation,
    wasted_usd: float,
) -> HedgeValue | None:
    """The terms of the decision, or None when a time it needs was never observed."""
    if draft.total_s is None or following.ttft_s is None or following.total_s is None:
        return None
    saved = weights.priced(
        0.0, min(draft.total_s, following.ttft_s), min(draft.total_s, following.total_s)
    )
    return HedgeValue(p_escalate=p_escalate, saved_usd=float(saved), wasted_usd=wasted_usd)
