"""The ladder as the engine uses it: each model's resolved prices, limits and capabilities.

Prices, context windows and logprob support are resolved once, when the router is built:
from the config when given, else from LiteLLM's model cost map and supported parameters, so
that no lookup happens on the request path.

Prompt-cache prices: a cached input token costs ``cache_read_input_cost_per_token`` and a
token written to the cache ``cache_creation_input_cost_per_token`` (Anthropic bills writes
above the input price). Each defaults to LiteLLM's ``cache_read_input_token_cost`` /
``cache_creation_input_token_cost`` when the input price also comes from LiteLLM's map (a
price the user set is not mixed with the map's), else to the input price: no discount is
assumed that nobody stated.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import litellm

from cascade_core.engine.cache_usage import CacheUsage
from cascade_core.engine.config import ModelSpec
from cascade_core.engine.prompt_tokens import input_token_bound
from cascade_core.engine.redaction import protect_logs
from cascade_core.errors import InvalidInputError
from cascade_core.sessions.messages import DIALECTS, Dialect

# Tokenizers differ between providers; the cost cap uses this margin on LiteLLM's count so
# that an undercounted prompt cannot push a request over its cap.
INPUT_TOKEN_MARGIN = 1.25
SELF_HOSTED_PLACEHOLDER_KEY = "no-key-required"
DEFAULT_DIALECT = DIALECTS["openai"]


@dataclass(frozen=True)
class LadderModel:
    """One model with everything resolved. Holds the key's variable name, never the key."""

    index: int
    spec: ModelSpec
    input_cost_per_token: float
    output_cost_per_token: float
    context_window: int | None
    supports_logprobs: bool
    cache_read_cost_per_token: float = 0.0
    cache_write_cost_per_token: float = 0.0
    dialect: Dialect = DEFAULT_DIALECT
    # How errors name this model's config section: "models[0] (small)", "verifier.model (judge)"
    where: str = ""

    @property
    def label(self) -> str:
        return self.spec.label

    @classmethod
    def resolve(cls, index: int, spec: ModelSpec, where: str | None = None) -> LadderModel:
        """``where`` names the model's config section in errors (default: its ladder rung)."""
        where = where or f"models[{index}]"
        where = f"{where} ({spec.label})"
        info = {} if spec.model in _PRICED_BY_LADDERS else _model_info(spec.model)
        input_price = spec.input_cost_per_token
        output_price = spec.output_cost_per_token
        if input_price is None:
            input_price = info.get("input_cost_per_token")
        if output_price is None:
            output_price = info.get("output_cost_per_token")
        if input_price is None or output_price is None:
            raise InvalidInputError(
                f"{where}: LiteLLM has no price for {spec.model!r}; "
                "set input_cost_per_token and output_cost_per_token"
            )
        window = spec.context_window or info.get("max_input_tokens")
        logprobs = spec.supports_logprobs
        if logprobs is None:
            logprobs = _detect_logprobs(spec.model)
        mapped = {} if spec.input_cost_per_token is not None else info
        read = spec.cache_read_input_cost_per_token
        if read is None:
            read = mapped.get("cache_read_input_token_cost")
        write = spec.cache_creation_input_cost_per_token
        if write is None:
            write = mapped.get("cache_creation_input_token_cost")
        return cls(
            index,
            spec,
            float(input_price),
            float(output_price),
            window,
            logprobs,
            cache_read_cost_per_token=float(input_price if read is None else read),
            cache_write_cost_per_token=float(input_price if write is None else write),
            dialect=Dialect.for_model(spec.model),
            where=where,
        )

    def api_key(self) -> str | None:
        """Read the key from the environment at call time; it is never stored."""
        if self.spec.api_key_env is None:
            # Self-hosted OpenAI-compatible servers often need no key, but the OpenAI client
            # refuses to send a request without one.
            return SELF_HOSTED_PLACEHOLDER_KEY if self.spec.api_base else None
        key = os.environ.get(self.spec.api_key_env)
        if not key:
            raise InvalidInputError(
                f"{self.where or self.label}: environment variable {self.spec.api_key_env} "
                "is not set"
            )
        return key

    def count_input_tokens(self, params: Mapping[str, Any]) -> int:
        """Input tokens of the exact keyword arguments sent (`prompt_tokens`), no I/O."""
        return input_token_bound(self.spec.model, params)

    def count_message_tokens(self, message: Mapping[str, Any]) -> int:
        """Input tokens of one message (its share of a prompt, for cache prefixes)."""
        return input_token_bound(self.spec.model, {"messages": [dict(message)]})

    def count_output_tokens(self, text: str) -> int:
        """Tokens of an answer whose usage the provider did not report."""
        if not text:
            return 0
        return int(litellm.token_counter(model=self.spec.model, text=text))

    def expected_cost(
        self,
        input_tokens: int,
        max_tokens: int | None,
        choices: int = 1,
        cached_tokens: int = 0,
        writes_cache: bool = False,
    ) -> float:
        """Cost estimate for the strategy: the expected output length, capped by max_tokens;
        ``cached_tokens`` of the input at the cache-read price, and the rest at the cache-write
        price when the request asks for a cache write (``cache_control``) and writes cost more.
        """
        output = self.spec.expected_output_tokens
        if max_tokens is not None:
            output = min(output, max_tokens)
        cached = min(max(0, cached_tokens), input_tokens)
        fresh_price = self.input_cost_per_token
        if writes_cache:
            fresh_price = max(fresh_price, self.cache_write_cost_per_token)
        return (
            (input_tokens - cached) * fresh_price
            + cached * self.cache_read_cost_per_token
            + choices * output * self.output_cost_per_token
        )

    @property
    def _bound_input_price(self) -> float:
        """The highest price an input token may be billed at: no cache hit is assumed, and a
        write to the cache may cost more than plain input."""
        return max(self.input_cost_per_token, self.cache_write_cost_per_token)

    def worst_case_cost(self, input_tokens: int, max_tokens: int, choices: int = 1) -> float:
        """Upper bound for the hard cap: margin on the input, every allowed output token."""
        return (
            input_tokens * INPUT_TOKEN_MARGIN * self._bound_input_price
            + choices * max_tokens * self.output_cost_per_token
        )

    def affordable_output_tokens(
        self, input_tokens: int, allowance: float, choices: int = 1
    ) -> int:
        """The most output tokens per choice that keep a call within ``allowance`` USD."""
        left = allowance - input_tokens * INPUT_TOKEN_MARGIN * self._bound_input_price
        if left < 0:
            return 0
        if self.output_cost_per_token == 0:
            return 2**31 - 1
        return max(0, math.floor(left / (choices * self.output_cost_per_token)))

    def actual_cost(
        self, prompt_tokens: int, completion_tokens: int, cache: CacheUsage | None = None
    ) -> float:
        """What the call cost, as LiteLLM prices usage: cache reads and writes at their prices,
        the rest of the prompt at the input price."""
        read = written = 0
        if cache is not None:
            read = min(cache.read, prompt_tokens)
            written = min(cache.written, prompt_tokens - read)
        return (
            (prompt_tokens - read - written) * self.input_cost_per_token
            + read * self.cache_read_cost_per_token
            + written * self.cache_write_cost_per_token
            + completion_tokens * self.output_cost_per_token
        )


def resolve_ladder(specs: Sequence[ModelSpec]) -> tuple[LadderModel, ...]:
    """Every model resolved, and the process made safe to call them from: provider logs
    scrubbed of these models' keys (and LiteLLM's implicit ones), LiteLLM's stdout banners
    off (they would corrupt a CLI's JSON output and cannot be scrubbed)."""
    protect_logs(spec.api_key_env for spec in specs)
    litellm.suppress_debug_info = True
    ladder = tuple(LadderModel.resolve(i, spec) for i, spec in enumerate(specs))
    _price_unmapped_models(ladder)
    return ladder


def resolve_extra_model(spec: ModelSpec, index: int, where: str) -> LadderModel:
    """A model the engine calls besides the ladder (the verifier), resolved, priced and
    protected like a rung; ``index`` must be outside the ladder's, so it names no rung."""
    protect_logs([spec.api_key_env])
    litellm.suppress_debug_info = True
    model = LadderModel.resolve(index, spec, where=where)
    _price_unmapped_models([model])
    return model


def _price_unmapped_models(ladder: Sequence[LadderModel]) -> None:
    """Tell LiteLLM the ladder's prices of the models its price map does not know
    (self-hosted ones), once per process, so that LiteLLM's callbacks and spend logs price
    their calls as the engine bills them instead of as free.

    Once, not per call: LiteLLM's per-call custom pricing re-registers the model and rebuilds
    its price-map index on every call. Models LiteLLM already prices are left alone, because
    the map is process-wide and other code may call them.
    """
    entries = {}
    for model in ladder:
        name = model.spec.model
        prices = (model.input_cost_per_token, model.output_cost_per_token)
        if model.spec.input_cost_per_token is None or _PRICED_BY_LADDERS.get(name) == prices:
            continue
        if name not in _PRICED_BY_LADDERS and _model_info(name):
            continue
        try:
            provider = litellm.get_llm_provider(model.spec.model)[1]
        except Exception:  # LiteLLM raises bare exceptions for names it cannot place
            continue
        entries[model.spec.model] = {
            "litellm_provider": provider,
            "mode": "chat",
            "input_cost_per_token": model.input_cost_per_token,
            "output_cost_per_token": model.output_cost_per_token,
        }
    if entries:
        # LiteLLM warns that a registered model is not in its built-in map: that is the
        # point here, and the warning would break a CLI's one-line output.
        litellm_logger = logging.getLogger("LiteLLM")
        level = litellm_logger.level
        litellm_logger.setLevel(logging.ERROR)
        try:
            litellm.register_model(entries)
        finally:
            litellm_logger.setLevel(level)
        for name, entry in entries.items():
            _PRICED_BY_LADDERS[name] = (
                entry["input_cost_per_token"],
                entry["output_cost_per_token"],
            )


# Models whose LiteLLM price a ladder gave (name -> input, output price per token): they
# still count as unknown to LiteLLM, so a later ladder that names one without a price is
# refused as before instead of inheriting another ladder's price.
_PRICED_BY_LADDERS: dict[str, tuple[float, float]] = {}


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
