"""A LlamaIndex agent calling a Python tool, with the cascade router as its LLM.

    pip install -e ".[llamaindex,local]"
    cascade-router local start
    python examples/llamaindex_agent.py                       # ReActAgent, local ladder
    python examples/llamaindex_agent.py --function-agent --config my-ladder.yaml

On the local ladder (135M and 270M models, no tool-calling API) the agent is a ReActAgent:
tools are described in the prompt and the model writes "Action: ..." lines. With a ladder of
tool-calling models, ``--function-agent`` uses FunctionAgent and the models' native tool
calls; the cascade judges a draft's tool call by checking it against the tool's schema and
escalates when it does not validate. Tiny local models often answer without the tool: the
example shows the wiring, not their reasoning.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from llama_index.core.agent.workflow import AgentStream, FunctionAgent, ReActAgent, ToolCallResult
from llama_index.core.tools import FunctionTool

from llamaindex_cascade import CascadeRouterLLM

LOCAL_LADDER = Path(__file__).resolve().parent / "local-ladder.yaml"
QUESTION = "What is the weather in Paris?"


def get_weather(city: str) -> str:
    """Current weather in a city (a stand-in for a real API)."""
    return {"paris": "sunny, 21 C", "oslo": "light rain, 9 C"}.get(city.lower(), "unknown")


async def run(
    question: str = QUESTION,
    config: str | Path = LOCAL_LADDER,
    function_agent: bool = False,
    max_tokens: int = 96,
    max_iterations: int = 3,
    out: Any = sys.stdout,
) -> dict[str, Any]:
    """Run the agent once; returns its answer and the tool calls it made."""
    llm = CascadeRouterLLM(config, max_tokens=max_tokens, temperature=0.0)
    tools = [FunctionTool.from_defaults(get_weather)]
    agent_class = FunctionAgent if function_agent else ReActAgent
    agent = agent_class(
        tools=tools,
        llm=llm,
        system_prompt="Answer with the help of the tools.",
        # small models may never produce a parsable final step: after max_iterations, ask
        # for a final answer instead of raising
        early_stopping_method="generate",
    )
    handler = agent.run(user_msg=question, max_iterations=max_iterations)
    calls: list[dict[str, Any]] = []
    async for event in handler.stream_events():
        if isinstance(event, AgentStream):
            print(event.delta, end="", flush=True, file=out)  # accepted answers only
        elif isinstance(event, ToolCallResult):
            calls.append(
                {
                    "tool": event.tool_name,
                    "kwargs": event.tool_kwargs,
                    "output": str(event.tool_output),
                    "id": event.tool_id,
                }
            )
            print(
                f"\n-- tool {event.tool_name}({event.tool_kwargs}) -> {event.tool_output}", file=out
            )
    output = await handler
    answer = str(output.response.content or "")
    print(f"\n-- answer: {answer}", file=out)
    return {"answer": answer, "tool_calls": calls}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default=QUESTION)
    parser.add_argument("--config", default=str(LOCAL_LADDER), help="router config (YAML/JSON)")
    parser.add_argument(
        "--function-agent", action="store_true", help="native tool calls (tool-calling ladder)"
    )
    parser.add_argument("--max-iterations", type=int, default=3)
    args = parser.parse_args(argv)
    asyncio.run(
        run(args.question, args.config, args.function_agent, max_iterations=args.max_iterations)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
