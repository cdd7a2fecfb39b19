"""Sessions through the frameworks: LangGraph agents (``create_agent`` with a ``thread_id``),
LangChain keywords and chains, LlamaIndex agents and the ``session`` context manager.

Scripted runs use the FAKE caching provider's two-model agent (session_fixtures); the last
test runs a real LangGraph agent on the real local ladder (conftest's ``local_ladder``).
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain", reason="needs the langchain extra")
pytest.importorskip("langgraph", reason="needs langgraph (pulled in by langchain)")
pytest.importorskip("llama_index.core", reason="needs the llamaindex extra")

import session_fixtures
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from session_fixtures import make_engine

from cascade_core.engine import CascadeEngine
from langchain_cascade import CascadeRouterChatModel
from llamaindex_cascade import CascadeRouterLLM

fake = session_fixtures.fake


@tool
def lookup(q: str) -> str:
    """Look a fact up."""
    return "42"


def _agent(engine: CascadeEngine):
    model = CascadeRouterChatModel(engine=engine, max_tokens=40)
    return create_agent(model, tools=[lookup], checkpointer=InMemorySaver())


def _tool_loop_switches(messages: list[Any]) -> int:
    """Answers to a tool result given by another model than the one that called the tool."""
    switches, issuer = 0, None
    for message in messages:
        if isinstance(message, AIMessage):
            model = message.response_metadata["model_name"]
            if issuer is not None and model != issuer:
                switches += 1
            issuer = model if message.tool_calls else None
        elif not isinstance(message, ToolMessage):
            issuer = None
    return switches


def test_a_langgraph_agent_thread_is_one_session(fake) -> None:
    engine = make_engine(fake.api_base, session={"policy": "sticky"})
    agent = _agent(engine)
    config = {"configurable": {"thread_id": "thread-7"}}
    for prompt in ("a hard question", "an easy one", "hard again"):
        state = agent.invoke({"messages": [{"role": "user", "content": prompt}]}, config)
    messages = state["messages"]
    answers = [m for m in messages if isinstance(m, AIMessage)]
    assert len(answers) == 6  # each turn: a tool call, then the answer to its result
    sessions = [a.response_metadata["cascade"]["session"] for a in answers]
    assert {s["session_id"] for s in sessions} == {"thread-7"}
    assert [s["new"] for s in sessions] == [True] + [False] * 5
    assert _tool_loop_switches(messages) == 0
    assert [a.response_metadata["model_name"] for a in answers] == ["big"] * 6  # sticky
    follow = answers[1].response_metadata["cascade"]
    assert follow["decisions"][0].startswith("tool-loop continuity: big issued")
    state = engine.sessions.load("thread-7").state
    assert state.turns == 6 and state.model == "big"
    assert sum(a.response_metadata["cost_usd"] for a in answers) == pytest.approx(
        fake.total_billed()
    )


async def test_a_langgraph_agent_in_async_and_streaming_mode_too(fake) -> None:
    engine = make_engine(fake.api_base)
    agent = _agent(engine)
    config = {"configurable": {"thread_id": "async-thread"}}
    await agent.ainvoke({"messages": [{"role": "user", "content": "hard one"}]}, config)
    chunks = [
        c
        async for c in agent.astream(
            {"messages": [{"role": "user", "content": "easy one"}]}, config, stream_mode="values"
        )
    ]
    messages = chunks[-1]["messages"]
    assert _tool_loop_switches(messages) == 0
    assert engine.sessions.load("async-thread").state.turns == 4


def test_langchain_session_id_keyword_bind_and_chain_config(fake) -> None:
    engine = make_engine(fake.api_base)
    llm = CascadeRouterChatModel(engine=engine, max_tokens=40)
    llm.invoke("hello", session_id="by-keyword")
    llm.bind(session_id="by-bind").invoke("hello")
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | llm
    chain.invoke({"q": "hello"}, config={"configurable": {"thread_id": "by-chain"}})
    for name in ("by-keyword", "by-bind", "by-chain"):
        assert engine.sessions.load(name).state.turns == 1, name
    message = llm.invoke("hello")
    assert message.response_metadata["cascade"]["session"] is None  # no id, no session


async def test_llamaindex_agent_runs_in_a_named_session(fake) -> None:
    engine = make_engine(fake.api_base, session={"policy": "sticky"})
    llm = CascadeRouterLLM(engine, max_tokens=40)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=_lookup, name="lookup")], llm=llm)
    with llm.session("conversation-1"):
        await agent.run("a hard question")
        await agent.run("an easy one")
    state = engine.sessions.load("conversation-1").state
    assert state.turns == 4 and state.model == "big"
    assert set(state.tool_calls.values()) == {"big"}


async def test_llamaindex_agent_run_is_a_session_when_none_is_named(fake) -> None:
    store_size = len(make_engine(fake.api_base).sessions)  # a fresh store is empty
    engine = make_engine(fake.api_base)
    llm = CascadeRouterLLM(engine, max_tokens=40)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=_lookup, name="lookup")], llm=llm)
    await agent.run("a hard question")
    await agent.run("another hard one")
    assert store_size == 0 and len(engine.sessions) == 2  # one session per agent run
    response = llm.complete("hello", session_id="explicit")
    assert response.additional_kwargs["cascade_trace"]["session"]["session_id"] == "explicit"


def _lookup(q: str) -> str:
    """Look a fact up."""
    return "42"


def test_a_real_langgraph_agent_on_the_local_ladder_keeps_its_thread(local_ladder) -> None:
    """Real tokens from llama.cpp: the second turn of the thread continues the session the
    first turn started (its spend, its models' served prompts)."""
    config = local_ladder.model_copy(
        update={"session": local_ladder.session.model_copy(update={"policy": "sticky"})}
    )
    engine = CascadeEngine(config)
    agent = create_agent(
        CascadeRouterChatModel(engine=engine, max_tokens=16, temperature=0.0),
        tools=[lookup],
        checkpointer=InMemorySaver(),
    )
    thread = {"configurable": {"thread_id": "local-thread"}, "recursion_limit": 8}
    first = agent.invoke({"messages": [{"role": "user", "content": "Say hi."}]}, thread)
    second = agent.invoke({"messages": [{"role": "user", "content": "Say bye."}]}, thread)
    spent_first = sum(
        m.response_metadata["cost_usd"] for m in first["messages"] if isinstance(m, AIMessage)
    )
    later = [m for m in second["messages"] if isinstance(m, AIMessage)][-1]
    session = later.response_metadata["cascade"]["session"]
    assert session["session_id"] == "local-thread" and not session["new"]
    assert session["spend_before_usd"] >= spent_first > 0
    run = later.response_metadata["cascade"]["runs"][0]
    assert run["expected_cached_tokens"] > 0  # the model was sent this thread's prefix before
    assert later.response_metadata["cascade"]["decisions"][0].startswith("sticky")
