"""Which session a gateway request belongs to, from what LiteLLM hands the provider.

A client names its conversation or agent run in one of two ways, read in this order:

1. The ``x-cascade-session-id`` request header (the cascade's own name for it; any value
   the engine accepts as a session id).
2. LiteLLM's convention, read with LiteLLM's own reader (``get_stable_session_id``): the
   ``x-litellm-session-id`` header (or ``x-litellm-trace-id``, or another
   ``x-<vendor>-session-id`` header such as Claude Code's, which the proxy maps to the same
   field), ``metadata.session_id`` or ``litellm_session_id`` in the body, or in code
   ``litellm.completion(..., litellm_session_id=...)`` / ``metadata={"session_id": ...}``.
   An id the proxy generated for a request that named none (``missing_session_id:
   generate``) is not a conversation and is ignored.

The OpenAI ``user`` field is not read: it names an end user, who has many conversations,
and one session across all of them would carry one conversation's model and tool loop into
the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litellm.litellm_core_utils.provider_affinity import get_stable_session_id

SESSION_HEADER = "x-cascade-session-id"


def _header(headers: object) -> str | None:
    if not isinstance(headers, Mapping):
        return None
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == SESSION_HEADER and isinstance(value, str):
            return value
    return None


def request_headers(litellm_params: Mapping[str, Any]) -> list[object]:
    """The client's request headers as the proxy passes them on (none outside the proxy):
    the logging-safe copy in the request metadata, and the raw request's."""
    found: list[object] = []
    for key in ("metadata", "litellm_metadata"):
        metadata = litellm_params.get(key)
        if isinstance(metadata, Mapping):
            found.append(metadata.get("headers"))
    request = litellm_params.get("proxy_server_request")
    if isinstance(request, Mapping):
        found.append(request.get("headers"))
    return found


def session_id(litellm_params: Mapping[str, Any] | None) -> str | None:
    """The request's session id, or None for a request outside any session.

    The engine checks the id (``check_session_id``): a malformed one is the client's
    error, reported as a 400, not silently dropped.
    """
    if not litellm_params:
        return None
    for headers in request_headers(litellm_params):
        value = _header(headers)
        if value is not None:
            return value
    return get_stable_session_id(litellm_params)


__all__ = ["SESSION_HEADER", "session_id"]
