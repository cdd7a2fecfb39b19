"""Cascade routing as a LiteLLM custom provider, served by LiteLLM Proxy.

``litellm.completion(model="cascade/<ladder>", ...)`` runs a whole ladder as one model once
``register()`` has added the provider to LiteLLM; LiteLLM Proxy serves the same provider from
its ``config.yaml`` (``cascade-router serve`` writes one). The provider only converts
OpenAI-format arguments to engine calls and engine results to OpenAI-format responses: every
decision, cost, retry and trace stays in ``cascade_core.engine``.
"""

from cascade_core.gateway.ladders import LadderRegistry, ladders
from cascade_core.gateway.provider import PROVIDER, CascadeProvider, cascade_provider, register

__all__ = [
    "PROVIDER",
    "CascadeProvider",
    "LadderRegistry",
    "cascade_provider",
    "ladders",
    "register",
]
