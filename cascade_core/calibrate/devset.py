"""The labelled (or unlabelled) dev set that `cascade-router calibrate` runs the ladder on.

One JSON object per line::

    {"id": "q1",                                  # optional; default: the line number
     "messages": [{"role": "user", "content": "..."}],   # or "prompt": "..."
     "reference": "Paris",                        # optional: rows without one are unlabelled
     "grader": "exact",                           # optional: exact | contains | regex |
                                                  #   module:function (default: --grader)
     "params": {"max_tokens": 16, "temperature": 0},     # optional request parameters
     "task": "geography"}                         # optional tag (an ex-ante feature)

Why unlabelled rows are allowed: lambda depends only on the router's own estimates and on
costs, so prompts without a reference still tune it (they are answered but never graded).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade_core.engine.request import build_request
from cascade_core.errors import InvalidInputError

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


def row_id(record: dict[str, Any], line_no: int) -> str:
    """The row's id, or its line number: stable as long as the file is not reordered."""
    value = record.get("id")
    return f"line-{line_no}" if value is None else str(value)


def load_dev_set(path: str | Path) -> list[DevRow]:
    path = Path(path)
    rows: list[DevRow] = []
    seen: dict[str, int] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InvalidInputError(f"dev set: cannot read {path}: {error.strerror}") from None
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InvalidInputError(f"{where}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise InvalidInputError(f"{where}: expected a JSON object")
        qid = row_id(record, line_no)
        if qid in seen:
            raise InvalidInputError(f"{where}: duplicate id {qid!r} (first on line {seen[qid]})")
        seen[qid] = line_no
        params = record.get("params") or {}
        try:
            request = build_request(row_messages(record, where), dict(params))
        except InvalidInputError as error:
            raise InvalidInputError(f"{where}: {error}") from None
        grader = record.get("grader")
        if grader is not None:
            resolve_grader(grader)  # fail on a typo now, not after paying for the calls
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
