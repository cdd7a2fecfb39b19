"""Latency in the bench: the price strategies are fitted on, and the latency axis they are read on.

``bench --latency-weight W`` fits every strategy and baseline with the cost of a call priced
by the live engine's own rule (`cascade_core.latency.LatencyWeights.priced`), so a policy
tuned offline trades seconds against dollars exactly as the engine does. The replayed calls
are whole (buffered) calls: a cascade's first token arrives when its last call ends, so its
time to first token and its total time are the same summed seconds
(`cascade_core.replay.simulate.sequential_latency`). W is therefore one price per second of
that wait, given to the pricing rule as the total-time weight; a TTFT weight would add to
it and change nothing else.

Pricing is per (query, model) cell: USD plus W times that call's seconds. Summing the cells
of the models a query ran gives the cascade's USD plus W times its summed seconds, so the
strategies' additive cost model holds unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from cascade_core.bench.data import BenchSplit
from cascade_core.errors import InvalidInputError
from cascade_core.latency import LatencyWeights
from cascade_core.replay import ReplayDataset

OPTION = "--latency-weight"


def parse_latency_weights(values: Iterable[str]) -> list[float]:
    """``--latency-weight 0 --latency-weight 0.001`` or ``0,0.001``: USD per second, each a
    finite number >= 0, in the order given, repeats dropped."""
    weights: list[float] = []
    for value in values:
        for text in value.split(","):
            text = text.strip()
            if not text:
                continue
            try:
                weight = float(text)
            except ValueError:
                weight = math.nan
            if not (math.isfinite(weight) and weight >= 0):
                raise InvalidInputError(
                    f"{OPTION}: expected a number of USD per second >= 0 (e.g. 0.001), got {text!r}"
                )
            weights.append(weight)
    if not weights:
        raise InvalidInputError(f"{OPTION}: give at least one weight (USD per second, >= 0)")
    return list(dict.fromkeys(weights))


def require_latency(dataset: ReplayDataset) -> np.ndarray:
    """The logged seconds (n, k), or one line saying which data lacks them and the fix."""
    latency = dataset.latency_s
    fix = f"log latency_ms (milliseconds, >= 0) for every model and query, or drop {OPTION}"
    if latency is None:
        raise InvalidInputError(f"{OPTION}: {dataset.name!r} logs no latency_ms; {fix}")
    missing = np.isnan(latency)
    if missing.any():
        i, j = np.argwhere(missing)[0]
        raise InvalidInputError(
            f"{OPTION}: {dataset.name!r} has no latency_ms for query {dataset.query_ids[i]!r},"
            f" model {dataset.model_names[j]!r} ({int(missing.sum())} cells missing); {fix}"
        )
    return latency


def weights_for(latency_weight: float) -> LatencyWeights:
    """The pricing rule's weights for one W (see the module doc: the total-time weight)."""
    return LatencyWeights(total_usd_per_s=latency_weight)


def priced(dataset: ReplayDataset, latency_weight: float) -> ReplayDataset:
    """``dataset`` with each cell's cost priced: USD + W * that call's seconds."""
    seconds = require_latency(dataset)
    cost = weights_for(latency_weight).priced(dataset.cost, seconds, seconds)
    return replace(dataset, cost=np.asarray(cost, dtype=float))


def priced_split(split: BenchSplit, latency_weight: float) -> BenchSplit:
    """Train and test both priced; the strategies are fitted and decide on these costs."""
    return BenchSplit(
        split.name, priced(split.train, latency_weight), priced(split.test, latency_weight)
    )


def latency_axis(dataset: ReplayDataset) -> ReplayDataset:
    """``dataset`` with seconds in place of USD, so the cost-axis metrics (AUC, linear hull,
    oracle, APGR, CPT) read the same curves against latency."""
    return replace(dataset, cost=require_latency(dataset))


def check_splits(splits: Sequence[BenchSplit]) -> None:
    """Every split's train and test log a latency for every cell (checked before any fit)."""
    for split in splits:
        require_latency(split.train)
        require_latency(split.test)
