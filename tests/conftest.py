"""Shared test helpers: random estimate instances for the property tests."""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def random_covariance(rng: np.random.Generator, n_models: int, scale: float) -> np.ndarray:
    """A random PSD covariance with correlations, as an estimator's error would have."""
    factor = rng.normal(size=(n_models, n_models)) * scale / np.sqrt(n_models)
    return factor @ factor.T
