"""Write calibration answers as generic replay JSONL (`cascade_core.replay.loaders`).

Why: the dev-set answers, once paid for, are replay data. Saved in the generic format they
can be passed back to ``calibrate --replay`` (refit without any call) or to
``cascade-router bench`` to compare strategies on your own models offline. Token logprobs are
written with their top-logprob alternatives, and a verifier's signal as ``confidence_logprob``
(null where unknown; ``-Infinity`` for P(yes) = 0), so a refit sees every feature the engine
serves.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cascade_core.estimators.features import CONFIDENCE_SIGNAL
from cascade_core.replay import ReplayDataset


def save_replay_jsonl(dataset: ReplayDataset, labelled: np.ndarray, path: str | Path) -> int:
    """The labelled rows of ``dataset``; returns how many were written."""
    confidence = dataset.signals.get(CONFIDENCE_SIGNAL)
    lines = []
    for i in np.flatnonzero(labelled):
        models = {}
        for j, name in enumerate(dataset.model_names):
            logprobs = None if dataset.logprobs is None else dataset.logprobs[i, j]
            tops = None if dataset.top_logprobs is None else dataset.top_logprobs[i, j]
            models[name] = {
                "quality": float(dataset.quality[i, j]),
                "cost_usd": float(dataset.cost[i, j]),
                "logprobs": None if logprobs is None else [float(v) for v in logprobs],
                "top_logprobs": (
                    None if tops is None else [[float(v) for v in token] for token in tops]
                ),
                "answer": None if dataset.answers is None else dataset.answers[i, j],
                "tokens_in": None if dataset.tokens_in is None else float(dataset.tokens_in[i, j]),
                "tokens_out": (
                    None if dataset.tokens_out is None else float(dataset.tokens_out[i, j])
                ),
            }
            if confidence is not None and not np.isnan(confidence[i, j]):
                models[name][CONFIDENCE_SIGNAL] = float(confidence[i, j])
        record = {
            "id": dataset.query_ids[i],
            "prompt": dataset.prompts[i],
            "task": dataset.tasks[i],
            "models": models,
        }
        lines.append(json.dumps(record) + "\n")
    Path(path).write_text("".join(lines), encoding="utf-8")
    return len(lines)
