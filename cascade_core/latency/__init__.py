"""Per-model latency, measured live: what a model's next call is expected to take.

`LatencyModel` keeps, per ladder model, exponentially weighted averages of the time to first
token and of the seconds per output token, learned from the engine's trace after each call.
The engine records what it expected next to what happened; `LatencyWeights.priced` is the one
rule that turns those expectations into USD next to the money a call costs.
"""

from cascade_core.latency.ewma import ALPHA, ewma
from cascade_core.latency.model import LatencyExpectation, LatencyModel, ModelLatency
from cascade_core.latency.objective import NO_LATENCY_PRICE, LatencyWeights, priced_cost
from cascade_core.latency.stored import averages_from_section, latency_section

__all__ = [
    "ALPHA",
    "NO_LATENCY_PRICE",
    "LatencyExpectation",
    "LatencyModel",
    "LatencyWeights",
    "ModelLatency",
    "averages_from_section",
    "ewma",
    "latency_section",
    "priced_cost",
]
