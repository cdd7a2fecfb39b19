"""What an answer shows about its own quality, computed once for every live estimator.

Why one place: the default estimator and a fitted profile must read the same evidence, or an
answer scores differently depending on which is configured (a tool call with invalid
arguments would be judged by its schema under one and not under the other). The evidence of
one answer is:

* its logprob features (`ModelAnswer.features`, the builder the replay uses too);
* how it ended (`message_signals`: truncated, refused, empty);
* for tool calls, whether each call would execute (`check_tool_calls`): the tool exists, the
  arguments parse and validate, ``tool_choice`` is respected. Providers return no logprobs for
  tool-call arguments, so without a verifier this is the only post-hoc signal such an answer
  has;
* once a verifier judged it (`cascade_core.engine.verifier`), log P(yes): the answer's
  ``confidence_logprob``, as the cascade logs record P(True).

Unusable answers (empty, refused, filtered) never get here: `CascadeRun.record_answer` sets
them aside first, so no estimator can score them above 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cascade_core.engine.answers import ModelAnswer
from cascade_core.estimators.features import confidence_signal, posthoc_from_confidence
from cascade_core.signals import (
    LogprobFeatures,
    ResponseSignals,
    ToolCallSignals,
    check_tool_calls,
    message_signals,
)


@dataclass(frozen=True)
class AnswerEvidence:
    """The post-hoc evidence of one usable answer (see the module docstring)."""

    text: str
    features: LogprobFeatures | None
    finish: ResponseSignals
    tool_calls: ToolCallSignals | None  # None when the answer makes no tool call
    verdict_logprob: float | None = None  # log P(yes) of a verifier; None: not verified

    @property
    def tool_call_score(self) -> float | None:
        """Share of calls that would execute as given (0 when ``tool_choice`` was violated);
        None for an answer without tool calls."""
        if self.tool_calls is None:
            return None
        if not self.tool_calls.tool_choice_respected:
            return 0.0
        return float(self.tool_calls.score or 0.0)

    def weigh(self, quality: float) -> float:
        """An estimator's quality for this answer, discounted by its tool-call validity: a
        call that would fail when executed makes the answer worthless whatever else is known."""
        score = self.tool_call_score
        return quality if score is None else quality * score

    def posthoc(self) -> dict[str, float]:
        """The logprob features by name (none when the answer came without logprobs), and
        the verdict's confidence features once a verifier judged the answer."""
        values = {} if self.features is None else self.features.as_dict()
        if self.verdict_logprob is not None:
            values.update(posthoc_from_confidence(self.verdict_logprob))
        return values

    def profile_signals(self) -> dict[str, float]:
        """Every post-hoc value a fitted profile may read, by feature name: the logprob
        features, and the confidence features of ``confidence_logprob`` derived as the replay
        derives it (`confidence_signal`: the verdict, else the answer's log-probability)."""
        values = {} if self.features is None else self.features.as_dict()
        answer_logprob = None if self.features is None else self.features.lp_sum
        confidence = confidence_signal(self.verdict_logprob, answer_logprob)
        return {**values, **posthoc_from_confidence(confidence)}

    def flags(self) -> dict[str, float]:
        """The finish-state and tool-call signals, for the trace."""
        flags = {
            "truncated": float(self.finish.truncated),
            "empty": float(self.finish.empty_content),
            "refused": float(self.finish.refused),
        }
        score = self.tool_call_score
        if score is not None:
            flags["tool_call_score"] = score
        return flags


def answer_evidence(answer: ModelAnswer, request: Mapping[str, Any]) -> AnswerEvidence:
    """The evidence of ``answer`` to ``request`` (whose ``tools``/``tool_choice`` it is
    checked against)."""
    message = answer.message()
    return AnswerEvidence(
        text=answer.content,
        features=answer.features,
        finish=message_signals(message, answer.finish_reason),
        tool_calls=(
            check_tool_calls(message, request.get("tools"), request.get("tool_choice"))
            if answer.tool_calls
            else None
        ),
    )
