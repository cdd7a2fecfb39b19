"""The live engine: cascade routing request by request over LiteLLM."""

from cascade_core.engine.answers import ModelAnswer
from cascade_core.engine.cascade_run import CascadeRun, ModelCall
from cascade_core.engine.config import (
    BudgetSpec,
    ModelSpec,
    RouterConfig,
    StrategySpec,
    VerifierSpec,
)
from cascade_core.engine.engine import (
    CascadeEngine,
    CascadeStreamError,
    Finished,
    StreamEvent,
    TextDelta,
)
from cascade_core.engine.trace import CascadeResult, CascadeTrace, ModelRun, TokenUsage

__all__ = [
    "BudgetSpec",
    "CascadeEngine",
    "CascadeResult",
    "CascadeRun",
    "CascadeStreamError",
    "CascadeTrace",
    "Finished",
    "ModelAnswer",
    "ModelCall",
    "ModelRun",
    "ModelSpec",
    "RouterConfig",
    "StrategySpec",
    "StreamEvent",
    "TextDelta",
    "TokenUsage",
    "VerifierSpec",
]
