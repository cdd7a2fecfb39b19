"""JSON Lines input read line by line, with row ids unique by construction.

One reader serves the `batch` input and the `calibrate` dev set, so line numbers, default
ids, the duplicate check and a row's request (`row_request`: messages or prompt, params) mean
the same thing in both.

Reading. The file is read as bytes and split on ``\\n`` only (the JSON Lines separator; a
``\\r`` before it is JSON whitespace). Each line is decoded on its own, so a non-UTF-8 byte is
the problem of its line alone, and a U+2028 inside a JSON string does not split a row (as
``str.splitlines`` would). Blank lines are skipped but counted. A UTF-8 byte-order mark at
the start of the file is ignored.

Ids. A row's ``id`` is a non-empty string, or an integer, which stands for its decimal
string (``7`` and ``"7"`` are the same id). A row without one (or with ``null``), and a line
that is not a JSON object at all, gets ``line-N`` from its line number. Given ids of that
form (``line-`` and digits) are refused, so a default id can never equal an id given on
another line: one line number, one default. Any other repeated id is refused with the
file:line of both rows, before anything runs, because the resumable output is keyed by id
and a second row with the same id would silently never run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade_core.errors import InvalidInputError

_RESERVED_ID = re.compile(r"line-[0-9]+")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class JsonLine:
    """One non-blank line: its JSON object, or why it is not one (``problem``, a full
    sentence naming file:line and the fix)."""

    number: int
    record: dict[str, Any] | None
    problem: str | None = None


def read_json_lines(path: str | Path, what: str) -> Iterator[JsonLine]:
    """The non-blank lines of ``path`` (``what`` names the file in a read error)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed below; open errors become one line)
    except OSError as error:
        raise InvalidInputError(
            f"{what} {path}: cannot read ({error.strerror}); check the path"
        ) from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            if raw.strip():
                yield parse_line(raw, f"{path}:{number}", number)


def parse_line(raw: bytes, where: str, number: int) -> JsonLine:
    """A line's JSON object, or the problem that stops it being one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return JsonLine(
            number,
            None,
            f"{where}: not UTF-8 (byte 0x{raw[error.start]:02x} at byte {error.start + 1} "
            "of the line); save the file as UTF-8",
        )
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        return JsonLine(
            number, None, f"{where}: invalid JSON ({error.msg} at column {error.colno})"
        )
    except ValueError:  # an integer beyond Python's digit limit for int()
        return JsonLine(number, None, f"{where}: invalid JSON (a number too long to read)")
    except RecursionError:
        return JsonLine(number, None, f"{where}: invalid JSON (nested too deeply)")
    if not isinstance(record, dict):
        return JsonLine(number, None, f"{where}: expected a JSON object, got {_json_type(record)}")
    return JsonLine(number, record)


def fallback_id(number: int) -> str:
    """The id of a row on line ``number`` that gives none (a form given ids may not take)."""
    return f"line-{number}"


def row_id(record: dict[str, Any], where: str, number: int) -> str:
    """The row's id as a string, or its line's fallback id; refuses ids that could collide."""
    value = record.get("id")
    if value is None:
        return fallback_id(number)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInputError(
            f"{where}: id must be a string or an integer, not {_json_type(value)}"
        )
    key = str(value)
    if not key:
        raise InvalidInputError(f"{where}: id is empty; give a non-empty string or omit it")
    if isinstance(value, str) and _RESERVED_ID.fullmatch(key):
        raise InvalidInputError(
            f"{where}: id {_show(key)} is reserved (line-<N> is the id of a row without one, "
            "so it could name another row); rename it"
        )
    return key


def row_request(record: dict[str, Any], where: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A request row's messages and parameters: ``messages`` as given, or one user message
    from ``prompt``, and ``params`` (a copy, default none). Only their shape is checked here;
    the request builder validates what they hold, as it does for a live request."""
    if "messages" in record:
        messages = record["messages"]
    else:
        prompt = record.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise InvalidInputError(f"{where}: give 'messages' (a list) or 'prompt' (a string)")
        messages = [{"role": "user", "content": prompt}]
    params = record.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidInputError(
            f"{where}: params must be an object of request parameters, not {_json_type(params)}"
        )
    return messages, dict(params)


class RowIds:
    """Hands out each row's id once per file; a repeat names the lines of both rows."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._first_line: dict[str, int] = {}

    def claim(self, line: JsonLine) -> str:
        where = f"{self.path}:{line.number}"
        if line.record is None:
            key = fallback_id(line.number)
        else:
            key = row_id(line.record, where, line.number)
        first = self._first_line.setdefault(key, line.number)
        if first != line.number:
            raise InvalidInputError(
                f"{where}: duplicate id {_show(key)}, also on {self.path}:{first}; "
                "give every row its own id (the output is keyed by id)"
            )
        return key


def _show(key: str, limit: int = 60) -> str:
    text = repr(key)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a number written with a fraction or an exponent"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"
