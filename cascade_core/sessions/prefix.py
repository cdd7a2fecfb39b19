"""The prompt prefix a model has already been sent in a session, as a hash chain.

Providers cache prompts by prefix (OpenAI automatically, Anthropic at ``cache_control``
marks, Gemini and DeepSeek implicitly): a request that starts with a prompt the same model was
sent before is billed at the cached-input price for that part. Agents resend the whole
conversation every turn, so the part a model has already seen is usually almost all of it.

A chain entry ``i`` hashes the request head (tools, schemas: whatever is sent besides the
messages) and the first ``i`` messages, so two prompts share a cached prefix exactly as far as
their chains agree, and only hashes are stored: no conversation text ever reaches the session
store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Chains longer than this are cut: a longer shared prefix is then simply not predicted to be
# cached (the estimate errs towards the full price, never below it).
MAX_CHAIN = 2048
_DIGEST_BYTES = 12


def _digest(previous: str, value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.blake2b(f"{previous}\x00{text}".encode(), digest_size=_DIGEST_BYTES).hexdigest()


def prefix_chain(head: Mapping[str, Any], messages: Sequence[Any]) -> list[str]:
    """Hash chain of one prompt: entry 0 is the head alone, entry i adds messages[i-1]."""
    chain = [_digest("", dict(head))]
    for message in messages[: MAX_CHAIN - 1]:
        chain.append(_digest(chain[-1], message))
    return chain


def common_length(chain: Sequence[str], other: Sequence[str]) -> int:
    """How many leading entries two chains share (0 when even the heads differ)."""
    n = 0
    for a, b in zip(chain, other, strict=False):
        if a != b:
            break
        n += 1
    return n


class ServedPrefix(BaseModel):
    """The last prompt one model was sent in a session: its chain and, per entry, the input
    tokens up to and including it (counted with that model's tokenizer)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    hashes: list[str] = Field(default_factory=list, max_length=MAX_CHAIN)
    tokens: list[int] = Field(default_factory=list, max_length=MAX_CHAIN)

    @model_validator(mode="after")
    def _aligned(self) -> ServedPrefix:
        if len(self.hashes) != len(self.tokens):
            raise ValueError("hashes and tokens must have one entry each per chain position")
        return self

    def cached_tokens(self, chain: Sequence[str]) -> int:
        """Tokens of ``chain``'s prompt the provider has already seen from this model."""
        shared = common_length(chain, self.hashes)
        return self.tokens[shared - 1] if shared else 0

    @classmethod
    def served(
        cls,
        chain: Sequence[str],
        total_tokens: int,
        messages: Sequence[Any],
        count_message: Callable[[Any], int],
        previous: ServedPrefix | None,
    ) -> ServedPrefix:
        """The record after ``chain``'s prompt was sent, counting only messages the previous
        record did not already cover (agents append, so that is one or two per turn)."""
        chain = list(chain)
        shared = common_length(chain, previous.hashes) if previous is not None else 0
        if shared and previous is not None:
            tokens = list(previous.tokens[:shared])
            counts = [count_message(m) for m in messages[shared - 1 : len(chain) - 1]]
        else:
            counts = [count_message(m) for m in messages[: len(chain) - 1]]
            tokens = [max(0, total_tokens - sum(counts))]
        for count in counts:
            tokens.append(tokens[-1] + count)
        return cls(hashes=chain, tokens=[min(t, total_tokens) for t in tokens])
