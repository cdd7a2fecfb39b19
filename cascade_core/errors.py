"""Exception types that callers are expected to catch."""

from __future__ import annotations


class InvalidInputError(ValueError):
    """Input that cannot be used as given; the message names the field and the fix."""


class CascadeError(RuntimeError):
    """A request the router could not answer."""


class AllModelsFailedError(CascadeError):
    """No model of the ladder produced an answer; ``errors`` maps each model to why.

    The messages are redacted: API keys never appear in them.
    """

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        details = "; ".join(f"{name}: {reason}" for name, reason in self.errors.items())
        super().__init__(f"no model produced an answer ({details})")


class CascadeStreamError(CascadeError):
    """A stream broke after part of its (final) answer had been sent to the caller: the
    model failed mid-stream, or the streamed answer turned out unusable."""
