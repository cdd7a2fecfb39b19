"""Run every model of the ladder on every dev row (cached), and build a replay dataset.

Requests are exactly what the live engine sends for a model (same parameters, logprobs and
top logprobs where supported), so the features the estimators are fitted on are the ones the
engine will see. Calls run concurrently up to a bound; each response is cached on arrival.
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
from cascade_core.latency import LatencyModel
from cascade_core.progress import CostProgress
from cascade_core.replay import ReplayDataset

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
        cost = np.zeros((len(self.rows), len(self.ladder)))
        for i, row_answers in enumerate(self.answers):
            for j, answer in enumerate(row_answers):
                if answer is not None:
                    cost[i, j] = self.ladder[j].actual_cost(
                        answer.prompt_tokens or 0, answer.completion_tokens or 0
                    )
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
        return cost

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
    answers: list[list[ModelAnswer | None]] = [[None] * len(ladder) for _ in rows]
    errors: dict[tuple[int, int], str] = {}
    limit = asyncio.Semaphore(max(1, concurrency))
    bar = CostProgress(len(rows) * len(ladder), "calibrate", enabled=progress)
    counters = {"calls": 0}
    seconds: dict[tuple[int, int], float] = {}
    secrets = secrets_from_env(spec.api_key_env for spec in config.models)

    async def one(i: int, j: int) -> None:
        model, row = ladder[j], rows[i]
        kwargs = call_kwargs(model, row, config)
        key = request_key(model.label, kwargs)
        cached = cache.get(key)
        if cached is not None:
            timed = cached.pop(SECONDS_KEY, None)
            if isinstance(timed, (int, float)) and not isinstance(timed, bool):
                seconds[(i, j)] = float(timed)
            answers[i][j] = ModelAnswer.from_response(cached)
            bar.update(0.0)
            return
        async with limit:
            try:
                key_value = model.api_key()
                call = dict(kwargs, **({"api_key": key_value} if key_value else {}))
                started = time.perf_counter()
                response = await litellm.acompletion(**call)
                seconds[(i, j)] = time.perf_counter() - started
                data = response.model_dump() if hasattr(response, "model_dump") else response
                answer = ModelAnswer.from_response(data)
            except Exception as error:  # a failed call is reported and retried on rerun
                errors[(i, j)] = redact(f"{type(error).__name__}: {error}", secrets)[:500]
                bar.update(0.0, error=True)
                return
        cache.put(key, model.label, kwargs, {**data, SECONDS_KEY: seconds[(i, j)]})
        answers[i][j] = answer
        counters["calls"] += 1
        bar.update(model.actual_cost(answer.prompt_tokens or 0, answer.completion_tokens or 0))

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
    )
