"""Which lambda the live engine uses: from the config, or from a calibrated profile.

* ``budget.lambda`` in the config: used as given (a profile's fitted lambda is ignored).
* ``budget.target_cost_usd``: needs a profile written by `cascade-router calibrate`; its
  ``budget.curve`` (average cost per lambda on the calibration prompts) gives the two
  neighbouring lambdas around the target and the probability of the more expensive one, so
  the expected average cost equals the target, as the paper's budget fitting does.
* neither: the policy fitted by ``calibrate --budget/--target-quality`` when the profile has
  one, else lambda 0 (cost only breaks ties).

Why the curve rather than one lambda: the target can then be changed in the config without
refitting, and the profile stays readable by version-1 loaders, which ignore the key.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

from cascade_core.engine.config import RouterConfig, StrategySpec
from cascade_core.errors import InvalidInputError
from cascade_core.strategies import Strategy, make_strategy
from cascade_core.strategies.mixed import MixedStrategy


def profile_budget(path: Path | None) -> dict[str, Any] | None:
    """The profile's optional ``budget`` section (None for older version-1 profiles)."""
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # the estimator loader reports unreadable profiles with context
    section = data.get("budget") if isinstance(data, dict) else None
    return section if isinstance(section, dict) else None


def configured_strategy(config: RouterConfig) -> Strategy:
    budget = config.budget
    spec = config.strategy
    if budget.lam is not None:
        return make_strategy(spec.name, **spec.parameters(budget.lam))
    section = profile_budget(config.profile)
    if budget.target_cost_usd is not None:
        if section is None or not section.get("curve"):
            raise InvalidInputError(
                "budget.target_cost_usd: needs a profile fitted by `cascade-router calibrate` "
                "(set `profile:`), or set budget.lambda instead"
            )
        _check_strategy(section, spec, config.profile)
        cheap, expensive, gamma = lambdas_for_cost(section["curve"], budget.target_cost_usd)
        return _mixed(spec, cheap, expensive, gamma)
    if section is not None and section.get("lambda") is not None:
        _check_strategy(section, spec, config.profile)
        return _mixed(
            spec,
            float(section["lambda"]),
            float(section.get("lambda_expensive", section["lambda"])),
            float(section.get("gamma", 0.0)),
        )
    return make_strategy(spec.name, **spec.parameters(0.0))


def lambdas_for_cost(curve: list[dict[str, Any]], target: float) -> tuple[float, float, float]:
    """(cheap lambda, expensive lambda, P(expensive)) whose mixed average cost is ``target``."""
    points = sorted(curve, key=lambda p: float(p["lambda"]))
    if float(points[0]["cost_usd"]) <= target:
        lam = float(points[0]["lambda"])
        return lam, lam, 0.0
    for over, under in pairwise(points):
        if float(under["cost_usd"]) <= target:
            c_over, c_under = float(over["cost_usd"]), float(under["cost_usd"])
            gamma = 0.0 if c_over <= c_under else (target - c_under) / (c_over - c_under)
            return float(under["lambda"]), float(over["lambda"]), min(1.0, max(0.0, gamma))
    cheapest = min(float(p["cost_usd"]) for p in points)
    raise InvalidInputError(
        f"budget.target_cost_usd: {target:.6g} USD is below the cheapest average cost the "
        f"calibration reached ({cheapest:.6g} USD per request); raise the target"
    )


def _mixed(spec: StrategySpec, cheap: float, expensive: float, gamma: float) -> Strategy:
    low = make_strategy(spec.name, **spec.parameters(cheap))
    if gamma <= 0.0 or cheap == expensive:
        return low
    high = make_strategy(spec.name, **spec.parameters(expensive))
    return MixedStrategy(cheap=low, expensive=high, gamma=gamma)


def _check_strategy(section: dict[str, Any], spec: StrategySpec, path: Path | None) -> None:
    """Lambda values mean different things to different strategies: refuse a mismatch."""
    fitted = section.get("strategy") or {}
    if fitted.get("name") != spec.name or fitted.get("variant", spec.variant) != spec.variant:
        raise InvalidInputError(
            f"profile {path}: lambda was calibrated for strategy {fitted.get('name')!r} "
            f"({fitted.get('variant')!r}), the config uses {spec.name!r} ({spec.variant!r}); "
            "recalibrate or set budget.lambda"
        )
