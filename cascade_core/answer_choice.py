"""Which of the answers already produced is returned: the one rule of live and replay.

The answer is the run model with the highest estimated quality in the final state. On a tie
the cheaper model wins (then the lower index): equal estimated quality should not cost more,
and a replay must pick what the live engine picks, or its numbers describe another router.
"""

from __future__ import annotations

import numpy as np

from cascade_core.estimates import FloatArray

__all__ = ["choose_answers"]


def choose_answers(quality: FloatArray, available: np.ndarray, cost: FloatArray) -> np.ndarray:
    """Per query, the index of the answer to return.

    Args:
        quality: (n, k) estimated qualities in the final state.
        available: (n, k) bool, the models whose answers can be returned (each row has one).
        cost: (n, k) the estimated costs the strategy traded, for breaking ties.

    Returns:
        (n,) model indices: the highest quality among ``available``; among equal qualities the
        lowest cost, then the lowest index.
    """
    quality = np.asarray(quality, dtype=float)
    available = np.asarray(available, dtype=bool)
    if not available.any(axis=1).all():
        raise ValueError("choose_answers: a query has no answer to choose from")
    masked = np.where(available, quality, -np.inf)
    best = masked == masked.max(axis=1, keepdims=True)
    return np.where(best, np.asarray(cost, dtype=float), np.inf).argmin(axis=1).astype(np.intp)
