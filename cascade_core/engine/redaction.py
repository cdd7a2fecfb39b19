"""Keep API keys out of traces, logs and exception messages.

Provider errors sometimes echo request headers or URLs; every error text the engine stores or
raises passes through ``redact`` first, which removes the configured keys' actual values and
anything shaped like a bearer token or a common key prefix.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
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


# Loggers of the libraries a request passes through; provider error bodies that echo request
# headers end up in their messages and tracebacks.
_PROVIDER_LOGGERS = ("LiteLLM", "litellm", "openai", "httpx", "httpcore")
_secret_variables: set[str] = set()
_installed = False


def protect_logs(variable_names: Iterable[str | None]) -> None:
    """Scrub the keys held in these variables from every log record the provider libraries
    create (message, arguments and traceback), whatever handlers the application installed.

    Installed once per process by wrapping the log-record factory; a record is only touched
    when its level is enabled, so disabled debug logging costs nothing.
    """
    global _installed
    _secret_variables.update(name for name in variable_names if name)
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.name.startswith(_PROVIDER_LOGGERS):
            _scrub(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def _scrub(record: logging.LogRecord) -> None:
    secrets = secrets_from_env(_secret_variables)
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: leave it to logging's own error handling
        return
    record.msg, record.args = redact(message, secrets), ()
    if record.exc_info:
        text = "".join(traceback.format_exception(*record.exc_info))
        record.exc_text, record.exc_info = redact(text, secrets), None
