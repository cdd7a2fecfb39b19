"""A LangChain agent (``create_agent``) calling a Python tool, with the cascade router as its
chat model.

    pip install -e ".[langchain,local]"
    cascade-router local start
    python examples/langchain_agent.py "What is the weather in Paris?"
    python examples/langchain_agent.py --config my-ladder.yaml --no-force-tool

The agent is LangChain's standard tool loop: the model asks for a tool call, the agent runs
the Python function and sends the result back, the model answers. The cascade judges a
draft's tool call against the tool's schema and escalates when it does not validate.

The local ladder's 135M/270M models were never trained to call tools, so by default a
small middleware forces the tool on the first turn (``tool_choice`` = the tool's name, which
llama.cpp turns into a grammar: the output is a call matching the tool's JSON schema) and
forbids it after the result is in. With a ladder of tool-calling models pass
``--no-force-tool`` and the models decide. Tiny models' final answers are often clumsy:
the example shows the wiring, not their reasoning.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import ModelRequest, ModelResponse, wrap_model_call
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from langchain_cascade import CascadeRouterChatModel

LOCAL_LADDER = Path(__file__).resolve().parent / "local-ladder.yaml"
QUESTION = "What is the weather in Paris?"


@tool
def get_weather(city: str) -> str:
    """Current weather in a city (a stand-in for a real API)."""
    known = {"paris": "sunny, 21 C", "oslo": "light rain, 9 C"}
    return known.get(city.split(",")[0].strip().lower(), f"no weather report for {city}")


@wrap_model_call
def force_tool_first(
    request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
) -> ModelResponse:
    """Call the tool on the first turn, answer in words once its result is in."""
    has_result = any(isinstance(m, ToolMessage) for m in request.messages)
    return handler(request.override(tool_choice="none" if has_result else get_weather.name))


def run(
    question: str = QUESTION,
    config: str | Path = LOCAL_LADDER,
    force_tool: bool = True,
    max_tokens: int = 64,
    out: Any = sys.stdout,
) -> dict[str, Any]:
    """Run the agent once; returns its answer, the tool calls it made and the last trace."""
    llm = CascadeRouterChatModel.from_config(config, max_tokens=max_tokens, temperature=0.0)
    agent = create_agent(
        llm,
        tools=[get_weather],
        system_prompt="You answer questions about the weather with the get_weather tool.",
        middleware=[force_tool_first] if force_tool else [],
    )
    state = agent.invoke({"messages": [HumanMessage(question)]})
    calls: list[dict[str, Any]] = []
    for message in state["messages"]:
        if isinstance(message, AIMessage) and message.tool_calls:
            for call in message.tool_calls:
                calls.append({"tool": call["name"], "args": call["args"], "id": call["id"]})
                print(f"-- tool call {call['name']}({call['args']})", file=out)
        elif isinstance(message, ToolMessage):
            print(f"-- tool result: {message.content}", file=out)
    final = state["messages"][-1]
    meta = final.response_metadata
    print(f"-- answer ({meta.get('model_name')}): {final.content}", file=out)
    return {
        "answer": str(final.content),
        "tool_calls": calls,
        "tool_results": [str(m.content) for m in state["messages"] if isinstance(m, ToolMessage)],
        "metadata": meta,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default=QUESTION)
    parser.add_argument("--config", default=str(LOCAL_LADDER), help="router config (YAML/JSON)")
    parser.add_argument(
        "--no-force-tool",
        dest="force_tool",
        action="store_false",
        help="let the models decide when to call the tool (tool-calling ladders)",
    )
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    run(args.question, args.config, args.force_tool, args.max_tokens)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
