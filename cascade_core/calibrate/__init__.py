"""`cascade-router calibrate`: fit the router to your own models and traffic.

`devset` reads and grades the dev set, `cache` keeps every response, `collect` runs the
ladder, `fit` fits the estimators and lambda; `run_calibration` ties them together.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cascade_core.calibrate.cache import ResponseCache
from cascade_core.calibrate.collect import Collected, collect
from cascade_core.calibrate.commit import (
    dev_requests,
    fit_early_commit,
    replay_requests_and_answers,
)
from cascade_core.calibrate.devset import DevRow, load_dev_set, resolve_grader
from cascade_core.calibrate.export import save_replay_jsonl
from cascade_core.calibrate.fit import CalibrationData, build_profile, fit_estimator
from cascade_core.engine.config import RouterConfig
from cascade_core.engine.early_commit import SECTION as COMMIT_SECTION
from cascade_core.engine.ladder import LadderModel, resolve_ladder
from cascade_core.errors import InvalidInputError
from cascade_core.estimators import load_profile
from cascade_core.latency import latency_section
from cascade_core.latency.stored import SECTION as LATENCY_SECTION
from cascade_core.replay import ReplayDataset, load_replay

__all__ = ["CalibrationReport", "DevRow", "load_dev_set", "run_calibration"]


@dataclass
class CalibrationReport:
    """What was run and fitted, for the command's summary."""

    profile_path: Path
    rows: int
    complete_rows: int
    labelled_rows: int
    new_calls: int = 0
    new_cost_usd: float = 0.0
    failed_calls: dict[str, str] = field(default_factory=dict)
    budget: dict[str, Any] | None = None
    model_quality: dict[str, float | None] = field(default_factory=dict)
    # Models another matches in price and beats in accuracy on the labelled rows.
    dominated_models: list[str] = field(default_factory=list)
    # P(accept | prefix) for early commit: per drafting model its out-of-fold log loss,
    # Brier score, calibration error and the commit rule replayed; or why it was not fitted.
    early_commit: dict[str, Any] = field(default_factory=dict)


def run_calibration(
    config: RouterConfig,
    output: Path,
    *,
    data: Path | None = None,
    replay: Path | None = None,
    cache_path: Path | None = None,
    grader: str = "exact",
    concurrency: int = 8,
    budget_usd: float | None = None,
    target_quality: float | None = None,
    reuse_profile: Path | None = None,
    save_replay: Path | None = None,
    progress: bool = True,
) -> CalibrationReport:
    """Collect (or import) answers, fit, and write the profile atomically to ``output``."""
    if (data is None) == (replay is None):
        raise InvalidInputError("calibrate: give exactly one of --data or --replay")
    if budget_usd is not None and target_quality is not None:
        raise InvalidInputError("calibrate: give --budget or --target-quality, not both")
    resolve_grader(grader)
    ladder = resolve_ladder(config.models)
    report_extra: dict[str, Any] = {}
    latency: dict[str, Any] | None = None
    if data is not None:
        rows = load_dev_set(data)
        cache = ResponseCache(cache_path or Path(str(output) + ".cache.sqlite"))
        try:
            collected = asyncio.run(
                collect(rows, config, cache, concurrency=concurrency, progress=progress)
            )
        finally:
            cache.close()
        calibration = _from_collected(collected, grader)
        keep = collected.complete_rows()
        requests = dev_requests([rows[i] for i in keep])
        answers: list[list[Any]] = [list(collected.answers[i]) for i in keep]
        if collected.seconds:
            latency = latency_section(collected.latency().snapshot())
        report_extra = {
            "rows": len(rows),
            "new_calls": collected.new_calls,
            "new_cost_usd": collected.new_cost_usd,
            "failed_calls": {
                **{f"{rows[i].id}/{ladder[j].label}": e for (i, j), e in collected.errors.items()},
                **{
                    f"{rows[i].id}/{ladder[j].label} (verification)": e
                    for (i, j), e in collected.verify_errors.items()
                },
            },
        }
    else:
        assert replay is not None
        calibration = _from_replay(load_replay(replay), ladder)
        requests, answers = replay_requests_and_answers(calibration.dataset)
        report_extra = {"rows": calibration.dataset.n_queries}
    if save_replay is not None:
        save_replay_jsonl(calibration.dataset, calibration.labelled, save_replay)
    if reuse_profile is not None:
        estimator = load_profile(reuse_profile)
    else:
        estimator = fit_estimator(calibration, verifier=config.verifier is not None)
    if list(estimator.spec.model_names) != [m.label for m in ladder]:
        raise InvalidInputError(
            f"profile fitted for {list(estimator.spec.model_names)}, ladder is "
            f"{[m.label for m in ladder]}"
        )
    profile = build_profile(
        config.strategy,
        estimator,
        calibration,
        budget_usd=budget_usd,
        target_quality=target_quality,
    )
    if latency is not None:
        profile[LATENCY_SECTION] = latency
    correct = np.where(calibration.labelled[:, None], calibration.dataset.quality, np.nan)
    commit = fit_early_commit(config, profile, requests, answers, correct)
    if isinstance(commit, str):
        commit_report: dict[str, Any] = {"fitted": False, "reason": commit}
    else:
        profile[COMMIT_SECTION] = commit.section()
        commit_report = commit.report
    _write_atomically(output, profile)
    return CalibrationReport(
        profile_path=output,
        complete_rows=calibration.dataset.n_queries,
        labelled_rows=int(calibration.labelled.sum()),
        budget=profile.get("budget"),
        model_quality=profile["calibration"]["model_quality"],
        dominated_models=profile["calibration"]["dominated_models"],
        early_commit=commit_report,
        **report_extra,
    )


def _from_collected(collected: Collected, grader: str) -> CalibrationData:
    keep = collected.complete_rows()
    if not keep:
        raise InvalidInputError(
            "calibrate: no row was answered by every model; see the failed calls above"
        )
    dataset = collected.dataset(grader)
    labelled = np.array([collected.rows[i].labelled for i in keep], dtype=bool)
    return CalibrationData(dataset, labelled, collected.estimated_cost()[keep])


def _from_replay(dataset: ReplayDataset, ladder: tuple[LadderModel, ...]) -> CalibrationData:
    """Replay logs: every row labelled; estimated cost from logged input tokens and the
    ladder's prices when logged (as the engine estimates), else the logged cost."""
    labels = [m.label for m in ladder]
    missing = [name for name in labels if name not in dataset.model_names]
    if missing:
        raise InvalidInputError(
            f"replay logs have models {dataset.model_names}; the ladder's {missing} are missing "
            "(ladder names must match the logged model names)"
        )
    dataset = dataset.select_models(labels)
    estimated = dataset.cost.copy()
    if dataset.tokens_in is not None:
        for j, model in enumerate(ladder):
            tokens = dataset.tokens_in[:, j]
            guess = tokens * model.input_cost_per_token + (
                model.spec.expected_output_tokens * model.output_cost_per_token
            )
            estimated[:, j] = np.where(np.isnan(tokens), estimated[:, j], guess)
    return CalibrationData(dataset, np.ones(dataset.n_queries, dtype=bool), estimated)


def _write_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Write then rename, so an engine never loads half a profile."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    os.replace(temporary, path)
