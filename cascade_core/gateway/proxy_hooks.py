"""LiteLLM Proxy hooks for cascade models (the ``callbacks`` entry of the generated config).

Two things the proxy would otherwise get wrong for a cascade:

- It rewrites ``model`` in every response to the name the client asked for; for a cascade
  the answering model is the point, so requests to a cascade model carry LiteLLM's marker
  for routers that answer with another model (the one its complexity router sets).
- A provider's response headers reach clients as ``llm_provider-<name>``; the cascade's own
  headers (``x-cascade-models-run``, ``x-cascade-cost-usd``) are added under their names
  through the proxy's response-header hook, from the summary the provider put in the body.
"""

from __future__ import annotations

from typing import Any

from litellm.constants import RETURN_RAW_MODEL_NAME_METADATA_KEY
from litellm.integrations.custom_logger import CustomLogger

from cascade_core.gateway import openai_format
from cascade_core.gateway.ladders import PROVIDER


class CascadeProxyHooks(CustomLogger):
    """Keeps the answering model's name and adds the cascade's response headers."""

    def __init__(self) -> None:
        super().__init__()
        self._is_cascade: dict[str, bool] = {}

    def is_cascade_model(self, model_name: str) -> bool:
        """True when the proxy serves ``model_name`` with the cascade provider (cached)."""
        known = self._is_cascade.get(model_name)
        if known is not None:
            return known
        from litellm.proxy.proxy_server import llm_router

        deployments = llm_router.get_model_list(model_name=model_name) if llm_router else None
        answer = any(
            str((d.get("litellm_params") or {}).get("model", "")).startswith(f"{PROVIDER}/")
            for d in deployments or []
        )
        self._is_cascade[model_name] = answer
        return answer

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any
    ) -> dict:
        model = data.get("model")
        if isinstance(model, str) and self.is_cascade_model(model):
            key = "litellm_metadata" if "litellm_metadata" in data else "metadata"
            metadata = data.setdefault(key, {})
            if isinstance(metadata, dict):
                metadata[RETURN_RAW_MODEL_NAME_METADATA_KEY] = True
        return data

    async def async_post_call_response_headers_hook(
        self,
        data: dict,
        user_api_key_dict: Any,
        response: object,
        request_headers: dict[str, str] | None = None,
        litellm_call_info: dict[str, object] | None = None,
    ) -> dict[str, str] | None:
        summary = getattr(response, openai_format.SUMMARY_FIELD, None)
        if not isinstance(summary, dict):
            return None
        return openai_format.summary_headers(summary)


proxy_hooks = CascadeProxyHooks()
