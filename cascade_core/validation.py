"""Pydantic validation errors as the one line a user sees, and the value types that refuse
what Python would otherwise let through.

Why one module: configs (engine), profiles (estimators) and request parameters are all
validated with pydantic, and the estimators must not import the engine. Messages are built
from each error's location and pydantic's message only, never from the input: an input may be
an API key pasted into the wrong field, and pydantic's own ``str(error)`` prints the input.

Why these types: ``bool`` is a subclass of ``int`` (``max_tokens=True`` would mean 1) and a
float field accepts ``inf`` and ``nan`` (then every request fails far from the cause).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, Field, ValidationError

from cascade_core.errors import InvalidInputError
from cascade_core.key_shapes import mask_keys

# Messages past this many are summarised as a count: one line must stay readable.
MAX_PROBLEMS_SHOWN = 5
MAX_NAME_SHOWN = 40

_M = TypeVar("_M", bound=BaseModel)


def _refuse_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


# A finite number that is not a bool. Numeric strings are accepted on purpose: PyYAML reads
# `1e-6` (no dot) as a string, and refusing it would punish a config that looks right.
Number = Annotated[float, BeforeValidator(_refuse_bool), Field(allow_inf_nan=False)]
# A finite number from a machine-written document (JSON profiles): int or float, nothing else.
StrictNumber = Annotated[float, Field(strict=True, allow_inf_nan=False)]
# An integer that is not a bool, a float or a string.
StrictInt = Annotated[int, Field(strict=True)]
# Counts (tokens, retries, windows) go to providers as 32-bit integers.
MAX_COUNT = 2**31 - 1


def field_path(location: Sequence[str | int]) -> str:
    """``models.0.api_key_env``: the location of a field inside a document. A key that is
    not a short printable name (a document's keys may be anything) is shown quoted and cut,
    so the message stays one readable line."""
    return ".".join(_shown_part(part) for part in location)


def _shown_part(part: str | int) -> str:
    text = str(part)
    if text.isprintable() and 0 < len(text) <= MAX_NAME_SHOWN:
        return text
    quoted = json.dumps(text[:MAX_NAME_SHOWN])
    return quoted if len(text) <= MAX_NAME_SHOWN else quoted[:-1] + '..."'


def describe_validation_error(
    error: ValidationError, source: str, prefix: Sequence[str | int] = ()
) -> str:
    """One line: ``source: field: problem; field: problem``, no input value ever.

    ``prefix`` is the location of the validated part inside the whole document (for a part
    validated on its own, e.g. one section of a profile).
    """
    problems: dict[str, list[str]] = {}
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        parts = [*prefix, *(p for p in item["loc"] if not _is_union_member(p))]
        messages = problems.setdefault(field_path(parts) or "(top level)", [])
        if _message(item) not in messages:  # a union reports one problem per member
            messages.append(_message(item))
    lines = [f"{location}: {', or '.join(messages)}" for location, messages in problems.items()]
    shown = lines[:MAX_PROBLEMS_SHOWN]
    if len(lines) > len(shown):
        shown.append(f"and {len(lines) - len(shown)} more")
    # Locations name the document's keys, which may be anything, a pasted key included.
    return mask_keys(f"{source}: " + "; ".join(shown))


# How pydantic names the members of a union in an error's location: `str`, `list[str]`,
# `function-after[...]`. Document keys never look like that.
_UNION_MEMBER = re.compile(r"(?:str|int|float|bool|none|dict|list|[a-z-]+\[.*\])")


def _is_union_member(part: str | int) -> bool:
    return isinstance(part, str) and _UNION_MEMBER.fullmatch(part) is not None


def _message(item: Any) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling against the documented fields)"
    if kind == "missing":
        return "required, but missing"
    if kind == "finite_number":
        return "must be a finite number (not inf or nan)"
    if kind == "int_type":
        return "must be an integer (true/false, decimals and strings are not)"
    if kind == "bool_type":
        return "must be true or false"
    if kind == "float_type":
        return "must be a number"
    message = str(item["msg"])
    return message.removeprefix("Value error, ")


def validate_as(schema: type[_M], data: Any, source: str, prefix: Sequence[str | int] = ()) -> _M:
    """``schema.model_validate(data)``, with errors as one `InvalidInputError` line."""
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        raise InvalidInputError(describe_validation_error(error, source, prefix)) from None
    except RecursionError:  # a self-referencing YAML anchor, or absurd nesting
        raise InvalidInputError(
            f"{source}: nested too deeply (a YAML anchor that refers to itself?)"
        ) from None
