"""The LiteLLM Proxy ``config.yaml`` that serves ladders: generated, or merged into the user's.

What is generated: one ``model_list`` entry per ladder (``model: cascade/<name>``), optionally
one per ladder model on its own (``--expose-models``: its key as ``os.environ/<VAR>``, never
the value), the cascade provider and proxy hooks in ``litellm_settings``, and, with a Redis
URL, the router's state in Redis, shared by every replica (the rpm/tpm counters LiteLLM's
``enforce_model_rate_limits`` check increments atomically before each call). No database:
virtual keys and spend logs are the user's to add.

Merging a user's config: their entries for a ladder's model name add settings to it (``rpm``,
``tpm``, ``model_info``...), their other entries are kept, their ``litellm_settings``,
``router_settings`` and ``general_settings`` win key by key, and callback lists are joined.
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any

from cascade_core.engine import RouterConfig
from cascade_core.engine.ladder import SELF_HOSTED_PLACEHOLDER_KEY
from cascade_core.errors import InvalidInputError
from cascade_core.gateway.ladders import PROVIDER

PROVIDER_HANDLER = "cascade_core.gateway.provider.cascade_provider"
PROXY_HOOKS = "cascade_core.gateway.proxy_hooks.proxy_hooks"
REDIS_URL_ENV = "CASCADE_ROUTER_REDIS_URL"
_LIST_SETTINGS = ("callbacks", "success_callback", "failure_callback")


def build(
    ladders: dict[str, RouterConfig],
    *,
    expose_models: bool = False,
    redis: bool = False,
    prometheus: bool = False,
) -> dict[str, Any]:
    """The proxy config for ``ladders`` (name -> config), before any user config."""
    model_list: list[dict[str, Any]] = [
        {"model_name": name, "litellm_params": {"model": f"{PROVIDER}/{name}"}} for name in ladders
    ]
    if expose_models:
        seen = set(ladders)
        for config in ladders.values():
            for spec in config.models:
                if spec.label in seen:
                    continue
                seen.add(spec.label)
                model_list.append({"model_name": spec.label, "litellm_params": _direct(spec)})
    callbacks: list[Any] = [PROXY_HOOKS]
    if prometheus:
        callbacks.append("prometheus")
    config: dict[str, Any] = {
        "model_list": model_list,
        "litellm_settings": {
            "custom_provider_map": [{"provider": PROVIDER, "custom_handler": PROVIDER_HANDLER}],
            "callbacks": callbacks,
        },
    }
    router_settings: dict[str, Any] = {
        # rpm/tpm set on a deployment are enforced before the call (in Redis when given),
        # answering 429 at once instead of routing around the limit.
        "optional_pre_call_checks": ["enforce_model_rate_limits"],
        # The engine retries each model itself; a router retry would rerun the whole
        # cascade and bill every draft again.
        "model_group_retry_policy": {name: {"DefaultRetries": 0} for name in ladders},
    }
    if redis:
        router_settings["redis_url"] = f"os.environ/{REDIS_URL_ENV}"
    config["router_settings"] = router_settings
    return config


def _direct(spec: Any) -> dict[str, Any]:
    """A ladder model served on its own, with the ladder's prices and endpoint."""
    params: dict[str, Any] = {"model": spec.model, **spec.extra_params}
    if spec.api_base:
        params["api_base"] = spec.api_base
    if spec.api_key_env:
        params["api_key"] = f"os.environ/{spec.api_key_env}"
    elif spec.api_base:
        params["api_key"] = SELF_HOSTED_PLACEHOLDER_KEY
    for price in ("input_cost_per_token", "output_cost_per_token"):
        if getattr(spec, price) is not None:
            params[price] = getattr(spec, price)
    return params


def merge(generated: dict[str, Any], user: dict[str, Any], source: str) -> dict[str, Any]:
    """``generated`` with the user's proxy config merged in (see the module docstring)."""
    if not isinstance(user, dict):
        raise InvalidInputError(f"{source}: expected a mapping at the top level")
    merged = deepcopy(generated)
    ours = {entry["model_name"]: entry for entry in merged["model_list"]}
    ladder_names = {
        e["model_name"]
        for e in merged["model_list"]
        if e["litellm_params"]["model"].startswith(f"{PROVIDER}/")
    }
    merged_into: dict[str, int] = {}
    for i, entry in enumerate(user.get("model_list") or []):
        if not isinstance(entry, dict) or "model_name" not in entry:
            raise InvalidInputError(f"{source}: model_list[{i}]: each entry needs a model_name")
        name = entry["model_name"]
        if name in ladder_names:
            if name in merged_into:
                raise InvalidInputError(
                    f"{source}: model_list[{i}] ({name}): model_list[{merged_into[name]}] already "
                    "sets this ladder; give one entry per ladder"
                )
            merged_into[name] = i
            params = dict(entry.get("litellm_params") or {})
            model = params.pop("model", None)
            if model is not None and model != ours[name]["litellm_params"]["model"]:
                raise InvalidInputError(
                    f"{source}: model_list[{i}] ({name}): this name is the cascade ladder "
                    f"{name!r}; drop litellm_params.model or rename the entry"
                )
            ours[name]["litellm_params"].update(params)
            for key, value in entry.items():
                if key not in ("model_name", "litellm_params"):
                    ours[name][key] = deepcopy(value)
        elif name in ours:
            ours[name].update(deepcopy(entry))
        else:
            merged["model_list"].append(deepcopy(entry))
    for section in ("litellm_settings", "router_settings", "general_settings"):
        theirs = user.get(section)
        if theirs is None:
            continue
        if not isinstance(theirs, dict):
            raise InvalidInputError(f"{source}: {section}: expected a mapping")
        merged[section] = _merge_settings(merged.get(section, {}), theirs, f"{source}: {section}")
    for key, value in user.items():
        if key not in ("model_list", "litellm_settings", "router_settings", "general_settings"):
            merged[key] = deepcopy(value)
    return merged


def _merge_settings(ours: dict[str, Any], theirs: dict[str, Any], where: str) -> dict[str, Any]:
    merged = {**ours}
    for key, value in theirs.items():
        if key in _LIST_SETTINGS and isinstance(ours.get(key), list):
            extra = value if isinstance(value, list) else [value]
            merged[key] = [*ours[key], *(v for v in extra if v not in ours[key])]
        elif key == "custom_provider_map":
            entries = value if isinstance(value, list) else [value]
            if any(isinstance(e, dict) and e.get("provider") == PROVIDER for e in entries):
                raise InvalidInputError(
                    f"{where}.custom_provider_map: provider {PROVIDER!r} is the cascade's own; "
                    "remove that entry"
                )
            merged[key] = [*ours.get(key, []), *deepcopy(entries)]
        else:
            merged[key] = deepcopy(value)
    return merged


def load_user_config(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidInputError(f"proxy config: cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise InvalidInputError(f"proxy config {path}{where}: not valid YAML") from None
    return data or {}
