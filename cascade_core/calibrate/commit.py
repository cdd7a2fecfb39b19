"""Early commit's training labels, from the engine's own decision on each calibration answer.

For every calibration row and every model that would draft (not final) as the request's
first call, the answer collected for it is recorded in a fresh `CascadeRun` of an engine
built with the profile just fitted, exactly as a stream driver records a finished draft;
the label is whether that run then stops (accepts the draft) or escalates. So the labels
use the served estimator, strategy, lambda and latency weights, and no second copy of the
decision rule exists. `cascade_core.fitting.commit_model` fits P(accept | prefix) on them.

No reference answers are needed for the label, which is the cascade's decision, not
correctness. Where a row has one, the run goes on with the row's other answers to the
answer the cascade gives after judging the whole draft, and the draft records how much
better that answer is (`Draft.gain_if_judged`): what committing it would cost in quality.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cascade_core.engine import CascadeEngine, CascadeRun, ModelAnswer, ModelCall, RouterConfig
from cascade_core.engine.config import EarlyCommitSpec
from cascade_core.engine.request import build_request
from cascade_core.fitting.commit_model import CommitFit, Draft, fit_prefix_model
from cascade_core.latency import LatencyModel
from cascade_core.replay import ReplayDataset


def fit_early_commit(
    config: RouterConfig,
    profile: dict[str, Any],
    requests: Sequence[dict[str, Any]],
    answers: Sequence[Sequence[ModelAnswer | None]],
    correct: np.ndarray | None = None,
) -> CommitFit | str:
    """The prefix model fitted on ``answers`` (row by ladder model) of ``requests``, or why
    there is none. ``profile`` is the profile dict about to be written; ``correct`` (row by
    model, NaN where a row has no reference) prices the commits in quality."""
    if config.verifier is not None and config.verifier.verify == "always":
        return (
            "verifier.verify is 'always': every draft is verified before it is judged, so "
            "none can be committed early (the config refuses early_commit with it)"
        )
    with tempfile.TemporaryDirectory(prefix="cascade-router-commit-") as folder:
        path = Path(folder) / "profile.json"
        path.write_text(json.dumps(profile), encoding="utf-8")
        engine = CascadeEngine(
            config.model_copy(update={"profile": path, "early_commit": EarlyCommitSpec()})
        )
        drafts = label_drafts(engine, requests, answers, correct)
    if not drafts:
        return "no drafting model answered with token logprobs, so no prefix can be judged"
    spec = config.early_commit
    return fit_prefix_model(drafts, threshold=spec.p_accept, min_tokens=spec.min_tokens)


def label_drafts(
    engine: CascadeEngine,
    requests: Sequence[dict[str, Any]],
    answers: Sequence[Sequence[ModelAnswer | None]],
    correct: np.ndarray | None = None,
) -> list[Draft]:
    """Every (row, drafting model) answer with token logprobs, labelled by ``engine``."""
    labels = [m.label for m in engine.ladder]
    latency = engine.parts.latency
    start = latency.snapshot() if latency is not None else None
    drafts = []
    for row, (request, row_answers) in enumerate(zip(requests, answers, strict=True)):
        for index, answer in enumerate(row_answers):
            if answer is None or answer.tokens is None or not answer.tokens.logprobs:
                continue
            # Each run expects what the engine starts from; recording an answer would
            # otherwise teach the shared latency model and change the next row's costs.
            parts = engine.parts
            if start is not None:
                parts = replace(parts, latency=LatencyModel(labels, start=start))
            run = CascadeRun(parts, request, streamed=True)
            call = run.draft_call(index)
            if call is None:
                continue
            ex_ante = float(run.ex_ante[index])
            run.record_answer(call, answer, 0.0, streamed=True)
            following = run.next_call()
            if following is not None and following.verifies is not None:
                continue  # judged only after a verification: never committed early
            if following is not None and following.model.index == index:
                continue  # a fixed-order strategy asks for it again: never drafted first live
            drafts.append(
                Draft(
                    row=row,
                    model=labels[index],
                    logprobs=answer.tokens.logprobs,
                    top_logprobs=answer.tokens.top_logprobs,
                    ex_ante_quality=ex_ante,
                    accepted=following is None,
                    gain_if_judged=_gain_if_judged(
                        run,
                        following,
                        row_answers,
                        index,
                        None if correct is None else correct[row],
                    ),
                )
            )
    return drafts


def _gain_if_judged(
    run: CascadeRun,
    following: ModelCall | None,
    row_answers: Sequence[ModelAnswer | None],
    draft: int,
    correct: np.ndarray | None,
) -> float | None:
    """Correctness of the answer ``run`` ends with, fed the row's other answers, minus the
    draft's; None without a reference or when an answer it would need is missing."""
    if correct is None or np.isnan(correct[draft]):
        return None
    recorded = {draft}
    while following is not None:
        index = following.model.index
        answer = row_answers[index]
        # A model asked for twice is a run no live request reaches: a strategy with a fixed
        # order (threshold cascade) first on a model that is not its first.
        if following.verifies is not None or answer is None or index in recorded:
            return None
        recorded.add(index)
        run.record_answer(following, answer, 0.0, streamed=True)
        following = run.next_call()
    final = run.result().model_index
    if np.isnan(correct[final]):
        return None
    return float(correct[final] - correct[draft])


def dev_requests(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """The live engine's request of each dev-set row (`DevRow`)."""
    return [build_request(row.messages, dict(row.params)) for row in rows]


def replay_requests_and_answers(
    dataset: ReplayDataset,
) -> tuple[list[dict[str, Any]], list[list[ModelAnswer | None]]]:
    """Replay logs as requests (each prompt one user message) and answers rebuilt from the
    logged text and token logprobs (token strings are not logged; features need none)."""
    requests = [{"messages": [{"role": "user", "content": p}]} for p in dataset.prompts]
    answers: list[list[ModelAnswer | None]] = []
    for i in range(dataset.n_queries):
        row: list[ModelAnswer | None] = []
        for j in range(len(dataset.model_names)):
            row.append(_logged_answer(dataset, i, j))
        answers.append(row)
    return requests, answers


def _logged_answer(dataset: ReplayDataset, i: int, j: int) -> ModelAnswer | None:
    logprobs = dataset.logprobs[i, j] if dataset.logprobs is not None else None
    if logprobs is None:
        return None
    tops = dataset.top_logprobs[i, j] if dataset.top_logprobs is not None else None
    text = dataset.answers[i, j] if dataset.answers is not None else None
    if text is None:  # without the text its usability cannot be judged
        return None
    entries = [
        {
            "token": "",
            "logprob": float(lp),
            "top_logprobs": [{"token": "", "logprob": float(t)} for t in (tops[k] if tops else ())],
        }
        for k, lp in enumerate(np.asarray(logprobs, dtype=float))
    ]
    return ModelAnswer(content=str(text), logprobs=entries)
