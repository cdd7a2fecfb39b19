"""The replay dataset: what every model answered, how good it was and what it cost, per query.

A replay lets strategies be evaluated offline: a strategy "runs" a model by reading its row,
so the same logs can score routing, cascading and cascade routing without one LLM call.
This module only holds and slices such data; the loaders live in `loaders.py` and the
metrics in `metrics.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from cascade_core.errors import InvalidInputError

__all__ = ["ReplayDataset", "UnknownModelError", "concat_datasets"]


class UnknownModelError(InvalidInputError, KeyError):
    """A model name the dataset does not hold. A KeyError for lookups, and an input error
    because the name comes from the user (``--models``, a ladder, a profile)."""

    __str__ = InvalidInputError.__str__  # KeyError's own would print the message quoted


@dataclass(frozen=True, eq=False)
class ReplayDataset:
    """Per-query outcomes of k models on n queries.

    Column j of every n x k array belongs to ``model_names[j]``. Loaders order the models
    cheapest first by mean cost over the file (stable for ties); slicing keeps that column
    order so that estimators fitted on one split line up with another split.

    Attributes:
        name: a label (file stem, task name, "pooled").
        model_names: the k model names, cheapest first by mean cost.
        query_ids: n query ids.
        prompts: n prompts (may be empty strings when not logged).
        tasks: n task tags (the file's task or "" when unknown).
        quality: n x k floats in [0, 1]: correctness (0/1) or a graded score.
        cost: n x k non-negative USD per query and model.
        signals: name -> n x k float array of post-hoc signals (e.g. "confidence_logprob").
            NaN means "not logged for this query/model"; estimators decide how to treat it.
        answers: optional n x k object array of answer strings (for agreement features).
        logprobs: optional n x k object array; each cell a 1-d float array of token logprobs
            or None (for the token-logprob features).
        top_logprobs: optional n x k object array aligned with ``logprobs``; each cell None
            (alternatives not logged) or a tuple with, per token, the tuple of logprobs of
            its top-k alternatives (for the entropy and margin features).
        tokens_in, tokens_out: optional n x k float arrays of token counts (NaN = not logged).
        latency_s: optional n x k float array of each call's logged wall time in seconds
            (NaN = not logged); a replayed cascade's latency is derived from it by
            `cascade_core.replay.simulate.sequential_latency`.
        dropped_ids: ids of rows the loader dropped (e.g. RouterBench rows with empty cells),
            kept so that a report can say what was left out instead of hiding it.
    """

    name: str
    model_names: list[str]
    query_ids: list[str]
    prompts: list[str]
    tasks: list[str]
    quality: np.ndarray
    cost: np.ndarray
    signals: dict[str, np.ndarray] = field(default_factory=dict)
    answers: np.ndarray | None = None
    logprobs: np.ndarray | None = None
    top_logprobs: np.ndarray | None = None
    tokens_in: np.ndarray | None = None
    tokens_out: np.ndarray | None = None
    latency_s: np.ndarray | None = None
    dropped_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_names", list(self.model_names))
        object.__setattr__(self, "query_ids", [str(q) for q in self.query_ids])
        object.__setattr__(self, "prompts", list(self.prompts))
        object.__setattr__(self, "tasks", list(self.tasks))
        object.__setattr__(self, "quality", np.asarray(self.quality, dtype=float))
        object.__setattr__(self, "cost", np.asarray(self.cost, dtype=float))
        object.__setattr__(
            self, "signals", {k: np.asarray(v, dtype=float) for k, v in self.signals.items()}
        )
        for attr in ("tokens_in", "tokens_out", "latency_s"):
            value = getattr(self, attr)
            if value is not None:
                object.__setattr__(self, attr, np.asarray(value, dtype=float))
        object.__setattr__(self, "dropped_ids", tuple(self.dropped_ids))
        self._validate()

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        """Bad values (what a log can hold) are `InvalidInputError`s; mismatched shapes can
        only come from the code that built the dataset, so they stay plain ValueErrors."""
        n, k = self.n_queries, self.n_models
        where = f"ReplayDataset {self.name!r}"
        if k == 0:
            raise InvalidInputError(f"{where}: no models")
        if len(set(self.model_names)) != k:
            raise InvalidInputError(f"{where}: duplicate model names in {self.model_names}")
        for label, seq in (("prompts", self.prompts), ("tasks", self.tasks)):
            if len(seq) != n:
                raise ValueError(f"{where}: {label} has {len(seq)} entries, expected {n}")
        arrays: dict[str, np.ndarray | None] = {
            "quality": self.quality,
            "cost": self.cost,
            "answers": self.answers,
            "logprobs": self.logprobs,
            "top_logprobs": self.top_logprobs,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "latency_s": self.latency_s,
            **{f"signals[{s!r}]": v for s, v in self.signals.items()},
        }
        for label, arr in arrays.items():
            if arr is not None and arr.shape != (n, k):
                raise ValueError(
                    f"{where}: {label} has shape {arr.shape}, expected (n_queries, n_models)"
                    f" = {(n, k)}"
                )
        for label in ("quality", "cost"):
            arr = arrays[label]
            assert arr is not None
            if not np.all(np.isfinite(arr)):
                i, j = np.argwhere(~np.isfinite(arr))[0]
                raise InvalidInputError(
                    f"{where}: {label} is not finite (NaN/inf) for query {self.query_ids[i]!r},"
                    f" model {self.model_names[j]!r}"
                )
        if np.any((self.quality < 0) | (self.quality > 1)):
            i, j = np.argwhere((self.quality < 0) | (self.quality > 1))[0]
            raise InvalidInputError(
                f"{where}: quality {self.quality[i, j]} outside [0, 1] for query"
                f" {self.query_ids[i]!r}, model {self.model_names[j]!r}"
            )
        if np.any(self.cost < 0):
            i, j = np.argwhere(self.cost < 0)[0]
            raise InvalidInputError(
                f"{where}: negative cost {self.cost[i, j]} for query {self.query_ids[i]!r},"
                f" model {self.model_names[j]!r}"
            )
        for label in ("tokens_in", "tokens_out"):
            arr = arrays[label]
            if arr is not None and np.any(arr < 0):
                raise InvalidInputError(f"{where}: negative {label}")
        if self.latency_s is not None:
            bad = ~np.isnan(self.latency_s) & ~((self.latency_s >= 0) & np.isfinite(self.latency_s))
            if bad.any():
                i, j = np.argwhere(bad)[0]
                raise InvalidInputError(
                    f"{where}: latency_s {self.latency_s[i, j]} for query {self.query_ids[i]!r},"
                    f" model {self.model_names[j]!r}; give a finite number of seconds >= 0"
                    " (NaN when not logged)"
                )
        if self.top_logprobs is not None:
            self._validate_alignment(where)

    def _validate_alignment(self, where: str) -> None:
        """Each logged ``top_logprobs`` cell has one entry per token of its ``logprobs``."""
        assert self.top_logprobs is not None
        for (i, j), tops in np.ndenumerate(self.top_logprobs):
            if tops is None:
                continue
            tokens = None if self.logprobs is None else self.logprobs[i, j]
            if tokens is None or len(tokens) != len(tops):
                raise InvalidInputError(
                    f"{where}: top_logprobs for query {self.query_ids[i]!r}, model "
                    f"{self.model_names[j]!r} has {len(tops)} entries for "
                    f"{0 if tokens is None else len(tokens)} token logprobs; give one per token"
                )

    # ------------------------------------------------------------------ basic facts
    @property
    def n_queries(self) -> int:
        return len(self.query_ids)

    @property
    def n_models(self) -> int:
        return len(self.model_names)

    def __len__(self) -> int:
        return self.n_queries

    def model_index(self, name: str) -> int:
        """Column of ``name``; a KeyError that lists the known names otherwise."""
        try:
            return self.model_names.index(name)
        except ValueError:
            raise UnknownModelError(
                f"{self.name}: unknown model {name!r}; known: {', '.join(self.model_names)}"
            ) from None

    def mean_cost(self) -> np.ndarray:
        """Average cost per model (k,)."""
        return self.cost.mean(axis=0)

    def mean_quality(self) -> np.ndarray:
        """Average quality (accuracy for 0/1 data) per model (k,)."""
        return self.quality.mean(axis=0)

    # ------------------------------------------------------------------ slicing
    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> ReplayDataset:
        """Rows ``indices`` (ints or a boolean mask), in that order; repeats are allowed
        (the bootstrap resamples with replacement)."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (self.n_queries,):
                raise ValueError(
                    f"boolean mask has shape {idx.shape}, expected ({self.n_queries},)"
                )
            idx = np.flatnonzero(idx)
        idx = idx.astype(int, copy=False)
        pick = idx.tolist()
        return replace(
            self,
            name=self.name if name is None else name,
            query_ids=[self.query_ids[i] for i in pick],
            prompts=[self.prompts[i] for i in pick],
            tasks=[self.tasks[i] for i in pick],
            quality=self.quality[idx],
            cost=self.cost[idx],
            signals={k: v[idx] for k, v in self.signals.items()},
            answers=None if self.answers is None else self.answers[idx],
            logprobs=None if self.logprobs is None else self.logprobs[idx],
            top_logprobs=None if self.top_logprobs is None else self.top_logprobs[idx],
            tokens_in=None if self.tokens_in is None else self.tokens_in[idx],
            tokens_out=None if self.tokens_out is None else self.tokens_out[idx],
            latency_s=None if self.latency_s is None else self.latency_s[idx],
        )

    def select_models(self, names: Iterable[str]) -> ReplayDataset:
        """Only the columns of ``names``, in the order given (pass them cheapest first to keep
        the convention; this is also how to impose a custom cascade order)."""
        names = list(names)
        cols = np.array([self.model_index(m) for m in names], dtype=int)

        def take(arr: np.ndarray | None) -> np.ndarray | None:
            return None if arr is None else arr[:, cols]

        return replace(
            self,
            model_names=names,
            quality=self.quality[:, cols],
            cost=self.cost[:, cols],
            signals={k: v[:, cols] for k, v in self.signals.items()},
            answers=take(self.answers),
            logprobs=take(self.logprobs),
            top_logprobs=take(self.top_logprobs),
            tokens_in=take(self.tokens_in),
            tokens_out=take(self.tokens_out),
            latency_s=take(self.latency_s),
        )

    def sorted_by_cost(self) -> ReplayDataset:
        """The same data with models reordered cheapest first by mean cost (stable)."""
        order = np.argsort(self.mean_cost(), kind="stable")
        return self.select_models([self.model_names[j] for j in order])

    def by_task(self) -> dict[str, ReplayDataset]:
        """One dataset per task tag, named after the task, in first-seen order."""
        tasks = np.asarray(self.tasks, dtype=object)
        out: dict[str, ReplayDataset] = {}
        for task in dict.fromkeys(self.tasks):
            out[task] = self.subset(np.flatnonzero(tasks == task), name=task)
        return out

    def split(
        self, fraction: float = 0.5, *, seed: int | None = 0, stratify: bool = True
    ) -> tuple[ReplayDataset, ReplayDataset]:
        """Split queries into (first, second) with ``fraction`` of the rows in ``first``.

        Why stratify: pooled data mixes tasks of different sizes; splitting each task
        separately keeps both parts representative (estimators on one part, lambda on the
        other). ``seed=None`` keeps file order (no shuffling), useful for time-ordered logs.
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        rng = None if seed is None else np.random.default_rng(seed)
        groups = (
            [
                np.flatnonzero(np.asarray(self.tasks, dtype=object) == t)
                for t in dict.fromkeys(self.tasks)
            ]
            if stratify
            else [np.arange(self.n_queries)]
        )
        first: list[np.ndarray] = []
        second: list[np.ndarray] = []
        for g in groups:
            g = g if rng is None else rng.permutation(g)
            cut = round(fraction * len(g))
            first.append(g[:cut])
            second.append(g[cut:])
        # Sorted so both parts keep file order (time order for production logs).
        a = np.sort(np.concatenate(first))
        b = np.sort(np.concatenate(second))
        return self.subset(a, name=f"{self.name}[a]"), self.subset(b, name=f"{self.name}[b]")


def concat_datasets(datasets: Sequence[ReplayDataset], name: str = "pooled") -> ReplayDataset:
    """Stack datasets with the same models (matched by name, any column order).

    Only signals present in all parts are kept, and answers/logprobs/tokens only if every
    part has them: a pooled column that is partly missing would bias whatever uses it.
    The result is re-sorted cheapest first by the pooled mean cost.
    """
    if not datasets:
        raise ValueError("concat_datasets needs at least one dataset")
    models = datasets[0].model_names
    parts: list[ReplayDataset] = []
    for ds in datasets:
        if set(ds.model_names) != set(models):
            raise InvalidInputError(
                f"cannot pool {ds.name!r}: models {ds.model_names} differ from {models}"
            )
        parts.append(ds.select_models(models))
    common = [s for s in parts[0].signals if all(s in p.signals for p in parts)]

    def stack(attr: str) -> np.ndarray | None:
        arrays = [getattr(p, attr) for p in parts]
        return None if any(a is None for a in arrays) else np.concatenate(arrays, axis=0)

    pooled = ReplayDataset(
        name=name,
        model_names=list(models),
        query_ids=[q for p in parts for q in p.query_ids],
        prompts=[x for p in parts for x in p.prompts],
        tasks=[x for p in parts for x in p.tasks],
        quality=np.concatenate([p.quality for p in parts]),
        cost=np.concatenate([p.cost for p in parts]),
        signals={s: np.concatenate([p.signals[s] for p in parts]) for s in common},
        answers=stack("answers"),
        logprobs=stack("logprobs"),
        top_logprobs=stack("top_logprobs"),
        tokens_in=stack("tokens_in"),
        tokens_out=stack("tokens_out"),
        latency_s=stack("latency_s"),
        dropped_ids=tuple(d for p in parts for d in p.dropped_ids),
    )
    return pooled.sorted_by_cost()
