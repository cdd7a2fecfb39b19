"""The optional verification call: ask a model whether an answer is correct, read P(yes).

Why: an answer without token logprobs (Anthropic, reasoning models, the arguments of a tool
call) shows nothing of its own confidence, so the strategy would only have the prior to decide
whether to escalate. A verifier model asked "is this answer correct?" answers in one word,
and its first token's top logprobs give P(yes) / (P(yes) + P(no)): the P(True) signal the
cascade logs' open-form tasks record as ``confidence_logprob``, so a profile fitted on it by
``calibrate`` serves it live like any other signal.

What it costs: one short call per verified answer (the question and the answer in, at most
`VERDICT_TOKENS` out). The engine counts it like any call: its expected cost is part of the
decision cost of every model whose answers it expects to verify, its worst case is held
against the cost caps before it runs, and what it was billed is in the result's cost and
trace. Its risk: a verifier is one more model that can be wrong; a confident "yes" to a wrong
answer keeps that answer, so the verifier should be at least as strong as the models it
checks, and the fitted profile (not the raw P(yes)) is what calibrates it.

This module decides who is verified and builds the call; the run (`CascadeRun`) makes it
with the same retries, timeouts, caps, billing and trace as every model call.
"""

from __future__ import annotations

import contextlib
import json
import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cascade_core.engine.answers import ModelAnswer
from cascade_core.engine.config import VerifierSpec
from cascade_core.engine.ladder import LadderModel, resolve_extra_model
from cascade_core.engine.provider_request import provider_kwargs
from cascade_core.errors import InvalidInputError

# The verdict is one word; a few tokens leave room for a leading space or quote.
VERDICT_TOKENS = 3
# Alternatives asked for the verdict's first token: enough that "yes" and "no" both show
# whenever either is plausible (OpenAI returns at most 20).
VERDICT_TOP_LOGPROBS = 10
YES_WORDS = frozenset({"yes", "true", "correct"})
NO_WORDS = frozenset({"no", "false", "incorrect"})
# Stripped from a token before it is read as a word: "Yes.", " **No", '"yes"'.
_NOT_WORD = string.whitespace + string.punctuation


def verdict_word(token: Any) -> str:
    """A token as a verdict word: stripped of spaces and punctuation, lower-cased."""
    return str(token or "").strip(_NOT_WORD).lower()


def p_yes(answer: ModelAnswer) -> float | None:
    """P(yes) / (P(yes) + P(no)) from the first non-blank token's top logprobs; None when the
    answer has no logprobs or no yes/no word is among that token's alternatives.

    A side missing from the listed alternatives has at most the mass of the least likely one
    listed (else it would be listed) and at most what the list leaves: its mass is bounded by
    the smaller of the two, so a "yes" with no "no" in sight reads as nearly certain, never as
    more certain than the listed probabilities allow.
    """
    first = next((e for e in answer.logprobs or [] if verdict_word(e.get("token"))), None)
    if first is None:
        return None
    listed: dict[str, float] = {}
    for entry in [first, *(first.get("top_logprobs") or [])]:
        token = str(entry.get("token") or "")
        logprob = entry.get("logprob")
        if token in listed or logprob is None or math.isnan(float(logprob)):
            continue
        listed[token] = min(1.0, math.exp(min(0.0, float(logprob))))
    yes = sum(p for token, p in listed.items() if verdict_word(token) in YES_WORDS)
    no = sum(p for token, p in listed.items() if verdict_word(token) in NO_WORDS)
    has_yes = any(verdict_word(token) in YES_WORDS for token in listed)
    has_no = any(verdict_word(token) in NO_WORDS for token in listed)
    if not (has_yes or has_no):
        return None
    unlisted = max(0.0, min(min(listed.values()), 1.0 - sum(listed.values())))
    yes = yes if has_yes else unlisted
    no = no if has_no else unlisted
    if yes + no <= 0:
        return None
    return yes / (yes + no)


def verdict_logprob(probability: float) -> float:
    """log P(yes), the verdict as the ``confidence_logprob`` signal (-inf for P(yes) = 0)."""
    return math.log(probability) if probability > 0 else -math.inf


def answer_text(answer: ModelAnswer) -> str:
    """What the verifier is shown of an answer: its text, then its tool calls as JSON (name
    and arguments, parsed where they parse), so a call's arguments are verified too."""
    parts = [answer.content] if answer.content else []
    if answer.tool_calls:
        calls = []
        for call in answer.tool_calls:
            function = call.get("function") or {}
            arguments = function.get("arguments")
            # Arguments that do not parse are shown as sent: that is part of the answer.
            with contextlib.suppress(ValueError):
                arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
            calls.append({"name": function.get("name"), "arguments": arguments})
        parts.append("Tool calls: " + json.dumps(calls, ensure_ascii=False, default=str))
    return "\n".join(parts)


def question_text(request: Mapping[str, Any]) -> str:
    """The request as the verifier reads it: a lone user message as is, a conversation as
    ``role: text`` turns; the tools offered, by name and description, when there are any.
    Non-text parts (images, files) are not shown."""
    messages = list(request.get("messages") or [])
    turns = [(str(m.get("role")), _text(m)) for m in messages]
    if len(turns) == 1 and turns[0][0] == "user":
        text = turns[0][1]
    else:
        text = "\n\n".join(f"{role}: {content}" for role, content in turns)
    tools = request.get("tools") or []
    if tools:
        described = []
        for tool in tools:
            function = (tool.get("function") or {}) if isinstance(tool, Mapping) else {}
            line = f"- {function.get('name', '?')}"
            if function.get("description"):
                line += f": {function['description']}"
            described.append(line)
        text += "\n\nTools available:\n" + "\n".join(described)
    return text


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    else:
        text = ""
    calls = message.get("tool_calls")
    if calls:
        text = "\n".join(filter(None, [text, "Tool calls: " + json.dumps(calls, default=str)]))
    return text


@dataclass(frozen=True)
class Verifier:
    """The configured verifier, resolved once per engine: its model and the ladder models
    whose answers it covers. Immutable and shared by requests."""

    spec: VerifierSpec
    model: LadderModel
    covered: frozenset[int]

    @classmethod
    def resolve(cls, spec: VerifierSpec, ladder: Sequence[LadderModel]) -> Verifier:
        """Resolve and price the verifier's model like a rung (errors name
        ``verifier.model``); it must return logprobs, which its verdict is read from."""
        model = resolve_extra_model(spec.model, len(ladder), "verifier.model")
        if not model.supports_logprobs:
            raise InvalidInputError(
                f"{model.where}: {spec.model.model!r} returns no logprobs, and P(yes) is read "
                "from them; choose a verifier model that does (or set supports_logprobs: true "
                "if LiteLLM does not know that it does)"
            )
        labels = spec.models
        covered = frozenset(m.index for m in ladder if labels is None or m.label in labels)
        return cls(spec, model, covered)

    @property
    def label(self) -> str:
        return self.model.label

    def covers(self, model: LadderModel) -> bool:
        return model.index in self.covered

    def expects(self, model: LadderModel, request: Mapping[str, Any]) -> bool:
        """Ex ante: will an answer of ``model`` to ``request`` probably be verified? (For the
        decision cost: ``verify: always``, a model without logprobs, or a request with tools,
        whose calls come without logprobs.)"""
        return self.covers(model) and (
            self.spec.verify == "always"
            or not model.supports_logprobs
            or bool(request.get("tools"))
        )

    def needs(self, model: LadderModel, answer: ModelAnswer) -> bool:
        """Ex post: does this answer get verified? (``verify: always``, tool calls, or an
        answer without logprob features.)"""
        features = answer.features
        return self.covers(model) and (
            self.spec.verify == "always"
            or bool(answer.tool_calls)
            or features is None
            or features.n_tokens == 0
        )

    def messages(self, question: str, answer: str) -> list[dict[str, str]]:
        """The verifier's prompt: the configured template with the question and the answer
        (cut to ``max_answer_chars``)."""
        shown = answer[: self.spec.max_answer_chars]
        content = self.spec.prompt.format(question=question, answer=shown)
        return [{"role": "user", "content": content}]

    def params(
        self, messages: list[dict[str, str]], *, num_retries: int, timeout_s: float
    ) -> dict[str, Any]:
        """LiteLLM arguments of a verification (no key): greedy, at most `VERDICT_TOKENS`
        tokens with their top logprobs, the run's retries and timeout. Never streamed."""
        return provider_kwargs(
            self.model,
            {"messages": messages, "temperature": 0.0, "top_logprobs": VERDICT_TOP_LOGPROBS},
            num_retries=num_retries,
            timeout_s=timeout_s,
            max_tokens=VERDICT_TOKENS,
        )

    def call_params(
        self,
        request: Mapping[str, Any],
        answer: ModelAnswer,
        *,
        num_retries: int,
        timeout_s: float,
    ) -> dict[str, Any]:
        """The verification of ``answer`` to ``request``."""
        messages = self.messages(question_text(request), answer_text(answer))
        return self.params(messages, num_retries=num_retries, timeout_s=timeout_s)

    def expected_costs(
        self,
        ladder: Sequence[LadderModel],
        request: Mapping[str, Any],
        *,
        num_retries: int,
        timeout_s: float,
    ) -> np.ndarray:
        """Per ladder model, the expected USD of verifying its answer to ``request`` (0 where
        it is not expected): LiteLLM's count of the prompt with the question filled in, plus
        the answer at the model's expected output length, at the verifier's prices."""
        costs = np.zeros(len(ladder))
        expected = [m for m in ladder if self.expects(m, request)]
        if not expected:
            return costs
        empty = self.params(
            self.messages(question_text(request), ""),
            num_retries=num_retries,
            timeout_s=timeout_s,
        )
        base = self.model.count_input_tokens(empty)
        max_tokens = request.get("max_tokens")
        for model in expected:
            answer_tokens = model.spec.expected_output_tokens
            if max_tokens is not None:
                answer_tokens = min(answer_tokens, int(max_tokens))
            answer_tokens = min(answer_tokens, self.spec.max_answer_chars)
            costs[model.index] = self.model.expected_cost(base + answer_tokens, VERDICT_TOKENS)
        return costs
