"""The real local ladder behind `cascade-router serve`, called as any OpenAI client would.

Real parts end to end: SmolLM2-135M and Gemma-3-270M on llama.cpp (the `local_ladder`
fixture), the engine, the cascade provider, LiteLLM Proxy, and on the client side the
official `openai` package (sync, async, streaming, `response_format`) and LangChain's
`ChatOpenAI`. The tiny models' answers are not judged, only what the gateway promises.
"""

from __future__ import annotations

import json
import math

import openai
import pytest
from gateway_harness import ladder_file, running_proxy

pytest.importorskip("litellm.proxy.proxy_server", reason="pip install 'litellm[proxy]'")

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def local_proxy(local_ladder, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("gateway-local")
    path = ladder_file(work / "local.yaml", local_ladder)
    with running_proxy(path, work / "proxy.log", "--name", "local", "--expose-models") as proxy:
        yield proxy, [m.label for m in local_ladder.models]


def test_sync_client_gets_the_answering_model_cost_and_trace(local_proxy) -> None:
    proxy, labels = local_proxy
    api = openai.OpenAI(base_url=proxy.v1, api_key=proxy.master_key, max_retries=0)
    raw = api.chat.completions.with_raw_response.create(
        model="local", messages=QUESTION, max_tokens=16, temperature=0
    )
    response = raw.parse()
    summary = response.model_extra["cascade"]
    assert response.model in labels and response.model == summary["model"]
    assert response.choices[0].message.content
    assert raw.headers["x-cascade-models-run"] == ",".join(summary["models_run"])
    cost = float(raw.headers["x-cascade-cost-usd"])
    assert math.isclose(cost, sum(run["cost_usd"] for run in summary["runs"]), rel_tol=1e-9)
    assert cost > 0
    assert response.usage.prompt_tokens == summary["prompt_tokens"]


async def test_async_client(local_proxy) -> None:
    proxy, labels = local_proxy
    api = openai.AsyncOpenAI(base_url=proxy.v1, api_key=proxy.master_key, max_retries=0)
    response = await api.chat.completions.create(model="local", messages=QUESTION, max_tokens=16)
    assert response.model in labels
    assert response.choices[0].message.content


def test_streaming_client_gets_text_then_the_summary(local_proxy) -> None:
    proxy, labels = local_proxy
    api = openai.OpenAI(base_url=proxy.v1, api_key=proxy.master_key, max_retries=0)
    chunks = list(
        api.chat.completions.create(
            model="local",
            messages=QUESTION,
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    summary = next(c.model_extra["cascade"] for c in chunks if c.model_extra.get("cascade"))
    assert text and summary["model"] in labels
    usage = next(c.usage for c in chunks if c.usage is not None)
    assert usage.completion_tokens == summary["completion_tokens"]


def test_response_format_reaches_the_models(local_proxy) -> None:
    """llama.cpp turns ``json_object`` into a JSON grammar, so a finished answer parses."""
    proxy, labels = local_proxy
    api = openai.OpenAI(base_url=proxy.v1, api_key=proxy.master_key, max_retries=0)
    response = api.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "Give the capital of France as JSON."}],
        response_format={"type": "json_object"},
        max_tokens=48,
        temperature=0,
    )
    choice = response.choices[0]
    assert response.model in labels
    if choice.finish_reason == "stop":
        assert isinstance(json.loads(choice.message.content), dict)
    else:
        assert choice.message.content.lstrip().startswith("{")


def test_each_ladder_model_is_served_on_its_own_too(local_proxy) -> None:
    proxy, labels = local_proxy
    api = openai.OpenAI(base_url=proxy.v1, api_key=proxy.master_key, max_retries=0)
    listed = {m.id for m in api.models.list()}
    assert {"local", *labels} <= listed
    direct = api.chat.completions.create(model=labels[0], messages=QUESTION, max_tokens=8)
    assert direct.choices[0].message.content
    assert "cascade" not in (direct.model_extra or {})


def test_langchain_chat_openai_pointed_at_the_proxy(local_proxy) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    proxy, labels = local_proxy
    llm = langchain_openai.ChatOpenAI(
        model="local", base_url=proxy.v1, api_key=proxy.master_key, max_tokens=16, max_retries=0
    )
    message = llm.invoke("What is the capital of France?")
    assert message.content
    assert message.response_metadata["model_name"] in labels
    streamed = "".join(chunk.content for chunk in llm.stream("Name a colour."))
    assert streamed
