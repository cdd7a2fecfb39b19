"""`cascade-router bench PATH`: evaluate every strategy on replay logs (docs/bench.md).

Errors are printed by `cli_errors.ErrorReportingGroup` (one line, exit 2 for bad input).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from cascade_core.bench.evaluate import DEFAULT_BUDGETS, STRATEGY_NAMES
from cascade_core.bench.latency import parse_latency_weights
from cascade_core.errors import InvalidInputError

NOISE_CHOICES = ("low", "medium", "high")


@contextmanager
def _bench_input_errors() -> Iterator[None]:
    """Report the bench pipeline's refusals as input errors.

    `bench.data`, `bench.run`, `bench.evaluate` and `bench.learned` refuse a PATH without
    replay files (FileNotFoundError) and a profile, model or split that does not fit the
    data (ValueError) with messages written for the user; the loaders below them already
    raise the `InvalidInputError` family, which passes through unchanged.
    """
    try:
        yield
    except InvalidInputError:
        raise
    except (ValueError, FileNotFoundError) as error:
        if isinstance(error, OSError) and error.filename is not None:
            raise  # names its file: reported as a path error
        raise InvalidInputError(str(error)) from error


def _split_list(values: list[str] | None) -> list[str] | None:
    """Accept both ``--models a --models b`` and ``--models a,b``."""
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def bench(
    path: Annotated[Path, typer.Argument(help="cascade_logs dir, RouterBench CSV/dir, or JSONL")],
    models: Annotated[
        list[str] | None, typer.Option("--models", help="models to use (repeat or comma list)")
    ] = None,
    strategies: Annotated[
        list[str] | None,
        typer.Option("--strategies", help=f"subset of {', '.join(STRATEGY_NAMES)}"),
    ] = None,
    noise: Annotated[
        str | None,
        typer.Option(help="use the paper's noisy ground-truth estimators: low|medium|high"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="save curves as a PNG")] = None,
    budgets: Annotated[
        int,
        typer.Option(
            min=20, help="about this many budgets, spread over the train hull's segments (>= 20)"
        ),
    ] = DEFAULT_BUDGETS,
    bootstrap: Annotated[int, typer.Option(help="bootstrap resamples for the 95% CI")] = 1000,
    seed: Annotated[int, typer.Option(help="seed of the splits, noise and bootstrap")] = 0,
    profile: Annotated[
        Path | None,
        typer.Option(help="evaluate this fitted profile (calibrate -o) instead of fitting"),
    ] = None,
    learned: Annotated[
        list[str] | None,
        typer.Option(help="learned ex-ante routers: sw,mf (docs/routellm.md)"),
    ] = None,
    embedder: Annotated[str, typer.Option(help="with --learned: minilm | hashing")] = "minilm",
    only: Annotated[
        list[str] | None, typer.Option(help="with --learned: evaluate only these splits")
    ] = None,
    latency_weight: Annotated[
        list[str] | None,
        typer.Option(
            "--latency-weight",
            help="USD per second of waiting (>= 0; repeat or comma list): fit on USD + W x"
            " latency and add a quality-vs-latency curve (logs need latency_ms)",
        ),
    ] = None,
) -> None:
    """Fit estimators and budgets on train, score routing, cascades and cascade routing on
    test: AUC with bootstrap 95% CI, linear hull, oracle, APGR, CPT(50/80)."""
    from cascade_core.bench.report import format_table, to_json
    from cascade_core.bench.run import run_bench

    if noise is not None and noise not in NOISE_CHOICES:
        raise typer.BadParameter(f"choose one of {', '.join(NOISE_CHOICES)}", param_hint="--noise")
    chosen = _split_list(strategies) or list(STRATEGY_NAMES)
    unknown = [s for s in chosen if s not in STRATEGY_NAMES]
    if unknown:
        raise InvalidInputError(
            f"--strategies: unknown {', '.join(unknown)}; choose from {', '.join(STRATEGY_NAMES)}"
        )
    weights = None if latency_weight is None else parse_latency_weights(latency_weight)
    if learned is not None or _is_routellm(path):
        if (
            plot is not None
            or profile is not None
            or noise is not None
            or strategies
            or weights is not None
        ):
            raise typer.BadParameter(
                "--plot, --profile, --noise, --strategies and --latency-weight apply to the "
                "plain bench only, not to the learned-router evaluation (--learned, or a "
                "RouteLLM folder)"
            )
        _bench_learned(
            path,
            _split_list(learned) or [],
            models,
            only,
            embedder,
            budgets,
            bootstrap,
            seed,
            as_json,
        )
        return
    with _bench_input_errors():
        results, seconds, notes = run_bench(
            path,
            models=_split_list(models),
            strategies=chosen,
            noise=noise,
            n_budgets=budgets,
            n_boot=bootstrap,
            seed=seed,
            profile=profile,
            latency_weights=weights,
        )
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if plot is not None:
        from cascade_core.bench.plot import save_plot

        save_plot(results, plot)
    settings = {
        "path": str(path),
        "noise": noise,
        "strategies": chosen,
        "budgets": budgets,
        "bootstrap": bootstrap,
        "seed": seed,
        "profile": None if profile is None else str(profile),
        "latency_weights": weights,
    }
    if as_json:
        typer.echo(json.dumps(to_json(results, seconds, settings)))
    else:
        typer.echo(format_table(results, seconds))


def _is_routellm(path: Path) -> bool:
    from cascade_core.bench.learned import is_routellm_folder

    return is_routellm_folder(path)


def _bench_learned(path, learners, models, only, embedder, budgets, bootstrap, seed, as_json):
    """`--learned` (and RouteLLM's evaluation folders): `cascade_core.bench.learned`."""
    from cascade_core.bench.learned import format_learned, learned_to_json, run_learned_bench

    with _bench_input_errors():
        results, seconds, notes = run_learned_bench(
            path,
            learners,
            models=_split_list(models),
            only=_split_list(only),
            embedder_name=embedder,
            n_budgets=budgets,
            n_boot=bootstrap,
            seed=seed,
        )
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    settings = {
        "path": str(path),
        "learned": learners,
        "embedder": embedder,
        "seed": seed,
        "budgets": budgets,
        "bootstrap": bootstrap,
    }
    if as_json:
        typer.echo(json.dumps(learned_to_json(results, seconds, settings)))
    else:
        typer.echo(format_learned(results, seconds))
