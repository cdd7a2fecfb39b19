"""Start LiteLLM Proxy serving a ladder: the generated config, the proxy's own CLI, N workers.

The proxy runs as a child process (``python -m litellm.proxy.proxy_cli``) with the config
written to a private temporary directory; SIGINT/SIGTERM are passed on to it and the
directory is removed when it exits. Ladders reach the proxy's workers by name through
``CASCADE_ROUTER_LADDERS``; secrets only ever through environment variables.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cascade_core.engine import RouterConfig
from cascade_core.errors import InvalidInputError
from cascade_core.gateway import proxy_config, telemetry
from cascade_core.gateway.ladders import LADDERS_ENV, check_name, gateway_engine

logger = logging.getLogger(__name__)

MASTER_KEY_ENV = "LITELLM_MASTER_KEY"


@dataclass(frozen=True)
class ServeOptions:
    config: Path
    port: int = 4000
    host: str = "127.0.0.1"
    workers: int = 1
    proxy_config: Path | None = None
    expose_models: bool = False
    name: str | None = None
    redis_url: str | None = None
    metrics: bool = False
    otel: bool = False
    insecure_no_auth: bool = False
    debug: bool = False


def ladder_name(path: Path) -> str:
    """The served model name from the config file name (``support.yaml`` -> ``support``)."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", path.stem).strip("-.") or "cascade"


def prepare(options: ServeOptions) -> tuple[dict[str, Any], dict[str, str]]:
    """The proxy config and the environment additions; validates everything first."""
    if options.workers < 1:
        raise InvalidInputError(f"--workers: give at least 1, not {options.workers}")
    if not 0 < options.port < 65536:
        raise InvalidInputError(f"--port: {options.port} is not a TCP port")
    path = options.config.resolve()
    config = RouterConfig.from_file(path)
    gateway_engine(config)  # prices, keys' variable names, recursion: refused now, not per request
    name = check_name(options.name or ladder_name(path))
    split = split_sessions_warning(config, options)
    if split is not None:
        logger.warning(split)
    generated = proxy_config.build(
        {name: config},
        expose_models=options.expose_models,
        redis=options.redis_url is not None,
        prometheus=options.metrics,
    )
    if options.proxy_config is not None:
        user = proxy_config.load_user_config(options.proxy_config)
        generated = proxy_config.merge(generated, user, str(options.proxy_config))
    env = _auth_env(options, generated)
    env |= {
        LADDERS_ENV: json.dumps({name: str(path)}),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    if options.redis_url is not None:
        env[proxy_config.REDIS_URL_ENV] = options.redis_url
    if options.metrics:
        env[telemetry.METRICS_ENV] = "1"
    if options.otel:
        env[telemetry.TRACING_ENV] = "1"
    return generated, env


def split_sessions_warning(config: RouterConfig, options: ServeOptions) -> str | None:
    """Why sessions would not hold across this deployment, or None.

    Sessions kept in process memory are per worker: with several workers (or replicas
    sharing a Redis for rate limits) a conversation's requests reach different processes,
    and each sees a new session (no tool-loop continuity, a per-session cap per process).
    """
    if config.session.store != "memory" or (options.workers == 1 and options.redis_url is None):
        return None
    where = f"--workers {options.workers}" if options.workers > 1 else "--redis-url (replicas)"
    return (
        f"{options.config}: session.store is 'memory', so with {where} each process keeps "
        "its own sessions; set session.store: redis (with url_env) to share them"
    )


def _auth_env(options: ServeOptions, config: dict[str, Any]) -> dict[str, str]:
    """LiteLLM Proxy refuses to start without a master key; so does serve, saying how."""
    has_key = bool(os.environ.get(MASTER_KEY_ENV)) or bool(
        (config.get("general_settings") or {}).get("master_key")
    )
    if has_key:
        return {}
    if not options.insecure_no_auth:
        raise InvalidInputError(
            f"{MASTER_KEY_ENV} is not set: export it with the key clients must send "
            f'(e.g. export {MASTER_KEY_ENV}="sk-$(openssl rand -hex 32)"), or pass '
            "--insecure-no-auth for a local test"
        )
    return {"LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true"}


def command(options: ServeOptions, config_path: Path) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "litellm.proxy.proxy_cli",
        "--config",
        str(config_path),
        "--host",
        options.host,
        "--port",
        str(options.port),
        "--num_workers",
        str(options.workers),
    ]
    if options.debug:
        cmd.append("--detailed_debug")
    return cmd


def run(options: ServeOptions) -> int:
    """Serve until the proxy exits or this process is told to stop; the proxy's exit code."""
    generated, env = prepare(options)
    with tempfile.TemporaryDirectory(prefix="cascade-router-serve-") as state:
        config_path = Path(state) / "proxy_config.yaml"
        config_path.write_text(yaml.safe_dump(generated, sort_keys=False), encoding="utf-8")
        child = subprocess.Popen(command(options, config_path), env={**os.environ, **env})

        def forward(signum: int, _frame: Any) -> None:
            if child.poll() is None:
                child.send_signal(signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return child.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
