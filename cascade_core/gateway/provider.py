"""``CascadeProvider``: a whole ladder as one LiteLLM model, ``cascade/<ladder>``.

In code::

    from cascade_core.gateway import ladders, register
    ladders.add("support", "ladder.yaml")
    register()
    litellm.completion(model="cascade/support", messages=[...])

In LiteLLM Proxy's ``config.yaml`` (what ``cascade-router serve`` writes)::

    litellm_settings:
      custom_provider_map:
        - {provider: cascade, custom_handler: cascade_core.gateway.provider.cascade_provider}

The provider converts OpenAI-format arguments to one engine call and the result back; the
engine decides, retries, prices and traces. LiteLLM's accounting sees the request once, at
the cascade's full cost (drafts included): ``_hidden_params["response_cost"]`` on whole
responses, the logging object's ``additional_response_cost`` on streams (the ladder's model
name is priced at zero so nothing else is added), and the engine's own provider calls are
marked as LiteLLM sub-calls (``ladders.gateway_engine``). A request that names a session
(``session_id``: a header or LiteLLM's session fields) runs in it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import litellm
from litellm import CustomLLM
from litellm._internal_context import is_internal_call

from cascade_core.engine import CascadeEngine, CascadeResult, Finished, TextDelta
from cascade_core.engine.redaction import redact, secrets_from_env
from cascade_core.errors import (
    AllModelsFailedError,
    CascadeError,
    CascadeStreamError,
    InvalidInputError,
)
from cascade_core.gateway import openai_format, telemetry
from cascade_core.gateway.ladders import PROVIDER, LadderRegistry, ladders
from cascade_core.gateway.observe import CallLog, recording
from cascade_core.gateway.session_id import session_id
from cascade_core.sessions.state import check_session_id

logger = logging.getLogger(__name__)


@dataclass
class _Request:
    """One cascade request as the provider drives it."""

    ladder: str
    engine: CascadeEngine
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    streamed: bool
    session_id: str | None = None
    started_ns: int = field(default_factory=time.time_ns)
    log: CallLog = field(default_factory=CallLog)
    reported: bool = False

    @property
    def model(self) -> str:
        return f"{PROVIDER}/{self.ladder}"

    def report(self, result: CascadeResult | None, error: BaseException | None) -> None:
        """Hand the request to telemetry, once."""
        if self.reported:
            return
        self.reported = True
        if telemetry.enabled():
            telemetry.observe(
                telemetry.RequestRecord(
                    ladder=self.ladder,
                    log=self.log,
                    started_ns=self.started_ns,
                    ended_ns=time.time_ns(),
                    result=result,
                    error=error,
                    streamed=self.streamed,
                )
            )

    def client_error(self, error: BaseException) -> Exception:
        """The OpenAI-style error LiteLLM (and the proxy) reports for an engine failure."""
        secrets = secrets_from_env(m.spec.api_key_env for m in self.engine.parts.ladder)
        message = redact(str(error), secrets)
        if isinstance(error, InvalidInputError):
            return litellm.BadRequestError(message, self.model, PROVIDER)
        if isinstance(error, AllModelsFailedError):
            failure: Exception = litellm.ServiceUnavailableError(message, PROVIDER, self.model)
        elif isinstance(error, CascadeStreamError):
            failure = litellm.APIConnectionError(message, PROVIDER, self.model)
        elif isinstance(error, CascadeError):
            failure = litellm.InternalServerError(message, PROVIDER, self.model)
        else:
            failure = litellm.InternalServerError(
                f"cascade {self.ladder}: {type(error).__name__}: {message}", PROVIDER, self.model
            )
        # OpenAI's error bodies always carry a type; some of the proxy's error paths copy it
        # from the exception as it is, and these exceptions carry none of their own.
        failure.type = "server_error"  # type: ignore[attr-defined]
        return failure


class CascadeProvider(CustomLLM):
    """LiteLLM's four entry points (whole/streamed, sync/async) over ``CascadeEngine``."""

    def __init__(self, registry: LadderRegistry | None = None) -> None:
        super().__init__()
        self.registry = registry if registry is not None else ladders
        self._priced: set[str] = set()
        telemetry.configure_from_env()

    # -- LiteLLM's entry points ------------------------------------------------------------

    def completion(self, model: str, messages: list, model_response: Any, optional_params: dict,
                   litellm_params: dict | None = None, **_: Any) -> Any:  # fmt: skip
        request = self._request(model, messages, optional_params, litellm_params, streamed=False)
        with self._whole(request) as done:
            done.append(
                request.engine.run(
                    request.messages, session_id=request.session_id, **request.params
                )
            )
        return self._fill(model_response, done[0], optional_params)

    async def acompletion(self, model: str, messages: list, model_response: Any,
                          optional_params: dict, litellm_params: dict | None = None,
                          **_: Any) -> Any:  # fmt: skip
        request = self._request(model, messages, optional_params, litellm_params, streamed=False)
        with self._whole(request) as done:
            done.append(
                await request.engine.arun(
                    request.messages, session_id=request.session_id, **request.params
                )
            )
        return self._fill(model_response, done[0], optional_params)

    def streaming(self, model: str, messages: list, model_response: Any, optional_params: dict,
                  logging_obj: Any = None, litellm_params: dict | None = None,
                  **_: Any) -> Iterator[dict[str, Any]]:  # fmt: skip
        """Checked now (bad input fails the call, not the first chunk); streamed lazily."""
        request = self._request(model, messages, optional_params, litellm_params, streamed=True)
        return self._chunks(request, logging_obj)

    def astreaming(self, model: str, messages: list, model_response: Any, optional_params: dict,
                   logging_obj: Any = None, litellm_params: dict | None = None,
                   **_: Any) -> AsyncIterator[dict[str, Any]]:  # fmt: skip
        request = self._request(model, messages, optional_params, litellm_params, streamed=True)
        return self._achunks(request, logging_obj)

    # -- shared ---------------------------------------------------------------------------

    def _request(
        self,
        model: str,
        messages: list,
        optional_params: dict,
        litellm_params: dict | None,
        streamed: bool,
    ) -> _Request:
        name = model.removeprefix(f"{PROVIDER}/")
        try:
            engine = self.registry.engine(name)
            params = openai_format.engine_params(optional_params)
            session = session_id(litellm_params)
            if session is not None:
                session = check_session_id(session)
        except InvalidInputError as error:
            raise litellm.BadRequestError(str(error), f"{PROVIDER}/{name}", PROVIDER) from None
        self._price_at_zero(name)
        return _Request(name, engine, list(messages), params, streamed, session)

    def _price_at_zero(self, name: str) -> None:
        """Give ``cascade/<name>`` a zero token price, so that LiteLLM's cost of a cascade
        stream is exactly the cascade's own total (added as ``additional_response_cost``)."""
        if name in self._priced:
            return
        litellm.register_model(
            {
                f"{PROVIDER}/{name}": {
                    "litellm_provider": PROVIDER,
                    "mode": "chat",
                    "input_cost_per_token": 0.0,
                    "output_cost_per_token": 0.0,
                    "cache_creation_input_token_cost": 0.0,
                    "cache_read_input_token_cost": 0.0,
                }
            }
        )
        self._priced.add(name)

    @contextmanager
    def _whole(self, request: _Request) -> Iterator[list[CascadeResult]]:
        """Run a whole (non-streamed) request: its provider calls marked as sub-calls, its
        calls recorded, failures turned into OpenAI-style errors, telemetry reported."""
        done: list[CascadeResult] = []
        internal = is_internal_call.set(True)
        try:
            with recording() as log:
                request.log = log
                yield done
        except Exception as error:
            request.report(None, error)
            raise request.client_error(error) from None
        finally:
            is_internal_call.reset(internal)
        request.report(done[0], None)

    def _fill(self, response: Any, result: CascadeResult, optional_params: dict) -> Any:
        choice = response.choices[0]
        choice.message = litellm.Message(**openai_format.message(result))
        choice.finish_reason = openai_format.finish_reason(result)
        if optional_params.get("logprobs") and result.answer.logprobs is not None:
            choice.logprobs = {"content": result.answer.logprobs}
        response.model = result.model
        response.usage = litellm.Usage(**openai_format.usage(result))
        response.created = int(time.time())
        hidden = response._hidden_params
        hidden["response_cost"] = result.trace.cost_usd
        hidden["additional_headers"] = {
            **(hidden.get("additional_headers") or {}),
            **openai_format.headers(result),
        }
        setattr(response, openai_format.SUMMARY_FIELD, openai_format.summary(result))
        return response

    # -- streams ----------------------------------------------------------------------------

    def _chunks(self, request: _Request, logging_obj: Any) -> Iterator[dict[str, Any]]:
        events = request.engine.stream(
            request.messages, session_id=request.session_id, **request.params
        )
        try:
            with recording() as request.log:
                first = next(events)  # the engine's run starts here, inside the recording
            for event in _chain(first, events):
                yield from self._on_event(request, event, logging_obj)
        except Exception as error:
            request.report(None, error)
            raise request.client_error(error) from None
        finally:
            events.close()
            request.report(None, GeneratorExit("stream closed before its end"))

    async def _achunks(self, request: _Request, logging_obj: Any) -> AsyncIterator[dict[str, Any]]:
        events = request.engine.astream(
            request.messages, session_id=request.session_id, **request.params
        )
        try:
            with recording() as request.log:
                event = await events.__anext__()
            while True:
                for chunk in self._on_event(request, event, logging_obj):
                    yield chunk
                try:
                    event = await events.__anext__()
                except StopAsyncIteration:
                    return
        except StopAsyncIteration:
            return
        except Exception as error:
            request.report(None, error)
            raise request.client_error(error) from None
        finally:
            await events.aclose()
            request.report(None, GeneratorExit("stream closed before its end"))

    def _on_event(self, request: _Request, event: Any, logging_obj: Any) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            return [openai_format.text_chunk(event.text)] if event.text else []
        if isinstance(event, Finished):
            result = event.result
            if logging_obj is not None:
                logging_obj.model_call_details["additional_response_cost"] = result.trace.cost_usd
            request.report(result, None)
            return openai_format.closing_chunks(result)
        return []


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


cascade_provider = CascadeProvider()


def register(provider: CascadeProvider | None = None) -> CascadeProvider:
    """Add the cascade provider to LiteLLM in this process (idempotent); returns it."""
    handler = provider or cascade_provider
    entries = [e for e in litellm.custom_provider_map if e.get("provider") != PROVIDER]
    litellm.custom_provider_map = [*entries, {"provider": PROVIDER, "custom_handler": handler}]
    from litellm.utils import custom_llm_setup

    custom_llm_setup()
    return handler


__all__ = ["PROVIDER", "CascadeProvider", "cascade_provider", "register"]
