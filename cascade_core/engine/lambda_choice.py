"""Which lambda the live engine uses: from the config, or from a calibrated profile.

* ``budget.lambda`` in the config: used as given (a profile's fitted lambda is ignored).
* ``budget.target_cost_usd``: needs a profile written by `cascade-router calibrate`; its
  ``budget.curve`` (average cost per lambda on the calibration prompts) gives the two
  neighbouring lambdas around the target and the probability of the more expensive one, so
  the expected average cost equals the target (`cascade_core.budget.lambdas_for_cost`).
* neither: the policy fitted by ``calibrate --budget/--target-quality`` when the profile has
  one, else lambda 0 (cost only breaks ties).

Cascade routing's ``draft: auto`` takes the first step the profile's lambda was fitted for
(`calibrate` chooses it on the calibration prompts) wherever that lambda is used, and plans
the first step otherwise; an explicit ``draft`` must match the profile's, as the variant must.

Why the curve rather than one lambda: the target can then be changed in the config without
refitting, and the profile stays readable by version-1 loaders, which ignore the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from cascade_core.budget import lambdas_for_cost, mix
from cascade_core.engine.config import RouterConfig, StrategySpec
from cascade_core.errors import InvalidInputError
from cascade_core.estimators.profile import read_profile_document
from cascade_core.strategies import Strategy, make_strategy
from cascade_core.validation import StrictNumber, validate_as

_NonNegative = Annotated[StrictNumber, Field(ge=0)]
_Probability = Annotated[StrictNumber, Field(ge=0, le=1)]


class _Section(BaseModel):
    # Keys this version does not read are ignored, as the profile's own loader does.
    model_config = ConfigDict(
        extra="ignore", strict=True, hide_input_in_errors=True, populate_by_name=True
    )


class CurvePoint(_Section):
    """Average cost (and quality) the strategy reached at one lambda on calibration data."""

    lam: _NonNegative = Field(alias="lambda")
    cost_usd: _NonNegative
    quality: _Probability | None = None
    escalation_rate: _Probability | None = None


class ProfileBudget(_Section):
    """The ``budget`` section `cascade-router calibrate` writes into a profile."""

    strategy: StrategySpec
    curve: list[CurvePoint] = Field(min_length=1)
    target_cost_usd: _NonNegative | None = None
    target_quality: _Probability | None = None
    lam: _NonNegative | None = Field(None, alias="lambda")
    lambda_expensive: _NonNegative | None = None
    gamma: _Probability | None = None
    expected_cost_usd: _NonNegative | None = None
    expected_quality: _Probability | None = None
    expected_escalation_rate: _Probability | None = None


def profile_budget(path: Path | None) -> ProfileBudget | None:
    """The profile's optional ``budget`` section, checked completely (None when the profile
    has none, e.g. one fitted for threshold_cascade); any problem with the file or the section
    is one `InvalidInputError` naming the file and the field."""
    if path is None:
        return None
    section = read_profile_document(path).get("budget")
    if section is None:
        return None
    return validate_as(ProfileBudget, section, str(path), ("budget",))


def configured_strategy(config: RouterConfig) -> Strategy:
    budget = config.budget
    spec = config.strategy
    section = profile_budget(config.profile)  # checked even when budget.lambda overrides it
    if budget.lam is not None:
        return make_strategy(spec.name, **spec.parameters(budget.lam))
    if budget.target_cost_usd is not None:
        if section is None:
            raise InvalidInputError(
                "budget.target_cost_usd: needs a profile fitted by `cascade-router calibrate` "
                "(set `profile:`), or set budget.lambda instead"
            )
        spec = _check_strategy(section, spec, config.profile)
        curve = [{"lambda": p.lam, "cost_usd": p.cost_usd} for p in section.curve]
        cheap, expensive, gamma = lambdas_for_cost(curve, budget.target_cost_usd)
        return _mixed(spec, cheap, expensive, gamma)
    if section is not None and section.lam is not None:
        spec = _check_strategy(section, spec, config.profile)
        expensive = section.lam if section.lambda_expensive is None else section.lambda_expensive
        return _mixed(spec, section.lam, expensive, section.gamma or 0.0)
    return make_strategy(spec.name, **spec.parameters(0.0))


def _mixed(spec: StrategySpec, cheap: float, expensive: float, gamma: float) -> Strategy:
    low = make_strategy(spec.name, **spec.parameters(cheap))
    high = make_strategy(spec.name, **spec.parameters(expensive))
    return mix(low, high, gamma)


def _check_strategy(section: ProfileBudget, spec: StrategySpec, path: Path | None) -> StrategySpec:
    """The config's strategy with the profile's fitted first step (``draft: auto``).

    Lambda values mean different things to different strategies: refuse a mismatch."""
    fitted = section.strategy
    if fitted.name != spec.name or fitted.variant != spec.variant:
        raise InvalidInputError(
            f"profile {path}: lambda was calibrated for strategy {fitted.name!r} "
            f"({fitted.variant!r}), the config uses {spec.name!r} ({spec.variant!r}); "
            "recalibrate or set budget.lambda"
        )
    fitted_draft = fitted.draft is True  # profiles before the choice planned the first step
    if spec.draft != "auto" and spec.draft != fitted_draft:
        raise InvalidInputError(
            f"profile {path}: lambda was calibrated with strategy.draft {fitted_draft}, the "
            f"config sets {spec.draft}; set strategy.draft to auto, recalibrate, or set "
            "budget.lambda"
        )
    return spec.model_copy(update={"draft": fitted_draft})
