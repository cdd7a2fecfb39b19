"""Versioned JSON profiles: save a fitted estimator, load it back with identical predictions.

Floats are written with Python's shortest round-trip repr, so a loaded profile reproduces
every coefficient bit for bit. The format carries a version; a profile from another version
is refused instead of being misread, because a changed feature order would silently produce
wrong estimates.

Loading checks the whole profile before anything uses it: every state (subset of the models)
present once, each regression's mean/scale/coef as long as that state's feature vector,
finite numbers, each covariance k x k symmetric positive semi-definite. A profile that
passes cannot fail later with a ``KeyError`` or a shape mismatch on some request; one that
does not is refused with one `InvalidInputError` naming the file and the JSON location
(``profile.json: states.3.models.1.coef: expected 7 numbers, got 5``). Keys this version
does not know are ignored at the top level only (the calibration summary and the engine's
``budget`` section live there, and a ``cost`` section that older versions wrote and no one
read).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, StrictStr

from cascade_core.errors import InvalidInputError
from cascade_core.estimates import Uncertainty
from cascade_core.estimators.features import FeatureSpec
from cascade_core.estimators.logistic import LogisticModel
from cascade_core.estimators.quality import (
    MAX_FITTED_MODELS,
    LogisticQualityEstimator,
    StateKey,
)
from cascade_core.key_shapes import mask_keys
from cascade_core.textfiles import TextFileError, read_text
from cascade_core.validation import StrictInt, StrictNumber, validate_as

PROFILE_FORMAT = "cascade-router-quality-profile"
PROFILE_VERSION = 1


class ProfileVersionError(InvalidInputError):
    """The profile was written by another (older or unknown) profile version."""


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True)


class _State(_Part):
    ran: list[StrictInt]
    models: list[Any]  # each checked by `LogisticModel.from_dict` against the state's width
    covariance: list[list[StrictNumber]]


class _Profile(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, hide_input_in_errors=True)

    kind: StrictStr
    features: Any  # checked by `FeatureSpec.from_dict`
    states: list[_State]


def profile_to_dict(estimator: LogisticQualityEstimator) -> dict[str, Any]:
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
    }


def profile_from_dict(data: Any, source: str = "<profile>") -> LogisticQualityEstimator:
    """The estimator of a profile dict, checked completely (module doc)."""
    if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
        raise InvalidInputError(
            f'{source}: not a cascade-router quality profile (no "format": '
            f'"{PROFILE_FORMAT}"); give a profile written by `cascade-router calibrate`'
        )
    version = data.get("version")
    if type(version) is not int or version != PROFILE_VERSION:  # True == 1 in Python
        age = "older" if type(version) is int and version < PROFILE_VERSION else "unknown (newer?)"
        raise ProfileVersionError(
            f"{source}: profile version {_shown(version)} is {age}; this cascade-router reads "
            f"version {PROFILE_VERSION} only. Refit the estimators on your logs and save a "
            "new profile (features or their order may have changed between versions)."
        )
    profile = validate_as(_Profile, data, source)
    if profile.kind != "logistic":
        raise InvalidInputError(
            f"{source}: kind: unknown estimator kind {_shown(profile.kind)}; expected 'logistic'"
        )
    spec = FeatureSpec.from_dict(profile.features, source=source, at=("features",))
    if spec.n_models > MAX_FITTED_MODELS:
        raise InvalidInputError(
            f"{source}: features.model_names: {spec.n_models} models; profiles hold at most "
            f"{MAX_FITTED_MODELS}"
        )
    models, covariances = _states(profile.states, spec, source)
    estimator = LogisticQualityEstimator(spec=spec, models=models, covariances=covariances)
    return estimator


def _states(
    states: list[_State], spec: FeatureSpec, source: str
) -> tuple[dict[StateKey, list[LogisticModel]], dict[StateKey, np.ndarray]]:
    """Every subset of the models exactly once, each regression as wide as its state."""
    k = spec.n_models
    if len(states) != 2**k:
        raise InvalidInputError(
            f"{source}: states: expected {2**k} states (every subset of the {k} models), "
            f"got {len(states)}"
        )
    models: dict[StateKey, list[LogisticModel]] = {}
    covariances: dict[StateKey, np.ndarray] = {}
    first_seen: dict[StateKey, int] = {}
    for i, entry in enumerate(states):
        where = f"{source}: states.{i}"
        state = tuple(entry.ran)
        if any(not 0 <= m < k for m in state) or list(state) != sorted(set(state)):
            raise InvalidInputError(
                f"{where}.ran: expected distinct model indices in 0..{k - 1}, ascending"
            )
        if state in first_seen:
            raise InvalidInputError(f"{where}.ran: repeats states.{first_seen[state]}")
        first_seen[state] = i
        if len(entry.models) != k:
            raise InvalidInputError(
                f"{where}.models: expected {k} models (one per model), got {len(entry.models)}"
            )
        width = len(spec.state_names(state))
        models[state] = [
            LogisticModel.from_dict(m, width, source=source, at=("states", i, "models", j))
            for j, m in enumerate(entry.models)
        ]
        if [len(row) for row in entry.covariance] != [k] * k:
            raise InvalidInputError(f"{where}.covariance: expected a {k} x {k} matrix")
        covariances[state] = np.asarray(entry.covariance, dtype=float)
        try:  # the check every request's uncertainty makes, made once here
            Uncertainty.from_covariance(covariances[state])
        except InvalidInputError as error:
            problem = str(error).removeprefix("covariance: ")
            raise InvalidInputError(f"{where}.covariance: {problem}") from None
    return models, covariances


def _shown(value: Any) -> str:
    """A short, safe rendering of a scalar from the file (never a long string)."""
    if isinstance(value, str) and len(value) > 20:
        return f"(a {len(value)}-character string)"
    return mask_keys(repr(value))


def save_profile(path: str | os.PathLike[str], estimator: LogisticQualityEstimator) -> None:
    Path(path).write_text(json.dumps(profile_to_dict(estimator)), encoding="utf-8")


def read_profile_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object of a profile file, or one `InvalidInputError` naming the file (and
    line:column for a syntax error). The estimator loader and the engine's budget policy both
    read profiles through here."""
    try:
        text = read_text(path).removeprefix("\ufeff")
    except TextFileError as error:
        if error.line is None:  # missing, a directory, unreadable
            raise InvalidInputError(
                f"profile {error}; check the path, or fit one with `cascade-router calibrate`"
            ) from None
        raise
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(
            f"{path}:{error.lineno}:{error.colno}: not valid JSON ({error.msg}); refit the "
            "profile with `cascade-router calibrate`"
        ) from None
    except RecursionError:
        raise InvalidInputError(f"{path}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: not a cascade-router quality profile (not an object)")
    return data


def load_profile(path: str | os.PathLike[str]) -> LogisticQualityEstimator:
    return profile_from_dict(read_profile_document(path), str(path))
