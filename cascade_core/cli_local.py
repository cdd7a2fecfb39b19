"""`cascade-router local start|stop|status`: manage the embedded local model server."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import typer
import yaml

from cascade_core import local_models

local_app = typer.Typer(
    help="Serve the embedded local ladder (SmolLM2-135M, Gemma-3-270M) on 127.0.0.1.",
    no_args_is_help=True,
)

PortOption = typer.Option(None, "--port", help=f"Port (default {local_models.DEFAULT_PORT}).")
ConfigOption = typer.Option(
    None,
    "--config",
    exists=True,
    dir_okay=False,
    help="Ladder YAML; the port is taken from a local model's api_base when --port is not given.",
)


def port_from_config(config: Path | None) -> int | None:
    """The port of the first ladder model whose api_base points at this machine, if any.

    Only the port is read for now; the full ladder schema belongs to the engine's config.
    """
    if config is None:
        return None
    data = yaml.safe_load(config.read_text()) or {}
    models = data.get("models") or data.get("ladder") or []
    for model in models if isinstance(models, list) else []:
        url = urlparse(str((model or {}).get("api_base", "")))
        if url.hostname in ("127.0.0.1", "localhost") and url.port:
            return url.port
    return None


def _resolve_port(port: int | None, config: Path | None) -> int:
    return port or port_from_config(config) or local_models.DEFAULT_PORT


def _print_status(st: local_models.ServerStatus) -> None:
    if st.stale_pid is not None:
        typer.echo(f"removed stale pid file (pid {st.stale_pid} is not running)")
    if not st.running:
        typer.echo(f"not running (state dir {st.state_dir})")
        return
    typer.echo(f"running  pid={st.pid}  port={st.port}  api_base={st.api_base}")
    typer.echo(f"models   {', '.join(st.models)}")
    typer.echo(f"log      {st.log_file}")


@local_app.command()
def start(
    port: int | None = PortOption,
    config: Path | None = ConfigOption,
    timeout: float = typer.Option(120.0, help="Seconds to wait until the server is healthy."),
) -> None:
    """Start the server in the background and wait until it answers."""
    try:
        st = local_models.start(_resolve_port(port, config), timeout=timeout)
    except local_models.LocalModelError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    _print_status(st)


@local_app.command()
def stop(port: int | None = PortOption, config: Path | None = ConfigOption) -> None:
    """Stop the server (SIGTERM, then SIGKILL after a grace period)."""
    st = local_models.stop()
    if st.running:
        typer.echo(f"stopped pid {st.pid}")
    else:
        _print_status(st)


@local_app.command()
def status(port: int | None = PortOption, config: Path | None = ConfigOption) -> None:
    """Report whether the server runs, its pid, port and models."""
    _print_status(local_models.status())
