"""Spans and metrics of cascade requests: exported when enabled, nothing when not.

The requests are real (the provider, the engine and LiteLLM's HTTP path to a FAKE upstream);
the exporters are OpenTelemetry's in-memory exporter and a private Prometheus registry, plus
one run of LiteLLM Proxy's own ``/metrics`` with ``serve --metrics``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import litellm
import pytest
from fake_openai_server import FakeModel, FakeOpenAIServer
from gateway_harness import ladder_file, running_proxy

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("prometheus_client")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

from cascade_core.engine import RouterConfig
from cascade_core.gateway import LadderRegistry, register, telemetry
from cascade_core.gateway.provider import CascadeProvider

MESSAGES = [{"role": "user", "content": "Capital of France?"}]


def ladder(api_base: str) -> dict:
    return {
        "models": [
            {
                "name": "small",
                "model": "openai/small",
                "api_base": api_base,
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 2e-6,
                "supports_logprobs": True,
                "prior_quality": 0.5,
            },
            {
                "name": "big",
                "model": "openai/big",
                "api_base": api_base,
                "input_cost_per_token": 1e-5,
                "output_cost_per_token": 2e-5,
                "supports_logprobs": True,
                "prior_quality": 0.9,
            },
        ],
        "budget": {"lambda": 10.0},
        "num_retries": 0,
        "timeout_s": 5.0,
    }


@pytest.fixture
def fake():
    models = {
        "small": FakeModel(tokens=("Maybe", " Lyon", " or", " so", "."), logprob=-4.0),
        "big": FakeModel(tokens=("Paris", "."), logprob=-0.01),
        "broken": FakeModel(fault="http_500"),
    }
    with FakeOpenAIServer(models) as server:
        yield server


@pytest.fixture
def provider(fake):
    """The provider registered in LiteLLM with a private registry; telemetry reset after."""
    registry = LadderRegistry({"t": RouterConfig.from_dict(ladder(fake.base_url))})
    handler = CascadeProvider(registry)
    register(handler)
    yield handler
    telemetry.disable()
    register()


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.enable_tracing(tracer_provider)
    return exporter


def by_parent(finished):
    roots = [s for s in finished if s.parent is None]
    children = {
        root.context.span_id: [
            s for s in finished if s.parent and s.parent.span_id == root.context.span_id
        ]
        for root in roots
    }
    return roots, children


async def test_one_span_per_request_with_one_child_per_model_call(provider, spans) -> None:
    response = await litellm.acompletion(model="cascade/t", messages=MESSAGES, max_tokens=8)
    assert response.model == "big"
    roots, children = by_parent(spans.get_finished_spans())
    assert len(roots) == 1
    root = roots[0]
    assert root.name == "chat cascade/t"
    attributes = dict(root.attributes)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "cascade/t"
    assert attributes["gen_ai.response.model"] == "big"
    assert attributes["cascade.models_run"] == ("small", "big")
    assert attributes["cascade.reason"] == response.cascade["stop_reason"]
    assert attributes["cascade.decision"] == "answer with big"
    assert attributes["cascade.cost_usd"] == pytest.approx(response.cascade["cost_usd"])
    calls = sorted(children[root.context.span_id], key=lambda s: s.start_time)
    assert [s.name for s in calls] == ["chat openai/small", "chat openai/big"]
    for span, run in zip(calls, response.cascade["runs"], strict=True):
        a = dict(span.attributes)
        assert a["gen_ai.request.model"] == f"openai/{run['model']}"
        assert a["gen_ai.provider.name"] == "openai"
        assert a["gen_ai.usage.input_tokens"] == run["prompt_tokens"]
        assert a["gen_ai.usage.output_tokens"] == run["completion_tokens"]
        assert a["cascade.cost_usd"] == pytest.approx(run["cost_usd"])
        assert a["cascade.reason"] == run["reason"] and a["cascade.status"] == run["status"]
        assert a["cascade.decision"].startswith(f"run {run['model']}")
        assert root.start_time <= span.start_time <= span.end_time <= root.end_time
    assert root.attributes["gen_ai.usage.input_tokens"] == sum(
        s.attributes["gen_ai.usage.input_tokens"] for s in calls
    )


async def test_a_stream_with_an_aborted_draft_and_a_failed_model_is_traced(fake, spans) -> None:
    config = ladder(fake.base_url)
    config["models"].insert(
        0,
        {
            **config["models"][0],
            "name": "broken",
            "model": "openai/broken",
            "input_cost_per_token": 1e-7,
        },
    )
    handler = CascadeProvider(LadderRegistry({"s": RouterConfig.from_dict(config)}))
    register(handler)
    try:
        stream = await litellm.acompletion(
            model="cascade/s", messages=MESSAGES, max_tokens=16, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    finally:
        telemetry.disable()
        register()
    assert text == "Paris."
    roots, children = by_parent(spans.get_finished_spans())
    assert len(roots) == 1 and roots[0].attributes["cascade.streamed"] is True
    calls = sorted(children[roots[0].context.span_id], key=lambda s: s.start_time)
    statuses = {s.attributes["cascade.model"]: s.attributes["cascade.status"] for s in calls}
    assert statuses == {"broken": "failed", "small": "aborted", "big": "ok"}
    failed = next(s for s in calls if s.attributes["cascade.model"] == "broken")
    assert failed.status.status_code == StatusCode.ERROR


async def test_a_request_that_fails_is_one_error_span(fake, spans) -> None:
    config = ladder(fake.base_url)
    config["models"] = [{**config["models"][0], "name": "broken", "model": "openai/broken"}]
    register(CascadeProvider(LadderRegistry({"f": RouterConfig.from_dict(config)})))
    try:
        with pytest.raises(litellm.ServiceUnavailableError):
            await litellm.acompletion(model="cascade/f", messages=MESSAGES, max_tokens=8)
    finally:
        telemetry.disable()
        register()
    roots, children = by_parent(spans.get_finished_spans())
    assert len(roots) == 1 and roots[0].status.status_code == StatusCode.ERROR
    assert roots[0].attributes["error.type"] == "AllModelsFailedError"
    assert len(children[roots[0].context.span_id]) == 1


async def test_metrics_count_requests_escalations_aborts_costs_and_answers(provider) -> None:
    registry = CollectorRegistry()
    telemetry.enable_metrics(registry)
    costs = []
    for _ in range(2):
        response = await litellm.acompletion(model="cascade/t", messages=MESSAGES, max_tokens=8)
        costs.append(response.cascade["cost_usd"])
    stream = await litellm.acompletion(
        model="cascade/t", messages=MESSAGES, max_tokens=16, stream=True
    )
    async for _chunk in stream:
        pass
    value = registry.get_sample_value
    assert value("cascade_router_requests_total", {"ladder": "t", "outcome": "ok"}) == 3
    assert value("cascade_router_escalations_total", {"ladder": "t"}) == 3
    assert value("cascade_router_drafts_aborted_total", {"ladder": "t"}) == 1  # the stream's
    assert value("cascade_router_answers_total", {"ladder": "t", "model": "big"}) == 3
    assert value("cascade_router_request_cost_usd_count", {"ladder": "t"}) == 3
    assert value("cascade_router_request_cost_usd_sum", {"ladder": "t"}) >= sum(costs)
    latency = {"ladder": "t", "model": "small", "status": "ok"}
    assert value("cascade_router_model_call_seconds_count", latency) == 2


async def test_nothing_is_exported_when_disabled(provider, spans) -> None:
    registry = CollectorRegistry()
    telemetry.enable_metrics(registry)
    telemetry.disable()
    await litellm.acompletion(model="cascade/t", messages=MESSAGES, max_tokens=8)
    assert spans.get_finished_spans() == ()
    assert registry.get_sample_value(
        "cascade_router_requests_total", {"ladder": "t", "outcome": "ok"}
    ) in (None, 0.0)


def test_off_by_default_in_a_fresh_process(fake) -> None:
    """A plain import and request: telemetry stays off and neither package is imported."""
    code = f"""
import json, os, sys
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
import litellm
from cascade_core.engine import RouterConfig
from cascade_core.gateway import ladders, register, telemetry
ladders.add("t", RouterConfig.from_dict(json.loads({json.dumps(ladder(fake.base_url))!r})))
register()
litellm.completion(model="cascade/t", messages=[{{"role": "user", "content": "hi"}}], max_tokens=4)
print(telemetry.enabled(), "opentelemetry.sdk" in sys.modules, "prometheus_client" in sys.modules)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASCADE_ROUTER_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["False", "False", "False"]


def test_serve_metrics_exposes_the_cascade_metrics_on_the_proxy(tmp_path: Path, fake) -> None:
    path = ladder_file(tmp_path / "ladder.yaml", ladder(fake.base_url))
    with running_proxy(path, tmp_path / "proxy.log", "--name", "t", "--metrics") as proxy:
        headers = {"Authorization": f"Bearer {proxy.master_key}"}
        response = httpx.post(
            f"{proxy.v1}/chat/completions",
            json={"model": "t", "messages": MESSAGES, "max_tokens": 8},
            headers=headers,
            timeout=60,
        )
        assert response.status_code == 200
        metrics = httpx.get(
            f"{proxy.base_url}/metrics", headers=headers, timeout=30, follow_redirects=True
        ).text
    assert 'cascade_router_requests_total{ladder="t",outcome="ok"} 1.0' in metrics
    assert 'cascade_router_answers_total{ladder="t",model="big"} 1.0' in metrics
    # LiteLLM's own metrics count the cascade request, never the engine's calls inside it.
    litellm_lines = [line for line in metrics.splitlines() if line.startswith("litellm_")]
    assert any('model="t"' in line for line in litellm_lines)
    assert not any('model="small"' in line or 'model="big"' in line for line in litellm_lines)
