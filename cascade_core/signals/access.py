"""Field access shared by everything that reads provider payloads.

LiteLLM hands over pydantic objects on one path and plain dicts on another (cached responses,
stream chunks, requests), and OpenAI SDK objects are attribute-style; readers of responses,
tool calls and messages go through `get_field` so each layout is handled in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["get_field"]


def get_field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` for a mapping, ``obj.name`` otherwise; ``default`` when ``obj`` is None
    or has no such field."""
    if obj is None:
        return default
    if type(obj) is dict or isinstance(obj, Mapping):  # exact-type check first: hot path
        return obj.get(name, default)
    return getattr(obj, name, default)
