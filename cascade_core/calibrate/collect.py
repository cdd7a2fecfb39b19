"""Run every model of the ladder on every dev row (cached), and build a replay dataset.

Requests are exactly what the live engine sends for a model (same parameters, logprobs and
top logprobs where supported), so the features the estimators are fitted on are the ones the
engine will see. Calls run concurrently up to a bound; each response is cached on arrival.

With a verifier in the config, every answer the engine would verify (`Verifier.needs`) is
verified here too, with the engine's request, and cached like any call; its log P(yes) is
that answer's ``confidence_logprob`` (`confidence_signal`: else the answer's own
log-probability, else NaN), and its cost is part of that model's cost, as the engine pays it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import litellm
import numpy as np

from cascade_core.calibrate.cache import ResponseCache, request_key
from cascade_core.calibrate.devset import DevRow, grade
from cascade_core.engine.answers import ModelAnswer
from cascade_core.engine.config import RouterConfig
from cascade_core.engine.ladder import LadderModel, resolve_ladder
from cascade_core.engine.provider_request import provider_kwargs
from cascade_core.engine.redaction import redact, secrets_from_env
from cascade_core.engine.verifier import Verifier, p_yes, verdict_logprob
from cascade_core.estimators.features import CONFIDENCE_SIGNAL, confidence_signal
from cascade_core.latency import LatencyModel
from cascade_core.progress import CostProgress
from cascade_core.replay import ReplayDataset
from cascade_core.signals import message_signals

# Where the response cache keeps a call's duration next to its response (not a response field).
SECONDS_KEY = "cascade_router_call_seconds"


def call_kwargs(model: LadderModel, row: DevRow, config: RouterConfig) -> dict[str, Any]:
    """LiteLLM arguments for one model on one row: exactly what the live engine sends."""
    return provider_kwargs(
        model,
        {"messages": row.messages, **row.params},
        num_retries=config.num_retries,
        timeout_s=config.timeout_s,
        max_tokens=row.params.get("max_tokens"),
    )


@dataclass
class Collected:
    """Answers (n, k) with their actual and estimated cost; None where a call failed."""

    rows: list[DevRow]
    config: RouterConfig
    ladder: tuple[LadderModel, ...]
    answers: list[list[ModelAnswer | None]]
    errors: dict[tuple[int, int], str]
    new_calls: int
    new_cost_usd: float
    # (row, model) -> seconds the call took when it was made (kept in the cache with the
    # response, so a rerun from the cache stores the same latency; older caches have none)
    seconds: dict[tuple[int, int], float] = field(default_factory=dict)
    # The verifier (None: not configured), its verdicts on (row, model) answers, and the
    # verifications that failed (those answers count as not verified)
    verifier: Verifier | None = None
    verdicts: dict[tuple[int, int], ModelAnswer] = field(default_factory=dict)
    verify_errors: dict[tuple[int, int], str] = field(default_factory=dict)

    def latency(self) -> LatencyModel:
        """Each model's latency averages over the timed calls, as the engine learns them
        from whole calls. Calibration does not stream, so no time to first token is measured
        (the engine learns it from its first streamed calls), and its calls run
        ``concurrency`` at a time: on a self-hosted server that shares its cores they are
        slower than one request alone, and live calls correct the averages quickly."""
        model = LatencyModel([m.label for m in self.ladder])
        for (i, j), seconds in sorted(self.seconds.items()):
            answer = self.answers[i][j]
            if answer is not None:
                model.observe(
                    self.ladder[j].label,
                    ttft_s=None,
                    total_s=seconds,
                    output_tokens=answer.completion_tokens,
                )
        return model

    def actual_cost(self) -> np.ndarray:
        """What each model's answer cost, its verification included."""
        cost = np.zeros((len(self.rows), len(self.ladder)))
        for i, row_answers in enumerate(self.answers):
            for j, answer in enumerate(row_answers):
                if answer is not None:
                    cost[i, j] = self.ladder[j].actual_cost(
                        answer.prompt_tokens or 0, answer.completion_tokens or 0
                    )
        if self.verifier is not None:
            for (i, j), verdict in self.verdicts.items():
                cost[i, j] += _billed(self.verifier.model, verdict)
        return cost

    def estimated_cost(self) -> np.ndarray:
        """What the live engine estimates before each call (its strategy trades this cost)."""
        cost = np.zeros((len(self.rows), len(self.ladder)))
        for i, row in enumerate(self.rows):
            for j, model in enumerate(self.ladder):
                kwargs = call_kwargs(model, row, self.config)
                tokens = model.count_input_tokens(kwargs)
                cost[i, j] = model.expected_cost(
                    tokens, row.params.get("max_tokens"), int(kwargs.get("n") or 1)
                )
            if self.verifier is not None:
                cost[i] += self.verifier.expected_costs(
                    self.ladder,
                    _request(row),
                    num_retries=self.config.num_retries,
                    timeout_s=self.config.timeout_s,
                )
        return cost

    def confidence(self, i: int, j: int) -> float:
        """The ``confidence_logprob`` of model j's answer to row i (module docstring)."""
        answer = self.answers[i][j]
        verdict = self.verdicts.get((i, j))
        probability = None if verdict is None else p_yes(verdict)
        logged = None if probability is None else verdict_logprob(probability)
        features = None if answer is None else answer.features
        return confidence_signal(logged, None if features is None else features.lp_sum)

    def complete_rows(self) -> list[int]:
        """Rows every model answered: only these can be replayed."""
        return [i for i, answers in enumerate(self.answers) if all(a is not None for a in answers)]

    def dataset(self, default_grader: str, name: str = "calibration") -> ReplayDataset:
        """The complete rows as a replay; unlabelled rows get quality 0 (never read)."""
        keep = self.complete_rows()
        k = len(self.ladder)
        quality = np.zeros((len(keep), k))
        logprobs = np.empty((len(keep), k), dtype=object)
        top_logprobs = np.empty((len(keep), k), dtype=object)
        answers = np.empty((len(keep), k), dtype=object)
        tokens_in = np.zeros((len(keep), k))
        tokens_out = np.zeros((len(keep), k))
        confidence = np.full((len(keep), k), np.nan)
        for a, i in enumerate(keep):
            row = self.rows[i]
            for j, answer in enumerate(self.answers[i]):
                assert answer is not None
                text = answer.content
                if row.labelled:
                    quality[a, j] = grade(row, text, default_grader)
                # The answer's own storage form: what its live features were built from.
                tokens = answer.tokens
                if tokens is not None:
                    logprobs[a, j] = np.array(tokens.logprobs, dtype=float)
                    if tokens.top_logprobs is not None:
                        top_logprobs[a, j] = tuple(
                            tuple(float(v) for v in token) for token in tokens.top_logprobs
                        )
                answers[a, j] = text
                confidence[a, j] = self.confidence(i, j)
                tokens_in[a, j] = answer.prompt_tokens or 0
                tokens_out[a, j] = answer.completion_tokens or 0
        return ReplayDataset(
            name=name,
            model_names=[m.label for m in self.ladder],
            query_ids=[self.rows[i].id for i in keep],
            prompts=[self.rows[i].prompt for i in keep],
            tasks=[self.rows[i].task for i in keep],
            quality=quality,
            cost=self.actual_cost()[keep],
            signals={} if self.verifier is None else {CONFIDENCE_SIGNAL: confidence},
            logprobs=logprobs,
            top_logprobs=top_logprobs,
            answers=answers,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
        )


async def collect(
    rows: list[DevRow],
    config: RouterConfig,
    cache: ResponseCache,
    *,
    concurrency: int = 8,
    progress: bool = True,
) -> Collected:
    """Answers of every model on every row; cached answers are reused, never re-requested."""
    ladder = resolve_ladder(config.models)
    verifier = None if config.verifier is None else Verifier.resolve(config.verifier, ladder)
    answers: list[list[ModelAnswer | None]] = [[None] * len(ladder) for _ in rows]
    errors: dict[tuple[int, int], str] = {}
    verdicts: dict[tuple[int, int], ModelAnswer] = {}
    verify_errors: dict[tuple[int, int], str] = {}
    limit = asyncio.Semaphore(max(1, concurrency))
    bar = CostProgress(len(rows) * len(ladder), "calibrate", enabled=progress)
    counters = {"calls": 0}
    seconds: dict[tuple[int, int], float] = {}
    spec_envs = [spec.api_key_env for spec in config.models]
    if config.verifier is not None:
        spec_envs.append(config.verifier.model.api_key_env)
    secrets = secrets_from_env(spec_envs)

    async def call_cached(
        model: LadderModel, kwargs: dict[str, Any]
    ) -> tuple[ModelAnswer, float | None, bool]:
        """(answer, seconds, new): from the cache, else from the provider (then cached)."""
        key = request_key(model.label, kwargs)
        cached = cache.get(key)
        if cached is not None:
            timed = cached.pop(SECONDS_KEY, None)
            known = isinstance(timed, (int, float)) and not isinstance(timed, bool)
            return ModelAnswer.from_response(cached), float(timed) if known else None, False
        async with limit:
            key_value = model.api_key()
            call = dict(kwargs, **({"api_key": key_value} if key_value else {}))
            started = time.perf_counter()
            response = await litellm.acompletion(**call)
            took = time.perf_counter() - started
            data = response.model_dump() if hasattr(response, "model_dump") else response
            answer = ModelAnswer.from_response(data)
        cache.put(key, model.label, kwargs, {**data, SECONDS_KEY: took})
        counters["calls"] += 1
        return answer, took, True

    async def one(i: int, j: int) -> None:
        model, row = ladder[j], rows[i]
        try:
            answer, took, new = await call_cached(model, call_kwargs(model, row, config))
        except Exception as error:  # a failed call is reported and retried on rerun
            errors[(i, j)] = redact(f"{type(error).__name__}: {error}", secrets)[:500]
            bar.update(0.0, error=True)
            return
        if took is not None:
            seconds[(i, j)] = took
        answers[i][j] = answer
        bar.update(_billed(model, answer) if new else 0.0)
        if verifier is not None and _verified(verifier, model, answer):
            await verify(i, j, answer)

    async def verify(i: int, j: int, answer: ModelAnswer) -> None:
        assert verifier is not None
        kwargs = verifier.call_params(
            _request(rows[i]), answer, num_retries=config.num_retries, timeout_s=config.timeout_s
        )
        try:
            verdict, _, new = await call_cached(verifier.model, kwargs)
        except Exception as error:  # the answer stays, unverified; retried on rerun
            verify_errors[(i, j)] = redact(f"{type(error).__name__}: {error}", secrets)[:500]
            return
        verdicts[(i, j)] = verdict
        if new:
            bar.spend(_billed(verifier.model, verdict))

    try:
        await asyncio.gather(*(one(i, j) for i in range(len(rows)) for j in range(len(ladder))))
    finally:
        bar.close()
    return Collected(
        rows=rows,
        config=config,
        ladder=ladder,
        answers=answers,
        errors=errors,
        new_calls=counters["calls"],
        new_cost_usd=bar.cost_usd,
        seconds=seconds,
        verifier=verifier,
        verdicts=verdicts,
        verify_errors=verify_errors,
    )


def _request(row: DevRow) -> dict[str, Any]:
    """A dev row as the engine sees the request (what a verifier is shown)."""
    return {"messages": row.messages, **row.params}


def _verified(verifier: Verifier, model: LadderModel, answer: ModelAnswer) -> bool:
    """Whether the engine would verify this answer: a usable one that needs it."""
    usable = message_signals(answer.message(), answer.finish_reason).unusable_reason is None
    return usable and verifier.needs(model, answer)


def _billed(model: LadderModel, answer: ModelAnswer) -> float:
    return model.actual_cost(answer.prompt_tokens or 0, answer.completion_tokens or 0)
