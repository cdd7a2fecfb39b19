"""Exception types that callers are expected to catch."""

from __future__ import annotations


class InvalidInputError(ValueError):
    """Input that cannot be used as given; the message names the field and the fix."""
