"""The profile's ``latency`` section: each model's latency averages as `calibrate` measured
them, so a new engine prices time from its first request instead of after a few calls.

Why a section of its own: the estimator profile's format (version 1) ignores unknown top-level
keys, so adding latency needs no new profile version, and an older profile without it simply
starts the latency model empty. Loading checks every entry (finite, non-negative numbers,
known models only) and names the offending field in one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from cascade_core.errors import InvalidInputError
from cascade_core.latency.model import ModelLatency
from cascade_core.validation import StrictInt, StrictNumber, validate_as

SECTION = "latency"

Seconds = Annotated[StrictNumber, Field(ge=0.0)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True)

    ttft_s: Seconds | None = None
    s_per_token: Seconds | None = None
    output_tokens: Seconds | None = None
    observations: Annotated[StrictInt, Field(ge=0)] = 0


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, hide_input_in_errors=True)

    models: dict[str, _Entry]


def latency_section(averages: Mapping[str, ModelLatency]) -> dict[str, Any]:
    """The JSON section for a profile: every model's averages (None where not measured)."""
    return {
        "models": {
            name: {
                "ttft_s": a.ttft_s,
                "s_per_token": a.s_per_token,
                "output_tokens": a.output_tokens,
                "observations": a.observations,
            }
            for name, a in averages.items()
        }
    }


def averages_from_section(
    section: Any, models: Sequence[str], source: str = "profile"
) -> dict[str, ModelLatency]:
    """The averages a profile stored for ``models`` (empty when it stored none); a model the
    section names that is not in the ladder is refused (the profile is for another ladder)."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise InvalidInputError(
            f"{source}: {SECTION}: expected an object with 'models'; refit with "
            "`cascade-router calibrate`"
        )
    parsed = validate_as(_Section, section, source, (SECTION,))
    unknown = sorted(set(parsed.models) - set(models))
    if unknown:
        raise InvalidInputError(
            f"{source}: {SECTION}.models: {unknown} are not in the ladder {list(models)}; "
            "refit the profile for this ladder"
        )
    return {
        name: ModelLatency(
            ttft_s=entry.ttft_s,
            s_per_token=entry.s_per_token,
            output_tokens=entry.output_tokens,
            observations=entry.observations,
        )
        for name, entry in parsed.models.items()
    }
