"""One bench run end to end: load, evaluate every split (in parallel), time it."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from cascade_core.bench.data import BenchData, load_bench_data
from cascade_core.bench.evaluate import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_BUDGETS,
    STRATEGY_NAMES,
    SplitResult,
    evaluate_split,
)
from cascade_core.bench.latency import check_splits
from cascade_core.estimators import load_profile
from cascade_core.fitting import fit_quality_estimator, spec_for_dataset


def run_bench(
    path: str | Path,
    *,
    models: Sequence[str] | None = None,
    strategies: Sequence[str] = STRATEGY_NAMES,
    noise: str | None = None,
    n_budgets: int = DEFAULT_BUDGETS,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    workers: int | None = None,
    profile: str | Path | None = None,
    latency_weights: Sequence[float] | None = None,
) -> tuple[list[SplitResult], float, list[str]]:
    """Evaluate every split of ``path``; returns (results, seconds, loader notes).

    ``profile``: a fitted estimator profile (`cascade-router calibrate`) to evaluate instead
    of fitting estimators on the training split. ``latency_weights``: USD per second; each
    weight evaluates every split once more with latency priced in (`bench.latency`), results
    in weight order, then split order; the logs must carry ``latency_ms`` for every cell.

    With a pooled split and logged signals, one estimator is cross-fitted on the pooled
    train and serves every split (`shared_estimators`). Splits are then independent, so they
    run in worker processes (one per core by default); ``workers=1`` keeps everything in this
    process.
    """
    unknown = [s for s in strategies if s not in STRATEGY_NAMES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; choose from {', '.join(STRATEGY_NAMES)}")
    if n_budgets < 20:
        raise ValueError("n_budgets: the evaluation uses at least 20 budgets")
    start = time.perf_counter()
    data = load_bench_data(path, models)
    weights: list[float | None] = [None] if latency_weights is None else list(latency_weights)
    if latency_weights is not None:
        if not weights:
            raise ValueError("latency_weights: give at least one weight (USD per second)")
        check_splits(data.splits)
    kwargs: dict[str, Any] = {
        "strategies": tuple(strategies),
        "noise": noise,
        "n_budgets": n_budgets,
        "n_boot": n_boot,
        "seed": seed,
        "profile": None if profile is None else load_profile(profile),
    }
    shared = shared_estimators(data, seed) if noise is None and profile is None else {}
    jobs = [(w, s) for w in weights for s in data.splits]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        results = [
            evaluate_split(s, shared=shared.get(s.name), latency_weight=w, **kwargs)
            for w, s in jobs
        ]
    else:
        # Largest first, so the pooled split does not start last and hold up the end.
        order = sorted(
            range(len(jobs)), key=lambda i: -jobs[i][1].test.n_queries * jobs[i][1].test.n_models
        )
        with ProcessPoolExecutor(workers) as pool:
            futures = {
                i: pool.submit(
                    evaluate_split,
                    jobs[i][1],
                    shared=shared.get(jobs[i][1].name),
                    latency_weight=jobs[i][0],
                    **kwargs,
                )
                for i in order
            }
            results = [futures[i].result() for i in range(len(jobs))]
    return results, time.perf_counter() - start, data.notes


def shared_estimators(data: BenchData, seed: int = 0) -> dict[str, tuple[Any, Any]]:
    """One estimator cross-fitted on the pooled train, with each split's rows in it; empty
    when there is no pooled split or the logs carry no signal to fit on."""
    pooled = data.pooled
    if pooled is None or spec_for_dataset(pooled.train).posthoc_source == "none":
        return {}
    estimator = fit_quality_estimator(pooled.train, seed=seed)
    return {name: (estimator, rows) for name, rows in data.pooled_rows.items()}
