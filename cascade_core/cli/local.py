"""`cascade-router local start|stop|status`: manage the embedded local model server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlparse

import typer

from cascade_core.local import server

local_app = typer.Typer(
    help="Serve the embedded local ladder (SmolLM2-135M, Gemma-3-270M) on 127.0.0.1.",
    no_args_is_help=True,
)


def port_from_config(config: Path | None) -> int | None:
    """The port of the first ladder model whose api_base points at this machine, if any.

    The file is read by the engine's own loader, so a config that `local start` accepts is one
    the engine accepts, and a bad one fails here with the engine's one-line message.
    """
    if config is None:
        return None
    from cascade_core.engine import RouterConfig  # the engine stack, only when a file is given

    for model in RouterConfig.from_file(config).models:
        url = urlparse(model.api_base or "")
        if url.hostname in ("127.0.0.1", "localhost") and url.port:
            return url.port
    return None


def _resolve_port(port: int | None, config: Path | None) -> int:
    return port or port_from_config(config) or server.DEFAULT_PORT


def _print_status(st: server.ServerStatus) -> None:
    if st.stale_pid is not None:
        typer.echo(f"removed stale pid file (pid {st.stale_pid} is not running)")
    if not st.running:
        typer.echo(f"not running (state dir {st.state_dir})")
        return
    typer.echo(f"running  pid={st.pid}  port={st.port}  api_base={st.api_base}")
    if st.answering is False:
        typer.echo(
            "warning  the process lives but GET /v1/models does not list its models: "
            "it is starting, hung or broken (see its log)"
        )
    typer.echo(f"models   {', '.join(st.models)}")
    typer.echo(f"log      {st.log_file}")


@local_app.command()
def start(
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help=f"Port (default {server.DEFAULT_PORT})."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Ladder YAML; the port is taken from a local model's api_base when --port is "
            "not given.",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(help="Seconds to wait until every model has answered a one-token completion."),
    ] = 120.0,
) -> None:
    """Start the server in the background; return once every model has answered a one-token
    chat completion. A server that fails that is stopped and reported, exit code 1.

    Bad input (an invalid --config, --timeout) is left to the app's error handler (exit 2);
    a LocalModelError is printed here because its log tail must keep its lines.
    """
    try:
        st = server.start(_resolve_port(port, config), timeout=timeout)
    except server.LocalModelError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    _print_status(st)


@local_app.command()
def stop() -> None:
    """Stop the server (SIGTERM, then SIGKILL after a grace period); the pid file names it."""
    st = server.stop()
    if st.running:
        typer.echo(f"stopped pid {st.pid}")
    else:
        _print_status(st)


@local_app.command()
def status() -> None:
    """Report whether the server runs, its pid, port and models (cheap: no completion is run;
    `start` proves the models answer)."""
    _print_status(server.status())
