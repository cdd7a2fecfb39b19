"""How many prompt tokens a provider billed at its cache prices, read from the usage it reports.

LiteLLM normalises providers' usage into OpenAI's shape: ``prompt_tokens`` counts every input
token, ``prompt_tokens_details.cached_tokens`` those read from the prompt cache (OpenAI,
DeepSeek's ``prompt_cache_hit_tokens``, Anthropic's ``cache_read_input_tokens``) and
``prompt_tokens_details.cache_write_tokens`` those written to it (Anthropic's
``cache_creation_input_tokens``, billed above the input price). Raw OpenAI-compatible payloads
(stream chunks as dicts) may carry the Anthropic names at the top level instead, so both
places are read. Counts are clamped so that read + written never exceeds the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cascade_core.signals.access import get_field


@dataclass(frozen=True)
class CacheUsage:
    """Prompt tokens of one call billed at the cache-read and at the cache-write price."""

    read: int = 0
    written: int = 0


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def cache_usage(usage: Any) -> CacheUsage:
    """The cache counts of a LiteLLM ``Usage`` (or its dict form); zeros when absent."""
    if usage is None:
        return CacheUsage()
    details = get_field(usage, "prompt_tokens_details")
    read = _count(get_field(details, "cached_tokens")) or _count(
        get_field(usage, "cache_read_input_tokens")
    )
    written = (
        _count(get_field(details, "cache_write_tokens"))
        or _count(get_field(details, "cache_creation_tokens"))
        or _count(get_field(usage, "cache_creation_input_tokens"))
    )
    prompt = _count(get_field(usage, "prompt_tokens"))
    read = min(read, prompt)
    return CacheUsage(read=read, written=min(written, prompt - read))
