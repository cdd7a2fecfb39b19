"""Router configuration: the model ladder, the strategy, the budget; from files or keywords.

Every model section names the *environment variable* that holds its API key, never the key:
configs are committed to repositories and printed in logs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from cascade_core.errors import InvalidInputError

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ModelSpec(_Strict):
    """One rung of the ladder."""

    model: str = Field(description="LiteLLM model id, e.g. 'openai/gpt-4o-mini'")
    name: str | None = Field(None, description="short label in traces; defaults to `model`")
    api_base: str | None = None
    api_key_env: str | None = Field(
        None, description="name of the environment variable holding the API key"
    )
    input_cost_per_token: NonNegativeFloat | None = Field(
        None, description="USD per input token; default: LiteLLM's cost map"
    )
    output_cost_per_token: NonNegativeFloat | None = None
    context_window: PositiveInt | None = Field(
        None, description="max input tokens; default: LiteLLM's model info, else unlimited"
    )
    supports_logprobs: bool | None = Field(
        None, description="default: detected from LiteLLM's supported parameters"
    )
    prior_quality: Probability | None = Field(
        None, description="P(correct) before any call, until a fitted profile replaces it"
    )
    expected_output_tokens: PositiveInt = Field(
        256, description="output length assumed by the cost estimate when max_tokens is unset"
    )
    extra_params: dict[str, Any] = Field(
        default_factory=dict, description="extra LiteLLM keyword arguments for this model"
    )

    @property
    def label(self) -> str:
        return self.name or self.model

    @field_validator("api_key_env")
    @classmethod
    def _env_name_only(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                "must be the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                "never the key itself"
            )
        return value

    @field_validator("extra_params")
    @classmethod
    def _no_secrets_in_extra(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "api_key" in value:
            raise ValueError("api_key is not accepted here; set api_key_env to a variable name")
        return value


class StrategySpec(_Strict):
    name: Literal["routing", "threshold_cascade", "optimal_cascade", "cascade_routing"] = (
        "cascade_routing"
    )
    variant: Literal["exact", "greedy", "no_expect"] = "exact"
    max_depth: PositiveInt | None = None
    threshold: Probability = 0.5

    def parameters(self, lam: float) -> dict[str, Any]:
        """Keyword arguments for ``make_strategy``."""
        if self.name == "cascade_routing":
            return {"lam": lam, "variant": self.variant, "max_depth": self.max_depth}
        if self.name == "threshold_cascade":
            return {"threshold": self.threshold}
        return {"lam": lam}


class BudgetSpec(_Strict):
    """How cost is traded against quality."""

    lam: NonNegativeFloat | None = Field(
        None, alias="lambda", description="quality points one USD is worth (per request)"
    )
    target_cost_usd: NonNegativeFloat | None = Field(
        None, description="average cost per request; lambda comes from the fitted profile"
    )
    max_cost_usd: NonNegativeFloat | None = Field(
        None, description="hard cap per request, checked before every call"
    )

    @model_validator(mode="after")
    def _one_way_to_set_lambda(self) -> BudgetSpec:
        if self.lam is not None and self.target_cost_usd is not None:
            raise ValueError("give either lambda or target_cost_usd, not both")
        return self


class RouterConfig(_Strict):
    models: list[ModelSpec] = Field(min_length=1)
    strategy: StrategySpec = Field(default_factory=StrategySpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    profile: Path | None = Field(None, description="fitted estimator profile (JSON)")
    num_retries: int = Field(2, ge=0, description="LiteLLM retries before a model counts as failed")
    timeout_s: float = Field(60.0, gt=0, description="per-call timeout passed to LiteLLM")
    prior_std: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.2, description="uncertainty of the ex-ante priors when no profile is fitted"
    )
    early_abort: bool = Field(
        True, description="stop streaming a draft once its logprobs make escalation certain"
    )

    @model_validator(mode="after")
    def _unique_labels(self) -> RouterConfig:
        labels = [m.label for m in self.models]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique; repeated: {duplicates}")
        return self

    @classmethod
    def from_file(cls, path: str | Path) -> RouterConfig:
        """Load a YAML or JSON file; relative profile paths resolve against the file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise InvalidInputError(f"config: cannot read {path}: {error.strerror}") from None
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
        if not isinstance(data, dict):
            raise InvalidInputError(f"config {path}: expected a mapping at the top level")
        config = cls.from_dict(data, source=str(path))
        if config.profile is not None and not config.profile.is_absolute():
            config = config.model_copy(update={"profile": path.parent / config.profile})
        return config

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> RouterConfig:
        """Validate a mapping; errors name each offending field and what was expected."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise InvalidInputError(describe_validation_error(error, source)) from None


def describe_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: {error.error_count()} invalid field(s)"]
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key; check the spelling against the documented fields"
        lines.append(f"  {location}: {message}")
    return "\n".join(lines)
