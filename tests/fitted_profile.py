"""A real fitted profile (estimators, budget section) from a small synthetic replay,
as `cascade-router calibrate` writes it: the starting point that validation tests mutate."""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np

from cascade_core.calibrate.fit import CalibrationData, build_profile
from cascade_core.engine.config import StrategySpec
from cascade_core.fitting import fit_quality_estimator
from cascade_core.replay import ReplayDataset


def synthetic_replay(n: int, k: int, seed: int) -> ReplayDataset:
    """Each model's logged confidence is its true P(correct) plus a little noise."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, (n, k))
    correct = (rng.random((n, k)) < p).astype(float)
    confidence = np.log(np.clip(p + rng.normal(0, 0.02, p.shape), 1e-3, 1.0))
    answers = np.where(correct == 1, "right", rng.choice(["a", "b"], (n, k))).astype(object)
    return ReplayDataset(
        name="synthetic",
        model_names=[f"m{j}" for j in range(k)],
        query_ids=[str(i) for i in range(n)],
        prompts=["x" * int(v) for v in rng.integers(5, 50, n)],
        tasks=["t1" if i % 2 else "t2" for i in range(n)],
        quality=correct,
        cost=np.tile(np.geomspace(1e-5, 1e-3, k), (n, 1)),
        signals={"confidence_logprob": confidence},
        answers=answers,
    )


@functools.lru_cache(maxsize=4)
def _profile_json(k: int) -> str:
    data = synthetic_replay(n=80, k=k, seed=k)
    fit, holdout = data.split(0.5, seed=0)
    estimator = fit_quality_estimator(fit, holdout)
    calibration = CalibrationData(data, np.ones(data.n_queries, dtype=bool), data.cost)
    budget = float(data.cost.mean(axis=0)[: k - 1].mean())
    profile = build_profile(StrategySpec(), estimator, calibration, budget_usd=budget)
    return json.dumps(profile)


def fitted_profile(k: int = 2) -> dict[str, Any]:
    """A fresh copy (safe to mutate) of a profile fitted for ``k`` models."""
    return json.loads(_profile_json(k))
