"""The `cascade-router` command line. Sub-commands live in their own modules and register here."""

from __future__ import annotations

import typer

from cascade_core import __version__
from cascade_core.cli_local import local_app

app = typer.Typer(
    name="cascade-router",
    help="Cascade routing for LLMs: choose per request which models to run and when to stop.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(local_app, name="local")


@app.command()
def version() -> None:
    """Print the installed version."""
    typer.echo(__version__)
