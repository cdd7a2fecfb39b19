"""The exponentially weighted moving average every latency estimate is updated with."""

from __future__ import annotations

import math

# Weight of the newest observation: about the last ten calls carry most of the weight, so a
# provider that slows down is followed within a few calls, while one slow call moves the
# estimate by a fifth of its excess only.
ALPHA = 0.2


def ewma(previous: float | None, observation: float, alpha: float = ALPHA) -> float | None:
    """The average after ``observation``; the first observation is the average.

    A convex combination, so the average always lies between the smallest and the largest
    observation seen, whatever their order. A non-finite or negative observation (a clock
    or provider glitch) is ignored rather than poisoning every later estimate.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if not math.isfinite(observation) or observation < 0.0:
        return previous
    if previous is None:
        return observation
    return previous + alpha * (observation - previous)
