"""Loaders that turn logged model outputs into a `ReplayDataset`.

Supported inputs (``.gz`` accepted everywhere; `load_replay` picks the loader by file name):

* **Generic replay JSONL** (``.jsonl``), the format to write from your own production logs,
  and also the format of the cascade logs in ``../shared/data/cascade_logs``. One JSON
  object per line, one line per query; every line must hold the same models::

      {"id": "q-17",                         # required, str or int, unique in the file
       "prompt": "What is ...?",             # optional str (default "")
       "task": "support",                    # optional str tag (default "")
       "models": {                           # required, non-empty object
         "small-model": {
           "quality": 0.8,                   # number in [0, 1] (graded score), or
           "correct": true,                  #   bool (1/0 also accepted); one of the two is
                                             #   required; if both are given they must agree
           "cost_usd": 0.00012,              # required, number >= 0 (actual cost of the call)
           "logprobs": [-0.01, -1.2],        # optional list of token logprobs (numbers <= 0)
           "top_logprobs": [[-0.01, -4.7],   # optional, needs "logprobs": per token, the
                            [-1.2, -0.4, -3.1]],  # logprobs of its top-k alternatives (the
                                             #   engine asks for 5; [] or null for a token
                                             #   without); feeds the entropy/margin features
           "confidence_logprob": -0.3,       # optional number <= 0: one logged confidence
           "answer": "Paris",                # optional str: for agreement features
           "tokens_in": 120,                 # optional number >= 0
           "tokens_out": 3,                  # optional number >= 0
           "latency_ms": 244.4               # optional number >= 0: the call's wall time
         },
         "big-model": {...}}}

  ``top_logprobs`` is what ``calibrate --save-replay`` writes from the providers'
  ``logprobs.content[i].top_logprobs`` (only the numbers; token strings are not needed), so
  a profile fitted on a saved replay sees the same entropy and margin features as the live
  engine. Without it those two features are NaN (unknown) for that model and query.

  ``latency_ms`` (milliseconds, as the cascade logs write it) becomes
  ``ReplayDataset.latency_s`` in seconds, what ``bench --latency-weight`` prices.
  Unknown keys are ignored. ``null`` means "not logged" for the
  optional fields. Signal ``confidence_logprob`` is the logged value, or, when only
  ``logprobs`` is given, their sum (the log-probability of the whole answer); cells with
  neither are NaN.

  **Probability 0** is a log-probability of ``-inf``, which real logs contain (a token the
  model ranked below its sampling floor, a verifier that never says "Y"). It is accepted in
  ``logprobs`` and ``confidence_logprob`` written as the JSON token ``-Infinity`` (what
  Python's ``json`` writes) or as the string ``"-inf"``/``"-Infinity"``; the feature
  builders clip it to their floor, so no estimate becomes NaN. NaN and ``+inf`` stay errors,
  as does a clearly positive log-probability (above `POSITIVE_TOLERANCE`).

  Any bad or missing field, a line that is not UTF-8, and a truncated or corrupt ``.gz``
  raise one `ReplayFormatError` naming the file, the line and the field.

* **RouterBench column format** (``.csv`` and the original pandas pickle ``.pkl``): columns
  ``sample_id, prompt, eval_name``, per model ``<model>`` (score 0..1),
  ``<model>|model_response``, ``<model>|total_cost``, and ``oracle_model_to_route_to``
  (ignored: the oracle is recomputed from the scores). Models are the columns ending in
  ``|total_cost``. Prompts/responses stored as a Python list literal (``"['text']"``) are
  unwrapped to their text (elements joined by a blank line).

  **Empty cells** (empty CSV field, None or NaN) in a score or cost column mean *the value
  was never recorded*; they are neither a wrong answer nor a free call. By default
  (``missing="drop"``) a row is dropped when any *selected* model has an empty score or
  cost cell, a `ReplayDataWarning` says how many rows were dropped, and their ids are kept
  in ``ReplayDataset.dropped_ids``; ``missing="raise"`` raises `ReplayFormatError` at the
  first empty cell instead. Why not 0 or imputation: in the real RouterBench rows the empty
  cells (154 score cells, all in arc-challenge) sit on 14 sample ids that appear twice with
  different prompts (a merge artifact, the two twins each graded for only some models);
  scoring them 0 would penalise the models that happened not to be graded, and borrowing
  the twin's grade would be a guess. Empty response cells are just "" (not needed to score).
  Scores and costs must be finite numbers.

`ReplayFormatError` is an `InvalidInputError`: the CLI prints it as one line and exits 2.

Pickles run code when loaded: load only pickles you trust.
"""

from __future__ import annotations

import ast
import csv
import errno
import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cascade_core.errors import InvalidInputError
from cascade_core.estimators.features import CONFIDENCE_SIGNAL, confidence_signal
from cascade_core.signals.logprob_features import POSITIVE_TOLERANCE
from cascade_core.textfiles import TextFileError, iter_lines

from .dataset import ReplayDataset, concat_datasets

__all__ = [
    "DATA_ENV_VAR",
    "ReplayDataWarning",
    "ReplayFormatError",
    "default_data_dir",
    "load_cascade_log",
    "load_cascade_logs",
    "load_replay",
    "load_replay_jsonl",
    "load_routerbench_csv",
    "load_routerbench_pickle",
]

DATA_ENV_VAR = "CASCADE_ROUTER_DATA"
CONFIDENCE = CONFIDENCE_SIGNAL
Missing = Literal["drop", "raise"]


class ReplayFormatError(InvalidInputError):
    """A replay file is malformed; the message names the file, line (or row) and field,
    as ``path:line: field 'x': reason`` (the ``file:line`` form editors jump to)."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        line: int | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.row = row
        self.field = field
        self.reason = message
        where = self.path or "<replay>"
        if line is not None:
            where += f":{line}"
        parts = [where]
        if row is not None:
            parts.append(f"row {row}")
        if field is not None:
            parts.append(f"field {field!r}")
        super().__init__(f"{': '.join(parts)}: {message}")


class ReplayDataWarning(UserWarning):
    """Data was left out while loading (e.g. rows with empty cells); the message says how much."""


# ---------------------------------------------------------------------------- helpers
def default_data_dir() -> Path | None:
    """The shared replay data: ``$CASCADE_ROUTER_DATA`` or ``<repo>/../shared/data``.

    Returns None when the folder does not exist (e.g. a package installed from an index),
    so tests and benchmarks can skip with a clear reason instead of failing.
    """
    env = os.environ.get(DATA_ENV_VAR)
    candidate = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
    return candidate if candidate.is_dir() else None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """`iter_lines` with its errors as `ReplayFormatError` (same file and line)."""
    try:
        yield from iter_lines(path)
    except TextFileError as error:
        raise ReplayFormatError(error.reason, path=error.path, line=error.line) from None


def _short(value: Any, limit: int = 60) -> str:
    """``value`` as JSON text (as the user wrote it: ``NaN``, ``"1"``), cut to ``limit``
    characters, so an error message stays one readable line."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # pickle cells hold Python objects
        text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".jsonl", ".json", ".csv", ".pkl", ".pickle"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _as_float(x: Any) -> float | None:
    """A JSON number as a float (ints too large for a float become inf); None otherwise."""
    if not _is_number(x):
        return None
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


_MINUS_INFINITY = frozenset({"-inf", "-infinity"})


def _logprob(x: Any) -> float | None:
    """A log-probability: a number <= `POSITIVE_TOLERANCE` or -inf (also written as the
    string "-inf"/"-Infinity"); None when ``x`` is not one (NaN, +inf, positive, other)."""
    if isinstance(x, str) and x.strip().lower() in _MINUS_INFINITY:
        return -math.inf
    value = _as_float(x)
    if value is None or math.isnan(value) or value > POSITIVE_TOLERANCE:
        return None
    return value


def _is_empty(x: Any) -> bool:
    if x is None:
        return True
    if isinstance(x, str):
        return x.strip() == ""
    return isinstance(x, float) and math.isnan(x)


def _unwrap_text(x: Any) -> str:
    """Text of a prompt/response cell; RouterBench stores them as Python list literals."""
    if _is_empty(x):
        return ""
    if isinstance(x, (list, tuple)):
        return "\n\n".join(str(e) for e in x)
    text = str(x)
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return text
        if isinstance(value, (list, tuple)) and all(isinstance(e, str) for e in value):
            return "\n\n".join(value)
    return text


# ---------------------------------------------------------------------------- generic JSONL
class _LineParser:
    """Checks one JSONL record; every error names file, line and field."""

    def __init__(self, path: Path, line: int) -> None:
        self.path, self.line = path, line

    def error(self, field: str | None, message: str) -> ReplayFormatError:
        return ReplayFormatError(message, path=self.path, line=self.line, field=field)

    def number(
        self,
        obj: Mapping[str, Any],
        key: str,
        field: str,
        *,
        lo: float | None = None,
        hi: float | None = None,
        required: bool = True,
    ) -> float:
        if key not in obj or obj[key] is None:
            if required:
                raise self.error(field, "missing")
            return math.nan
        value = _as_float(obj[key])
        if value is None or not math.isfinite(value):
            raise self.error(field, f"expected a finite number, got {_short(obj[key])}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.error(field, f"{value!r} outside [{lo}, {hi if hi is not None else 'inf'}]")
        return value

    def confidence(self, entry: Mapping[str, Any], field: str) -> float:
        """The logged confidence log-probability; NaN when not logged, -inf allowed."""
        raw = entry.get(CONFIDENCE)
        if raw is None:
            return math.nan
        value = _logprob(raw)
        if value is None:
            raise self.error(
                field, f"expected a log-probability (a number <= 0 or -inf), got {_short(raw)}"
            )
        return value

    def quality(self, entry: Mapping[str, Any], field: str) -> float:
        has_q = entry.get("quality") is not None
        has_c = entry.get("correct") is not None
        if not has_q and not has_c:
            raise self.error(f"{field}.quality", "missing (give 'quality' in [0, 1] or 'correct')")
        correct = math.nan
        if has_c:
            c = entry["correct"]
            if isinstance(c, bool) or (_is_number(c) and c in (0, 1)):
                correct = float(c)
            else:
                raise self.error(f"{field}.correct", f"expected true/false, got {_short(c)}")
        if not has_q:
            return correct
        q = self.number(entry, "quality", f"{field}.quality", lo=0.0, hi=1.0)
        if has_c and q != correct:
            raise self.error(f"{field}.quality", f"quality {q} disagrees with correct={correct}")
        return q

    def logprobs(self, entry: Mapping[str, Any], field: str) -> np.ndarray | None:
        value = entry.get("logprobs")
        if value is None:
            return None
        return np.asarray(self._logprob_list(value, f"{field}.logprobs"), dtype=float)

    def _logprob_list(self, value: Any, field: str) -> list[float]:
        """A JSON list of log-probabilities; an error names the first bad element."""
        if not isinstance(value, list):
            raise self.error(field, "expected a list of numbers")
        parsed = []
        for i, raw in enumerate(value):
            v = _logprob(raw)
            if v is None:
                raise self.error(
                    f"{field}[{i}]",
                    f"expected a log-probability (a number <= 0 or -inf), got {_short(raw)}",
                )
            parsed.append(v)
        return parsed

    def top_logprobs(
        self, entry: Mapping[str, Any], field: str, logprobs: np.ndarray | None
    ) -> tuple[tuple[float, ...], ...] | None:
        """Per token, the logprobs of its alternatives; one entry per token of ``logprobs``."""
        value = entry.get("top_logprobs")
        if value is None:
            return None
        name = f"{field}.top_logprobs"
        if not isinstance(value, list):
            raise self.error(name, "expected a list with one list of numbers per token")
        if logprobs is None:
            raise self.error(name, "given without 'logprobs'; log the token logprobs too")
        if len(value) != len(logprobs):
            raise self.error(
                name, f"{len(value)} entries for {len(logprobs)} token logprobs; give one per token"
            )
        return tuple(
            () if alternatives is None else tuple(self._logprob_list(alternatives, f"{name}[{i}]"))
            for i, alternatives in enumerate(value)
        )


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    for line_no, raw in _lines(path):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ReplayFormatError(
                f"not valid JSON ({exc.msg} at column {exc.colno})", path=path, line=line_no
            ) from None
        except (ValueError, RecursionError) as exc:  # over-long integers, deep nesting
            raise ReplayFormatError(f"not usable JSON ({exc})", path=path, line=line_no) from None
        yield line_no, record


def load_replay_jsonl(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    models: Sequence[str] | None = None,
    require_signals: Iterable[str] = (),
) -> ReplayDataset:
    """Load the generic replay JSONL format described in this module's docstring.

    ``models`` selects (and orders) models; by default the first line's models, sorted
    cheapest first by mean cost. ``require_signals`` turns a missing signal into an error
    (for data whose evaluation depends on it).
    """
    path = Path(path)
    required = tuple(require_signals)
    unknown = [s for s in required if s != CONFIDENCE]
    if unknown:
        raise ValueError(
            f"unknown required signals {unknown}; this format logs only {CONFIDENCE!r}"
        )
    ids: dict[str, int] = {}
    prompts: list[str] = []
    tasks: list[str] = []
    quality: list[list[float]] = []
    cost: list[list[float]] = []
    conf: list[list[float]] = []
    answers: list[list[str | None]] = []
    logprobs: list[list[np.ndarray | None]] = []
    top_logprobs: list[list[tuple[tuple[float, ...], ...] | None]] = []
    tok_in: list[list[float]] = []
    tok_out: list[list[float]] = []
    latency_ms: list[list[float]] = []
    names: list[str] | None = list(models) if models is not None else None

    for line_no, rec in _read_jsonl(path):
        p = _LineParser(path, line_no)
        if not isinstance(rec, dict):
            raise p.error(None, f"expected a JSON object, got {type(rec).__name__}")
        if rec.get("id") is None:
            raise p.error("id", "missing")
        if not isinstance(rec["id"], (str, int)) or isinstance(rec["id"], bool):
            raise p.error("id", f"expected a string or integer, got {_short(rec['id'])}")
        qid = str(rec["id"])
        if qid in ids:
            raise p.error("id", f"duplicate id {qid!r} (first on line {ids[qid]})")
        ids[qid] = line_no
        for key in ("prompt", "task"):
            if rec.get(key) is not None and not isinstance(rec[key], str):
                raise p.error(key, f"expected a string, got {type(rec[key]).__name__}")
        prompts.append(rec.get("prompt") or "")
        tasks.append(rec.get("task") or "")
        entries = rec.get("models")
        if not isinstance(entries, dict) or not entries:
            raise p.error("models", "missing or not a non-empty object")
        if names is None:
            names = list(entries)
        elif models is None:
            extra = [m for m in entries if m not in names]
            if extra:
                raise p.error(
                    f"models.{extra[0]}",
                    f"model {extra[0]!r} is not on the first line (every line needs the same "
                    "models; pass models=[...] to select some)",
                )
        row = {k: [] for k in ("q", "c", "conf", "ans", "lp", "top", "ti", "to", "ms")}
        for m in names:
            field = f"models.{m}"
            entry = entries.get(m)
            if entry is None:
                raise p.error(field, f"model {m!r} missing (every line needs the same models)")
            if not isinstance(entry, dict):
                raise p.error(field, "expected an object")
            row["q"].append(p.quality(entry, field))
            row["c"].append(p.number(entry, "cost_usd", f"{field}.cost_usd", lo=0.0))
            lp = p.logprobs(entry, field)
            c = confidence_signal(
                p.confidence(entry, f"{field}.{CONFIDENCE}"),
                None if lp is None else float(lp.sum()),
            )
            if math.isnan(c) and CONFIDENCE in required:
                raise p.error(f"{field}.{CONFIDENCE}", "missing (required signal)")
            row["conf"].append(c)
            row["lp"].append(lp)
            row["top"].append(p.top_logprobs(entry, field, lp))
            ans = entry.get("answer")
            if ans is not None and not isinstance(ans, str):
                raise p.error(f"{field}.answer", f"expected a string, got {type(ans).__name__}")
            row["ans"].append(ans)
            row["ti"].append(
                p.number(entry, "tokens_in", f"{field}.tokens_in", lo=0.0, required=False)
            )
            row["to"].append(
                p.number(entry, "tokens_out", f"{field}.tokens_out", lo=0.0, required=False)
            )
            row["ms"].append(
                p.number(entry, "latency_ms", f"{field}.latency_ms", lo=0.0, required=False)
            )
        quality.append(row["q"])
        cost.append(row["c"])
        conf.append(row["conf"])
        answers.append(row["ans"])
        logprobs.append(row["lp"])
        top_logprobs.append(row["top"])
        tok_in.append(row["ti"])
        tok_out.append(row["to"])
        latency_ms.append(row["ms"])

    if names is None or not ids:
        raise ReplayFormatError("no queries in file", path=path)
    n, k = len(ids), len(names)

    def objects(rows: list[list[Any]]) -> np.ndarray | None:
        if all(v is None for r in rows for v in r):
            return None
        arr = np.empty((n, k), dtype=object)
        for i, r in enumerate(rows):
            for j, v in enumerate(r):
                arr[i, j] = v
        return arr

    def floats(rows: list[list[float]]) -> np.ndarray | None:
        arr = np.asarray(rows, dtype=float)
        return None if np.all(np.isnan(arr)) else arr

    conf_arr = floats(conf)
    latency = floats(latency_ms)
    ds = ReplayDataset(
        name=name or _stem(path),
        model_names=names,
        query_ids=list(ids),
        prompts=prompts,
        tasks=tasks,
        quality=np.asarray(quality, dtype=float),
        cost=np.asarray(cost, dtype=float),
        signals={} if conf_arr is None else {CONFIDENCE: conf_arr},
        answers=objects(answers),
        logprobs=objects(logprobs),
        top_logprobs=objects(top_logprobs),
        tokens_in=floats(tok_in),
        tokens_out=floats(tok_out),
        latency_s=None if latency is None else latency / 1000.0,
    )
    return ds if models is not None else ds.sorted_by_cost()


def load_cascade_log(path: str | os.PathLike[str]) -> ReplayDataset:
    """One cascade-logs file (``<task>_llama_<split>.jsonl.gz``): the generic JSONL format
    with ``correct`` as quality and the logged ``confidence_logprob`` required."""
    return load_replay_jsonl(path, require_signals=(CONFIDENCE,))


_CASCADE_FILE = re.compile(r"^(?P<task>.+?)_(?P<chain>[^_]+)_(?P<split>[^_]+)\.jsonl(\.gz)?$")


def load_cascade_logs(
    directory: str | os.PathLike[str], split: str
) -> tuple[dict[str, ReplayDataset], ReplayDataset]:
    """All ``<task>_<chain>_<split>.jsonl[.gz]`` files of one split.

    Returns (task -> dataset, pooled dataset named "pooled"), tasks sorted by name.
    """
    directory = Path(directory)
    per_task: dict[str, ReplayDataset] = {}
    for f in sorted(directory.iterdir()):
        m = _CASCADE_FILE.match(f.name)
        if m is None or m.group("split") != split:
            continue
        task = m.group("task")
        if task in per_task:
            raise ReplayFormatError(
                f"two files for task {task!r} in split {split!r}; keep one", path=f
            )
        ds = load_cascade_log(f)
        per_task[task] = replace(ds, name=task)
    if not per_task:
        raise FileNotFoundError(
            errno.ENOENT, f"no <task>_<chain>_{split}.jsonl[.gz] files", str(directory)
        )
    return per_task, concat_datasets(list(per_task.values()), name="pooled")


# ---------------------------------------------------------------------------- CSV
def _check_unique_columns(columns: Sequence[str], path: Path) -> None:
    """Rows become ``{column: value}`` dicts, where a repeated column would hide a value."""
    seen: set[str] = set()
    for col in columns:
        if col in seen:
            raise ReplayFormatError("column appears twice in the header", path=path, field=col)
        seen.add(col)


def read_csv(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header and ``(line where the record starts, {column: value})`` per record.

    Records may span lines (quoted newlines); the line reported is the physical line where
    the offending record starts. A malformed record (NUL byte, unterminated quote, over-long
    field, wrong number of fields) raises `ReplayFormatError`.
    """
    reader = csv.reader(text for _, text in _lines(path))

    def record(start: int) -> list[str] | None:
        try:
            return next(reader)
        except StopIteration:
            return None
        except csv.Error as error:
            raise ReplayFormatError(f"not valid CSV ({error})", path=path, line=start) from None

    header = record(1)
    if header is None:
        raise ReplayFormatError("empty file", path=path)
    _check_unique_columns(header, path)

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        start = reader.line_num + 1
        while (values := record(start)) is not None:
            if len(values) != len(header):
                raise ReplayFormatError(
                    f"{len(values)} fields, header has {len(header)}", path=path, line=start
                )
            yield start, dict(zip(header, values, strict=True))
            start = reader.line_num + 1

    return header, rows()


# ---------------------------------------------------------------------------- RouterBench
_COST_SUFFIX = "|total_cost"
_RESPONSE_SUFFIX = "|model_response"


def _routerbench_from_rows(
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    columns: Sequence[str],
    *,
    path: Path,
    where: Literal["line", "row"],
    models: Sequence[str] | None,
    missing: Missing,
    name: str | None,
) -> ReplayDataset:
    if missing not in ("drop", "raise"):
        raise ValueError(f"missing must be 'drop' or 'raise', got {missing!r}")
    all_models = [c[: -len(_COST_SUFFIX)] for c in columns if c.endswith(_COST_SUFFIX)]
    if not all_models:
        raise ReplayFormatError(f"no '<model>{_COST_SUFFIX}' columns", path=path)
    for col in ("sample_id", *all_models):
        if col not in columns:
            raise ReplayFormatError("column missing", path=path, field=col)
    selected = list(models) if models is not None else all_models
    for m in selected:
        if m not in all_models:
            raise ReplayFormatError(
                f"no columns for model {m!r}; known models: {', '.join(all_models)}",
                path=path,
                field=m,
            )

    def err(pos: int, field: str, message: str) -> ReplayFormatError:
        loc = {"line": pos} if where == "line" else {"row": pos}
        return ReplayFormatError(message, path=path, field=field, **loc)

    def cell(rec: Mapping[str, Any], col: str, pos: int, lo: float, hi: float) -> float | None:
        raw = rec.get(col)
        if _is_empty(raw):
            if missing == "raise":
                raise err(pos, col, "empty cell")
            return None
        try:
            value = float(raw)
        except (TypeError, ValueError, OverflowError):
            raise err(pos, col, f"expected a number, got {_short(raw)}") from None
        if not math.isfinite(value):
            raise err(pos, col, f"expected a finite number, got {_short(raw)}")
        if not (lo <= value <= hi):
            raise err(pos, col, f"{value!r} outside [{lo}, {hi}]")
        return value

    ids, prompts, tasks, quality, cost, answers, dropped = [], [], [], [], [], [], []
    for pos, rec in rows:
        if _is_empty(rec.get("sample_id")):
            raise err(pos, "sample_id", "missing")
        qid = str(rec["sample_id"])
        q = [cell(rec, m, pos, 0.0, 1.0) for m in selected]
        c = [cell(rec, m + _COST_SUFFIX, pos, 0.0, math.inf) for m in selected]
        if any(v is None for v in q + c):
            dropped.append(qid)
            continue
        ids.append(qid)
        prompts.append(_unwrap_text(rec.get("prompt")))
        tasks.append("" if _is_empty(rec.get("eval_name")) else str(rec["eval_name"]))
        quality.append(q)
        cost.append(c)
        answers.append([_unwrap_text(rec.get(m + _RESPONSE_SUFFIX)) for m in selected])

    if dropped:
        warnings.warn(
            f"{path}: dropped {len(dropped)} of {len(dropped) + len(ids)} rows with an empty"
            f" score or cost cell for a selected model (ids in dataset.dropped_ids)",
            ReplayDataWarning,
            stacklevel=3,
        )
    if not ids:
        raise ReplayFormatError("no complete rows left for the selected models", path=path)
    ans = np.empty((len(ids), len(selected)), dtype=object)
    for i, r in enumerate(answers):
        ans[i, :] = r
    ds = ReplayDataset(
        name=name or _stem(path),
        model_names=selected,
        query_ids=ids,
        prompts=prompts,
        tasks=tasks,
        quality=np.asarray(quality, dtype=float),
        cost=np.asarray(cost, dtype=float),
        answers=ans,
        dropped_ids=tuple(dropped),
    )
    return ds if models is not None else ds.sorted_by_cost()


def load_routerbench_csv(
    path: str | os.PathLike[str],
    *,
    models: Sequence[str] | None = None,
    missing: Missing = "drop",
    name: str | None = None,
) -> ReplayDataset:
    """RouterBench columns from CSV (``.csv``/``.csv.gz``); empty cells as in the module doc.

    Errors give the physical line on which the offending record starts.
    """
    path = Path(path)
    header, rows = read_csv(path)
    return _routerbench_from_rows(
        rows, header, path=path, where="line", models=models, missing=missing, name=name
    )


def load_routerbench_pickle(
    path: str | os.PathLike[str],
    *,
    models: Sequence[str] | None = None,
    missing: Missing = "drop",
    name: str | None = None,
) -> ReplayDataset:
    """RouterBench's original layout: a pickled pandas DataFrame with the same columns.

    Needs pandas (only here). Errors give the 0-based row position. Load trusted files only.
    """
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("reading RouterBench pickles needs pandas: pip install pandas") from exc
    path = Path(path)
    try:
        frame = pd.read_pickle(path)
    except OSError as error:
        raise ReplayFormatError(f"cannot read ({error.strerror or error})", path=path) from None
    except Exception as error:  # unpickling arbitrary bytes can fail in any way at all
        raise ReplayFormatError(
            f"not a readable pandas pickle ({type(error).__name__}: {error})", path=path
        ) from None
    if not isinstance(frame, pd.DataFrame):
        raise ReplayFormatError(
            f"expected a pickled DataFrame, got {type(frame).__name__}", path=path
        )
    columns = [str(c) for c in frame.columns]
    _check_unique_columns(columns, path)
    records = frame.to_dict("records")
    rows = ((i, {str(k): v for k, v in r.items()}) for i, r in enumerate(records))
    return _routerbench_from_rows(
        rows, columns, path=path, where="row", models=models, missing=missing, name=name
    )


# ---------------------------------------------------------------------------- dispatch
def load_replay(path: str | os.PathLike[str], **kwargs: Any) -> ReplayDataset:
    """Load any supported replay file, chosen by extension (``.gz`` allowed):
    ``.jsonl`` -> `load_replay_jsonl`, ``.csv`` -> `load_routerbench_csv`,
    ``.pkl``/``.pickle`` -> `load_routerbench_pickle`. Keyword arguments pass through."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith(".jsonl"):
        return load_replay_jsonl(path, **kwargs)
    if name.endswith(".csv"):
        return load_routerbench_csv(path, **kwargs)
    if name.endswith((".pkl", ".pickle")):
        return load_routerbench_pickle(path, **kwargs)
    raise ReplayFormatError(
        "unsupported replay file; expected .jsonl, .csv, .pkl or .pickle (optionally .gz)",
        path=path,
    )
