"""``CascadeRouterLLM``: the cascade router as a LlamaIndex function-calling LLM.

Pass it wherever LlamaIndex takes ``llm=`` (query engines, chat engines, agents). Every
decision (which models run, when to stop, which answer wins) is the engine's; this class only
converts messages and tools and follows LlamaIndex's conventions (callback decorators,
cumulative streams, ``ToolCallBlock`` tool calls).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    LogProb,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, ValidationError
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

from cascade_core.engine import CascadeEngine, CascadeResult, RouterConfig, TextDelta
from cascade_core.engine.config import API_KEY_REFUSED
from cascade_core.errors import InvalidInputError
from cascade_core.validation import describe_validation_error
from llamaindex_cascade.convert import (
    chat_response,
    to_openai_messages,
    to_openai_tools,
    token_logprobs,
    tool_choice_param,
    tool_selections,
)

try:  # LlamaIndex workflows (AgentWorkflow, FunctionAgent) name each run in a context variable
    from workflows.plugins.basic import get_current_run_id
except ImportError:  # pragma: no cover - an older llama-index-workflows

    def get_current_run_id() -> str | None:
        return None


if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

# The session named by `CascadeRouterLLM.session` for the code (and the workflows) inside it.
_SESSION: ContextVar[str | None] = ContextVar("cascade_router_session", default=None)


class CascadeRouterLLM(FunctionCallingLLM):
    """A LlamaIndex LLM that answers each request with cascade routing over a model ladder.

    Build it from an engine, a ``RouterConfig`` or a config file path::

        llm = CascadeRouterLLM("examples/local-ladder.yaml", max_tokens=128)

    Responses carry the accepted model's token logprobs in ``logprobs`` (chosen token first
    in each row), and in ``additional_kwargs`` the answering model, cost and usage summed
    over every model run, and the full trace under ``"cascade_trace"``. Streams show only the
    accepted answer: drafts that get escalated are buffered in the engine, never shown.

    Sessions (tool-loop continuity, the session policy and budget): a call's ``session_id``
    keyword, else the innermost ``with llm.session("..."):`` block (a context variable, so
    agent workflows started inside it carry it), else the LlamaIndex workflow run the call
    belongs to (one ``agent.run(...)``), else none.
    """

    temperature: float | None = Field(default=None, description="sampling temperature")
    max_tokens: int | None = Field(
        default=None, gt=0, description="output cap per model call; also num_output"
    )
    context_window: int | None = Field(
        default=None,
        gt=0,
        description="default: the smallest context window in the ladder, so a prompt that "
        "LlamaIndex packs fits every model the cascade may escalate to",
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="other engine request parameters sent every time: seed, top_p, stop, "
        "top_logprobs, response_format",
    )

    _engine: CascadeEngine = PrivateAttr()

    def __init__(self, engine: CascadeEngine | RouterConfig | str | Path, **kwargs: Any) -> None:
        if "api_key" in kwargs:  # LlamaIndex's pydantic model would drop it without a word
            raise InvalidInputError(API_KEY_REFUSED)
        try:
            super().__init__(**kwargs)
        except ValidationError as error:  # its str() prints the input, which may be a key
            raise InvalidInputError(describe_validation_error(error, "CascadeRouterLLM")) from None
        if isinstance(engine, CascadeEngine):
            self._engine = engine
        elif isinstance(engine, RouterConfig):
            self._engine = CascadeEngine(engine)
        else:
            self._engine = CascadeEngine.from_config(engine)

    @classmethod
    def from_config(cls, path: str | Path, **kwargs: Any) -> CascadeRouterLLM:
        return cls(CascadeEngine.from_config(path), **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "CascadeRouterLLM"

    @property
    def engine(self) -> CascadeEngine:
        return self._engine

    @property
    def metadata(self) -> LLMMetadata:
        window = self.context_window or self._engine.context_window
        return LLMMetadata(
            context_window=window or DEFAULT_CONTEXT_WINDOW,
            num_output=self.max_tokens or DEFAULT_NUM_OUTPUTS,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=self._engine.name,
        )

    @contextmanager
    def session(self, session_id: str) -> Iterator[None]:
        """Requests made inside this block belong to session ``session_id`` (a conversation
        or an agent run), including those of workflows and tasks started inside it."""
        token = _SESSION.set(session_id)
        try:
            yield
        finally:
            _SESSION.reset(token)

    def _params(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Request parameters and the session id: per-call keywords override the instance's
        defaults. Unknown keywords reach the engine, which refuses them naming the accepted
        ones."""
        params = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        params.update(self.additional_kwargs)
        params.update(kwargs)
        if params.get("session_id") is None:
            run_id = get_current_run_id()
            params["session_id"] = _SESSION.get() or (
                None if run_id is None else f"llamaindex-run:{run_id}"
            )
        return {k: v for k, v in params.items() if v is not None}

    # -- chat ------------------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return chat_response(self._engine.run(to_openai_messages(messages), **self._params(kwargs)))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        result = await self._engine.arun(to_openai_messages(messages), **self._params(kwargs))
        return chat_response(result)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        # Messages convert before the stream starts: unsupported content fails at the call.
        events = self._engine.stream(to_openai_messages(messages), **self._params(kwargs))
        return _chat_stream(events)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        events = self._engine.astream(to_openai_messages(messages), **self._params(kwargs))
        return _achat_stream(events)

    # -- completion: the same cascade on a single user message -----------------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return _completion(self._engine.run(_prompt(prompt), **self._params(kwargs)))

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return _completion(await self._engine.arun(_prompt(prompt), **self._params(kwargs)))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        events = self._engine.stream(_prompt(prompt), **self._params(kwargs))
        return (_as_completion(r) for r in _chat_stream(events))

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        events = self._engine.astream(_prompt(prompt), **self._params(kwargs))

        async def gen() -> CompletionResponseAsyncGen:
            async for response in _achat_stream(events):
                yield _as_completion(response)

        return gen()

    # -- tools -----------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The ``chat`` arguments for a tool turn: OpenAI tool definitions and tool_choice
        (a tool's name forces that tool, as FunctionAgent's ``initial_tool_choice`` means)."""
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        params: dict[str, Any] = {"messages": messages, **kwargs}
        if tools:
            params["tools"] = to_openai_tools(tools)
            params["tool_choice"] = tool_choice_param(tools, tool_required, tool_choice)
        return params

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Keep only the first tool call when parallel calls are not allowed (the engine
        passes no ``parallel_tool_calls`` switch, since not every provider has one)."""
        if not allow_parallel_tool_calls:
            calls = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
            for extra in calls[1:]:
                response.message.blocks.remove(extra)
        return response

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        selections = tool_selections(response)
        if not selections and error_on_no_tool_call:
            raise ValueError("Expected at least one tool call, but got 0 tool calls.")
        return selections


# -- stream plumbing (module level: no state beyond one stream) -----------------------------


class _Snapshot:
    """Accumulates text deltas into the cumulative ChatResponses LlamaIndex streams expect."""

    def __init__(self) -> None:
        self.text = ""
        self.logprobs: list[list[LogProb]] = []
        self.saw_logprobs = False

    def delta(self, event: TextDelta) -> ChatResponse:
        self.text += event.text
        if event.logprobs is not None:
            self.saw_logprobs = True
            self.logprobs.extend(token_logprobs(event.logprobs) or [])
        return ChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, content=self.text),
            delta=event.text,
            logprobs=list(self.logprobs) if self.saw_logprobs else None,
        )

    @staticmethod
    def final(result: CascadeResult) -> ChatResponse:
        """The last chunk: the whole answer with tool calls, logprobs and trace, delta ''.

        Tool calls reach the engine whole, so they appear here, once; FunctionAgent reads the
        last chunk's tool calls.
        """
        return chat_response(result, delta="")


def _chat_stream(events: Iterator[Any]) -> ChatResponseGen:
    snapshot = _Snapshot()
    for event in events:
        if isinstance(event, TextDelta):
            yield snapshot.delta(event)
        else:
            yield snapshot.final(event.result)


async def _achat_stream(events: AsyncIterator[Any]) -> ChatResponseAsyncGen:
    snapshot = _Snapshot()
    async for event in events:
        if isinstance(event, TextDelta):
            yield snapshot.delta(event)
        else:
            yield snapshot.final(event.result)


def _prompt(prompt: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}]


def _as_completion(response: ChatResponse) -> CompletionResponse:
    return CompletionResponse(
        text=response.message.content or "",
        delta=response.delta,
        logprobs=response.logprobs,
        raw=response.raw,
        additional_kwargs=response.additional_kwargs,
    )


def _completion(result: CascadeResult) -> CompletionResponse:
    return _as_completion(chat_response(result))
