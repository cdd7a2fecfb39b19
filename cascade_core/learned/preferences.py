"""Training data of the learned routers: pairwise comparisons between models on prompts.

Two sources give the same `Comparisons`:

* per-model correctness or graded scores (every replay format we load): for each prompt and
  each pair of models, outcome = (1 + q_a - q_b) / 2, i.e. 1 when a was right and b wrong,
  0 the other way round, 0.5 a tie (both right or both wrong; graded scores in between);
* pairwise preferences in Chatbot Arena's battle format: ``prompt`` (or the first user turn of
  ``conversation_a``), ``model_a``, ``model_b``, ``winner`` in ``model_a`` | ``model_b`` |
  ``tie`` | ``tie (bothbad)`` (ties are half a win each).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

WINNER_OUTCOME = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}


@dataclass(frozen=True)
class Comparisons:
    """Battles: prompt index ``query``, models ``a`` and ``b`` (column indices), ``outcome``
    = P(a beats b) in [0, 1] (0.5 a tie), and a non-negative ``weight``."""

    query: np.ndarray
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    weight: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.query)
        for name in ("a", "b", "outcome", "weight"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Comparisons.{name} has {len(getattr(self, name))} rows, not {n}")
        if n and (np.any(self.outcome < 0) or np.any(self.outcome > 1)):
            raise ValueError("Comparisons.outcome must lie in [0, 1]")
        if n and np.any(self.a == self.b):
            raise ValueError("a battle needs two different models")

    def __len__(self) -> int:
        return len(self.query)

    def subset_queries(self, keep: np.ndarray, remap: np.ndarray) -> Comparisons:
        """Battles whose query is in the boolean mask ``keep``; query indices mapped by
        ``remap`` (old index -> new index)."""
        rows = keep[self.query]
        return Comparisons(
            remap[self.query[rows]],
            self.a[rows],
            self.b[rows],
            self.outcome[rows],
            self.weight[rows],
        )


def comparisons_from_quality(quality: np.ndarray, *, include_ties: bool = True) -> Comparisons:
    """Every model pair on every prompt, outcome (1 + q_a - q_b) / 2 (ties optional)."""
    q = np.asarray(quality, dtype=float)
    n, k = q.shape
    qs, as_, bs, ys = [], [], [], []
    for a, b in combinations(range(k), 2):
        y = (1.0 + q[:, a] - q[:, b]) / 2.0
        rows = np.arange(n) if include_ties else np.flatnonzero(y != 0.5)
        qs.append(rows)
        as_.append(np.full(rows.size, a))
        bs.append(np.full(rows.size, b))
        ys.append(y[rows])
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
    query = cat(qs, int)
    return Comparisons(query, cat(as_, int), cat(bs, int), cat(ys, float), np.ones(query.size))


def _prompt_of(record: Mapping[str, object]) -> str:
    if isinstance(record.get("prompt"), str):
        return str(record["prompt"])
    conversation = record.get("conversation_a")
    if isinstance(conversation, list):
        for turn in conversation:
            if isinstance(turn, Mapping) and turn.get("role") == "user":
                return str(turn.get("content", ""))
    raise ValueError("battle has neither 'prompt' nor a user turn in 'conversation_a'")


@dataclass(frozen=True)
class Battles:
    """Arena battles: the distinct prompts, the models seen, and the comparisons."""

    prompts: list[str]
    model_names: list[str]
    comparisons: Comparisons


def battles_from_records(
    records: Iterable[Mapping[str, object]], model_names: Sequence[str] | None = None
) -> Battles:
    """Battles from dicts (Arena format). Models outside ``model_names`` (when given) are
    skipped; identical prompts share one index (one embedding)."""
    names = list(model_names) if model_names else []
    fixed = model_names is not None
    prompt_index: dict[str, int] = {}
    rows: list[tuple[int, int, int, float]] = []
    for i, record in enumerate(records):
        winner = str(record.get("winner", "")).strip()
        if winner not in WINNER_OUTCOME:
            raise ValueError(f"battle {i}: winner {winner!r} not in {sorted(WINNER_OUTCOME)}")
        a, b = str(record["model_a"]), str(record["model_b"])
        if a == b:
            continue
        if fixed and (a not in names or b not in names):
            continue
        for m in (a, b):
            if m not in names:
                names.append(m)
        prompt = _prompt_of(record)
        q = prompt_index.setdefault(prompt, len(prompt_index))
        rows.append((q, names.index(a), names.index(b), WINNER_OUTCOME[winner]))
    arr = np.array(rows, dtype=float).reshape(-1, 4)
    comparisons = Comparisons(
        arr[:, 0].astype(int),
        arr[:, 1].astype(int),
        arr[:, 2].astype(int),
        arr[:, 3],
        np.ones(len(arr)),
    )
    return Battles(list(prompt_index), names, comparisons)


def load_battles(path: str | Path, model_names: Sequence[str] | None = None) -> Battles:
    """Battles from a JSON list or JSONL file (optionally ``.gz``)."""
    import gzip

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        text = f.read()
    stripped = text.lstrip()
    if stripped.startswith("["):
        records = json.loads(stripped)
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    return battles_from_records(records, model_names)
