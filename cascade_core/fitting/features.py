"""Feature tables of logged replay data: the columns `cascade_core.estimators.features`
defines, for every query of a `ReplayDataset` at once (the live path builds one query's with
`table_from_observation` through the same helpers)."""

from __future__ import annotations

import math

import numpy as np

from cascade_core.estimators.features import (
    COMBINED_SOURCE,
    CONFIDENCE_FLOOR,
    CONFIDENCE_SIGNAL,
    FeatureSpec,
    FeatureTable,
    agreement_matrix,
    ante_matrix,
    posthoc_from_logprobs,
    task_slope_inputs,
)
from cascade_core.replay import ReplayDataset
from cascade_core.signals import FEATURE_NAMES, TokenLogprobs


def spec_for_dataset(dataset: ReplayDataset, embedding_dim: int = 0) -> FeatureSpec:
    """The richest post-hoc source the data logs: token logprobs and a confidence of its own
    (`logs_own_confidence`), else token logprobs, else a logged confidence."""
    has_logprobs = dataset.logprobs is not None and any(
        cell is not None for cell in dataset.logprobs.ravel()
    )
    if has_logprobs and logs_own_confidence(dataset):
        source = COMBINED_SOURCE
    elif has_logprobs:
        source = "logprobs"
    elif CONFIDENCE_SIGNAL in dataset.signals:
        source = "confidence"
    else:
        source = "none"
    tasks = tuple(dict.fromkeys(dataset.tasks))
    return FeatureSpec(
        model_names=tuple(dataset.model_names),
        tasks=tasks,
        embedding_dim=embedding_dim,
        posthoc_source=source,
        use_agreement=dataset.answers is not None,
        task_slopes=True,
    )


def logs_own_confidence(dataset: ReplayDataset) -> bool:
    """Whether some cell's ``confidence_logprob`` is more than its token logprobs' sum (what
    the loader derives when no confidence is logged): a verifier's P(yes), or a confidence a
    log records for answers without logprobs."""
    conf = dataset.signals.get(CONFIDENCE_SIGNAL)
    if conf is None:
        return False
    for i, j in np.argwhere(~np.isnan(conf)):
        logprobs = None if dataset.logprobs is None else dataset.logprobs[i, j]
        if logprobs is None or not np.isclose(conf[i, j], float(np.sum(logprobs))):
            return True
    return False


def table_from_dataset(
    spec: FeatureSpec, dataset: ReplayDataset, embeddings: np.ndarray | None = None
) -> FeatureTable:
    """Features of every query of a replay (models in ``spec.model_names`` order)."""
    data = dataset.select_models(spec.model_names)
    n, k = data.n_queries, data.n_models
    names = spec.posthoc_names
    posthoc = np.full((n, k, len(names)), math.nan)
    with_confidence = spec.posthoc_source in ("confidence", COMBINED_SOURCE)
    if with_confidence and CONFIDENCE_SIGNAL in data.signals:
        conf = np.maximum(data.signals[CONFIDENCE_SIGNAL], CONFIDENCE_FLOOR)
        posthoc[:, :, -2] = conf
        posthoc[:, :, -1] = np.exp(conf)
    if spec.posthoc_source in ("logprobs", COMBINED_SOURCE) and data.logprobs is not None:
        width = len(FEATURE_NAMES)
        for i in range(n):
            for j in range(k):
                logprobs = data.logprobs[i, j]
                tops = None if data.top_logprobs is None else data.top_logprobs[i, j]
                tokens = None if logprobs is None else TokenLogprobs(logprobs, tops)
                answer = None if data.answers is None else data.answers[i, j]
                values = posthoc_from_logprobs(tokens, answer)
                posthoc[i, j, :width] = [values[name] for name in FEATURE_NAMES]
    agree = (
        agreement_matrix(data.answers) if spec.use_agreement and data.answers is not None else None
    )
    slope_tasks, slope_feature = task_slope_inputs(spec, data.tasks)
    return FeatureTable(
        ante=ante_matrix(spec, data.prompts, data.tasks, embeddings),
        posthoc=posthoc,
        agree=agree,
        slope_tasks=slope_tasks,
        slope_feature=slope_feature,
    )
