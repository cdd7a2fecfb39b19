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
import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cascade_core.engine.request import build_request
from cascade_core.errors import InvalidInputError
from cascade_core.jsonl import RowIds, read_json_lines, row_request

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
        """All message texts, as the estimators see a prompt (`judges.prompt_text`)."""
        from cascade_core.engine.judges import prompt_text

        return prompt_text({"messages": self.messages})


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
        messages, params = row_request(record, where)
        try:
            request = build_request(messages, params)
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

    A custom grader is called as ``fn(answer, reference, row)``, ``row`` being
    ``{"id": ..., "messages": [...]}``, and returns a bool or a number in [0, 1] (numpy
    scalars count). Anything that stops the grader from being found (a module that fails to
    import, whatever it raises) is one `InvalidInputError` naming the grader; the original
    error is chained, so ``--debug`` shows where in the module it broke.
    """
    if not isinstance(name, str):
        raise InvalidInputError(
            f"grader {_shown(name)}: expected a name ({', '.join(BUILTIN_GRADERS)}) "
            "or module:function"
        )
    if name in _BUILTIN:
        return _BUILTIN[name]
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise InvalidInputError(
            f"grader {name!r}: use one of {', '.join(BUILTIN_GRADERS)} or module:function"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # user code runs on import: any error is the module's
        raise InvalidInputError(
            f"grader {name!r}: cannot import {module_name!r} ({type(error).__name__}: "
            f"{error}); check the module is on the Python path and imports cleanly"
        ) from error
    function = getattr(module, attribute, None)
    if function is None:
        raise InvalidInputError(f"grader {name!r}: module {module_name!r} has no {attribute!r}")
    if not callable(function):
        raise InvalidInputError(f"grader {name!r}: {attribute!r} is not callable")
    return function


def _shown(value: Any, limit: int = 60) -> str:
    """A short ``repr`` for messages (a grader may return a large array)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_score(value: Any) -> float | None:
    """A bool or a real number in [0, 1] as a float; None for anything else (None, str,
    NaN, arrays, complex numbers)."""
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if not isinstance(value, numbers.Real):
        return None
    try:
        score = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return score if 0.0 <= score <= 1.0 else None  # NaN fails both comparisons


def grade(row: DevRow, answer: str, default_grader: str) -> float:
    """The row's score in [0, 1].

    A grader that raises, or returns anything but a bool or a number in [0, 1], stops
    calibrate with one `InvalidInputError` naming the grader, the row id and the fix; the
    grader's own exception is chained (``--debug`` shows it). Why stop instead of scoring
    the row 0 or skipping it: grading is deterministic user code, so the same row fails the
    same way on every rerun, and a silent 0 would bias the fitted estimators. Nothing paid
    is lost: every answer is in the response cache, so the rerun after the fix grades again
    without calling a model.
    """
    name = row.grader or default_grader
    grader = resolve_grader(name)
    try:
        score = grader(answer, row.reference, {"id": row.id, "messages": row.messages})
    except Exception as error:
        raise InvalidInputError(
            f"grader {name!r} raised {type(error).__name__} ({error}) on row {row.id!r}; "
            "fix the grader, then rerun (the answers are cached)"
        ) from error
    value = _as_score(score)
    if value is None:
        raise InvalidInputError(
            f"grader {name!r} returned {_shown(score)} for row {row.id!r}; "
            "return a bool or a number in [0, 1]"
        )
    return value
