"""The labelled (or unlabelled) dev set that `cascade-router calibrate` runs the ladder on.

One JSON object per line::

    {"id": "q1",                                  # optional; default: line-<N>
     "messages": [{"role": "user", "content": "..."}],   # or "prompt": "..."
     "reference": "Paris",                        # optional: rows without one are unlabelled
     "grader": "exact",                           # optional: exact | contains | regex |
                                                  #   module:function (default: --grader)
     "params": {"max_tokens": 16, "temperature": 0},     # optional request parameters
     "task": "geography"}                         # optional tag (an ex-ante feature)

Lines, ids and their rules are `cascade_core.jsonl`'s, shared with `batch`: a row that is not
UTF-8 or not a JSON object, an unusable id, or a repeated id (both lines named) is refused,
since calibrate refuses bad dev rows rather than recording them.

Why unlabelled rows are allowed: lambda depends only on the router's own estimates and on
costs, so prompts without a reference still tune it (they are answered but never graded).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade_core.engine.request import build_request
from cascade_core.errors import InvalidInputError
from cascade_core.jsonl import RowIds, read_json_lines

Grader = Callable[[str, Any, dict[str, Any]], float]
BUILTIN_GRADERS = ("exact", "contains", "regex")


@dataclass(frozen=True)
class DevRow:
    """One dev-set prompt, validated exactly as the live engine validates a request."""

    id: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    reference: Any = None
    grader: str | None = None
    task: str = ""

    @property
    def labelled(self) -> bool:
        return self.reference is not None

    @property
    def prompt(self) -> str:
        """All message texts, as the estimators see a prompt (`live_estimates.prompt_text`)."""
        from cascade_core.engine.live_estimates import prompt_text

        return prompt_text({"messages": self.messages})


def row_messages(record: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """``messages`` as given, or one user message from ``prompt``."""
    if "messages" in record:
        return record["messages"]
    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise InvalidInputError(f"{where}: give 'messages' (a list) or 'prompt' (a string)")
    return [{"role": "user", "content": prompt}]


def load_dev_set(path: str | Path) -> list[DevRow]:
    path = Path(path)
    rows: list[DevRow] = []
    ids = RowIds(path)
    for line in read_json_lines(path, "dev set"):
        if line.record is None:
            raise InvalidInputError(line.problem)
        qid = ids.claim(line)
        record = line.record
        where = f"{path}:{line.number}"
        params = record.get("params") or {}
        if not isinstance(params, dict):
            raise InvalidInputError(f"{where}: params must be an object of request parameters")
        messages = row_messages(record, where)
        try:
            request = build_request(messages, dict(params))
        except InvalidInputError as error:
            raise InvalidInputError(f"{where}: {error}") from None
        grader = record.get("grader")
        if grader is not None:
            if not isinstance(grader, str):
                raise InvalidInputError(f"{where}: grader must be a string (a name or module:fn)")
            try:
                resolve_grader(grader)  # fail on a typo now, not after paying for the calls
            except InvalidInputError as error:
                raise InvalidInputError(f"{where}: {error}") from None
        rows.append(
            DevRow(
                id=qid,
                messages=request.pop("messages"),
                params=request,
                reference=record.get("reference"),
                grader=grader,
                task=str(record.get("task") or ""),
            )
        )
    if not rows:
        raise InvalidInputError(f"dev set {path}: no rows")
    return rows


def _normalise(text: str) -> str:
    return " ".join(str(text).split()).casefold().strip(" .!?\"'")


def _exact(answer: str, reference: Any, row: dict[str, Any]) -> float:
    return float(_normalise(answer) == _normalise(reference))


def _contains(answer: str, reference: Any, row: dict[str, Any]) -> float:
    return float(_normalise(reference) in _normalise(answer))


def _regex(answer: str, reference: Any, row: dict[str, Any]) -> float:
    return float(re.search(str(reference), answer, flags=re.IGNORECASE) is not None)


_BUILTIN: dict[str, Grader] = {"exact": _exact, "contains": _contains, "regex": _regex}


def resolve_grader(name: str) -> Grader:
    """A built-in grader by name, or ``module:function`` imported from the Python path.

    A custom grader is called as ``fn(answer, reference, row)`` with the raw JSON row and
    returns a bool or a score in [0, 1].
    """
    if name in _BUILTIN:
        return _BUILTIN[name]
    module_name, _, attribute = str(name).partition(":")
    if not module_name or not attribute:
        raise InvalidInputError(
            f"grader {name!r}: use one of {', '.join(BUILTIN_GRADERS)} or module:function"
        )
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise InvalidInputError(f"grader {name!r}: cannot import ({error})") from None
    if not callable(function):
        raise InvalidInputError(f"grader {name!r}: not callable")
    return function


def grade(row: DevRow, answer: str, default_grader: str) -> float:
    """The row's score in [0, 1]; a grader returning something else is an error, not a 0."""
    grader = resolve_grader(row.grader or default_grader)
    score = grader(answer, row.reference, {"id": row.id, "messages": row.messages})
    value = float(score)
    if not 0.0 <= value <= 1.0:
        raise InvalidInputError(
            f"grader {row.grader or default_grader!r} gave {score!r} for row {row.id}; "
            "return a bool or a score in [0, 1]"
        )
    return value
