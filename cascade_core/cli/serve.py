"""`cascade-router serve`: the ladder as one model of LiteLLM Proxy, for any OpenAI client.

Registered in ``cascade_core.cli.app``; also runs alone as ``python -m cascade_core.cli.serve``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import typer
import yaml

from cascade_core.errors import InvalidInputError


def serve(
    config: Annotated[Path, typer.Option("--config", help="ladder config (YAML or JSON)")],
    port: Annotated[int, typer.Option(help="port of the proxy")] = 4000,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="proxy worker processes")] = 1,
    proxy_config: Annotated[
        Path | None,
        typer.Option(help="an existing LiteLLM Proxy config.yaml to merge the ladder into"),
    ] = None,
    expose_models: Annotated[
        bool, typer.Option(help="also serve each ladder model on its own, under its name")
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="model name of the ladder (default: the config's stem)")
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            envvar="CASCADE_ROUTER_REDIS_URL",
            help="Redis shared by all replicas for rate limits and routing state",
            show_envvar=True,
        ),
    ] = None,
    metrics: Annotated[
        bool, typer.Option(help="Prometheus metrics at /metrics (LiteLLM's and the cascade's)")
    ] = False,
    otel: Annotated[
        bool, typer.Option(help="OpenTelemetry spans of each cascade request and model call")
    ] = False,
    insecure_no_auth: Annotated[
        bool, typer.Option(help="start without LITELLM_MASTER_KEY (anyone may call it)")
    ] = False,
    print_config: Annotated[
        bool, typer.Option(help="print the generated proxy config and exit")
    ] = False,
    debug: Annotated[bool, typer.Option(help="tracebacks and LiteLLM's debug logs")] = False,
) -> None:
    """Serve the ladder as the model NAME of LiteLLM Proxy (OpenAI-compatible API).

    Clients call it like any model: POST /v1/chat/completions with "model": NAME. Responses
    name the answering model, carry the trace summary in a `cascade` field and the headers
    x-cascade-models-run and x-cascade-cost-usd.
    """
    from cascade_core.gateway.serve import ServeOptions, prepare, run

    options = ServeOptions(
        config=config,
        port=port,
        host=host,
        workers=workers,
        proxy_config=proxy_config,
        expose_models=expose_models,
        name=name,
        redis_url=redis_url,
        metrics=metrics,
        otel=otel,
        insecure_no_auth=insecure_no_auth,
        debug=debug,
    )
    try:
        if print_config:
            generated, _env = prepare(options)
            typer.echo(yaml.safe_dump(generated, sort_keys=False), nl=False)
            return
        code = run(options)
    except InvalidInputError as error:
        if debug:
            raise
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


def main() -> None:
    app = typer.Typer(add_completion=False)
    app.command()(serve)
    app(prog_name="cascade-router serve")


if __name__ == "__main__":
    main()
    sys.exit(0)
