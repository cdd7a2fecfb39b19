"""Keep API keys out of traces, logs and exception messages.

Provider errors sometimes echo request headers or URLs; every error text the engine stores or
raises passes through ``redact`` first, which removes the configured keys' actual values and
anything shaped like a bearer token or a common key prefix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

_KEY_SHAPES = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}|\b(sk|pk|rk|ak|key)-[A-Za-z0-9_\-]{6,}"
)


def secrets_from_env(variable_names: Iterable[str | None]) -> list[str]:
    """The current values of the named variables (the keys to scrub)."""
    values = (os.environ.get(name) for name in variable_names if name)
    return [value for value in values if value and len(value) >= 4]


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _KEY_SHAPES.sub(lambda m: (m.group(1) or "") + "***", text)
