"""RouteLLM's threshold calibration: the threshold on P(strong wins) that sends a target share
of calls to the strong model, or that spends a target average budget, on calibration prompts.

Routing rule (RouteLLM): call the strong model when the router's score exceeds the threshold.
For N models the same role is played by lambda of `cascade_core.fitting.budget.fit_budget`.
"""

from __future__ import annotations

import numpy as np


def threshold_for_share(scores: np.ndarray, strong_share: float) -> float:
    """Threshold t such that a share ``strong_share`` of ``scores`` lies strictly above t
    (as close as ties allow): ``share = 0`` -> max score, ``share = 1`` -> below the min."""
    s = np.sort(np.asarray(scores, dtype=float).ravel())[::-1]
    if s.size == 0:
        raise ValueError("no calibration scores")
    if not 0.0 <= strong_share <= 1.0:
        raise ValueError(f"strong_share must be in [0, 1], got {strong_share}")
    count = round(strong_share * s.size)
    if count <= 0:
        return float(s[0])
    if count >= s.size:
        return float(np.nextafter(s[-1], -np.inf))
    # Between the count-th largest and the next one: exactly `count` scores are above.
    return float((s[count - 1] + s[count]) / 2) if s[count - 1] > s[count] else float(s[count])


def strong_share_for_budget(budget: float, weak_cost: float, strong_cost: float) -> float:
    """Share of strong calls that a mean per-query ``budget`` buys (mean costs per model)."""
    if strong_cost <= weak_cost:
        raise ValueError("the strong model must cost more than the weak one")
    return float(np.clip((budget - weak_cost) / (strong_cost - weak_cost), 0.0, 1.0))


def threshold_for_budget(
    scores: np.ndarray, weak_cost: np.ndarray, strong_cost: np.ndarray, budget: float
) -> float:
    """Threshold whose routing spends at most ``budget`` per query on average on these
    calibration prompts (per-query costs: routing the highest scores first)."""
    s = np.asarray(scores, dtype=float)
    extra = np.asarray(strong_cost, float) - np.asarray(weak_cost, float)
    order = np.argsort(-s, kind="stable")
    spend = float(np.mean(weak_cost)) + np.cumsum(extra[order]) / s.size
    count = int(np.searchsorted(spend, budget, side="right"))
    return threshold_for_share(s, count / s.size)


def route(scores: np.ndarray, threshold: float) -> np.ndarray:
    """True where the strong model is called."""
    return np.asarray(scores, dtype=float) > threshold
