"""The live engine: cascade routing over LiteLLM, request by request.

``CascadeEngine`` holds only immutable configuration (and the session store). Each request
gets its own ``CascadeRun`` (the shared decision state machine); the four drivers below differ
only in how they perform a model call: blocking or awaited, whole or streamed. What a call's
outcome means is kept once, free of I/O, in `_Whole` and `_Draft` (and the session store's
side in `SessionLink`), so the sync and async twins hold only the calls themselves. A request with
a ``session_id`` also goes through its `SessionLink`: the session is loaded before the run,
each call is reserved against the session budget and settled after, and the run's update is
saved at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import litellm

from cascade_core.engine.answers import DraftAssembler, ModelAnswer
from cascade_core.engine.cache_usage import CacheUsage, cache_usage
from cascade_core.engine.cascade_run import CascadeRun, ModelCall, RouterParts
from cascade_core.engine.config import BudgetSpec, RouterConfig, StrategySpec
from cascade_core.engine.early_commit import load_early_commit
from cascade_core.engine.judges import DefaultEstimator, ProfileEstimator
from cascade_core.engine.ladder import LadderModel, resolve_ladder
from cascade_core.engine.lambda_choice import configured_strategy
from cascade_core.engine.request import build_request
from cascade_core.engine.session_link import NO_SESSION, SessionLink, build_store, hold_seconds
from cascade_core.engine.trace import CascadeResult
from cascade_core.engine.verifier import Verifier
from cascade_core.errors import CascadeStreamError, InvalidInputError
from cascade_core.estimators.profile import read_profile_document
from cascade_core.latency import LatencyModel, ModelLatency, averages_from_section
from cascade_core.sessions.state import SessionSnapshot
from cascade_core.sessions.store import SessionStore
from cascade_core.signals.access import get_field
from cascade_core.strategies import Strategy

# Check a streamed draft for early abort every this many tokens: often enough to save most
# of a hopeless draft, rarely enough that the check costs nothing next to token latency.
ABORT_CHECK_EVERY = 4


@dataclass(frozen=True)
class TextDelta:
    """A piece of the accepted answer's text, with its token logprobs when available."""

    text: str
    logprobs: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Finished:
    """The last stream event: the full result and trace."""

    result: CascadeResult


StreamEvent = TextDelta | Finished


class CascadeEngine:
    """Routes each request through the ladder; safe to share across threads and tasks.

    ``ladder`` holds the models, cheapest first, with their resolved prices and limits, and
    ``strategy`` the strategy every request is routed by. ``session_store`` replaces the
    store the config's ``session`` section names (share one store between engines, or bring
    your own `SessionStore`).
    """

    def __init__(
        self,
        config: RouterConfig | None = None,
        *,
        session_store: SessionStore | None = None,
        **settings: Any,
    ) -> None:
        if config is None:
            config = RouterConfig.from_dict(settings, source="CascadeEngine arguments")
        elif settings:
            raise InvalidInputError("give either a RouterConfig or keyword settings, not both")
        self.config = config
        ladder = resolve_ladder(config.models)
        verifier = None if config.verifier is None else Verifier.resolve(config.verifier, ladder)
        budget = config.budget
        strategy = configured_strategy(config)
        self.parts = RouterParts(
            ladder=ladder,
            strategy=strategy,
            estimator=(
                ProfileEstimator.load(config.profile, ladder, verifier=verifier is not None)
                if config.profile is not None
                else DefaultEstimator.for_ladder(ladder, config.prior_std)
            ),
            max_cost_usd=budget.max_cost_usd,
            num_retries=config.num_retries,
            timeout_s=config.timeout_s,
            early_abort=config.early_abort,
            session_policy=config.session.policy,
            tool_loop=config.session.tool_loop,
            max_cost_usd_per_session=budget.max_cost_usd_per_session,
            latency=LatencyModel([m.label for m in ladder], start=_stored_latency(config, ladder)),
            latency_weights=config.latency_weights,
            hedge=config.hedge,
            verifier=verifier,
            early_commit=load_early_commit(config, [m.label for m in ladder]),
        )
        self.ladder: tuple[LadderModel, ...] = ladder
        self.strategy: Strategy = strategy
        self.sessions: SessionStore = (
            session_store if session_store is not None else build_store(config.session)
        )
        self._pinned: dict[str, CascadeEngine] = {}

    @classmethod
    def from_config(cls, path: str | Path) -> CascadeEngine:
        return cls(RouterConfig.from_file(path))

    def __repr__(self) -> str:
        labels = ", ".join(m.label for m in self.ladder)
        return f"CascadeEngine(models=[{labels}], strategy={self.strategy.name!r})"

    # -- what frameworks need to know about the ladder ---------------------------------

    @property
    def name(self) -> str:
        """The ladder as one model name for tracing and framework metadata:
        ``cascade:cheap>strong``."""
        return "cascade:" + ">".join(m.label for m in self.ladder)

    @property
    def context_window(self) -> int | None:
        """The smallest context window of any model the cascade may run (None when no model
        has a known one): a prompt packed to this size fits every model it may escalate to."""
        windows = [m.context_window for m in self.ladder if m.context_window is not None]
        return min(windows, default=None)

    def pinned(self, model: str) -> CascadeEngine:
        """A one-model engine for ``model`` (a ladder label or model name): that rung run
        alone, with its retries, timeout, price and cost caps unchanged, and this engine's
        session store, so a pinned call's spend counts towards its session's budget.

        Built once per model and kept (engines are immutable, so sharing one is safe).
        """
        if model == self.name:
            return self
        engine = self._pinned.get(model)
        if engine is None:
            engine = self._pinned.setdefault(model, self._one_model_engine(model))
        return engine

    def _one_model_engine(self, model: str) -> CascadeEngine:
        config = self.config
        specs = [s for s in config.models if model in (s.label, s.model)]
        if not specs:
            labels = [s.label for s in config.models]
            raise InvalidInputError(f"model: {model!r} is not in the ladder {labels}")
        budget = config.budget
        one = config.model_copy(
            update={
                "models": specs[:1],
                "strategy": StrategySpec(name="routing"),
                "budget": BudgetSpec(
                    max_cost_usd=budget.max_cost_usd,
                    max_cost_usd_per_session=budget.max_cost_usd_per_session,
                ),
                "profile": None,
                "verifier": None,  # a lone model's answer is final: nothing to verify
            }
        )
        return CascadeEngine(one, session_store=self.sessions)

    def start(
        self,
        messages: list[dict[str, Any]],
        *,
        session: SessionSnapshot | None = None,
        streamed: bool = False,
        **params: Any,
    ) -> CascadeRun:
        """A new request's state machine (for drivers other than the four below);
        ``session`` is the snapshot of its session, as the store returned it, and
        ``streamed`` says the driver streams (latency is then expected per first token)."""
        return CascadeRun(self.parts, build_request(messages, params), session, streamed=streamed)

    def session_link(self, session_id: str | None) -> SessionLink | Any:
        """The store operations of one request (that do nothing without a session id)."""
        if session_id is None:
            return NO_SESSION
        return SessionLink(
            self.sessions,
            session_id,
            self.parts.max_cost_usd_per_session,
            hold_seconds(self.config),
        )

    # -- whole answers -----------------------------------------------------------------

    def run(
        self, messages: list[dict[str, Any]], session_id: str | None = None, **params: Any
    ) -> CascadeResult:
        """Answer one request; ``session_id`` names its session (conversation, agent run)."""
        link = self.session_link(session_id)
        run = self.start(messages, session=link.load(), **params)
        with link.saving(run) as outcome:
            while (call := run.next_call()) is not None:
                with link.holding(run, call) as held:
                    if held:
                        whole = _Whole(run, call)
                        whole.settle(_complete(call))
            outcome.result = run.result()
        return outcome.result

    async def arun(
        self, messages: list[dict[str, Any]], session_id: str | None = None, **params: Any
    ) -> CascadeResult:
        link = self.session_link(session_id)
        run = self.start(messages, session=await link.aload(), **params)
        async with link.asaving(run) as outcome:
            while (call := run.next_call()) is not None:
                async with link.aholding(run, call) as held:
                    if held:
                        whole = _Whole(run, call)
                        whole.settle(await _acomplete(call))
            outcome.result = run.result()
        return outcome.result

    # -- streams -----------------------------------------------------------------------

    def stream(
        self, messages: list[dict[str, Any]], session_id: str | None = None, **params: Any
    ) -> Iterator[StreamEvent]:
        """Only the accepted answer streams; drafts are buffered (or aborted when hopeless),
        and so is a draft awaiting its verification, which is made whole (never streamed).

        This driver runs one provider stream at a time, so it never hedges: a hedge needs a
        second stream read concurrently and closed from outside, which `astream` does on
        its event loop. Latency weights still price time in the strategy's decisions here.
        """
        link = self.session_link(session_id)
        run = self.start(messages, session=link.load(), streamed=True, **params)
        sent = _Sent()
        with link.saving(run) as outcome:
            while (call := run.next_call()) is not None:
                with link.holding(run, call) as held:
                    if not held:
                        continue
                    if call.verifies is not None:  # a verification is made whole
                        _Whole(run, call).settle(_complete(call))
                        continue
                    draft = _Draft(run, call, sent)
                    try:
                        for chunk in _chunks(draft):
                            yield from draft.take(chunk)
                    except Exception as error:
                        draft.fail(error)
                    else:
                        draft.finish()
            outcome.result = run.result(committed=sent.model)
        yield from _deliver(outcome.result, sent.model)

    async def astream(
        self, messages: list[dict[str, Any]], session_id: str | None = None, **params: Any
    ) -> AsyncIterator[StreamEvent]:
        """As `stream`, and with hedged escalation: when `CascadeRun.plan_hedge` says so, the
        next model starts alongside a draft and its stream is read into a buffer. If the
        draft is escalated to it, the buffer is replayed and the stream continues live; else
        its HTTP stream is closed (the tokens sent until then are paid). Its text never
        reaches the caller before the draft has been judged."""
        link = self.session_link(session_id)
        run = self.start(messages, session=await link.aload(), streamed=True, **params)
        sent = _Sent()
        hedge: _HedgeStream | None = None
        try:
            async with link.asaving(run) as outcome:
                while (call := run.next_call()) is not None:
                    if hedge is not None and not call.hedge and call.verifies is None:
                        await hedge.cancel(run, f"cancelled: {call.model.label} runs instead")
                        hedge = None
                    async with link.aholding(run, call) as held:
                        if not held:
                            continue
                        if call.verifies is not None:  # made whole; a hedge keeps streaming
                            _Whole(run, call).settle(await _acomplete(call))
                            continue
                        source, hedge = (hedge, None) if call.hedge else (None, hedge)
                        started = source.started if source is not None else None
                        draft = _Draft(run, call, sent, started=started)
                        planned = run.plan_hedge(call) if source is None else None
                        if planned is not None:
                            hedge = _HedgeStream(planned)
                        chunks = source.replayed(draft) if source else _achunks_at(draft)
                        try:
                            async for at, chunk in chunks:
                                for event in draft.take(chunk, at):
                                    yield event
                                if draft.committed and hedge is not None:
                                    # the draft is the answer: the hedge can only cost more
                                    label = call.model.label
                                    await hedge.cancel(run, f"cancelled: {label} committed early")
                                    hedge = None
                        except Exception as error:
                            draft.fail(error)
                        else:
                            draft.finish()
                if hedge is not None:
                    await hedge.cancel(run, f"cancelled: not needed ({run.trace.stop_reason})")
                    hedge = None
                outcome.result = run.result(committed=sent.model)
        finally:
            if hedge is not None:  # the caller stopped reading, or the cascade failed
                await hedge.abandon()
        for event in _deliver(outcome.result, sent.model):
            yield event


def _stored_latency(
    config: RouterConfig, ladder: tuple[LadderModel, ...]
) -> dict[str, ModelLatency]:
    """The latency averages `calibrate` stored in the profile (none without a profile)."""
    if config.profile is None:
        return {}
    section = read_profile_document(config.profile).get("latency")
    return averages_from_section(section, [m.label for m in ladder], str(config.profile))


# -- the per-call cores: all bookkeeping, no I/O (the sync and async drivers share them) ----


class _Whole:
    """One whole (unstreamed) model call, timed from its creation on the monotonic clock: the
    driver performs the call and hands over the provider's response, or the error it raised."""

    def __init__(self, run: CascadeRun, call: ModelCall) -> None:
        self.run = run
        self.call = call
        self.started = time.perf_counter()

    def settle(self, response: Any) -> None:
        """Record the answer; any provider failure (raised, or a response that does not
        parse) means the model failed."""
        latency = time.perf_counter() - self.started
        if not isinstance(response, BaseException):
            try:
                answer = ModelAnswer.from_response(response)
            except Exception as error:
                response = error
            else:
                self.run.record_answer(self.call, answer, latency, _cache_of(response))
                return
        self.run.record_failure(self.call, response, latency)


@dataclass
class _Sent:
    """The model whose text a stream already sent to the caller (the last one, if any)."""

    model: int | None = None


class _Draft:
    """One streamed model call: buffers or forwards its text, watches for early abort, early
    commit (then the buffered text is sent and the rest forwarded live) and for a provider
    that streams past ``max_tokens`` (then the stream is cut there), and times its first
    token (the first chunk that adds text or a tool call)."""

    def __init__(
        self, run: CascadeRun, call: ModelCall, sent: _Sent, started: float | None = None
    ) -> None:
        """``started``: when the call's stream was opened, if before now (an adopted hedge)."""
        self.run = run
        self.call = call
        self.sent = sent
        self.assembler = DraftAssembler()
        self.cache = CacheUsage()
        self.started = time.perf_counter() if started is None else started
        self.ttft_s: float | None = None
        self.forwarded = False
        self.committed = False
        self.aborted = False
        self.overran = False
        self._checked_at = 0

    @property
    def stopped(self) -> bool:
        """True once the driver must close the provider stream."""
        return self.aborted or self.overran

    def take(self, chunk: Any, at: float | None = None) -> list[TextDelta]:
        """Add one chunk (received at ``at``, now by default: a buffered one arrived earlier)."""
        text, logprobs = self.assembler.add(chunk)
        if self.ttft_s is None and self.assembler.n_pieces > 0:
            self.ttft_s = (time.perf_counter() if at is None else at) - self.started
        usage = get_field(chunk, "usage")
        if usage is not None:
            self.cache = cache_usage(usage)
        limit = self.call.max_output_tokens
        if limit is not None and self.assembler.n_pieces > limit:
            self.overran = True
        if self.call.final or self.committed:
            if text:
                self.forwarded = True
                self.sent.model = self.call.model.index
                return [TextDelta(text, logprobs or None)]
            return []
        tokens = self.assembler.n_tokens
        if tokens - self._checked_at >= ABORT_CHECK_EVERY:
            self._checked_at = tokens
            features = self.assembler.accumulator.features(answer_parsed=True)
            if features is None:
                return []
            if self.run.draft_is_hopeless(self.call, features.lp_sum, tokens):
                self.aborted = True
                self.run.record_aborted(
                    self.call,
                    self.assembler.answer(),
                    time.perf_counter() - self.started,
                    f"aborted after {tokens} tokens: escalation was certain "
                    "even if the rest of the draft were certain",
                    self.cache,
                    ttft_s=self.ttft_s,
                )
            elif self.run.should_commit(self.call, features):
                return self._commit()
        return []

    def _commit(self) -> list[TextDelta]:
        """The draft became the answer: send what was buffered; the rest streams live."""
        self.committed = True
        self.sent.model = self.call.model.index
        buffered = list(_replay_text(self.assembler.answer()))
        self.forwarded = bool(buffered)
        return buffered

    def fail(self, error: BaseException) -> None:
        if self.forwarded or self.committed:
            raise CascadeStreamError(
                f"{self.call.model.label} failed after part of its answer was streamed"
            ) from None
        self.run.record_failure(
            self.call, error, time.perf_counter() - self.started, ttft_s=self.ttft_s, streamed=True
        )

    def finish(self) -> None:
        if not self.aborted:
            self.run.record_answer(
                self.call,
                self.assembler.answer(),
                time.perf_counter() - self.started,
                self.cache,
                ttft_s=self.ttft_s,
                streamed=True,
            )


# -- the I/O: provider calls, the same in both colours --------------------------------------


def _complete(call: ModelCall) -> Any:
    """The provider's response, or the exception it raised (the call's outcome either way)."""
    try:
        return litellm.completion(**call.kwargs(stream=False))
    except Exception as error:
        return error


async def _acomplete(call: ModelCall) -> Any:
    try:
        return await litellm.acompletion(**call.kwargs(stream=False))
    except Exception as error:
        return error


def _chunks(draft: _Draft) -> Iterator[Any]:
    """The draft's stream chunks; once the draft stops, its HTTP transfer is closed."""
    stream = litellm.completion(**draft.call.kwargs(stream=True))
    for chunk in stream:
        yield chunk
        if draft.stopped:
            _close(stream)
            return


async def _achunks_at(draft: _Draft) -> AsyncIterator[tuple[float | None, Any]]:
    """As `_chunks`, each chunk with its arrival time (None: now, as it is taken at once)."""
    stream = await litellm.acompletion(**draft.call.kwargs(stream=True))
    async for chunk in stream:
        yield None, chunk
        if draft.stopped:
            await _aclose(stream)
            return


class _HedgeStream:
    """A hedged call's provider stream, read into a buffer by a task from its start.

    The buffer is either replayed into the call's `_Draft` once the cascade escalates to it
    (`replayed`), or the task is cancelled, which closes LiteLLM's async stream and with it
    the HTTP transfer (`cancel`); what it received until then is billed.
    """

    def __init__(self, call: ModelCall) -> None:
        self.call = call
        self.started = time.perf_counter()
        self.chunks: list[tuple[float, Any]] = []
        self.error: Exception | None = None
        self.done = False
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        stream = None
        exhausted = False
        try:
            stream = await litellm.acompletion(**self.call.kwargs(stream=True))
            async for chunk in stream:
                self.chunks.append((time.perf_counter(), chunk))
                self._arrived.set()
            exhausted = True
        except Exception as error:  # the provider's failure is the adopted call's outcome
            self.error = error
        finally:
            self.done = True
            self._arrived.set()
            if stream is not None and not exhausted:
                await _aclose(stream)

    async def replayed(self, draft: _Draft) -> AsyncIterator[tuple[float, Any]]:
        """The chunks received so far, then the rest as they arrive; closes the stream once
        the draft stops (aborted, or past ``max_tokens``)."""
        taken = 0
        while True:
            while taken < len(self.chunks):
                yield self.chunks[taken]
                taken += 1
                if draft.stopped:
                    await self.abandon()
                    return
            if self.done:
                if self.error is not None:
                    raise self.error
                return
            self._arrived.clear()
            await self._arrived.wait()

    async def abandon(self) -> None:
        """Stop reading and close the provider stream (its HTTP transfer ends)."""
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def cancel(self, run: CascadeRun, reason: str) -> None:
        """The hedge lost: close its stream, and bill and trace what it sent until then."""
        await self.abandon()
        assembler = DraftAssembler()
        cache = CacheUsage()
        first: float | None = None
        for at, chunk in self.chunks:
            assembler.add(chunk)
            if first is None and assembler.n_pieces > 0:
                first = at - self.started
            usage = get_field(chunk, "usage")
            if usage is not None:
                cache = cache_usage(usage)
        run.record_cancelled(
            self.call,
            assembler.answer(),
            time.perf_counter() - self.started,
            reason,
            cache,
            ttft_s=first,
        )


def _cache_of(response: Any) -> CacheUsage:
    return cache_usage(get_field(response, "usage"))


def _deliver(result: CascadeResult, streamed_model: int | None) -> Iterator[StreamEvent]:
    """After the cascade: send the accepted answer unless it already streamed live.

    A final model's text streams live as it arrives, so once any of it was sent that answer
    is committed (``run.result(committed=...)``); otherwise a better-scored draft would be
    appended to it.
    """
    if streamed_model != result.model_index and result.answer.content:
        yield from _replay_text(result.answer)
    yield Finished(result)


def _close(stream: Any) -> None:
    """Stop an aborted draft's HTTP transfer instead of leaving it to garbage collection."""
    for target in (getattr(stream, "completion_stream", None), stream):
        close = getattr(target, "close", None)
        if callable(close):
            close()
            return


async def _aclose(stream: Any) -> None:
    for target in (getattr(stream, "completion_stream", None), stream):
        close = getattr(target, "aclose", None)
        if callable(close):
            await close()
            return


def _replay_text(answer: ModelAnswer) -> Iterator[TextDelta]:
    """Send a buffered answer token by token when its tokens are known, else in one piece."""
    if answer.logprobs and "".join(str(t["token"]) for t in answer.logprobs) == answer.content:
        for item in answer.logprobs:
            yield TextDelta(str(item["token"]), [item])
    else:
        yield TextDelta(answer.content, answer.logprobs)
