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
  arguments validate against its schema (providers return no logprobs for arguments). A
  fitted profile's estimate is discounted the same way: both estimators read one
  `AnswerEvidence` (`cascade_core.engine.evidence`).
* post-hoc, unusable answers (empty, refused, filtered) and failed calls: 0, certain (the run
  decides this before any estimator sees the answer, so a profile cannot score them).
* post-hoc, text without logprobs: nothing is learnt; the ex-ante estimate and its uncertainty
  stay. Logprobs are never invented.
* post-hoc, a verified answer (`cascade_core.engine.verifier`): the verifier's P(yes) in
  place of the logprob confidence, discounted by tool-call validity like any estimate; a
  fitted profile re-predicts with log P(yes) as the answer's ``confidence_logprob``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cascade_core.engine.answers import ModelAnswer
from cascade_core.engine.evidence import AnswerEvidence, answer_evidence
from cascade_core.engine.ladder import LadderModel
from cascade_core.engine.verifier import verdict_logprob
from cascade_core.errors import InvalidInputError
from cascade_core.estimates import QueryEstimates, Uncertainty
from cascade_core.estimators import LogisticQualityEstimator, QueryObservation, load_profile
from cascade_core.estimators.features import COMBINED_SOURCE

DEFAULT_PRIOR_RANGE = (0.5, 0.8)


@dataclass(frozen=True)
class Judgement:
    """The post-hoc verdict on one model: a quality (None: no signal) and why.

    ``evidence`` is set when an estimator judged a usable answer; a judgement without it
    (failed, skipped, unusable or aborted, decided by the run) keeps its quality as is.
    """

    quality: float | None
    basis: str
    features: dict[str, float] = field(default_factory=dict)
    answer: str | None = None
    evidence: AnswerEvidence | None = None


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
        """Score a usable answer (`CascadeRun` has already set unusable ones aside)."""
        evidence = answer_evidence(answer, request)
        flags = evidence.flags()
        if evidence.tool_calls is not None:
            quality = evidence.weigh(float(self.priors[model]))
            return Judgement(quality, "tool-call checks", flags, answer.content, evidence)
        features = evidence.features
        if features is None or features.n_tokens == 0:
            return Judgement(
                None, "no logprobs: ex-ante estimate kept", flags, answer.content, evidence
            )
        quality = math.exp(features.lp_mean)
        return Judgement(
            quality, "mean token logprob", {**evidence.posthoc(), **flags}, answer.content, evidence
        )

    def verified(
        self, model: int, judgement: Judgement, p_yes: float, request: Mapping[str, Any]
    ) -> Judgement:
        """The judgement of an answer a verifier found correct with probability ``p_yes``:
        that probability as the answer's quality, weighed by its evidence as the mean token
        probability is (tool calls that would not execute discount it)."""
        evidence = _with_verdict(judgement, p_yes)
        return Judgement(
            evidence.weigh(p_yes),
            "verifier P(yes)",
            {**evidence.posthoc(), **evidence.flags()},
            judgement.answer,
            evidence,
        )

    def optimistic_quality(self, lp_sum: float, max_tokens: int) -> float:
        """The best post-hoc quality a partial draft can still reach: every remaining token
        certain (logprob 0), the answer as long as allowed. Used to abort hopeless drafts."""
        return math.exp(lp_sum / max(1, max_tokens))

    def estimates(
        self,
        request: Mapping[str, Any],
        ex_ante: np.ndarray,
        judgements: Mapping[int, Judgement],
        cost: np.ndarray,
    ) -> QueryEstimates:
        quality = ex_ante.copy()
        certain = np.zeros(len(quality), dtype=bool)
        for model, judgement in judgements.items():
            if judgement.quality is not None:
                quality[model] = judgement.quality
                certain[model] = True
        key = tuple(certain)
        if key not in self._uncertainty_cache:  # reused so its error samples are made once
            std = np.where(certain, 0.0, self.prior_std)
            self._uncertainty_cache[key] = Uncertainty.independent_std(std)
        return QueryEstimates(np.clip(quality, 0.0, 1.0), cost, self._uncertainty_cache[key])


@dataclass
class ProfileEstimator:
    """A fitted profile (``cascade_core.estimators``) on the live path.

    The profile's logistic regressions read the prompt and, per model already run, its token
    logprob features and answer agreement; failed or skipped models are pinned to quality 0.
    """

    fitted: LogisticQualityEstimator

    @classmethod
    def load(
        cls, path: str | Path, ladder: Sequence[LadderModel], *, verifier: bool = False
    ) -> ProfileEstimator:
        """``verifier``: the engine has a verifier, whose P(yes) is the profile's confidence
        signal; a profile must read exactly the signals the engine measures."""
        fitted = load_profile(path)
        labels = [m.label for m in ladder]
        if list(fitted.spec.model_names) != labels:
            raise InvalidInputError(
                f"profile {path}: fitted for models {list(fitted.spec.model_names)}, but the "
                f"ladder is {labels}; refit the profile for this ladder (same names, same order)"
            )
        source = fitted.spec.posthoc_source
        if verifier and source not in ("confidence", COMBINED_SOURCE):
            raise InvalidInputError(
                f"profile {path}: fitted on {source!r} signals, without the verifier's "
                "P(yes), so verification would be paid for and never read; rerun calibrate "
                "with this verifier in the config (or remove verifier)"
            )
        if not verifier and source != "logprobs":
            raise InvalidInputError(
                f"profile {path}: fitted on {source!r} signals; without a verifier the live "
                "engine measures token logprobs only, so fit the profile on logprob features "
                "(or configure the verifier it was calibrated with)"
            )
        return cls(fitted)

    def _observation(
        self, request: Mapping[str, Any], evidence: Mapping[int, AnswerEvidence]
    ) -> QueryObservation:
        """The query as the profile's feature table sees it, with the evidence of the models
        that answered (others count as unknown, as a replay cannot log them either)."""
        return QueryObservation(
            prompt=prompt_text(request),
            task=str(request.get("task") or ""),
            posthoc={m: e.profile_signals() for m, e in evidence.items()},
            answers={m: e.text for m, e in evidence.items()},
        )

    def ex_ante(self, request: Mapping[str, Any]) -> np.ndarray:
        quality, _ = self.fitted.predict_one(self._observation(request, {}), ())
        return quality

    def judge(self, model: int, answer: ModelAnswer, request: Mapping[str, Any]) -> Judgement:
        """The profile's estimate of ``model`` in the state where only it ran (what its
        answer alone shows), discounted by the answer's tool-call validity."""
        evidence = answer_evidence(answer, request)
        quality, _ = self.fitted.predict_one(
            self._observation(request, {model: evidence}), (model,)
        )
        basis = "fitted profile" if evidence.tool_calls is None else "fitted profile, tool calls"
        return Judgement(
            evidence.weigh(float(quality[model])),
            basis,
            {**evidence.posthoc(), **evidence.flags()},
            answer.content,
            evidence,
        )

    def verified(
        self, model: int, judgement: Judgement, p_yes: float, request: Mapping[str, Any]
    ) -> Judgement:
        """The profile's estimate of ``model`` alone, re-predicted with the verdict's log
        P(yes) as the answer's ``confidence_logprob`` (what calibrate fitted it on)."""
        evidence = _with_verdict(judgement, p_yes)
        quality, _ = self.fitted.predict_one(
            self._observation(request, {model: evidence}), (model,)
        )
        return Judgement(
            evidence.weigh(float(quality[model])),
            "fitted profile, verifier P(yes)",
            {**evidence.posthoc(), **evidence.flags()},
            judgement.answer,
            evidence,
        )

    def optimistic_quality(self, lp_sum: float, max_tokens: int) -> float | None:
        """No bound is known for a fitted regression, so drafts are never aborted early."""
        return None

    def estimates(
        self,
        request: Mapping[str, Any],
        ex_ante: np.ndarray,
        judgements: Mapping[int, Judgement],
        cost: np.ndarray,
    ) -> QueryEstimates:
        ran = tuple(sorted(judgements))
        evidence = {m: j.evidence for m, j in judgements.items() if j.evidence is not None}
        quality, uncertainty = self.fitted.predict_one(self._observation(request, evidence), ran)
        for model, judgement in judgements.items():
            if judgement.evidence is not None:
                quality[model] = judgement.evidence.weigh(float(quality[model]))
            elif judgement.quality is not None:
                quality[model] = judgement.quality  # failed, skipped, unusable or aborted
        return QueryEstimates(np.clip(quality, 0.0, 1.0), cost, uncertainty)


def _with_verdict(judgement: Judgement, p_yes: float) -> AnswerEvidence:
    """The judged answer's evidence with the verifier's log P(yes) added."""
    if judgement.evidence is None:
        raise ValueError("only an answer an estimator judged can be verified")
    return replace(judgement.evidence, verdict_logprob=verdict_logprob(p_yes))


def prompt_text(request: Mapping[str, Any]) -> str:
    """The request's text as the estimators saw prompts in the logs: all message contents."""
    parts = []
    for message in request.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


LiveEstimator = DefaultEstimator | ProfileEstimator
