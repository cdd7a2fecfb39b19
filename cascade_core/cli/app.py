"""The `cascade-router` app: the sub-commands live in their own modules and register here.

Every sub-command runs inside `errors.ErrorReportingGroup`: a failure is one ``error:``
line on stderr (exit 2 for bad input, 1 otherwise), the traceback only with ``--debug``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

# The CLI works offline: LiteLLM must use its bundled price map instead of fetching one.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import typer

from cascade_core import __version__
from cascade_core.bench.cli import bench as bench_command
from cascade_core.cli.errors import DEBUG_ENV, ErrorReportingGroup
from cascade_core.cli.jobs import batch as batch_command
from cascade_core.cli.jobs import calibrate as calibrate_command
from cascade_core.cli.local import local_app
from cascade_core.cli.serve import serve as serve_command

app = typer.Typer(
    name="cascade-router",
    help="Cascade routing for LLMs: choose per request which models to run and when to stop.",
    cls=ErrorReportingGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # nothing escapes the group; never print locals (keys)
)
app.add_typer(local_app, name="local")
app.command("bench")(bench_command)
app.command("calibrate")(calibrate_command)
app.command("batch")(batch_command)
app.command("serve")(serve_command)


@app.callback()
def _global_options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar=DEBUG_ENV,
            help="on an error, also print the traceback (give it before the sub-command)",
        ),
    ] = False,
) -> None:
    """Cascade routing for LLMs: choose per request which models to run and when to stop."""


@app.command()
def version() -> None:
    """Print the installed version."""
    typer.echo(__version__)


@app.command()
def demo(
    config: Annotated[
        Path | None,
        typer.Option(help="ladder config (YAML or JSON; default: the embedded local ladder)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Ask about ten short questions through the live cascade and compare with the biggest
    model alone. Start the local models first: `cascade-router local start`."""
    from cascade_core.cli.demo import DEFAULT_CONFIG, format_table, run_demo

    report = run_demo(config or DEFAULT_CONFIG)
    typer.echo(json.dumps(report) if as_json else format_table(report))
