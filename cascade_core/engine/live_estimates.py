"""Quality estimates on the live path when no fitted profile is given (the documented default).

Without calibration data nothing better than a prior is known before a call, and after a call
only what the answer itself shows. The default mapping, replaced by a fitted profile when one
is configured:

* ex-ante: the model's ``prior_quality`` from the config; when unset, priors rise linearly with
  price from 0.5 (cheapest) to 0.8 (most expensive): a placeholder that only encodes "bigger
  models are usually better" until ``cascade-router calibrate`` measures it. The priors carry
  independent uncertainty ``prior_std``.
* post-hoc, text with logprobs: exp(mean token logprob), the geometric-mean token probability
  (Gupta et al. 2024 find mean-logprob among the strongest single cascade signals); certain.
* post-hoc, tool calls: the prior times the share of calls whose tool exists and whose
  arguments validate against its schema (providers return no logprobs for arguments).
* post-hoc, unusable answers (empty, refused, filtered) and failed calls: 0, certain.
* post-hoc, text without logprobs: nothing is learnt; the ex-ante estimate and its uncertainty
  stay. Logprobs are never invented.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cascade_core.engine.answers import ModelAnswer
from cascade_core.engine.ladder import LadderModel
from cascade_core.estimates import QueryEstimates, Uncertainty
from cascade_core.signals import check_tool_calls, message_signals

DEFAULT_PRIOR_RANGE = (0.5, 0.8)


@dataclass(frozen=True)
class Judgement:
    """The post-hoc verdict on one answer: a quality (None: no signal) and why."""

    quality: float | None
    basis: str
    features: dict[str, float] = field(default_factory=dict)


@dataclass
class DefaultEstimator:
    """Priors plus answer signals; immutable after construction and shared by requests."""

    priors: np.ndarray
    prior_std: float
    _uncertainty_cache: dict[tuple[bool, ...], Uncertainty] = field(default_factory=dict)

    @classmethod
    def for_ladder(cls, ladder: Sequence[LadderModel], prior_std: float) -> DefaultEstimator:
        prices = np.array([m.input_cost_per_token + m.output_cost_per_token for m in ladder])
        rank = np.argsort(np.argsort(prices, kind="stable"), kind="stable")
        low, high = DEFAULT_PRIOR_RANGE
        spread = low + (high - low) * rank / max(1, len(ladder) - 1)
        priors = np.array(
            [
                m.spec.prior_quality if m.spec.prior_quality is not None else spread[i]
                for i, m in enumerate(ladder)
            ]
        )
        return cls(priors=priors, prior_std=prior_std)

    def ex_ante(self, request: Mapping[str, Any]) -> np.ndarray:
        return self.priors.copy()

    def judge(self, model: int, answer: ModelAnswer, request: Mapping[str, Any]) -> Judgement:
        signals = message_signals(answer.message(), answer.finish_reason)
        flags = {
            "truncated": float(signals.truncated),
            "empty": float(signals.empty_content),
            "refused": float(signals.refused),
        }
        if signals.empty_content or signals.refused or signals.content_filtered:
            return Judgement(0.0, "unusable answer", flags)
        if answer.tool_calls:
            checks = check_tool_calls(
                answer.message(), request.get("tools"), request.get("tool_choice")
            )
            score = checks.score if checks.tool_choice_respected else 0.0
            flags["tool_call_score"] = float(score or 0.0)
            return Judgement(float(self.priors[model] * (score or 0.0)), "tool-call checks", flags)
        if answer.features is None or answer.features.n_tokens == 0:
            return Judgement(None, "no logprobs: ex-ante estimate kept", flags)
        features = {**answer.features.as_dict(), **flags}
        return Judgement(math.exp(answer.features.lp_mean), "mean token logprob", features)

    def optimistic_quality(self, lp_sum: float, max_tokens: int) -> float:
        """The best post-hoc quality a partial draft can still reach: every remaining token
        certain (logprob 0), the answer as long as allowed. Used to abort hopeless drafts."""
        return math.exp(lp_sum / max(1, max_tokens))

    def estimates(
        self,
        ex_ante: np.ndarray,
        judged: Mapping[int, float | None],
        cost: np.ndarray,
    ) -> QueryEstimates:
        quality = ex_ante.copy()
        certain = np.zeros(len(quality), dtype=bool)
        for model, value in judged.items():
            if value is not None:
                quality[model] = value
                certain[model] = True
        key = tuple(certain)
        if key not in self._uncertainty_cache:  # reused so its error samples are made once
            std = np.where(certain, 0.0, self.prior_std)
            self._uncertainty_cache[key] = Uncertainty.independent_std(std)
        return QueryEstimates(np.clip(quality, 0.0, 1.0), cost, self._uncertainty_cache[key])
