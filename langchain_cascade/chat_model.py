"""``CascadeRouterChatModel``: the cascade router as a LangChain chat model.

Put it wherever LangChain takes a chat model (chains, ``create_agent``, LangGraph). Every
decision (which models run, when to stop, which answer wins, what it cost) is the engine's;
this class converts messages and tools and follows LangChain's conventions: standard
parameters, ``bind_tools``/``with_structured_output``, usage metadata, one metadata chunk
per stream, LangSmith parameters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import (
    BaseChatModel,
    LangSmithParams,
    LanguageModelInput,
    ModelProfile,
)
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.runnables.config import ensure_config
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from cascade_core.engine import (
    BudgetSpec,
    CascadeEngine,
    ModelSpec,
    RouterConfig,
    StrategySpec,
    TextDelta,
)
from cascade_core.engine.config import API_KEY_REFUSED
from cascade_core.errors import InvalidInputError
from cascade_core.validation import describe_validation_error
from langchain_cascade.convert import (
    ai_message,
    final_chunk,
    to_openai_messages,
    to_openai_tools,
    tool_choice_param,
)

# Keywords LangChain itself may pass down to ``_generate``/``_stream`` that are not request
# parameters: ``stream`` is its streaming switch, ``model`` pins a ladder model (see below),
# ``session_id`` names the request's session (see `_session_id`).
_NOT_REQUEST_PARAMS = ("stream", "model", "session_id")

StructuredMethod = Literal["function_calling", "json_schema", "json_mode"]


class CascadeRouterChatModel(BaseChatModel):
    """A LangChain chat model that answers each request with cascade routing over a ladder.

    Where ``ChatOpenAI(model="gpt-4o")`` was, write::

        llm = CascadeRouterChatModel.from_config("router.yaml")
        # or: CascadeRouterChatModel(models=[{"model": "openai/gpt-4o-mini"},
        #                                    {"model": "openai/gpt-4o"}], budget={"lambda": 1e3})

    ``usage_metadata`` sums the tokens of every model the request ran (drafts are paid for);
    ``response_metadata`` has ``model_name`` (the model whose answer was returned), ``cost_usd``,
    ``usage_by_model``, the engine's trace under ``cascade`` and, when ``logprobs`` is set, the
    answer's token logprobs. Streams and ``on_llm_new_token`` carry only the accepted answer:
    drafts that get escalated are buffered inside the engine and never reach a callback.
    Passing ``model="<ladder name>"`` to a call pins that one model (no cascade).

    Sessions: inside LangGraph (``create_agent`` included) each request belongs to the
    session of the graph's ``thread_id``, so tool loops continue on the model that issued
    the call and the session's policy and budget apply; ``session_id=`` on a call (or in
    ``bind``) names the session explicitly.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    # -- the router: keyword settings (as in a config file), a RouterConfig, or an engine --
    # Settings stay plain mappings here and are validated once, by RouterConfig, whose
    # errors name the field and never echo a value (a misplaced key must not reach a log).
    models: list[dict[str, Any] | ModelSpec] | None = Field(
        default=None, description="the ladder, cheapest first; as in a config file's models"
    )
    strategy: dict[str, Any] | StrategySpec | None = None
    budget: dict[str, Any] | BudgetSpec | None = None
    estimator_profile: Path | None = Field(
        default=None,
        description="fitted estimator profile (JSON): a config file's `profile` (that name is "
        "LangChain's model-capabilities field here)",
    )
    prior_std: float | None = None
    early_abort: bool | None = None
    config: RouterConfig | None = Field(default=None, description="a whole RouterConfig")
    engine: CascadeEngine | None = Field(default=None, exclude=True)

    # -- LangChain's standard parameters --------------------------------------------------
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    seed: int | None = None
    top_p: float | None = None
    logprobs: bool | None = Field(
        default=None, description="put the answer's token logprobs in response_metadata"
    )
    top_logprobs: int | None = None
    timeout: float | None = Field(
        default=None, gt=0, description="seconds per model call; overrides the config's timeout_s"
    )
    max_retries: int | None = Field(
        default=None, ge=0, description="retries per model call; overrides num_retries"
    )
    streaming: bool = False
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="other engine request parameters sent every time"
    )

    _engine: CascadeEngine = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        """Build the engine here, so a bad ladder fails at construction, not at first use.

        Outside pydantic validation on purpose: pydantic's errors echo the input values,
        while the engine's name the field and the fix and never print a value.
        """
        _refuse_unknown(kwargs)
        try:
            super().__init__(**kwargs)
        except ValidationError as error:
            raise InvalidInputError(
                describe_validation_error(error, "CascadeRouterChatModel")
            ) from None
        config = self._router_config()
        if self.engine is not None and config is self.engine.config:
            self._engine = self.engine
        else:
            self._engine = CascadeEngine(config)
        if self.profile is None:  # LangChain resolves it during validation, before the engine
            self.profile = self._resolve_model_profile()

    def _router_config(self) -> RouterConfig:
        if self.engine is not None:
            config = self.engine.config
        elif self.config is not None:
            config = self.config
        elif self.models:
            settings: dict[str, Any] = {"models": self.models}
            for name in ("strategy", "budget", "prior_std", "early_abort"):
                if getattr(self, name) is not None:
                    settings[name] = getattr(self, name)
            if self.estimator_profile is not None:
                settings["profile"] = self.estimator_profile
            config = RouterConfig.from_dict(settings, source="CascadeRouterChatModel")
        else:
            raise InvalidInputError(
                "give the ladder: models=[{'model': ...}, ...], config=RouterConfig(...), "
                "engine=CascadeEngine(...), or use CascadeRouterChatModel.from_config(path)"
            )
        overrides: dict[str, Any] = {}
        if self.timeout is not None:
            overrides["timeout_s"] = self.timeout
        if self.max_retries is not None:
            overrides["num_retries"] = self.max_retries
        return config.replace(source="CascadeRouterChatModel", **overrides) if overrides else config

    def _resolve_model_profile(self) -> ModelProfile | None:
        """What LangChain may assume about the whole ladder: tool calling, with tool calls
        delivered whole (not streamed), and the smallest context window of any model the
        cascade may run. No native structured output is claimed, since a ladder may mix
        providers, so ``create_agent`` uses tool calls for structured responses."""
        profile = ModelProfile(
            text_inputs=True,
            text_outputs=True,
            tool_calling=True,
            tool_choice=True,
            tool_call_streaming=False,
            structured_output=False,
        )
        window = self._engine.context_window
        if window is not None:
            profile["max_input_tokens"] = window
        return profile

    @classmethod
    def from_config(cls, path: str | Path, **kwargs: Any) -> CascadeRouterChatModel:
        """From the engine's YAML/JSON config file (the same file the CLI takes)."""
        return cls(config=RouterConfig.from_file(path), **kwargs)

    @property
    def router(self) -> CascadeEngine:
        """The engine behind this model (its config, ladder and strategy)."""
        return self._engine

    @property
    def model_name(self) -> str:
        """The ladder as one name, for tracing: ``cascade:cheap>strong``."""
        return self._engine.name

    # -- LangChain identity ---------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "cascade-router"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "strategy": self._engine.strategy.name,
            **self._default_params(),
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="cascade_router",
            ls_model_name=kwargs.get("model") or self.model_name,
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        stop = stop or kwargs.get("stop") or self.stop
        if stop:
            params["ls_stop"] = list(stop)
        return params

    # -- requests -------------------------------------------------------------------------

    def _default_params(self) -> dict[str, Any]:
        params = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": self.stop or None,
            "seed": self.seed,
            "top_p": self.top_p,
            "logprobs": self.logprobs,
            "top_logprobs": self.top_logprobs,
            **self.model_kwargs,
        }
        return {k: v for k, v in params.items() if v is not None}

    def _request(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None = None,
    ) -> tuple[CascadeEngine, list[dict[str, Any]], dict[str, Any], bool]:
        """Engine, OpenAI messages and request parameters (the session id included) for one
        call; per-call keywords override the instance's. Unknown keywords reach the engine,
        which refuses them naming the accepted ones."""
        params = self._default_params()
        params.update({k: v for k, v in kwargs.items() if k not in _NOT_REQUEST_PARAMS})
        if stop:
            params["stop"] = stop
        params = {k: v for k, v in params.items() if v is not None}
        with_logprobs = bool(params.get("logprobs"))
        session_id = _session_id(kwargs, run_manager)
        if session_id is not None:
            params["session_id"] = session_id
        engine = self._engine_for(kwargs.get("model"))
        return engine, to_openai_messages(messages), params, with_logprobs

    def _engine_for(self, model: str | None) -> CascadeEngine:
        """The full ladder, or the engine's one-model engine when a call pins a ladder model
        (LangChain's per-call ``model=`` means "use this model": for a router, one rung)."""
        return self._engine if model is None else self._engine.pinned(model)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        engine, chat, params, with_logprobs = self._request(messages, stop, kwargs, run_manager)
        result = engine.run(chat, **params)
        return ChatResult(generations=[ChatGeneration(message=ai_message(result, with_logprobs))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        engine, chat, params, with_logprobs = self._request(messages, stop, kwargs, run_manager)
        result = await engine.arun(chat, **params)
        return ChatResult(generations=[ChatGeneration(message=ai_message(result, with_logprobs))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        engine, chat, params, with_logprobs = self._request(messages, stop, kwargs, run_manager)
        for event in engine.stream(chat, **params):
            chunk = _chunk(event, with_logprobs)
            if run_manager is not None and isinstance(event, TextDelta):
                run_manager.on_llm_new_token(event.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        engine, chat, params, with_logprobs = self._request(messages, stop, kwargs, run_manager)
        async for event in engine.astream(chat, **params):
            chunk = _chunk(event, with_logprobs)
            if run_manager is not None and isinstance(event, TextDelta):
                await run_manager.on_llm_new_token(event.text, chunk=chunk)
            yield chunk

    # -- tools and structured output ------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools in OpenAI format. ``tool_choice``: "auto", "none", "any"/"required"
        (some tool), or a tool's name (that tool). Other keywords are bound as they are, so
        LangChain's own ``ls_structured_output_format`` reaches its tracing untouched."""
        formatted = to_openai_tools(tools, strict=strict)
        choice = tool_choice_param(tool_choice, formatted)
        if choice is not None:
            kwargs["tool_choice"] = choice
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: StructuredMethod = "function_calling",
        strict: bool | None = None,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Answers parsed into ``schema`` (pydantic class, TypedDict or JSON schema).

        ``function_calling`` (default) forces a call of a tool named after the schema: every
        tool-calling provider has it, and the cascade checks a draft's arguments against the
        schema before accepting it. ``json_schema`` and ``json_mode`` use ``response_format``
        for providers with native structured output.
        """
        if kwargs:
            raise ValueError(f"with_structured_output: unsupported arguments {sorted(kwargs)}")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        tool = to_openai_tools([schema], strict=strict)[0]["function"]
        trace_format = {
            "kwargs": {"method": method, "strict": strict},
            "schema": convert_to_json_schema(schema),
        }
        parser: Runnable[Any, Any]
        if method == "function_calling":
            llm = self.bind_tools(
                [schema], tool_choice=tool["name"], strict=strict,
                ls_structured_output_format=trace_format,
            )  # fmt: skip
            parser = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                if is_pydantic
                else JsonOutputKeyToolsParser(key_name=tool["name"], first_tool_only=True)
            )
        elif method in ("json_schema", "json_mode"):
            if method == "json_schema":
                response_format: dict[str, Any] = {
                    "type": "json_schema",
                    "json_schema": {
                        "name": tool["name"],
                        "description": tool.get("description", ""),
                        "schema": tool["parameters"],
                        **({"strict": strict} if strict is not None else {}),
                    },
                }
            else:
                response_format = {"type": "json_object"}
            llm = self.bind(
                response_format=response_format, ls_structured_output_format=trace_format
            )
            parser = (
                PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
                if is_pydantic
                else JsonOutputParser()
            )
        else:
            raise ValueError(
                f"method: {method!r} is not one of 'function_calling', 'json_schema', 'json_mode'"
            )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        unparsed = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks(
            [unparsed], exception_key="parsing_error"
        )


def _session_id(
    kwargs: dict[str, Any],
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
) -> str | None:
    """The request's session: an explicit ``session_id`` keyword, else LangGraph's
    ``thread_id`` from the runnable config of the node running this model (the context
    variable `ensure_config` reads), else from the run's metadata (LangGraph copies it)."""
    explicit = kwargs.get("session_id")
    if explicit is not None:
        return explicit
    thread = ensure_config().get("configurable", {}).get("thread_id")
    if thread is None and run_manager is not None:
        thread = (run_manager.metadata or {}).get("thread_id")
    return None if thread is None else str(thread)


def _refuse_unknown(kwargs: dict[str, Any]) -> None:
    """Refuse unknown keywords by name, before pydantic, whose errors echo values: a key
    passed as ``api_key=...`` must not be printed in a traceback."""
    known = set(CascadeRouterChatModel.model_fields)
    known |= {f.alias for f in CascadeRouterChatModel.model_fields.values() if f.alias}
    unknown = sorted(set(kwargs) - known)
    if "api_key" in unknown:
        raise InvalidInputError(API_KEY_REFUSED)
    if unknown:
        raise InvalidInputError(
            f"unknown argument(s) {unknown}; request parameters the engine takes go in "
            "model_kwargs, router settings in models/strategy/budget or config"
        )


def _chunk(event: Any, with_logprobs: bool) -> ChatGenerationChunk:
    """A text delta, or the closing chunk with tool calls, usage and metadata."""
    if isinstance(event, TextDelta):
        return ChatGenerationChunk(message=AIMessageChunk(content=event.text))
    return ChatGenerationChunk(message=final_chunk(event.result, with_logprobs))
