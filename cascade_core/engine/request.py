"""Validate one request's inputs before any model is called.

The parameters are checked by a pydantic model in strict mode: ``bool`` is a subclass of
``int`` in Python, so without strictness ``max_tokens=True`` would silently mean 1; and a
non-finite ``temperature`` would only fail at the provider, once per model of the ladder.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from cascade_core.engine.config import API_KEY_REFUSED
from cascade_core.engine.redaction import redact
from cascade_core.errors import InvalidInputError
from cascade_core.latency import LatencyWeights
from cascade_core.validation import MAX_COUNT, StrictInt, StrictNumber, validate_as

_INT64 = 2**63


class RequestParams(BaseModel):
    """The request parameters the engine accepts, and what each must be."""

    model_config = ConfigDict(
        extra="forbid", strict=True, hide_input_in_errors=True, arbitrary_types_allowed=True
    )

    tools: list[dict[str, Any]] | None = None
    tool_choice: StrictStr | dict[str, Any] | None = None
    # A JSON-schema dict, or a pydantic model class (LiteLLM accepts both).
    response_format: dict[str, Any] | type[BaseModel] | None = None
    temperature: Annotated[StrictNumber, Field(ge=0)] | None = None
    max_tokens: Annotated[StrictInt, Field(ge=1, le=MAX_COUNT)] | None = None
    stop: StrictStr | list[StrictStr] | None = None
    seed: Annotated[StrictInt, Field(ge=-_INT64, lt=_INT64)] | None = None
    top_p: Annotated[StrictNumber, Field(ge=0, le=1)] | None = None
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)] | None = None
    logprobs: StrictBool | None = None
    # USD per second of waiting, for this request (checked by `LatencyWeights.parse`).
    latency_weights: Any = None


ACCEPTED_PARAMS = frozenset(RequestParams.model_fields)


def build_request(messages: Any, params: dict[str, Any]) -> dict[str, Any]:
    """A plain dict request; bad input is refused naming the field and the fix.

    Values are passed on as given (validation converts nothing), except that a single
    ``stop`` string becomes a one-item list.
    """
    if not isinstance(messages, list) or not messages:
        raise InvalidInputError("messages: give a non-empty list of {'role', 'content'} dicts")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidInputError(f"messages[{i}]: each message needs a 'role' key (a string)")
    if "api_key" in params:
        raise InvalidInputError(API_KEY_REFUSED)
    unknown = sorted(redact(str(name), ()) for name in set(params) - ACCEPTED_PARAMS)
    if unknown:
        raise InvalidInputError(
            f"unknown request parameter(s) {unknown}; accepted: {sorted(ACCEPTED_PARAMS)}"
        )
    validate_as(RequestParams, params, "request")
    if params.get("latency_weights") is not None:
        weights = LatencyWeights.parse(params["latency_weights"], "request", ("latency_weights",))
        params = {**params, "latency_weights": weights}
    if isinstance(params.get("stop"), str):
        params = {**params, "stop": [params["stop"]]}
    return {"messages": messages, **{k: v for k, v in params.items() if v is not None}}
