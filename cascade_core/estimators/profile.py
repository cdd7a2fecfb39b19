"""Versioned JSON profiles: save a fitted estimator, load it back with identical predictions.

Floats are written with Python's shortest round-trip repr, so a loaded profile reproduces
every coefficient bit for bit. The format carries a version; a profile from another version
is refused instead of being misread, because a changed feature order would silently produce
wrong estimates.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from cascade_core.errors import InvalidInputError
from cascade_core.estimators.costs import TokenCostModel
from cascade_core.estimators.features import FeatureSpec
from cascade_core.estimators.logistic import LogisticModel
from cascade_core.estimators.quality import LogisticQualityEstimator

PROFILE_FORMAT = "cascade-router-quality-profile"
PROFILE_VERSION = 1


class ProfileVersionError(InvalidInputError):
    """The profile was written by another (older or unknown) profile version."""


def profile_to_dict(
    estimator: LogisticQualityEstimator, cost_model: TokenCostModel | None = None
) -> dict[str, Any]:
    states = [
        {
            "ran": list(state),
            "models": [m.to_dict() for m in models],
            "covariance": estimator.covariances[state].tolist(),
        }
        for state, models in sorted(estimator.models.items(), key=lambda kv: (len(kv[0]), kv[0]))
    ]
    return {
        "format": PROFILE_FORMAT,
        "version": PROFILE_VERSION,
        "kind": "logistic",
        "features": estimator.spec.to_dict(),
        "states": states,
        "cost": None if cost_model is None else cost_model.to_dict(),
    }


def profile_from_dict(
    data: dict[str, Any], source: str = "<profile>"
) -> tuple[LogisticQualityEstimator, TokenCostModel | None]:
    if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
        raise InvalidInputError(f"{source}: not a cascade-router quality profile")
    version = data.get("version")
    if version != PROFILE_VERSION:
        age = (
            "older"
            if isinstance(version, int) and version < PROFILE_VERSION
            else "unknown (newer?)"
        )
        raise ProfileVersionError(
            f"{source}: profile version {version!r} is {age}; this cascade-router reads "
            f"version {PROFILE_VERSION} only. Refit the estimators on your logs and save a "
            "new profile (features or their order may have changed between versions)."
        )
    if data.get("kind") != "logistic":
        raise InvalidInputError(f"{source}: unknown estimator kind {data.get('kind')!r}")
    spec = FeatureSpec.from_dict(data["features"])
    models: dict[tuple[int, ...], list[LogisticModel]] = {}
    covariances: dict[tuple[int, ...], np.ndarray] = {}
    for entry in data["states"]:
        state = tuple(int(i) for i in entry["ran"])
        models[state] = [LogisticModel.from_dict(m) for m in entry["models"]]
        covariances[state] = np.asarray(entry["covariance"], dtype=float)
    cost = None if data.get("cost") is None else TokenCostModel.from_dict(data["cost"])
    return LogisticQualityEstimator(spec=spec, models=models, covariances=covariances), cost


def save_profile(
    path: str | os.PathLike[str],
    estimator: LogisticQualityEstimator,
    cost_model: TokenCostModel | None = None,
) -> None:
    Path(path).write_text(json.dumps(profile_to_dict(estimator, cost_model)), encoding="utf-8")


def load_profile(
    path: str | os.PathLike[str],
) -> tuple[LogisticQualityEstimator, TokenCostModel | None]:
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path}: not valid JSON ({exc.msg})") from None
    return profile_from_dict(data, str(path))
