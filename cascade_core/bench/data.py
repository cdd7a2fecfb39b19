"""Finding the train/test data behind a `bench PATH`: per-task splits plus a pooled one.

PATH may be

* a directory of ``<stem>_train.<ext>`` / ``<stem>_test.<ext>`` files (``.jsonl``, ``.csv``,
  ``.pkl``, optionally ``.gz``): the cascade logs and the RouterBench subset look like this.
  Stems without both splits are skipped (e.g. the cascade logs' gsm8k, train only);
* one such ``*_test.*`` or ``*_train.*`` file whose sibling exists: that pair;
* any other single replay file: each task's rows are split in half (seeded, file order kept
  within each half), one half for training, the other for testing.

A split is named after its task tag when all its rows share one, else after the file stem.
When there are two or more splits with the same models, a "pooled" split concatenates them;
``BenchData.pooled_rows`` then says which rows of the pooled train each split's train is, so
one estimator fitted on the pooled train can serve every split.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cascade_core.replay import ReplayDataset, concat_datasets, load_replay

_SPLIT_FILE = re.compile(r"^(?P<stem>.+)_(?P<split>train|test)\.(jsonl|csv|pkl|pickle)(\.gz)?$")
# Seed of the documented half/half split of a single file: fixed so runs are repeatable.
SINGLE_FILE_SPLIT_SEED = 0
POOLED = "pooled"


@dataclass(frozen=True)
class BenchSplit:
    """One evaluation: fit on ``train`` (models cheapest first), evaluate on ``test``."""

    name: str
    train: ReplayDataset
    test: ReplayDataset


@dataclass
class BenchData:
    splits: list[BenchSplit]
    notes: list[str] = field(default_factory=list)
    pooled_rows: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def pooled(self) -> BenchSplit | None:
        return next((s for s in self.splits if s.name == POOLED), None)


def _load(path: Path, models: Sequence[str] | None, notes: list[str]) -> ReplayDataset:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_replay(path, models=list(models) if models else None)
    notes.extend(str(w.message) for w in caught)
    return data


def _name(data: ReplayDataset, stem: str) -> str:
    tasks = set(data.tasks)
    return tasks.pop() if len(tasks) == 1 and "" not in tasks else stem


def _pair(train: ReplayDataset, test: ReplayDataset, name: str) -> BenchSplit:
    train = train.sorted_by_cost()
    return BenchSplit(name, train, test.select_models(train.model_names))


def load_bench_data(path: str | Path, models: Sequence[str] | None = None) -> BenchData:
    """The splits to evaluate for ``path``; see the module doc for the rules."""
    path = Path(path)
    notes: list[str] = []
    pairs: dict[str, dict[str, Path]] = {}
    if path.is_dir():
        for f in sorted(path.iterdir()):
            m = _SPLIT_FILE.match(f.name)
            if m:
                pairs.setdefault(m.group("stem"), {})[m.group("split")] = f
    elif path.is_file():
        m = _SPLIT_FILE.match(path.name)
        if m:
            sibling = path.with_name(path.name.replace(f"_{m.group('split')}.", "_{}.", 1))
            found = {s: Path(str(sibling).format(s)) for s in ("train", "test")}
            if all(p.is_file() for p in found.values()):
                pairs[m.group("stem")] = found
    else:
        raise FileNotFoundError(f"{path}: no such file or directory")

    splits: list[BenchSplit] = []
    for stem, files in pairs.items():
        if set(files) != {"train", "test"}:
            notes.append(
                f"{stem}: skipped, it has no {'test' if 'train' in files else 'train'} file"
            )
            continue
        train = _load(files["train"], models, notes)
        test = _load(files["test"], models, notes)
        splits.append(_pair(train, test, _name(test, stem)))
    if not pairs and path.is_file():
        data = _load(path, models, notes)
        for task, part in data.by_task().items():
            train, test = part.split(0.5, seed=SINGLE_FILE_SPLIT_SEED)
            splits.append(_pair(train, test, task or data.name))
        notes.append(f"{path.name}: no train/test files; each task split in half (seed 0)")
    if not splits:
        raise FileNotFoundError(f"{path}: no <name>_train/<name>_test replay files found")
    if len(splits) > 1 and all(
        set(s.train.model_names) == set(splits[0].train.model_names) for s in splits
    ):
        train = concat_datasets([s.train for s in splits], name=POOLED)
        test = concat_datasets([s.test for s in splits], name=POOLED)
        ends = np.cumsum([0] + [s.train.n_queries for s in splits])
        pooled_rows = {
            s.name: np.arange(a, b) for s, a, b in zip(splits, ends[:-1], ends[1:], strict=True)
        }
        splits.append(_pair(train, test, POOLED))
        pooled_rows[POOLED] = np.arange(train.n_queries)
        return BenchData(splits=splits, notes=notes, pooled_rows=pooled_rows)
    return BenchData(splits=splits, notes=notes)
