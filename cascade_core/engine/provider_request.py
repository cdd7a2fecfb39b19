"""The one place that decides what is sent to a provider for one model on one request.

The live engine and `calibrate` both call `provider_kwargs`, so the answers the estimators
are fitted on were requested exactly as the engine requests them (same parameters, logprobs
and top logprobs), and the cost cap counts exactly what is sent (`prompt_tokens`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cascade_core.engine.ladder import LadderModel

# Request parameters passed through to every model as given by the caller.
FORWARDED_PARAMS: tuple[str, ...] = (
    "tools",
    "tool_choice",
    "response_format",
    "temperature",
    "stop",
    "seed",
    "top_p",
)
# Alternatives per token: enough for the entropy and margin features.
TOP_LOGPROBS = 5


def provider_kwargs(
    model: LadderModel,
    request: Mapping[str, Any],
    *,
    num_retries: int,
    timeout_s: float,
    max_tokens: int | None,
) -> dict[str, Any]:
    """LiteLLM keyword arguments for ``model`` on ``request``, without the API key."""
    params: dict[str, Any] = {
        "model": model.spec.model,
        "messages": request["messages"],
        "num_retries": num_retries,
        # LiteLLM does the retrying; the OpenAI client's own retries would multiply it.
        "max_retries": 0,
        "timeout": timeout_s,
        **model.spec.extra_params,
    }
    if model.spec.api_base:
        params["api_base"] = model.spec.api_base
    for name in FORWARDED_PARAMS:
        if request.get(name) is not None:
            params[name] = request[name]
    if max_tokens is not None:
        params["max_tokens"] = int(max_tokens)
    if model.supports_logprobs:
        params["logprobs"] = True
        params["top_logprobs"] = max(TOP_LOGPROBS, int(request.get("top_logprobs") or 0))
    return params
