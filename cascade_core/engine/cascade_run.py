"""One request's decision state machine, free of I/O (the sync and async drivers share it).

The driver asks ``next_call()`` what to run, performs the call however it likes (blocking,
awaiting, streaming), and reports back with ``record_answer`` / ``record_failure`` /
``record_aborted``; ``result()`` then gives the accepted answer and the trace. All per-request
state lives here, never on the engine, so one engine serves concurrent requests safely.

With a verifier (`cascade_core.engine.verifier`), a usable answer that needs one is verified
before the run moves on: the verification is a call like the others (``ModelCall.verifies``),
capped, billed and traced, and its P(yes) replaces that answer's judgement.

A request of a session starts from the session's snapshot (loaded by the driver) and ends
with ``session_update()`` (saved by the driver); in between, the session's policy constrains
the run through the strategy contract (`SessionTurn`), each model gets the history converted
for it (`cascade_core.sessions.messages`), and a per-session cap limits calls like the
per-request cap, the driver reserving each call's worst case in the store first.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cascade_core.answer_choice import choose_answers
from cascade_core.engine.answers import ModelAnswer
from cascade_core.engine.cache_usage import CacheUsage
from cascade_core.engine.early_commit import EarlyCommit
from cascade_core.engine.hedge import escalation_odds, hedge_value, tokens_by
from cascade_core.engine.judges import Judgement, LiveEstimator
from cascade_core.engine.ladder import INPUT_TOKEN_MARGIN, LadderModel
from cascade_core.engine.provider_request import provider_kwargs
from cascade_core.engine.redaction import redact, secrets_from_env
from cascade_core.engine.session_turn import SessionTurn, asks_cache_write
from cascade_core.engine.trace import CascadeResult, CascadeTrace, ModelRun, RunStatus
from cascade_core.engine.verifier import VERDICT_TOKENS, Verifier, p_yes
from cascade_core.errors import AllModelsFailedError, CascadeStreamError
from cascade_core.estimates import QueryEstimates
from cascade_core.latency import (
    NO_LATENCY_PRICE,
    LatencyExpectation,
    LatencyModel,
    LatencyWeights,
    ModelLatency,
)
from cascade_core.sessions.messages import for_model
from cascade_core.sessions.policy import SessionPolicy, ToolLoop
from cascade_core.sessions.state import SessionSnapshot, SessionUpdate
from cascade_core.signals import LogprobFeatures, message_signals
from cascade_core.strategies import Strategy


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
    session_policy: SessionPolicy = "per_turn"
    tool_loop: ToolLoop = "continue"
    max_cost_usd_per_session: float | None = None
    # Learned from every call's trace; None: latency is neither learned nor expected
    latency: LatencyModel | None = None
    # USD per second of waiting (a request's own weights replace these); zero: time is free
    latency_weights: LatencyWeights = NO_LATENCY_PRICE
    # Whether an async stream may start the next model alongside a draft (`plan_hedge`)
    hedge: bool = True
    # Asked whether answers are correct (None: no verification)
    verifier: Verifier | None = None
    # Streams: commit a confident first draft early (`should_commit`); None: never
    early_commit: EarlyCommit | None = None


@dataclass(frozen=True)
class ModelCall:
    """What the driver should run next. Holds no secret: the key is read in ``kwargs``."""

    model: LadderModel
    params: dict[str, Any]
    final: bool
    estimated_cost: float
    allowance_usd: float | None = None  # what the cost caps left for this call
    # The worst case to reserve against the session cap before calling (None: no session cap)
    reservation_usd: float | None = None
    # The model's latency averages when the call was prepared (its trace's expectation)
    latency: ModelLatency | None = None
    # Started alongside a draft (`CascadeRun.plan_hedge`) rather than after it
    hedge: bool = False
    # A verification of the answer of this ladder index (``model`` is the verifier), and
    # the input tokens of its prompt (a rung's are the run's ``input_tokens``)
    verifies: int | None = None
    input_tokens: int | None = None

    @property
    def max_output_tokens(self) -> int | None:
        """Output tokens the call may bill at most (all choices), or None when unbounded."""
        max_tokens = self.params.get("max_tokens")
        return None if max_tokens is None else int(max_tokens) * self.choices

    @property
    def choices(self) -> int:
        return int(self.params.get("n") or 1)

    def kwargs(self, stream: bool) -> dict[str, Any]:
        """LiteLLM keyword arguments, API key included (read from the environment per call)."""
        kwargs = dict(self.params)
        key = self.model.api_key()
        if key is not None:
            kwargs["api_key"] = key
        if stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        return kwargs


def _seconds(value: float | None) -> float:
    return math.nan if value is None else value


def request_draw(request: dict[str, Any]) -> float:
    """A repeatable uniform draw per request, for policies mixed to meet a budget."""
    digest = hashlib.sha256(
        json.dumps(request.get("messages"), sort_keys=True, default=str).encode()
    ).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class CascadeRun:
    """Decides, step by step, which model runs next for one request."""

    def __init__(
        self,
        parts: RouterParts,
        request: dict[str, Any],
        session: SessionSnapshot | None = None,
        *,
        streamed: bool = False,
    ) -> None:
        """``streamed``: the driver streams, so a call's expected time to first token is its
        first token's, not its whole answer's (what the latency objective prices)."""
        self.parts = parts
        self.request = request
        self.streamed = streamed
        ladder = parts.ladder
        self.strategy = parts.strategy.for_query(request_draw(request))
        self.trace = CascadeTrace(strategy=self.strategy.name)
        # Each model gets the history as it can accept it (reasoning of other models dropped,
        # foreign tool-call ids rewritten), the session telling who issued which call.
        origins = session.state.tool_calls if session is not None else {}
        histories = [for_model(request["messages"], m.label, m.dialect, origins) for m in ladder]
        # What each model would be sent (max_tokens aside): the cost estimates and the cap
        # count exactly these arguments, so nothing sent can escape the count.
        self.base_params = [
            provider_kwargs(
                m,
                {**request, "messages": history.messages},
                num_retries=parts.num_retries,
                timeout_s=parts.timeout_s,
                max_tokens=request.get("max_tokens"),
            )
            for m, history in zip(ladder, histories, strict=True)
        ]
        self.input_tokens = [
            m.count_input_tokens(p) for m, p in zip(ladder, self.base_params, strict=True)
        ]
        self.session = (
            None
            if session is None
            else SessionTurn(
                session,
                parts.session_policy,
                parts.tool_loop,
                parts.max_cost_usd_per_session,
                ladder,
                request["messages"],
                self.base_params,
            )
        )
        self.trace.session = self.session.trace if self.session is not None else None
        for model, history in zip(ladder, histories, strict=True):
            if history.changed:
                self._note(history.describe(model.label))
        self.expected_cached = (
            self.session.cached_tokens if self.session is not None else [0] * len(ladder)
        )
        self.cost = np.array(
            [
                m.expected_cost(
                    n,
                    request.get("max_tokens"),
                    int(p.get("n") or 1),
                    cached_tokens=cached,
                    writes_cache=asks_cache_write(p),
                )
                for m, n, p, cached in zip(
                    ladder, self.input_tokens, self.base_params, self.expected_cached, strict=True
                )
            ]
        )
        own = request.get("latency_weights")
        self.weights: LatencyWeights = parts.latency_weights if own is None else own
        self.expected_latency = [self._expect(m, request.get("max_tokens")) for m in ladder]
        # What the strategy trades: USD plus the priced expected latency (the USD cost itself
        # when time is free). `self.cost` stays USD: caps, answer choice and the trace use it.
        self.decision_cost = np.asarray(
            self.weights.priced(
                self.cost,
                np.array([_seconds(e.ttft_s) for e in self.expected_latency]),
                np.array([_seconds(e.total_s) for e in self.expected_latency]),
            )
        )
        if not self.weights.is_zero:
            self.trace.decisions.append(
                "latency priced: "
                + ", ".join(
                    f"{m.label} {usd:.3g} USD + {priced - usd:.3g} USD of expected latency"
                    for m, usd, priced in zip(ladder, self.cost, self.decision_cost, strict=True)
                )
            )
        # A model whose answer will probably be verified costs its verification too.
        self.verification_cost = (
            np.zeros(len(ladder))
            if parts.verifier is None
            else parts.verifier.expected_costs(
                ladder, request, num_retries=parts.num_retries, timeout_s=parts.timeout_s
            )
        )
        if self.verification_cost.any():
            self.decision_cost = self.decision_cost + self.verification_cost
            self.trace.decisions.append(
                "verification expected: "
                + ", ".join(
                    f"{m.label} +{usd:.3g} USD"
                    for m, usd in zip(ladder, self.verification_cost, strict=True)
                    if usd > 0
                )
            )
        self._to_verify: int | None = None  # an answer to verify before anything else runs
        # A hedge in flight (`plan_hedge`) and the worst case the cost caps hold for it.
        self._hedge: ModelCall | None = None
        self._hedge_reserved = 0.0
        # The draft committed early (`should_commit`), and the last prefix length looked at.
        self._committed: int | None = None
        self._commit_looked = 0
        self.ex_ante = parts.estimator.ex_ante(request)
        self.judgements: dict[int, Judgement] = {}
        self.answers: dict[int, ModelAnswer] = {}
        self.billed: list[int] = []  # models whose calls were paid for (their prompt is cached)
        self.spent = 0.0
        self.halted: str | None = None  # set when a call broke the cap: nothing more runs
        for model, tokens in zip(ladder, self.input_tokens, strict=True):
            if model.context_window is not None and tokens > model.context_window:
                self._skip(
                    model,
                    f"prompt of {tokens} tokens exceeds context window {model.context_window}",
                )
        # The session's plan: a fixed first call (and, for a tool loop, nothing after it)
        # and models set aside like skipped ones, so the strategy sees them as it sees any.
        plan = self.session.plan if self.session is not None else None
        self._first = plan.first if plan is not None else None
        self._first_reason = plan.first_reason if plan is not None else ""
        self._exclusive = self._first if plan is not None and plan.exclusive else None
        for index, reason in (plan.excluded if plan is not None else {}).items():
            if index not in self.judgements:
                self._skip(ladder[index], reason)
        if self._first is not None and self._first in self.judgements:
            self._note(f"{self._first_reason}, but {ladder[self._first].label} cannot run here")
            self._first = self._exclusive = None

    # -- decisions ---------------------------------------------------------------------

    def next_call(self) -> ModelCall | None:
        """The next model to run, or None when the request is done."""
        if self._committed is not None:
            return self._end_committed()
        while True:
            if self.halted is not None:
                self.trace.stop_reason = self.halted
                return None
            if self._to_verify is not None:
                verification = self._prepare_verification(self._to_verify)
                self._to_verify = None
                if verification is not None:
                    return verification
            if self._exclusive is not None and self._exclusive in self.judgements:
                label = self.parts.ladder[self._exclusive].label
                if self._exclusive in self.answers:
                    self.trace.stop_reason = f"tool-loop continuity: {label} answered"
                    return None
                self._note(
                    f"tool-loop continuity released: {label} gave no usable answer, so the "
                    "strategy decides among the other models"
                )
                self._exclusive = None
            ran = frozenset(self.judgements)
            if len(ran) == len(self.parts.ladder):
                self.trace.stop_reason = self.trace.stop_reason or "every model has been tried"
                return None
            if self._first is not None and self._first not in self.judgements:
                self.trace.decisions.append(self._first_reason)
                call = self._prepare(self.parts.ladder[self._first])
                if call is not None:
                    return call
                continue
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
        return min(untried, key=lambda m: (self.decision_cost[m], m))

    def _prepare(self, model: LadderModel) -> ModelCall | None:
        """Build the call, or skip the model when a cost cap cannot afford it.

        The allowance is the smaller of what the per-request and the per-session caps leave;
        with a session cap the call's worst case is what the driver reserves.
        """
        params = dict(self.base_params[model.index])
        max_tokens = params.get("max_tokens")
        tokens_in = self.input_tokens[model.index]
        choices = int(params.get("n") or 1)
        hedge = self._hedge
        adopting = hedge is not None and hedge.model.index == model.index
        if adopting:
            self._hedge, self._hedge_reserved = None, 0.0  # the hedge becomes this call
        allowance, binding = self._allowance()
        reservation = None
        if allowance is not None:
            affordable = model.affordable_output_tokens(tokens_in, allowance, choices)
            if max_tokens is None or max_tokens > affordable:
                max_tokens = affordable
            if max_tokens < 1:
                self._skip(model, f"{binding} leaves no room for this model")
                return None
            params["max_tokens"] = int(max_tokens)
            if self.session is not None and self.session.cap_usd is not None:
                reservation = model.worst_case_cost(tokens_in, int(max_tokens), choices)
        call = ModelCall(
            model=model,
            params=params,
            final=self._is_final(model),
            estimated_cost=float(self.cost[model.index]),
            allowance_usd=allowance,
            reservation_usd=reservation,
            latency=(
                self.parts.latency.averages(model.label) if self.parts.latency is not None else None
            ),
        )
        if adopting and hedge is not None and hedge.params == params:
            # The driver continues the hedge's stream instead of starting a new one; its
            # expectation stays the one made when it started.
            return replace(call, hedge=True, latency=hedge.latency)
        return call

    def _prepare_verification(self, index: int) -> ModelCall | None:
        """The verification of ``index``'s answer, or None (with a note) when it cannot run:
        its prompt exceeds the verifier's window, or a cost cap cannot afford one token."""
        verifier = self.parts.verifier
        assert verifier is not None
        draft = self.parts.ladder[index].label
        model = verifier.model
        params = verifier.call_params(
            self.request,
            self.answers[index],
            num_retries=self.parts.num_retries,
            timeout_s=self.parts.timeout_s,
        )
        tokens_in = model.count_input_tokens(params)
        kept = f"{draft}'s own judgement stays"
        if model.context_window is not None and tokens_in > model.context_window:
            self.trace.decisions.append(
                f"verification of {draft} skipped: its prompt of {tokens_in} tokens exceeds "
                f"{model.label}'s context window {model.context_window}; {kept}"
            )
            return None
        allowance, binding = self._allowance()
        reservation = None
        if allowance is not None:
            affordable = model.affordable_output_tokens(tokens_in, allowance)
            if affordable < 1:
                self.trace.decisions.append(
                    f"verification of {draft} skipped: {binding} leaves no room; {kept}"
                )
                return None
            params["max_tokens"] = min(VERDICT_TOKENS, affordable)
            if self.session is not None and self.session.cap_usd is not None:
                reservation = model.worst_case_cost(tokens_in, int(params["max_tokens"]))
        self.trace.decisions.append(f"verify {draft}'s answer with {model.label}")
        return ModelCall(
            model=model,
            params=params,
            final=False,
            estimated_cost=model.expected_cost(tokens_in, VERDICT_TOKENS),
            allowance_usd=allowance,
            reservation_usd=reservation,
            verifies=index,
            input_tokens=tokens_in,
        )

    def _allowance(self) -> tuple[float | None, str]:
        """USD left for the next call under the binding cap, and that cap's description."""
        cap = self.parts.max_cost_usd
        allowance = None if cap is None else cap - self.spent - self._hedge_reserved
        binding = "" if cap is None else f"cost cap: {cap:.6g} USD per request"
        session_left = self.session.allowance(self.spent) if self.session is not None else None
        if session_left is not None and (allowance is None or session_left < allowance):
            allowance = session_left
            binding = self.session.describe_cap(self.spent)  # type: ignore[union-attr]
        return allowance, binding

    def session_refused(self, call: ModelCall, committed_usd: float) -> None:
        """The store refused ``call``'s reservation: other requests of the session hold the
        budget. The run learns the session's spend and decides again (a smaller
        ``max_tokens``, another model, or stop); a model refused repeatedly is skipped."""
        assert self.session is not None
        give_up = self.session.refused(call.model.index, committed_usd, self.spent)
        if call.verifies is not None:
            self.trace.decisions.append(
                f"verification of {self.parts.ladder[call.verifies].label} skipped: "
                f"{self.session.describe_cap(self.spent)}: other requests of this session "
                "hold the rest of the budget"
            )
        elif give_up:
            self._skip(
                call.model,
                f"{self.session.describe_cap(self.spent)}: other requests of this session "
                "hold the rest of the budget",
            )

    def note_session_spend(self, spent_usd: float) -> None:
        """The session's settled spend as the store reported it after this run's last call."""
        if self.session is not None:
            self.session.note_spend(spent_usd)

    def session_update(self, result: CascadeResult | None) -> SessionUpdate | None:
        """What this request adds to its session (None without a session); ``result`` is
        None when no model answered."""
        if self.session is None:
            return None
        return self.session.update(
            self.parts.ladder, self.billed, self.base_params, self.input_tokens, result
        )

    def _note(self, note: str) -> None:
        if self.trace.session is not None:
            self.trace.session.notes.append(note)
        else:
            self.trace.decisions.append(note)

    def _is_final(self, model: LadderModel, also_ran: int | None = None) -> bool:
        """True when no other model can run after this one, so its answer is the answer: the
        strategy looks at no more answers, the session pins this model, or none is left.
        ``also_ran``: a draft in flight, counted as answered (for a hedge started beside it).
        """
        limit = self.strategy.max_answers
        answers = len(self.answers) + (also_ran is not None)
        if model.index == self._exclusive or (limit is not None and answers >= limit - 1):
            return True
        others = [
            m
            for m in range(len(self.parts.ladder))
            if m not in self.judgements and m not in (model.index, also_ran)
        ]
        return not others

    # -- outcomes ----------------------------------------------------------------------

    def record_answer(
        self,
        call: ModelCall,
        answer: ModelAnswer,
        latency_s: float,
        cache: CacheUsage | None = None,
        *,
        ttft_s: float | None = None,
        streamed: bool = False,
    ) -> None:
        """Score an answer; an unusable one (empty, refused, filtered) is paid but never
        returned, and a call that broke the cost cap stops the cascade. ``cache`` is the
        usage's prompt-cache counts (what was billed at the cache prices); ``latency_s`` is
        the whole call and ``ttft_s`` a streamed call's first token."""
        if call.verifies is not None:
            self._record_verdict(call, answer, latency_s, cache)
            return
        paid = self._pay(call, answer, latency_s, cache)
        paid.update(self._timing(call, latency_s, ttft_s, streamed, paid, complete=True))
        problem = message_signals(answer.message(), answer.finish_reason).unusable_reason
        if problem is None:
            judgement = self.parts.estimator.judge(call.model.index, answer, self.request)
            self.answers[call.model.index] = answer
        else:
            judgement = Judgement(0.0, "unusable answer")
        self._log(
            call.model,
            judgement,
            "ok" if problem is None else "unusable",
            problem or "answered",
            post_hoc_quality=judgement.quality,
            quality_basis=judgement.basis,
            features=judgement.features,
            **paid,
        )
        verifier = self.parts.verifier
        if (
            problem is None
            and not call.final
            and verifier is not None
            and verifier.needs(call.model, answer)
        ):
            self._to_verify = call.model.index

    def _record_verdict(
        self, call: ModelCall, verdict: ModelAnswer, latency_s: float, cache: CacheUsage | None
    ) -> None:
        """A verification returned: pay it, trace it, and re-judge the verified answer with
        its P(yes) (a verdict without a yes/no word leaves the judgement as it was)."""
        assert call.verifies is not None
        paid = self._pay(call, verdict, latency_s, cache)
        paid.update(self._timing(call, latency_s, None, False, paid, complete=True))
        draft = self.parts.ladder[call.verifies]
        probability = p_yes(verdict)
        judgement = self.judgements[call.verifies]
        if probability is None:
            reason = f"no yes/no verdict on {draft.label}'s answer; its own judgement stays"
        else:
            judgement = self.parts.estimator.verified(
                call.verifies, judgement, probability, self.request
            )
            self.judgements[call.verifies] = judgement
            reason = f"verified {draft.label}'s answer: P(yes) = {probability:.3g}"
            for run in reversed(self.trace.runs):
                if run.index == draft.index and run.status == "ok":
                    run.post_hoc_quality = judgement.quality
                    run.quality_basis = judgement.basis
                    run.features = judgement.features
                    break
        self.trace.runs.append(
            ModelRun(
                model=call.model.label,
                index=call.model.index,
                status="ok",
                reason=reason,
                ex_ante_quality=None,
                verifies=draft.label,
                features={} if probability is None else {"p_yes": probability},
                **paid,
            )
        )

    def _pay(
        self, call: ModelCall, answer: ModelAnswer, latency_s: float, cache: CacheUsage | None
    ) -> dict[str, Any]:
        """Bill a call that returned (an answer or an aborted draft): its cost is spent, its
        prompt is in the provider's cache, the cap is checked. Returns the trace's fields."""
        model = call.model
        cache = cache or CacheUsage()
        prompt_tokens, completion_tokens = self._billed_tokens(call, answer)
        cost = model.actual_cost(prompt_tokens, completion_tokens, cache)
        self.spent += cost
        rung = call.verifies is None  # a verifier's prompt is no rung's cached prefix
        if rung:
            self.billed.append(model.index)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost_usd": cost,
            "estimated_cost_usd": call.estimated_cost,
            "cap_overrun": self._overrun(call, cost, completion_tokens),
            "cached_tokens": cache.read,
            "cache_write_tokens": cache.written,
            "expected_cached_tokens": int(self.expected_cached[model.index]) if rung else 0,
            "hedged": call.hedge,
        }

    def _timing(
        self,
        call: ModelCall,
        latency_s: float,
        ttft_s: float | None,
        streamed: bool,
        paid: dict[str, Any] | None,
        complete: bool,
    ) -> dict[str, Any]:
        """The trace's times for a call, expected and actual; a call that returned (``paid``
        holds its billed tokens) is learned from. A whole call's first token is its answer."""
        if not streamed and paid is not None:
            ttft_s = latency_s
        expected = (
            call.latency.expect(max_tokens=call.params.get("max_tokens"), streamed=streamed)
            if call.latency is not None
            else None
        )
        if self.parts.latency is not None and paid is not None and call.verifies is None:
            self.parts.latency.observe(
                call.model.label,
                ttft_s=ttft_s if streamed else None,
                total_s=latency_s,
                output_tokens=paid["completion_tokens"],
                complete=complete,
            )
        return {
            "ttft_s": ttft_s,
            "total_s": latency_s,
            "streamed": streamed,
            "expected_ttft_s": expected.ttft_s if expected is not None else None,
            "expected_total_s": expected.total_s if expected is not None else None,
        }

    def _log(
        self,
        model: LadderModel,
        judgement: Judgement,
        status: RunStatus,
        reason: str,
        **fields: Any,
    ) -> None:
        """What the strategy knows of ``model`` from here on, and the trace's record of it."""
        self.judgements[model.index] = judgement
        self.trace.runs.append(
            ModelRun(
                model=model.label,
                index=model.index,
                status=status,
                reason=reason,
                ex_ante_quality=float(self.ex_ante[model.index]),
                **fields,
            )
        )

    def _billed_tokens(self, call: ModelCall, answer: ModelAnswer) -> tuple[int, int]:
        """(prompt, completion) tokens as the provider reported them; where it did not (a
        stream closed early, a provider without usage), the upper bound the cap assumed for
        the input, and for the output the tokens the provider showed (logprob entries,
        streamed deltas) or a re-count of the answer's text.

        A re-count uses LiteLLM's tokenizer, not the provider's, and can exceed ``max_tokens``
        by a token or two on an answer the provider stopped exactly at ``max_tokens`` (a
        draft closed after 24 of 24 tokens re-counted as 25), or by far on emoji and CJK.
        That is not evidence of an overrun, so the re-count is held at the limit unless the
        provider's own tokens pass it (a stream is cut there), or, with no tokens shown (a
        whole answer without logprobs), the re-count passes it by more than the margin."""
        prompt = answer.prompt_tokens
        if prompt is None:
            counted = call.input_tokens
            if counted is None:
                counted = self.input_tokens[call.model.index]
            prompt = math.ceil(counted * INPUT_TOKEN_MARGIN)
        observed = answer.observed_tokens
        limit = call.max_output_tokens
        completion = answer.completion_tokens
        if completion is None:
            arguments = "".join(
                str((c.get("function") or {}).get("arguments") or "") for c in answer.tool_calls
            )
            recount = call.model.count_output_tokens(answer.content + arguments)
            if (
                limit is not None
                and observed <= limit
                and (observed > 0 or recount <= limit * INPUT_TOKEN_MARGIN)
            ):
                recount = min(recount, limit)
            completion = max(observed, recount)
        elif answer.finish_reason == "length" and limit is not None and 0 < observed <= limit:
            # The provider says it stopped at max_tokens and showed no more tokens than that:
            # a larger count is LiteLLM's re-count of a stream without usage, not the bill.
            completion = min(completion, limit)
        return int(prompt), int(completion)

    def _overrun(self, call: ModelCall, cost: float, completion_tokens: int) -> str | None:
        """Why a call broke the cost cap's assumptions (then nothing more runs), or None."""
        problems = []
        limit = call.max_output_tokens
        if limit is not None and completion_tokens > limit:
            problems.append(
                f"{call.model.label} returned {completion_tokens} output tokens with "
                f"max_tokens={call.params['max_tokens']}"
            )
        if call.allowance_usd is not None and cost > call.allowance_usd * (1 + 1e-9) + 1e-15:
            problems.append(
                f"{call.model.label} cost {cost:.6g} USD with {call.allowance_usd:.6g} USD "
                "left under the cap"
            )
        if not problems:
            return None
        reason = "cost cap overrun: " + "; ".join(problems)
        self.halted = f"{reason}; no further model runs"
        return reason

    def record_failure(
        self,
        call: ModelCall,
        error: BaseException,
        latency_s: float,
        *,
        ttft_s: float | None = None,
        streamed: bool = False,
    ) -> None:
        """A failed model counts as quality 0; the strategy goes on without it (its time is
        traced but not learned from: a failure says nothing of the model's speed)."""
        if self._hedge is call:
            self._hedge, self._hedge_reserved = None, 0.0
        models = [*self.parts.ladder, *([call.model] if call.verifies is not None else [])]
        secrets = secrets_from_env(m.spec.api_key_env for m in models)
        error_text = redact(f"{type(error).__name__}: {error}", secrets)[:500]
        if call.verifies is not None:  # the verified answer loses nothing: its judgement stays
            draft = self.parts.ladder[call.verifies].label
            self.trace.runs.append(
                ModelRun(
                    model=call.model.label,
                    index=call.model.index,
                    status="failed",
                    reason=f"verification failed after LiteLLM's retries; {draft}'s own "
                    "judgement stays",
                    ex_ante_quality=None,
                    verifies=draft,
                    estimated_cost_usd=call.estimated_cost,
                    **self._timing(call, latency_s, ttft_s, streamed, None, complete=False),
                    error=error_text,
                )
            )
            return
        self._log(
            call.model,
            Judgement(0.0, "failed"),
            "failed",
            "call failed after LiteLLM's retries",
            post_hoc_quality=0.0,
            estimated_cost_usd=call.estimated_cost,
            hedged=call.hedge,
            **self._timing(call, latency_s, ttft_s, streamed, None, complete=False),
            error=error_text,
        )

    def record_aborted(
        self,
        call: ModelCall,
        draft: ModelAnswer,
        latency_s: float,
        reason: str,
        cache: CacheUsage | None = None,
        *,
        ttft_s: float | None = None,
        streamed: bool = True,
    ) -> None:
        """A draft stopped early because escalation was already certain: paid, not usable."""
        paid = self._pay(call, draft, latency_s, cache)
        paid.update(self._timing(call, latency_s, ttft_s, streamed, paid, complete=False))
        self._log(
            call.model,
            Judgement(0.0, "aborted"),
            "aborted",
            reason,
            post_hoc_quality=0.0,
            quality_basis="aborted draft",
            features=draft.features.as_dict() if draft.features else {},
            **paid,
        )

    def draft_is_hopeless(self, call: ModelCall, lp_sum: float, n_tokens: int) -> bool:
        """Would the strategy escalate even if the rest of this draft were perfectly certain?

        Only then is aborting safe: a higher post-hoc quality of a model that ran never makes
        another model more attractive (E[max] gains shrink as the best known quality grows).
        """
        max_tokens = call.params.get("max_tokens")
        if not self.parts.early_abort or call.final or max_tokens is None or n_tokens == 0:
            return False
        verifier = self.parts.verifier
        if verifier is not None and verifier.expects(call.model, self.request):
            return False  # its verdict, not its logprobs, may decide: nothing is certain yet
        best_case = self.parts.estimator.optimistic_quality(lp_sum, max_tokens)
        if best_case is None:
            return False
        judgements = {**self.judgements, call.model.index: Judgement(best_case, "best case")}
        return not self.strategy.decide(self._estimates(judgements), frozenset(judgements)).stop

    def _estimates(self, judgements: dict[int, Judgement]) -> QueryEstimates:
        return self.parts.estimator.estimates(
            self.request, self.ex_ante, judgements, self.decision_cost
        )

    def _expect(self, model: LadderModel, max_tokens: int | None) -> LatencyExpectation:
        if self.parts.latency is None:
            return LatencyExpectation()
        return self.parts.latency.expect(model.label, max_tokens=max_tokens, streamed=self.streamed)

    # -- early commit ----------------------------------------------------------------------

    def draft_call(self, index: int) -> ModelCall | None:
        """The call of ladder model ``index`` as this request's first draft: None when it
        would be final (its answer is the answer anyway) or a cap cannot afford it. How
        calibrate labels drafts with the engine's own decision (`record_answer`, then
        `next_call`)."""
        call = self._prepare(self.parts.ladder[index])
        return None if call is None or call.final else call

    def should_commit(self, call: ModelCall, features: LogprobFeatures) -> bool:
        """Whether the streamed draft ``call``, ``features`` describing its tokens so far,
        is committed now: its text goes to the caller and it becomes the answer.

        Only the request's first draft (the state the prefix model is fitted in), looked at
        once per fitted prefix length from ``min_tokens`` on; a commit is traced with its
        probability. After a commit `next_call` runs nothing more.
        """
        policy = self.parts.early_commit
        if (
            policy is None
            or call.final
            or self.judgements
            or self.halted is not None
            or self._committed is not None
        ):
            return False
        point = policy.checkpoint(features.n_tokens)
        if point is None or point <= self._commit_looked:
            return False
        self._commit_looked = point
        index = call.model.index
        decision = policy.decide(call.model.label, features, float(self.ex_ante[index]))
        if decision is None or not decision.commit:
            return False
        self._committed = index
        self.trace.decisions.append(decision.describe(call.model.label))
        return True

    def _end_committed(self) -> None:
        """The request ends with its committed draft. The whole draft is still judged: the
        trace records whether the strategy would have escalated it (the price of the commit,
        measured where it happened)."""
        assert self._committed is not None
        label = self.parts.ladder[self._committed].label
        if self.trace.would_have_escalated is None and self._committed in self.answers:
            decision = self.strategy.decide(
                self._estimates(self.judgements), frozenset(self.judgements)
            )
            self.trace.would_have_escalated = not decision.stop
            verdict = "escalated" if not decision.stop else "accepted"
            self.trace.decisions.append(
                f"{label} judged whole after its commit: the strategy would have {verdict} it "
                f"({decision.reason})"
            )
        self.trace.stop_reason = f"committed early to {label}"
        return None

    # -- hedging ---------------------------------------------------------------------------

    def plan_hedge(self, call: ModelCall) -> ModelCall | None:
        """The call to start alongside the draft ``call``, or None (`cascade_core.engine.hedge`).

        Only for a non-final draft of a request without a session, with non-zero latency
        weights and hedging enabled. Under a cost cap both calls' worst cases must fit at the
        request's ``max_tokens`` before the hedge starts: they are held together (a later
        call's allowance excludes the hedge's worst case until it is adopted or cancelled),
        so the cap is never exceeded and the hedge is the call a sequential run would make.
        """
        ladder = self.parts.ladder
        if (
            not self.parts.hedge
            or self.weights.is_zero
            or call.final
            or self.session is not None
            or self._hedge is not None
            or self.halted is not None
            or self.parts.latency is None
        ):
            return None
        draft = call.model.index
        odds = escalation_odds(
            self.strategy, self._estimates(self.judgements), frozenset(self.judgements), draft
        )
        following = odds.next_model
        if following is None or following in self.judgements or following == draft:
            return None
        model = ladder[following]
        params = dict(self.base_params[following])
        max_tokens = params.get("max_tokens")
        tokens_in = self.input_tokens[following]
        choices = int(params.get("n") or 1)
        allowance, _ = self._allowance()
        reserved = 0.0
        if allowance is not None:
            if max_tokens is None or call.max_output_tokens is None:
                return None
            left = allowance - call.model.worst_case_cost(
                self.input_tokens[draft], int(call.params["max_tokens"]), call.choices
            )
            if model.affordable_output_tokens(tokens_in, left, choices) < max_tokens:
                return None
            allowance = left
            reserved = model.worst_case_cost(tokens_in, int(max_tokens), choices)
        averages = self.parts.latency.averages(model.label)
        if averages is None or call.latency is None:
            return None
        draft_time = call.latency.expect(max_tokens=call.params.get("max_tokens"), streamed=True)
        limit = int(max_tokens) if max_tokens is not None else model.spec.expected_output_tokens
        wasted = model.actual_cost(
            math.ceil(tokens_in * INPUT_TOKEN_MARGIN),
            math.ceil(tokens_by(averages, draft_time.total_s or 0.0, limit) * choices),
        )
        value = hedge_value(
            self.weights,
            odds.p_next,
            draft_time,
            averages.expect(max_tokens=max_tokens, streamed=True),
            wasted,
        )
        if value is None or not value.worth_it:
            return None
        self._hedge = ModelCall(
            model=model,
            params=params,
            final=self._is_final(model, also_ran=draft),
            estimated_cost=float(self.cost[following]),
            allowance_usd=allowance,
            latency=averages,
            hedge=True,
        )
        self._hedge_reserved = reserved
        self.trace.decisions.append(
            f"hedge: start {model.label} alongside {call.model.label} ({value.describe()})"
        )
        return self._hedge

    def record_cancelled(
        self,
        call: ModelCall,
        partial: ModelAnswer,
        latency_s: float,
        reason: str,
        cache: CacheUsage | None = None,
        *,
        ttft_s: float | None = None,
    ) -> None:
        """A hedge that lost: its stream was closed, the tokens it sent until then are paid.

        It is traced but not judged: the strategy never saw its answer, and may still run
        that model later like any model not run.
        """
        if self._hedge is call:
            self._hedge, self._hedge_reserved = None, 0.0
        paid = self._pay(call, partial, latency_s, cache)
        paid.update(self._timing(call, latency_s, ttft_s, True, paid, complete=False))
        self.trace.runs.append(
            ModelRun(
                model=call.model.label,
                index=call.model.index,
                status="cancelled",
                reason=reason,
                ex_ante_quality=float(self.ex_ante[call.model.index]),
                quality_basis="cancelled hedge",
                **paid,
            )
        )

    def _skip(self, model: LadderModel, reason: str) -> None:
        self._log(model, Judgement(0.0, "skipped"), "skipped", reason)

    # -- answer ------------------------------------------------------------------------

    def _run_reason(self, index: int) -> str:
        runs = [r for r in self.trace.runs if r.index == index]
        return runs[-1].reason if runs else "not run"

    def result(self, committed: int | None = None) -> CascadeResult:
        """The answer `choose_answers` picks, as the replay does: the run model with the best
        estimate in the final state, the cheaper one on a tie.

        ``committed`` names a model whose answer was already sent to the caller (streamed
        live as the final model): text that was sent cannot be taken back, so that answer is
        the answer, and the trace says when another model had scored higher.
        """
        if committed is not None and committed not in self.answers:
            raise CascadeStreamError(
                f"{self.parts.ladder[committed].label}'s streamed answer turned out unusable "
                f"({self._run_reason(committed)}) after part of it was sent"
            )
        if not self.answers:
            errors = {run.model: run.error or run.reason for run in self.trace.runs}
            if self.halted:
                for model in self.parts.ladder:
                    errors.setdefault(model.label, f"not run: {self.halted}")
            raise AllModelsFailedError(errors)
        answered = np.isin(np.arange(len(self.parts.ladder)), list(self.answers))
        quality = self._estimates(self.judgements).quality
        best = int(choose_answers(quality[None, :], answered[None, :], self.cost[None, :])[0])
        if committed is not None and committed != best:
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
