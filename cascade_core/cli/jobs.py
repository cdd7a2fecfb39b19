"""`cascade-router calibrate` and `cascade-router batch` (registered in `app`).

Errors are not caught here: `errors.ErrorReportingGroup` prints every one as one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cascade_core.cli.errors import one_line, scrub

if TYPE_CHECKING:
    from cascade_core.engine.config import RouterConfig


def _load_config(
    config: Path, profile: Path | None = None, target_cost: float | None = None
) -> RouterConfig:
    from cascade_core.engine.config import RouterConfig  # LiteLLM: only for the commands

    loaded = RouterConfig.from_file(config)
    if profile is not None:
        loaded = loaded.model_copy(update={"profile": profile})
    if target_cost is not None:  # replaces the config's lambda: the profile's curve decides
        data = loaded.model_dump(by_alias=True)
        data["budget"] = {**data["budget"], "lambda": None, "target_cost_usd": target_cost}
        loaded = RouterConfig.from_dict(data, source=str(config))
    if loaded.profile is not None:  # absolute, so Ray workers in other directories find it
        loaded = loaded.model_copy(update={"profile": Path(loaded.profile).resolve()})
    return loaded


def calibrate(
    config: Annotated[Path, typer.Option(help="ladder config (YAML or JSON)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="profile to write (JSON)")],
    data: Annotated[
        Path | None, typer.Option(help="dev set JSONL: messages or prompt, reference, grader")
    ] = None,
    replay: Annotated[
        Path | None, typer.Option(help="import replay logs instead of calling the models")
    ] = None,
    budget: Annotated[
        float | None, typer.Option(help="fit lambda to this average cost per request (USD)")
    ] = None,
    target_quality: Annotated[
        float | None, typer.Option(help="fit lambda to the cheapest policy reaching this quality")
    ] = None,
    grader: Annotated[
        str, typer.Option(help="default grader: exact, contains, regex or module:function")
    ] = "exact",
    cache: Annotated[
        Path | None, typer.Option(help="SQLite response cache (default: OUTPUT.cache.sqlite)")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="model calls in flight")] = 8,
    profile: Annotated[
        Path | None,
        typer.Option(help="reuse this profile's estimators; tune lambda only (unlabelled ok)"),
    ] = None,
    save_replay: Annotated[
        Path | None,
        typer.Option(help="also save the graded answers as replay JSONL (for bench/--replay)"),
    ] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar on stderr")] = True,
) -> None:
    """Run the ladder on a dev set (cached; reruns resume) or import replay logs, fit the
    quality estimators and lambda, and write the profile the engine and adapters load."""
    from cascade_core.calibrate import run_calibration

    report = run_calibration(
        _load_config(config),
        output,
        data=data,
        replay=replay,
        cache_path=cache,
        grader=grader,
        concurrency=concurrency,
        budget_usd=budget,
        target_quality=target_quality,
        reuse_profile=profile,
        save_replay=save_replay,
        progress=progress,
    )
    for where, why in sorted(report.failed_calls.items()):
        typer.echo(f"failed (rerun to retry): {where}: {scrub(one_line(why))}", err=True)
    summary = {
        "profile": str(report.profile_path),
        "rows": report.rows,
        "complete_rows": report.complete_rows,
        "labelled_rows": report.labelled_rows,
        "new_calls": report.new_calls,
        "new_cost_usd": report.new_cost_usd,
        "model_quality": report.model_quality,
    }
    if report.budget is not None:
        summary["lambda"] = report.budget.get("lambda")
        summary["expected_cost_usd"] = report.budget.get("expected_cost_usd")
        summary["expected_quality"] = report.budget.get("expected_quality")
        strategy = report.budget.get("strategy", {})
        if strategy.get("name") == "cascade_routing":  # the first step calibrate chose
            summary["draft"] = strategy.get("draft")
    summary["early_commit"] = report.early_commit
    typer.echo(json.dumps(summary, indent=1))


def batch(
    input_path: Annotated[Path, typer.Argument(metavar="IN.jsonl", help="rows to route")],
    output_path: Annotated[Path, typer.Argument(metavar="OUT.jsonl", help="results (appended)")],
    config: Annotated[Path, typer.Option(help="ladder config (YAML or JSON)")],
    profile: Annotated[
        Path | None, typer.Option(help="fitted profile (overrides the config's)")
    ] = None,
    target_cost: Annotated[
        float | None,
        typer.Option(help="average USD per row; lambda from the profile (replaces the config's)"),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="requests in flight (per actor)")] = 8,
    trace: Annotated[bool, typer.Option(help="store each row's full trace in OUT")] = False,
    ray: Annotated[bool, typer.Option("--ray", help="run on Ray Data (map_batches)")] = False,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: a local Ray)")
    ] = None,
    ray_cpus: Annotated[int | None, typer.Option(help="CPUs of the local Ray")] = None,
    ray_actors: Annotated[int | None, typer.Option(help="engine actors (default: CPUs)")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar on stderr")] = True,
) -> None:
    """Route every row of IN.jsonl through the cascade into OUT.jsonl. Resumable: rerun the
    same command after any interruption and each input row ends up exactly once in OUT."""
    loaded = _load_config(config, profile, target_cost)
    if ray:
        from cascade_core.jobs.ray_runner import run_batch_job_ray

        summary = run_batch_job_ray(
            loaded,
            input_path,
            output_path,
            concurrency=concurrency,
            actors=ray_actors,
            address=ray_address,
            num_cpus=ray_cpus,
            with_trace=trace,
            progress=progress,
        )
    else:
        from cascade_core.jobs.runner import run_batch_job

        summary = run_batch_job(
            loaded,
            input_path,
            output_path,
            concurrency=concurrency,
            with_trace=trace,
            progress=progress,
        )
    typer.echo(json.dumps(summary.as_dict()))
