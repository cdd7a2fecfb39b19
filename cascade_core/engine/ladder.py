"""The ladder as the engine uses it: each model's resolved prices, limits and capabilities.

Prices, context windows and logprob support are resolved once, when the router is built:
from the config when given, else from LiteLLM's model cost map and supported parameters, so
that no lookup happens on the request path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import litellm

from cascade_core.engine.config import ModelSpec
from cascade_core.engine.prompt_tokens import input_token_bound
from cascade_core.engine.redaction import protect_logs
from cascade_core.errors import InvalidInputError

# Tokenizers differ between providers; the cost cap uses this margin on LiteLLM's count so
# that an undercounted prompt cannot push a request over its cap.
INPUT_TOKEN_MARGIN = 1.25
SELF_HOSTED_PLACEHOLDER_KEY = "no-key-required"


@dataclass(frozen=True)
class LadderModel:
    """One model with everything resolved. Holds the key's variable name, never the key."""

    index: int
    spec: ModelSpec
    input_cost_per_token: float
    output_cost_per_token: float
    context_window: int | None
    supports_logprobs: bool

    @property
    def label(self) -> str:
        return self.spec.label

    @classmethod
    def resolve(cls, index: int, spec: ModelSpec) -> LadderModel:
        info = _model_info(spec.model)
        input_price = spec.input_cost_per_token
        output_price = spec.output_cost_per_token
        if input_price is None:
            input_price = info.get("input_cost_per_token")
        if output_price is None:
            output_price = info.get("output_cost_per_token")
        if input_price is None or output_price is None:
            raise InvalidInputError(
                f"models[{index}] ({spec.label}): LiteLLM has no price for {spec.model!r}; "
                "set input_cost_per_token and output_cost_per_token"
            )
        window = spec.context_window or info.get("max_input_tokens")
        logprobs = spec.supports_logprobs
        if logprobs is None:
            logprobs = _detect_logprobs(spec.model)
        return cls(index, spec, float(input_price), float(output_price), window, logprobs)

    def api_key(self) -> str | None:
        """Read the key from the environment at call time; it is never stored."""
        if self.spec.api_key_env is None:
            # Self-hosted OpenAI-compatible servers often need no key, but the OpenAI client
            # refuses to send a request without one.
            return SELF_HOSTED_PLACEHOLDER_KEY if self.spec.api_base else None
        key = os.environ.get(self.spec.api_key_env)
        if not key:
            raise InvalidInputError(
                f"model {self.label}: environment variable {self.spec.api_key_env} is not set"
            )
        return key

    def count_input_tokens(self, params: Mapping[str, Any]) -> int:
        """Input tokens of the exact keyword arguments sent (`prompt_tokens`), no I/O."""
        return input_token_bound(self.spec.model, params)

    def count_output_tokens(self, text: str) -> int:
        """Tokens of an answer whose usage the provider did not report."""
        if not text:
            return 0
        return int(litellm.token_counter(model=self.spec.model, text=text))

    def expected_cost(self, input_tokens: int, max_tokens: int | None, choices: int = 1) -> float:
        """Cost estimate for the strategy: the expected output length, capped by max_tokens."""
        output = self.spec.expected_output_tokens
        if max_tokens is not None:
            output = min(output, max_tokens)
        return input_tokens * self.input_cost_per_token + choices * output * (
            self.output_cost_per_token
        )

    def worst_case_cost(self, input_tokens: int, max_tokens: int, choices: int = 1) -> float:
        """Upper bound for the hard cap: margin on the input, every allowed output token."""
        return (
            input_tokens * INPUT_TOKEN_MARGIN * self.input_cost_per_token
            + choices * max_tokens * self.output_cost_per_token
        )

    def affordable_output_tokens(
        self, input_tokens: int, allowance: float, choices: int = 1
    ) -> int:
        """The most output tokens per choice that keep a call within ``allowance`` USD."""
        left = allowance - input_tokens * INPUT_TOKEN_MARGIN * self.input_cost_per_token
        if left < 0:
            return 0
        if self.output_cost_per_token == 0:
            return 2**31 - 1
        return max(0, math.floor(left / (choices * self.output_cost_per_token)))

    def actual_cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_cost_per_token
            + completion_tokens * self.output_cost_per_token
        )


def resolve_ladder(specs: Sequence[ModelSpec]) -> tuple[LadderModel, ...]:
    """Every model resolved, and the process made safe to call them from: provider logs
    scrubbed of these models' keys (and LiteLLM's implicit ones), LiteLLM's stdout banners
    off (they would corrupt a CLI's JSON output and cannot be scrubbed)."""
    protect_logs(spec.api_key_env for spec in specs)
    litellm.suppress_debug_info = True
    return tuple(LadderModel.resolve(i, spec) for i, spec in enumerate(specs))


def _model_info(model: str) -> dict[str, Any]:
    try:
        return dict(litellm.get_model_info(model))
    except Exception:  # LiteLLM raises a bare Exception for unmapped models
        return {}


def _detect_logprobs(model: str) -> bool:
    try:
        provider = litellm.get_llm_provider(model)[1]
        params = litellm.get_supported_openai_params(model=model, custom_llm_provider=provider)
    except Exception:
        return False
    return bool(params) and "logprobs" in params
