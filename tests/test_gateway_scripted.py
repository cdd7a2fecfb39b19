"""The cascade behind a real LiteLLM Proxy (`cascade-router serve`), against FAKE upstreams.

Everything between the client and the fake model server is real: the `openai` client, LiteLLM
Proxy and its router, the cascade provider, the engine and LiteLLM's HTTP path. The fakes
(`tests/scripted_openai_server.py` for exact answers, `tests/fake_openai_server.py` for faults)
stand in for providers only.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fake_openai_server import FakeModel, FakeOpenAIServer, FaultPlan
from gateway_harness import (
    Redis,
    ladder_file,
    proxy_with_callback,
    read_events,
    running_proxies,
    running_proxy,
    write_yaml,
)
from scripted_openai_server import Reply, ScriptedServer

pytest.importorskip("litellm.proxy.proxy_server", reason="pip install 'litellm[proxy]'")

PRICES = {"small": (1.0e-6, 2.0e-6), "big": (1.0e-5, 2.0e-5)}
DRAFT = "DRAFT-ONLY words that must never reach a client"
FINAL = "Paris is the capital of France."
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def script(model: str, body: dict[str, Any]) -> Reply:
    """Tool requests get a valid call from either model; other prompts get a hopeless draft
    from the small model (escalation is certain) and a confident answer from the big one."""
    if body.get("tools"):
        return Reply(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}])
    if model == "small":
        return Reply(DRAFT, logprob=-4.0)
    return Reply(FINAL, logprob=-0.01)


def ladder(api_base: str, **extra: Any) -> dict[str, Any]:
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
    return {"models": models, "budget": {"lambda": 10.0}, "num_retries": 0, **extra}


def wait_for_events(path: Path, prompts: list[str], limit_s: float = 60.0) -> list[dict[str, Any]]:
    """The events of the requests that sent ``prompts`` (in arrival order). LiteLLM
    dispatches success events after the response; wait (bounded) until each prompt has its
    cascade event. The engine's own calls carry the same prompt and finish, and would have
    been logged, before their cascade's response, so by then any inner event is there too;
    a previous test's late events carry other prompts and are left out."""
    deadline = time.monotonic() + limit_s
    while True:
        events = [e for e in read_events(path) if e.get("prompt") in prompts]
        cascades = sum(e["model"] == "ladder" for e in events)
        if cascades >= len(prompts) or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


@pytest.fixture(scope="module")
def scripted_proxy(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("gateway-scripted")
    with (
        ScriptedServer(script) as server,
        proxy_with_callback(
            work, "gateway_spend_log.recorder", "CASCADE_TEST_SPEND_LOG", ladder(server.api_base)
        ) as (proxy, spend_log),
    ):
        yield proxy, server, spend_log


def client(proxy: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.v1, api_key=proxy.master_key, max_retries=0)


def expected_cost(server: ScriptedServer, bodies: list[dict[str, Any]]) -> float:
    """What the requests cost at the ladder's prices, from the usage the fake reported."""
    total = 0.0
    for body in bodies:
        price_in, price_out = PRICES[body["model"]]
        usage = ScriptedServer._usage(body, script(body["model"], body))
        total += usage["prompt_tokens"] * price_in + usage["completion_tokens"] * price_out
    return total


def test_escalated_answer_names_its_model_and_costs_every_draft(scripted_proxy) -> None:
    proxy, server, _ = scripted_proxy
    before = len(server.requests)
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="ladder", messages=[{"role": "user", "content": "Capital of France?"}], max_tokens=32
    )
    response = raw.parse()
    bodies = server.requests[before:]
    assert [b["model"] for b in bodies] == ["small", "big"]  # the draft really ran
    assert response.choices[0].message.content == FINAL
    assert response.model == "big"
    cost = expected_cost(server, bodies)
    assert math.isclose(float(raw.headers["x-cascade-cost-usd"]), cost, rel_tol=1e-9)
    assert raw.headers["x-cascade-models-run"] == "small,big"
    assert math.isclose(float(raw.headers["x-litellm-response-cost"]), cost, rel_tol=1e-9)
    summary = response.model_extra["cascade"]
    assert summary["models_run"] == ["small", "big"] and summary["model"] == "big"
    assert math.isclose(sum(run["cost_usd"] for run in summary["runs"]), cost, rel_tol=1e-9)
    usages = [ScriptedServer._usage(b, script(b["model"], b)) for b in bodies]
    assert response.usage.prompt_tokens == sum(u["prompt_tokens"] for u in usages)
    assert response.usage.completion_tokens == sum(u["completion_tokens"] for u in usages)


def test_litellm_accounting_sees_each_cascade_once_at_its_full_cost(scripted_proxy) -> None:
    proxy, _, spend_log = scripted_proxy
    api = client(proxy)
    prompts = [f"Accounting question {i}?" for i in range(3)] + ["Streamed question?"]
    costs = []
    for prompt in prompts[:3]:
        raw = api.chat.completions.with_raw_response.create(
            model="ladder", messages=[{"role": "user", "content": prompt}], max_tokens=32
        )
        costs.append(float(raw.headers["x-cascade-cost-usd"]))
    stream = api.chat.completions.create(
        model="ladder",
        messages=[{"role": "user", "content": prompts[3]}],
        max_tokens=32,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    summary = next(c.model_extra["cascade"] for c in chunks if c.model_extra.get("cascade"))
    costs.append(summary["cost_usd"])
    events = wait_for_events(spend_log, prompts)
    assert [e["event"] for e in events] == ["success"] * 4, events  # no inner-call events
    assert {e["model"] for e in events} == {"ladder"}
    assert sorted(e["prompt"] for e in events) == sorted(prompts)
    for event in events:
        cost = costs[prompts.index(event["prompt"])]
        assert math.isclose(event["response_cost"], cost, rel_tol=1e-9)
    assert math.isclose(summary["cost_usd"], sum(r["cost_usd"] for r in summary["runs"]))


def test_an_escalated_draft_never_appears_in_the_sse_stream(scripted_proxy) -> None:
    proxy, server, _ = scripted_proxy
    before = len(server.requests)
    body = {
        "model": "ladder",
        "messages": [{"role": "user", "content": "Capital of France, streamed?"}],
        "max_tokens": 32,
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {proxy.master_key}"}
    with httpx.stream(
        "POST", f"{proxy.v1}/chat/completions", json=body, headers=headers, timeout=60
    ) as response:
        assert response.status_code == 200
        raw = b"".join(response.iter_bytes()).decode()
    assert [b["model"] for b in server.requests[before:]] == ["small", "big"]
    assert "DRAFT" not in raw
    events = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: {")]
    text = "".join((e["choices"][0]["delta"].get("content") or "") for e in events if e["choices"])
    assert text == FINAL
    summary = next(e["cascade"] for e in events if "cascade" in e)
    assert summary["model"] == "big" and summary["models_run"] == ["small", "big"]
    assert raw.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_pass_through(scripted_proxy, stream: bool) -> None:
    proxy, server, _ = scripted_proxy
    before = len(server.requests)
    request = {
        "model": "ladder",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "max_tokens": 64,
    }
    api = client(proxy)
    if stream:
        calls: dict[int, dict[str, str]] = {}
        finish = None
        for chunk in api.chat.completions.create(**request, stream=True):
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for delta in choice.delta.tool_calls or []:
                    call = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""
        found = list(calls.values())
    else:
        message = api.chat.completions.create(**request).choices[0]
        finish = message.finish_reason
        found = [
            {"name": c.function.name, "arguments": c.function.arguments}
            for c in message.message.tool_calls
        ]
    assert finish == "tool_calls"
    assert [c["name"] for c in found] == ["get_weather"]
    assert json.loads(found[0]["arguments"]) == {"city": "Paris"}
    sent = server.requests[before:]
    assert sent and all(b["tools"] == [WEATHER_TOOL] and b["tool_choice"] == "auto" for b in sent)


def test_bad_request_gets_one_openai_style_error(scripted_proxy) -> None:
    proxy, _, _ = scripted_proxy
    with pytest.raises(openai.BadRequestError) as caught:
        client(proxy).chat.completions.create(
            model="ladder", messages=[{"role": "user", "content": "hi"}], n=3
        )
    error = caught.value.body
    assert "n: a cascade returns one answer" in error["message"]


# -- replicas sharing Redis ---------------------------------------------------------------


def _wait_for_a_fresh_minute() -> None:
    """LiteLLM counts rpm per clock minute; start early in one so the test stays inside it."""
    if time.gmtime().tm_sec > 40:
        time.sleep(61 - time.gmtime().tm_sec)


def test_two_replicas_answer_concurrently_and_share_one_rpm_limit(tmp_path: Path) -> None:
    redis = Redis(tmp_path)
    rpm = 4
    try:
        with ScriptedServer(script) as server:
            path = ladder_file(tmp_path / "ladder.yaml", ladder(server.api_base))
            user = write_yaml(
                tmp_path / "user_proxy.yaml",
                {"model_list": [{"model_name": "ladder", "litellm_params": {"rpm": rpm}}]},
            )
            with running_proxies(
                2, path, tmp_path, "--proxy-config", str(user), "--redis-url", redis.url
            ) as (first, second):
                _wait_for_a_fresh_minute()
                targets = [first, second] * (rpm // 2)

                def ask(proxy: Any) -> int:
                    response = httpx.post(
                        f"{proxy.v1}/chat/completions",
                        json={
                            "model": "ladder",
                            "messages": [{"role": "user", "content": "Capital of France?"}],
                            "max_tokens": 16,
                        },
                        headers={"Authorization": f"Bearer {proxy.master_key}"},
                        timeout=120,
                    )
                    if response.status_code == 200:
                        assert response.json()["model"] == "big"
                    return response.status_code

                with ThreadPoolExecutor(len(targets)) as pool:
                    statuses = list(pool.map(ask, targets))
                assert statuses == [200] * rpm  # both replicas answered, concurrently
                over = [ask(first), ask(second)]
                assert over == [429, 429]  # the limit counted the other replica's requests
    finally:
        redis.stop()


# -- fault injection ------------------------------------------------------------------------

UPSTREAM_KEY = "sk-upstream-" + "Zq7" * 12


def test_faults_upstream_give_an_answer_or_an_openai_error_and_never_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", UPSTREAM_KEY)
    plan = FaultPlan(
        rate=0.6,
        kinds=("http_500", "http_429", "timeout", "malformed_json", "empty_content"),
        seed=7,
        stall_s=3.0,
        echo_key_in_errors=True,
    )
    fakes = {"small": FakeModel(logprob=-1.5), "big": FakeModel(logprob=-0.05)}
    with FakeOpenAIServer(fakes, faults=plan) as fake:
        config = ladder(fake.base_url, timeout_s=1.0)
        for model in config["models"]:
            model["api_key_env"] = "FAKE_UPSTREAM_KEY"
        path = ladder_file(tmp_path / "ladder.yaml", config)
        with running_proxy(path, tmp_path / "proxy.log") as proxy:
            headers = {"Authorization": f"Bearer {proxy.master_key}"}
            outcomes: list[str] = []
            for i in range(24):
                body = {
                    "model": "ladder",
                    "messages": [{"role": "user", "content": f"Question {i}?"}],
                    "max_tokens": 16,
                    "stream": i % 2 == 1,
                }
                response = httpx.post(
                    f"{proxy.v1}/chat/completions", json=body, headers=headers, timeout=60
                )
                text = response.text
                assert UPSTREAM_KEY not in text and proxy.master_key not in text
                assert UPSTREAM_KEY not in str(response.headers)
                outcomes.append(_outcome(response, body["stream"]))
            log = proxy.log()
        assert fake.stats.faults, "the fake injected no fault"
        assert any(f"Bearer {UPSTREAM_KEY}" == a for a in fake.stats.authorizations)
    assert UPSTREAM_KEY not in log
    assert "answer" in outcomes and "error" in outcomes, outcomes


def _outcome(response: httpx.Response, stream: bool) -> str:
    """'answer' or 'error'; anything else (a bare 500 page, a cut stream) fails the test."""
    if response.status_code != 200:
        error = response.json()["error"]
        assert error["message"] and error["type"] and error["code"], error
        return "error"
    if not stream:
        payload = response.json()
        assert payload["choices"][0]["message"]["content"]
        assert payload["cascade"]["model"] == payload["model"]
        return "answer"
    events = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")
    ]
    if any("error" in e for e in events):
        error = next(e["error"] for e in events if "error" in e)
        assert error["message"], error
        return "error"
    assert response.text.rstrip().endswith("data: [DONE]")
    assert any("cascade" in e for e in events)
    return "answer"
