"""Per-model latency, measured live: what a model's next call is expected to take.

`LatencyModel` keeps, per ladder model, exponentially weighted averages of the time to first
token and of the seconds per output token, learned from the engine's trace after each call.
The engine records what it expected next to what happened; `LatencyWeights.priced` is the one
rule that turns those expectations into USD next to the money a call costs.
"""

from cascade_core.latency.ewma import ALPHA, ewma
from cascade_core.latency.model import LatencyExpectation, LatencyModel, ModelLatency
from cascade_core.latency.objective import LatencyWeights, priced_cost

__all__ = [
    "ALPHA",
    "LatencyExpectation",
    "LatencyModel",
    "LatencyWeights",
    "ModelLatency",
    "ewma",
    "priced_cost",
]
