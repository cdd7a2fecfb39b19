"""Sessions and spend through a real LiteLLM Proxy (`cascade-router serve`), on a FAKE upstream.

A client names its conversation with the ``x-cascade-session-id`` header or LiteLLM's own
session fields, and the engine runs the request in that session: the second request sees
the first one's spend, a tool result goes back to the model that called the tool. What the
proxy charges to the calling key (its spend tracking, watched by `gateway_charge_spy`) is the
cascade's total cost, drafts included, once per request (LiteLLM's own tracker, run without a
database).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway_harness import (
    Redis,
    ladder_file,
    proxy_with_callback,
    read_events,
    running_proxies,
)
from hypothesis import given
from hypothesis import strategies as st
from scripted_openai_server import Reply, ScriptedServer

from cascade_core.engine import RouterConfig
from cascade_core.gateway.serve import ServeOptions, split_sessions_warning
from cascade_core.gateway.session_id import SESSION_HEADER, session_id

pytest.importorskip("litellm.proxy.proxy_server", reason="pip install 'litellm[proxy]'")

PRICES = {"small": (1.0e-6, 2.0e-6), "big": (1.0e-5, 2.0e-5)}
DRAFT = "DRAFT-ONLY words that must never reach a client"
FINAL = "Paris is the capital of France."
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a fact up",
        "parameters": {
            "type": "object",
            "properties": {"q": {"type": "string"}},
            "required": ["q"],
        },
    },
}


def script(model: str, body: dict[str, Any]) -> Reply:
    """A tool result gets an answer from either model; a request with tools gets a valid call
    (ids name the model); other prompts get a hopeless draft from the small model (the cascade
    escalates) and a confident answer from the big one."""
    messages = body["messages"]
    if messages[-1]["role"] == "tool":
        return Reply(f"{model} read the result", logprob=-0.05)
    if body.get("tools"):
        call_id = f"call_{model}_{len(messages)}"
        return Reply(tool_calls=[{"name": "lookup", "arguments": '{"q": "x"}', "id": call_id}])
    if model == "small":
        return Reply(DRAFT, logprob=-4.0)
    return Reply(FINAL, logprob=-0.01)


def ladder(api_base: str) -> dict[str, Any]:
    models = [
        {
            "name": name,
            "model": f"openai/{name}",
            "api_base": api_base,
            "input_cost_per_token": price_in,
            "output_cost_per_token": price_out,
            "supports_logprobs": True,
            "prior_quality": prior,
        }
        for (name, (price_in, price_out)), prior in zip(PRICES.items(), (0.5, 0.9), strict=True)
    ]
    return {"models": models, "budget": {"lambda": 10.0}, "num_retries": 0}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("gateway-sessions")
    with (
        ScriptedServer(script) as server,
        proxy_with_callback(
            work, "gateway_charge_spy.tracker", "CASCADE_TEST_CHARGE_LOG", ladder(server.api_base)
        ) as (running, charges),
    ):
        yield running, server, charges


def ask(running: Any, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
    request = {"model": "ladder", "max_tokens": 32, **body}
    request.setdefault("messages", [{"role": "user", "content": "Capital of France?"}])
    response = httpx.post(
        f"{running.v1}/chat/completions",
        json=request,
        headers={"Authorization": f"Bearer {running.master_key}", **(headers or {})},
        timeout=120,
    )
    return response


def session_of(response: httpx.Response) -> dict[str, Any] | None:
    assert response.status_code == 200, response.text
    return response.json()["cascade"]["session"]


# -- which session a request is in ------------------------------------------------------------


def test_the_session_header_reaches_the_engine_and_the_session_carries_over(proxy) -> None:
    running, _, _ = proxy
    # Two characters: shorter than LiteLLM's own x-*-session-id scan accepts, so only the
    # cascade's reader of the header can find it.
    headers = {SESSION_HEADER: "c1"}
    first = ask(running, headers)
    second = ask(running, headers)
    one, two = session_of(first), session_of(second)
    assert one is not None and two is not None
    assert one["session_id"] == two["session_id"] == "c1"
    assert one["new"] and not two["new"]
    cost = first.json()["cascade"]["cost_usd"]
    assert math.isclose(two["spend_before_usd"], cost, rel_tol=1e-9)
    assert math.isclose(one["spend_after_usd"], cost, rel_tol=1e-9)


@pytest.mark.parametrize(
    "convention",
    ["x-litellm-session-id", "x-vendor-session-id", "metadata", "litellm_session_id"],
)
def test_litellm_session_conventions_reach_the_engine(proxy, convention: str) -> None:
    running, _, _ = proxy
    name = f"conv-{convention}-{time.time_ns()}"
    if convention.startswith("x-"):
        response = ask(running, {convention: name})
    elif convention == "metadata":
        response = ask(running, metadata={"session_id": name})
    else:
        response = ask(running, litellm_session_id=name)
    session = session_of(response)
    assert session is not None and session["session_id"] == name and session["new"]
    again = session_of(ask(running, {SESSION_HEADER: name}))
    assert again is not None and not again["new"]  # the same session, named either way


def test_a_request_naming_no_session_runs_outside_any(proxy) -> None:
    running, _, _ = proxy
    assert session_of(ask(running)) is None
    # The OpenAI `user` field names an end user, who has many conversations: not a session.
    assert session_of(ask(running, user="end-user-1")) is None
    assert session_of(ask(running, user="end-user-1")) is None


def test_a_malformed_session_id_is_one_openai_style_400(proxy) -> None:
    running, _, _ = proxy
    response = ask(running, {SESSION_HEADER: "s" * 300})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "session_id" in error["message"] and error["type"]


def test_a_tool_result_goes_back_to_the_model_that_called_the_tool(proxy) -> None:
    running, server, _ = proxy
    headers = {SESSION_HEADER: f"tools-{time.time_ns()}"}
    question = [{"role": "user", "content": "Look x up."}]
    first = ask(running, headers, messages=question, tools=[TOOL])
    assert first.status_code == 200, first.text
    call = first.json()["choices"][0]["message"]["tool_calls"][0]
    issuer = first.json()["model"]
    assert call["id"].startswith(f"call_{issuer}_")
    history = [
        *question,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "42"},
    ]
    before = len(server.requests)
    second = ask(running, headers, messages=history, tools=[TOOL])
    assert second.status_code == 200, second.text
    summary = second.json()["cascade"]
    assert [b["model"] for b in server.requests[before:]] == [issuer]
    assert summary["models_run"] == [issuer] and second.json()["model"] == issuer
    assert summary["decisions"][0].startswith("tool-loop continuity")
    # The same history without the session is decided afresh, like any request.
    before = len(server.requests)
    third = ask(running, messages=history, tools=[TOOL])
    assert third.status_code == 200 and third.json()["cascade"]["session"] is None
    assert not third.json()["cascade"]["decisions"][0].startswith("tool-loop continuity")


def test_a_streamed_request_runs_in_its_session(proxy) -> None:
    running, _, _ = proxy
    name = f"stream-{time.time_ns()}"
    api = openai.OpenAI(base_url=running.v1, api_key=running.master_key, max_retries=0)
    for new in (True, False):
        chunks = list(
            api.chat.completions.create(
                model="ladder",
                messages=[{"role": "user", "content": "Capital of France, streamed?"}],
                max_tokens=32,
                stream=True,
                extra_headers={SESSION_HEADER: name},
            )
        )
        summary = next(c.model_extra["cascade"] for c in chunks if c.model_extra.get("cascade"))
        assert summary["session"]["session_id"] == name and summary["session"]["new"] is new
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == FINAL


def test_two_replicas_sharing_a_redis_store_continue_one_session(tmp_path: Path) -> None:
    """Stateless replicas behind a load balancer: the session (its spend, who issued a tool
    call) lives in Redis, so each request of a conversation may land on either replica."""
    redis = Redis(tmp_path)
    try:
        with ScriptedServer(script) as server:
            config = {
                **ladder(server.api_base),
                "session": {"store": "redis", "url_env": "CASCADE_TEST_SESSIONS_URL"},
            }
            path = ladder_file(tmp_path / "ladder.yaml", config)
            env = {"CASCADE_TEST_SESSIONS_URL": f"{redis.url}/0"}
            with running_proxies(2, path, tmp_path, env=env) as (first, second):
                headers = {SESSION_HEADER: f"replicas-{time.time_ns()}"}
                question = [{"role": "user", "content": "Look x up."}]
                opening = ask(first, headers, messages=question, tools=[TOOL])
                assert opening.status_code == 200, opening.text
                call = opening.json()["choices"][0]["message"]["tool_calls"][0]
                issuer = opening.json()["model"]
                history = [
                    *question,
                    {"role": "assistant", "content": None, "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": call["id"], "content": "42"},
                ]
                before = len(server.requests)
                follow = ask(second, headers, messages=history, tools=[TOOL])
                assert follow.status_code == 200, follow.text
                summary = follow.json()["cascade"]
                assert [b["model"] for b in server.requests[before:]] == [issuer]
                assert summary["decisions"][0].startswith("tool-loop continuity")
                assert not summary["session"]["new"]
                assert math.isclose(
                    summary["session"]["spend_before_usd"],
                    opening.json()["cascade"]["cost_usd"],
                    rel_tol=1e-9,
                )
    finally:
        redis.stop()


# -- what the proxy charges ---------------------------------------------------------------------


def _expected_cost(bodies: list[dict[str, Any]]) -> float:
    """What the requests cost at the ladder's prices, from the usage the fake reported."""
    total = 0.0
    for body in bodies:
        price_in, price_out = PRICES[body["model"]]
        usage = ScriptedServer._usage(body, script(body["model"], body))
        total += usage["prompt_tokens"] * price_in + usage["completion_tokens"] * price_out
    return total


def _charges(path: Path, count: int, limit_s: float = 60.0) -> list[dict[str, Any]]:
    """The proxy charges a request after answering it; wait (bounded) for ``count`` charges
    of each kind. Any charge for one of the engine's inner calls would be written before its
    cascade's own, so by then it would be there too."""
    deadline = time.monotonic() + limit_s
    while True:
        found = read_events(path)
        kinds = [c["charge"] for c in found]
        done = kinds.count("update_database") >= count and kinds.count("update_cache") >= count
        if done or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.mark.parametrize("stream", [False, True])
def test_the_key_is_charged_the_cascades_total_cost_drafts_included_once(
    proxy, stream: bool
) -> None:
    running, server, charges = proxy
    time.sleep(1.0)  # let earlier tests' charges land before this test's window opens
    charges.unlink(missing_ok=True)
    before = len(server.requests)
    extra = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
    response = ask(running, **extra)
    assert response.status_code == 200, response.text
    if stream:
        events = [
            json.loads(line[6:]) for line in response.text.splitlines()
            if line.startswith("data: {")
        ]  # fmt: skip
        summary = next(e["cascade"] for e in events if "cascade" in e)
    else:
        summary = response.json()["cascade"]
        assert math.isclose(
            float(response.headers["x-cascade-cost-usd"]), summary["cost_usd"], rel_tol=1e-12
        )
    bodies = server.requests[before:]
    assert [b["model"] for b in bodies] == ["small", "big"]  # the draft ran and is billed
    draft, final = summary["runs"]
    assert draft["model"] == "small" and draft["cost_usd"] > 0 and final["model"] == "big"
    cost = summary["cost_usd"]
    assert math.isclose(cost, draft["cost_usd"] + final["cost_usd"], rel_tol=1e-12)
    if not stream:  # a whole response's usage is what the fake computes for the body
        assert math.isclose(cost, _expected_cost(bodies), rel_tol=1e-9)
    found = _charges(charges, 1)
    database = [c for c in found if c["charge"] == "update_database"]
    cached = [c for c in found if c["charge"] == "update_cache"]
    assert len(database) == 1 and len(cached) == 1, found  # once, never per inner call
    assert database[0]["model"] == "ladder"
    assert database[0]["token"] and database[0]["token"] == cached[0]["token"]
    for charge in (database[0], cached[0]):
        assert math.isclose(charge["response_cost"], cost, rel_tol=1e-9), charge


# -- the reader itself -------------------------------------------------------------------------

HEADER_NAME = st.sampled_from(
    ["x-cascade-session-id", "X-Cascade-Session-Id", "X-CASCADE-SESSION-ID"]
)
OTHER_HEADERS = st.dictionaries(
    st.text(min_size=1, max_size=12).filter(lambda n: n.lower() != SESSION_HEADER),
    st.text(max_size=12),
    max_size=4,
)


@given(name=HEADER_NAME, value=st.text(min_size=1, max_size=20), others=OTHER_HEADERS)
def test_the_header_is_found_in_any_case_and_wins_over_litellms_fields(
    name: str, value: str, others: dict[str, str]
) -> None:
    params = {
        "metadata": {"headers": {**others, name: value}, "session_id": "from-metadata"},
        "litellm_session_id": "from-metadata",
    }
    assert session_id(params) == value
    raw_only = {"proxy_server_request": {"headers": {**others, name: value}}}
    assert session_id(raw_only) == value


@given(others=OTHER_HEADERS)
def test_without_the_header_litellms_session_is_used_and_a_generated_one_is_not(
    others: dict[str, str],
) -> None:
    assert session_id({"metadata": {"headers": others}}) is None
    assert session_id(None) is None and session_id({}) is None
    named = {"metadata": {"headers": others, "session_id": "s-1"}, "litellm_session_id": "s-1"}
    assert session_id(named) == "s-1"
    generated = {
        "metadata": {"headers": others, "session_id": "g", "litellm_session_id_generated": True},
        "litellm_session_id": "g",
    }
    assert session_id(generated) is None


@pytest.mark.parametrize(
    ("store", "workers", "redis_url", "warned"),
    [
        ("memory", 1, None, False),
        ("memory", 2, None, True),
        ("memory", 1, "redis://127.0.0.1:1", True),
        ("redis", 4, "redis://127.0.0.1:1", False),
    ],
)
def test_serve_warns_when_sessions_would_be_split_across_processes(
    tmp_path: Path, store: str, workers: int, redis_url: str | None, warned: bool
) -> None:
    session = {"store": store} | ({"url_env": "SESSIONS_URL"} if store == "redis" else {})
    config = RouterConfig.from_dict({**ladder("http://127.0.0.1:9/v1"), "session": session})
    options = ServeOptions(config=tmp_path / "l.yaml", workers=workers, redis_url=redis_url)
    warning = split_sessions_warning(config, options)
    assert (warning is not None) is warned
    if warning is not None:
        assert "session.store: redis" in warning and str(tmp_path / "l.yaml") in warning
