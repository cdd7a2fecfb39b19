"""Keep API keys out of traces, logs, printed output and exception messages.

Three mechanisms, each closing one way a key escapes:

* ``redact``: every error text the engine stores or raises passes through it. It replaces the
  current values of the key variables (`secrets_from_env`) and anything shaped like a key
  (`cascade_core.key_shapes`: bearer tokens, ``sk-``/``xai-``/``hf_``/``gsk_``/``AIza``...
  prefixes, JWTs, long hex or mixed-case base64 runs).
* Which variables hold keys: the ones the config names in ``api_key_env``, the ones LiteLLM
  reads by itself when a config names none (derived from LiteLLM's own environment check and
  provider tables, `litellm_key_variables`), and any variable named like a secret
  (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``...: `SECRET_NAME`).
* `protect_logs`: a log-record factory scrubs every record of the provider libraries (and
  ours) when it is created, whatever handlers the application installed; and LiteLLM's
  ``set_verbose``, whose ``print()`` calls no handler can scrub, is neutralised: once an engine
  exists, ``litellm.set_verbose`` reads ``False`` and assigning ``True`` to it turns on
  LiteLLM's DEBUG logger instead (what LiteLLM itself recommends), whose records are scrubbed.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import traceback
import types
from collections.abc import Iterable

from cascade_core.key_shapes import REDACTED, mask_keys

# A variable whose name says it holds a secret; its value is scrubbed whether or not any config
# names it (HF_TOKEN, MY_TEAM_API_KEY, AWS_SESSION_TOKEN, ...).
SECRET_NAME = re.compile(
    r"(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|ACCESS_KEY(?:_ID)?)"
    r"(?:_|$)",
    re.IGNORECASE,
)
# Values shorter than this are not scrubbed when found by name alone: replacing a two-letter
# value everywhere would garble messages and protect nothing.
_MIN_IMPLICIT_SECRET = 8
_MIN_CONFIGURED_SECRET = 4


@functools.lru_cache(maxsize=1)
def litellm_key_variables() -> frozenset[str]:
    """The environment variables LiteLLM reads keys from when it is given none.

    Taken from LiteLLM itself, so the list follows its releases: the names in
    ``litellm.validate_environment`` (its per-provider key check) and in its provider
    resolution (``get_llm_provider``, which reads the OpenAI-compatible providers' keys), and
    the ``api_key_env`` of its JSON-declared providers. Only names shaped like secrets are kept
    (``AZURE_API_BASE`` is not one).
    """
    names: set[str] = set()
    try:
        import litellm
        from litellm.litellm_core_utils import get_llm_provider_logic
        from litellm.llms.openai_like.json_loader import JSONProviderRegistry

        functions = [litellm.utils.validate_environment]
        functions += [
            value
            for value in vars(get_llm_provider_logic).values()
            if isinstance(value, types.FunctionType)
            and value.__module__ == get_llm_provider_logic.__name__
        ]
        for function in functions:
            names.update(_string_constants(function.__code__))
        for slug in JSONProviderRegistry.list_providers():
            provider = JSONProviderRegistry.get(slug)
            if provider is not None and provider.api_key_env:
                names.add(provider.api_key_env)
    except (ImportError, AttributeError):  # LiteLLM moved them; `SECRET_NAME` still applies
        pass  # (tests/test_keys_never_leak.py fails on the installed release if so)
    return frozenset(name for name in names if _is_env_name(name) and SECRET_NAME.search(name))


def _string_constants(code: types.CodeType) -> Iterable[str]:
    for constant in code.co_consts:
        if isinstance(constant, str):
            yield constant
        elif isinstance(constant, types.CodeType):
            yield from _string_constants(constant)


def _is_env_name(name: str) -> bool:
    return re.fullmatch(r"[A-Z][A-Z0-9_]*", name) is not None


def secrets_from_env(variable_names: Iterable[str | None] = ()) -> list[str]:
    """The keys to scrub: the values of the named variables, of the variables LiteLLM reads
    by itself, and of every variable named like a secret."""
    configured = {name for name in variable_names if name}
    implicit = set(litellm_key_variables()) | {n for n in os.environ if SECRET_NAME.search(n)}
    values = {
        value
        for value in (os.environ.get(name) for name in configured)
        if value and len(value) >= _MIN_CONFIGURED_SECRET
    }
    values |= {
        value
        for value in (os.environ.get(name) for name in implicit - configured)
        if value and len(value) >= _MIN_IMPLICIT_SECRET
    }
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value and every key-shaped string replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return mask_keys(text)


# Loggers of the libraries a request passes through (provider error bodies that echo request
# headers end up in their messages and tracebacks), and ours.
_PROTECTED_LOGGERS = (
    "LiteLLM",
    "litellm",
    "openai",
    "httpx",
    "httpcore",
    "cascade_core",
    "langchain_cascade",
    "llamaindex_cascade",
)
_secret_variables: set[str] = set()
_installed = False


def protect_logs(variable_names: Iterable[str | None] = ()) -> None:
    """Scrub the keys (the named variables' and the implicit ones, see `secrets_from_env`)
    from every log record the provider libraries create (message, arguments and traceback),
    and stop LiteLLM's ``set_verbose`` from printing (module docstring).

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
        if record.name.startswith(_PROTECTED_LOGGERS):
            _scrub(record)
        return record

    logging.setLogRecordFactory(factory)
    _neutralise_set_verbose()
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
    if record.stack_info:
        record.stack_info = redact(record.stack_info, secrets)


class _VerboseToLogger(types.ModuleType):
    """The class given to ``litellm`` and ``litellm._logging``: their ``set_verbose`` always
    reads False, so no ``print_verbose`` prints; setting it True enables the DEBUG logger."""

    @property
    def set_verbose(self) -> bool:
        return False

    @set_verbose.setter
    def set_verbose(self, value: object) -> None:
        if value:
            logging.getLogger("LiteLLM").setLevel(logging.DEBUG)


def _neutralise_set_verbose() -> None:
    import litellm  # noqa: F401 (loads litellm._logging too)

    for name in ("litellm", "litellm._logging"):
        module = sys.modules[name]
        if isinstance(module, _VerboseToLogger):
            continue
        wanted = bool(vars(module).get("set_verbose"))
        # Functions inside the module read the global directly, not the property.
        vars(module)["set_verbose"] = False
        try:
            module.__class__ = _VerboseToLogger
        except TypeError:  # a module class of LiteLLM's own: the flag is at least off
            continue
        if wanted:
            module.set_verbose = True
