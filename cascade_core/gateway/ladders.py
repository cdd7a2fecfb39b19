"""Which ladder ``cascade/<name>`` means, and the engine that serves it inside LiteLLM.

Ladders come only from trusted places: code (``ladders.add``) or the environment variable
``CASCADE_ROUTER_LADDERS`` (a JSON object of name -> ladder config path, which
``cascade-router serve`` sets for the proxy). Never from a request: a ladder names the
environment variables holding API keys and the endpoints they are sent to.

The engine built here differs from a plain one in what LiteLLM sees of its calls. They are
sub-calls of the cascade request, billed once in the cascade's own response, so each carries
LiteLLM's ``no-log`` flag: no logging or spend callback counts them a second time (LiteLLM
still runs its proxy-internal cost hook, which bills nothing without a key on the call).
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

from cascade_core.engine import CascadeEngine, RouterConfig
from cascade_core.errors import InvalidInputError
from cascade_core.gateway.observe import ObservedEngine

PROVIDER = "cascade"
LADDERS_ENV = "CASCADE_ROUTER_LADDERS"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

LadderSource = CascadeEngine | RouterConfig | str | Path


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInputError(
            f"ladder name {name!r}: use letters, digits, '_', '.' or '-' (it becomes the "
            f"model name {PROVIDER}/<name>)"
        )
    return name


def gateway_engine(config: RouterConfig) -> ObservedEngine:
    """The engine for one ladder: its calls go straight to the providers, unlogged."""
    for i, spec in enumerate(config.models):
        if spec.model.startswith(f"{PROVIDER}/"):
            raise InvalidInputError(
                f"models[{i}] ({spec.label}): {spec.model!r} is itself a cascade; a ladder's "
                "models must be provider models, or requests would recurse"
            )
    models = [
        spec.model_copy(update={"extra_params": {**spec.extra_params, "no-log": True}})
        for spec in config.models
    ]
    return ObservedEngine(config.model_copy(update={"models": models}))


class LadderRegistry:
    """Ladder name -> engine, each engine built once, on first use (thread-safe)."""

    def __init__(self, sources: dict[str, LadderSource] | None = None) -> None:
        self._sources: dict[str, LadderSource] = {}
        self._engines: dict[str, CascadeEngine] = {}
        self._lock = threading.Lock()
        for name, source in (sources or {}).items():
            self.add(name, source)

    def add(self, name: str, source: LadderSource) -> None:
        """Serve ``source`` (an engine, a config, or a config file) as ``cascade/<name>``."""
        check_name(name)
        with self._lock:
            self._sources[name] = source
            self._engines.pop(name, None)

    def names(self) -> list[str]:
        with self._lock:
            self._load_env()
            return sorted(self._sources)

    def engine(self, name: str) -> CascadeEngine:
        with self._lock:
            engine = self._engines.get(name)
            if engine is not None:
                return engine
            if name not in self._sources:
                self._load_env()
            if name not in self._sources:
                known = sorted(self._sources)
                raise InvalidInputError(
                    f"model {PROVIDER}/{name}: no ladder of that name (known: {known}); "
                    f"register it with cascade_core.gateway.ladders.add or in {LADDERS_ENV}"
                )
            engine = _build(self._sources[name])
            self._engines[name] = engine
            return engine

    def _load_env(self) -> None:
        """Pick up ladders named in the environment (what ``serve`` passes to the proxy)."""
        text = os.environ.get(LADDERS_ENV)
        if not text:
            return
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidInputError(
                f"{LADDERS_ENV}: not JSON ({error.msg}); give an object of name -> config path"
            ) from None
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise InvalidInputError(f"{LADDERS_ENV}: give a JSON object of name -> config path")
        for name, path in mapping.items():
            if name not in self._sources:
                self._sources[check_name(name)] = Path(path)


def _build(source: LadderSource) -> CascadeEngine:
    if isinstance(source, CascadeEngine):
        return gateway_engine(source.config)
    if isinstance(source, RouterConfig):
        return gateway_engine(source)
    return gateway_engine(RouterConfig.from_file(source))


ladders = LadderRegistry()
