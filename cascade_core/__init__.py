"""cascade_core: the framework-free selection core of cascade-router.

No LangChain or LlamaIndex import lives here: the adapters call into this package.
"""

from cascade_core.batch import BatchContext, BatchOutcome, StagedEstimates, run_batch
from cascade_core.budget import BudgetFit, budget_grid, fit_budget
from cascade_core.errors import InvalidInputError
from cascade_core.estimates import QueryEstimates, Uncertainty
from cascade_core.expected_max import expected_max, expected_max_two_normals
from cascade_core.strategies import (
    CascadeRouting,
    Decision,
    OptimalCascade,
    Routing,
    Strategy,
    ThresholdCascade,
    make_strategy,
)
from cascade_core.strategies.mixed import MixedStrategy

__version__ = "0.1.0"

__all__ = [
    "BatchContext",
    "BatchOutcome",
    "BudgetFit",
    "CascadeRouting",
    "Decision",
    "InvalidInputError",
    "MixedStrategy",
    "OptimalCascade",
    "QueryEstimates",
    "Routing",
    "StagedEstimates",
    "Strategy",
    "ThresholdCascade",
    "Uncertainty",
    "budget_grid",
    "expected_max",
    "expected_max_two_normals",
    "fit_budget",
    "make_strategy",
    "run_batch",
]
