"""One request's decision state machine, free of I/O (the sync and async drivers share it).

The driver asks ``next_call()`` what to run, performs the call however it likes (blocking,
awaiting, streaming), and reports back with ``record_answer`` / ``record_failure`` /
``record_aborted``; ``result()`` then gives the accepted answer and the trace. All per-request
state lives here, never on the engine, so one engine serves concurrent requests safely.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from cascade_core.engine.answers import ModelAnswer
from cascade_core.engine.ladder import LadderModel
from cascade_core.engine.live_estimates import Judgement, LiveEstimator
from cascade_core.engine.redaction import redact, secrets_from_env
from cascade_core.engine.trace import CascadeResult, CascadeTrace, ModelRun
from cascade_core.errors import AllModelsFailedError
from cascade_core.estimates import QueryEstimates
from cascade_core.strategies import Routing, Strategy
from cascade_core.strategies.mixed import MixedStrategy

TOP_LOGPROBS = 5  # alternatives per token: enough for entropy and margin features


@dataclass(frozen=True)
class RouterParts:
    """The immutable pieces a request needs; built once per engine."""

    ladder: tuple[LadderModel, ...]
    strategy: Strategy
    estimator: LiveEstimator
    max_cost_usd: float | None
    num_retries: int
    timeout_s: float
    early_abort: bool = True


@dataclass(frozen=True)
class ModelCall:
    """What the driver should run next. Holds no secret: the key is read in ``kwargs``."""

    model: LadderModel
    params: dict[str, Any]
    final: bool
    estimated_cost: float

    def kwargs(self, stream: bool) -> dict[str, Any]:
        """LiteLLM keyword arguments, API key included (read from the environment now)."""
        kwargs = dict(self.params)
        key = self.model.api_key()
        if key is not None:
            kwargs["api_key"] = key
        if stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        return kwargs


def request_draw(request: dict[str, Any]) -> float:
    """A repeatable uniform draw per request, for policies mixed to meet a budget."""
    digest = hashlib.sha256(
        json.dumps(request.get("messages"), sort_keys=True, default=str).encode()
    ).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class CascadeRun:
    """Decides, step by step, which model runs next for one request."""

    def __init__(self, parts: RouterParts, request: dict[str, Any]) -> None:
        self.parts = parts
        self.request = request
        ladder = parts.ladder
        strategy = parts.strategy
        self.strategy = (
            strategy.pick(request_draw(request))
            if isinstance(strategy, MixedStrategy)
            else strategy
        )
        self.trace = CascadeTrace(strategy=self.strategy.name)
        self.input_tokens = [
            m.count_input_tokens(request["messages"], request.get("tools")) for m in ladder
        ]
        self.cost = np.array(
            [
                m.expected_cost(n, request.get("max_tokens"))
                for m, n in zip(ladder, self.input_tokens, strict=True)
            ]
        )
        self.ex_ante = parts.estimator.ex_ante(request)
        self.judgements: dict[int, Judgement] = {}
        self.answers: dict[int, ModelAnswer] = {}
        self.spent = 0.0
        for model, tokens in zip(ladder, self.input_tokens, strict=True):
            if model.context_window is not None and tokens > model.context_window:
                self._skip(
                    model,
                    f"prompt of {tokens} tokens exceeds context window {model.context_window}",
                )

    # -- decisions ---------------------------------------------------------------------

    def next_call(self) -> ModelCall | None:
        """The next model to run, or None when the request is done."""
        while True:
            ran = frozenset(self.judgements)
            if len(ran) == len(self.parts.ladder):
                self.trace.stop_reason = self.trace.stop_reason or "every model has been tried"
                return None
            estimates = self._estimates(self.judgements)
            decision = self.strategy.decide(estimates, ran)
            choice = decision.next_model
            if choice is None:
                if self.answers:
                    self.trace.stop_reason = decision.reason
                    return None
                choice = self._cheapest_untried()
                self.trace.decisions.append(
                    f"{decision.reason}; no answer yet, so run {self.parts.ladder[choice].label}"
                )
            else:
                self.trace.decisions.append(
                    decision.reason.replace(f"model {choice}", self.parts.ladder[choice].label)
                )
            call = self._prepare(self.parts.ladder[choice])
            if call is not None:
                return call

    def _cheapest_untried(self) -> int:
        untried = [m for m in range(len(self.parts.ladder)) if m not in self.judgements]
        return min(untried, key=lambda m: (self.cost[m], m))

    def _prepare(self, model: LadderModel) -> ModelCall | None:
        """Build the call, or skip the model when the cost cap cannot afford it."""
        max_tokens = self.request.get("max_tokens")
        tokens_in = self.input_tokens[model.index]
        cap = self.parts.max_cost_usd
        if cap is not None:
            affordable = model.affordable_output_tokens(tokens_in, cap - self.spent)
            if max_tokens is None or max_tokens > affordable:
                max_tokens = affordable
            if max_tokens < 1:
                self._skip(
                    model, f"cost cap: {cap:.6g} USD per request leaves no room for this model"
                )
                return None
        params = self._params(model, max_tokens)
        return ModelCall(
            model=model,
            params=params,
            final=self._is_final(model),
            estimated_cost=float(self.cost[model.index]),
        )

    def _params(self, model: LadderModel, max_tokens: int | None) -> dict[str, Any]:
        request = self.request
        params: dict[str, Any] = {
            "model": model.spec.model,
            "messages": request["messages"],
            "num_retries": self.parts.num_retries,
            # LiteLLM does the retrying; the OpenAI client's own retries would multiply it.
            "max_retries": 0,
            "timeout": self.parts.timeout_s,
            **model.spec.extra_params,
        }
        if model.spec.api_base:
            params["api_base"] = model.spec.api_base
        for name in (
            "tools",
            "tool_choice",
            "response_format",
            "temperature",
            "stop",
            "seed",
            "top_p",
        ):
            if request.get(name) is not None:
                params[name] = request[name]
        if max_tokens is not None:
            params["max_tokens"] = int(max_tokens)
        if model.supports_logprobs:
            params["logprobs"] = True
            params["top_logprobs"] = max(TOP_LOGPROBS, int(request.get("top_logprobs") or 0))
        return params

    def _is_final(self, model: LadderModel) -> bool:
        """True when no other model can run after this one, so its answer is the answer."""
        if isinstance(self.strategy, Routing):
            return True
        others = [
            m
            for m in range(len(self.parts.ladder))
            if m not in self.judgements and m != model.index
        ]
        return not others

    # -- outcomes ----------------------------------------------------------------------

    def record_answer(self, call: ModelCall, answer: ModelAnswer, latency_s: float) -> None:
        model = call.model
        judgement = self.parts.estimator.judge(model.index, answer, self.request)
        prompt_tokens = (
            answer.prompt_tokens
            if answer.prompt_tokens is not None
            else self.input_tokens[model.index]
        )
        completion_tokens = answer.completion_tokens
        if completion_tokens is None:
            completion_tokens = len(answer.logprobs) if answer.logprobs is not None else 0
        cost = model.actual_cost(prompt_tokens, completion_tokens)
        self.spent += cost
        self.judgements[model.index] = judgement
        self.answers[model.index] = answer
        self.trace.runs.append(
            ModelRun(
                model=model.label,
                index=model.index,
                status="ok",
                reason="answered",
                ex_ante_quality=float(self.ex_ante[model.index]),
                post_hoc_quality=judgement.quality,
                quality_basis=judgement.basis,
                features=judgement.features,
                prompt_tokens=int(prompt_tokens),
                completion_tokens=int(completion_tokens),
                cost_usd=cost,
                estimated_cost_usd=call.estimated_cost,
                latency_ms=latency_s * 1000,
            )
        )

    def record_failure(self, call: ModelCall, error: BaseException, latency_s: float) -> None:
        """A failed model counts as quality 0; the strategy goes on without it."""
        secrets = secrets_from_env(m.spec.api_key_env for m in self.parts.ladder)
        message = redact(f"{type(error).__name__}: {error}", secrets)[:500]
        self.judgements[call.model.index] = Judgement(0.0, "failed")
        self.trace.runs.append(
            ModelRun(
                model=call.model.label,
                index=call.model.index,
                status="failed",
                reason="call failed after LiteLLM's retries",
                ex_ante_quality=float(self.ex_ante[call.model.index]),
                post_hoc_quality=0.0,
                estimated_cost_usd=call.estimated_cost,
                latency_ms=latency_s * 1000,
                error=message,
            )
        )

    def record_aborted(
        self, call: ModelCall, draft: ModelAnswer, latency_s: float, reason: str
    ) -> None:
        """A draft stopped early because escalation was already certain: paid, not usable."""
        model = call.model
        completion_tokens = len(draft.logprobs or [])
        prompt_tokens = self.input_tokens[model.index]
        cost = model.actual_cost(prompt_tokens, completion_tokens)
        self.spent += cost
        self.judgements[model.index] = Judgement(0.0, "aborted")
        self.trace.runs.append(
            ModelRun(
                model=model.label,
                index=model.index,
                status="aborted",
                reason=reason,
                ex_ante_quality=float(self.ex_ante[model.index]),
                post_hoc_quality=0.0,
                quality_basis="aborted draft",
                features=draft.features.as_dict() if draft.features else {},
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost_usd=cost,
                estimated_cost_usd=call.estimated_cost,
                latency_ms=latency_s * 1000,
            )
        )

    def draft_is_hopeless(self, call: ModelCall, lp_sum: float, n_tokens: int) -> bool:
        """Would the strategy escalate even if the rest of this draft were perfectly certain?

        Only then is aborting safe: a higher post-hoc quality of a model that ran never makes
        another model more attractive (E[max] gains shrink as the best known quality grows).
        """
        max_tokens = call.params.get("max_tokens")
        if not self.parts.early_abort or call.final or max_tokens is None or n_tokens == 0:
            return False
        best_case = self.parts.estimator.optimistic_quality(lp_sum, max_tokens)
        if best_case is None:
            return False
        judgements = {**self.judgements, call.model.index: Judgement(best_case, "best case")}
        return not self.strategy.decide(self._estimates(judgements), frozenset(judgements)).stop

    def _estimates(self, judgements: dict[int, Judgement]) -> QueryEstimates:
        return self.parts.estimator.estimates(self.request, self.ex_ante, judgements, self.cost)

    def _skip(self, model: LadderModel, reason: str) -> None:
        self.judgements[model.index] = Judgement(0.0, "skipped")
        self.trace.runs.append(
            ModelRun(
                model=model.label,
                index=model.index,
                status="skipped",
                reason=reason,
                ex_ante_quality=float(self.ex_ante[model.index]),
            )
        )

    # -- answer ------------------------------------------------------------------------

    def result(self, committed: int | None = None) -> CascadeResult:
        """The run model with the best post-hoc estimate (ex-ante when it gave no signal).

        ``committed`` names a model whose answer was already sent to the caller (streamed
        live as the final model): text that was sent cannot be taken back, so that answer is
        the answer, and the trace says when another model had scored higher.
        """
        if not self.answers:
            errors = {run.model: run.error or run.reason for run in self.trace.runs}
            raise AllModelsFailedError(errors)

        def score(index: int) -> tuple[float, float]:
            value = self.judgements[index].quality
            return (self.ex_ante[index] if value is None else value, self.cost[index])

        best = max(self.answers, key=score)
        if committed is not None and committed in self.answers and committed != best:
            self.trace.decisions.append(
                f"kept {self.parts.ladder[committed].label}: its answer was already streamed "
                f"({self.parts.ladder[best].label} scored higher)"
            )
            best = committed
        return CascadeResult(
            answer=self.answers[best],
            model=self.parts.ladder[best].label,
            model_index=best,
            trace=self.trace,
        )
