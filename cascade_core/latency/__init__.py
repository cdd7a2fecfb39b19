"""Per-model latency, measured live: what a model's next call is expected to take.

`LatencyModel` keeps, per ladder model, exponentially weighted averages of the time to first
token and of the seconds per output token, learned from the engine's trace after each call.
The engine records what it expected next to what happened; strategies may later price time
with these expectations as they price money with cost.
"""

from cascade_core.latency.ewma import ALPHA, ewma
from cascade_core.latency.model import LatencyExpectation, LatencyModel, ModelLatency

__all__ = ["ALPHA", "LatencyExpectation", "LatencyModel", "ModelLatency", "ewma"]
