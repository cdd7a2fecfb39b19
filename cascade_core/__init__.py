"""cascade_core: the framework-free selection core of cascade-router.

No LangChain or LlamaIndex import lives here: the adapters call into this package.

The names below are what users import (``from cascade_core import CascadeEngine``). Each is
loaded on first use, so ``import cascade_core`` costs nothing: the engine pulls in LiteLLM and
the strategies SciPy (together seconds), and a process that only needs one of them, or only
``__version__``, must not pay for both. `_EXPORTS` is the one list; the ``TYPE_CHECKING``
imports repeat it for type checkers and IDEs, and a test keeps the two equal. No export is
named like a submodule: importing the submodule would replace the attribute with the module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `X as X`: an explicit re-export for type checkers
    from cascade_core.budget import budget_grid as budget_grid
    from cascade_core.engine import CascadeEngine as CascadeEngine
    from cascade_core.engine import CascadeResult as CascadeResult
    from cascade_core.engine import RouterConfig as RouterConfig
    from cascade_core.errors import AllModelsFailedError as AllModelsFailedError
    from cascade_core.errors import CascadeError as CascadeError
    from cascade_core.errors import CascadeStreamError as CascadeStreamError
    from cascade_core.errors import InvalidInputError as InvalidInputError
    from cascade_core.estimates import QueryEstimates as QueryEstimates
    from cascade_core.estimates import Uncertainty as Uncertainty
    from cascade_core.fitting.budget import BudgetFit as BudgetFit
    from cascade_core.fitting.budget import fit_budget as fit_budget
    from cascade_core.replay.simulate import BatchContext as BatchContext
    from cascade_core.replay.simulate import BatchOutcome as BatchOutcome
    from cascade_core.replay.simulate import StagedEstimates as StagedEstimates
    from cascade_core.replay.simulate import run_batch as run_batch
    from cascade_core.strategies import CascadeRouting as CascadeRouting
    from cascade_core.strategies import Decision as Decision
    from cascade_core.strategies import MixedStrategy as MixedStrategy
    from cascade_core.strategies import OptimalCascade as OptimalCascade
    from cascade_core.strategies import Routing as Routing
    from cascade_core.strategies import Strategy as Strategy
    from cascade_core.strategies import ThresholdCascade as ThresholdCascade
    from cascade_core.strategies import make_strategy as make_strategy

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # the live engine
    "CascadeEngine": "cascade_core.engine",
    "CascadeResult": "cascade_core.engine",
    "RouterConfig": "cascade_core.engine",
    # strategies
    "CascadeRouting": "cascade_core.strategies",
    "Decision": "cascade_core.strategies",
    "MixedStrategy": "cascade_core.strategies",
    "OptimalCascade": "cascade_core.strategies",
    "Routing": "cascade_core.strategies",
    "Strategy": "cascade_core.strategies",
    "ThresholdCascade": "cascade_core.strategies",
    "make_strategy": "cascade_core.strategies",
    # estimates (E[max] itself: `cascade_core.expected_max`, a submodule of that name)
    "QueryEstimates": "cascade_core.estimates",
    "Uncertainty": "cascade_core.estimates",
    # fitting lambda to a budget
    "BudgetFit": "cascade_core.fitting.budget",
    "budget_grid": "cascade_core.budget",
    "fit_budget": "cascade_core.fitting.budget",
    # replaying a strategy over logged answers
    "BatchContext": "cascade_core.replay.simulate",
    "BatchOutcome": "cascade_core.replay.simulate",
    "StagedEstimates": "cascade_core.replay.simulate",
    "run_batch": "cascade_core.replay.simulate",
    # errors callers catch
    "AllModelsFailedError": "cascade_core.errors",
    "CascadeError": "cascade_core.errors",
    "CascadeStreamError": "cascade_core.errors",
    "InvalidInputError": "cascade_core.errors",
}

DISTRIBUTION = "cascade-router"

__all__ = ["__version__", *sorted(_EXPORTS)]


def _version() -> str:
    """The installed distribution's version: pyproject.toml is its one source."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # a source tree on sys.path, never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
