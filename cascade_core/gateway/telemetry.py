"""OpenTelemetry spans and Prometheus metrics of cascade requests; both off by default.

Nothing is created or exported until ``enable_tracing`` / ``enable_metrics`` is called (or,
in a proxy started by ``cascade-router serve --otel/--metrics``, the environment variables
``CASCADE_ROUTER_TRACING=1`` / ``CASCADE_ROUTER_METRICS=1`` ask for it), so the library costs
nothing and imports neither package when they are off.

Spans follow OpenTelemetry's GenAI semantic conventions: one ``chat cascade/<ladder>`` span per
request, with one child ``chat <model>`` span per model call carrying ``gen_ai.*`` (model,
tokens) and ``cascade.*`` attributes (cost, the decision that started the call, why it ended).
Spans are written once the request is over, with the calls' real start and end times, so a
request's whole story (its stop reason, the accepted model) sits on its span.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from cascade_core.engine import CascadeResult
from cascade_core.gateway.observe import CallLog

TRACING_ENV = "CASCADE_ROUTER_TRACING"
METRICS_ENV = "CASCADE_ROUTER_METRICS"
TRACER_NAME = "cascade_router"
# Request costs span from fractions of a micro-dollar (local models) to dollars.
COST_BUCKETS = tuple(10.0**e for e in range(-8, 1))
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class RequestRecord:
    """Everything telemetry needs about one finished (or failed) cascade request."""

    ladder: str
    log: CallLog
    started_ns: int
    ended_ns: int
    result: CascadeResult | None = None
    error: BaseException | None = None
    streamed: bool = False


class _Metrics:
    """The cascade's Prometheus metrics, registered once in one registry."""

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import REGISTRY, Counter, Histogram

        registry = REGISTRY if registry is None else registry
        ladder = ["ladder"]
        self.requests = Counter(
            "cascade_router_requests",
            "Cascade requests, by outcome (ok or error)",
            [*ladder, "outcome"],
            registry=registry,
        )
        self.escalations = Counter(
            "cascade_router_escalations",
            "Requests that ran more than one model (escalation rate: this over requests)",
            ladder,
            registry=registry,
        )
        self.drafts_aborted = Counter(
            "cascade_router_drafts_aborted",
            "Streamed drafts stopped early because escalation was certain",
            ladder,
            registry=registry,
        )
        self.cost = Histogram(
            "cascade_router_request_cost_usd",
            "Total cost of a request, drafts included (USD)",
            ladder,
            buckets=COST_BUCKETS,
            registry=registry,
        )
        self.model_latency = Histogram(
            "cascade_router_model_call_seconds",
            "Latency of each model call made by the cascade",
            [*ladder, "model", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.answers = Counter(
            "cascade_router_answers",
            "Requests answered, by the model whose answer was accepted (its share)",
            [*ladder, "model"],
            registry=registry,
        )

    def observe(self, record: RequestRecord) -> None:
        ladder = record.ladder
        self.requests.labels(ladder, "ok" if record.error is None else "error").inc()
        result = record.result
        if result is None:
            return
        runs = [run for run in result.trace.runs if run.status != "skipped"]
        if len(result.trace.models_run) > 1:  # a verification is no escalation
            self.escalations.labels(ladder).inc()
        aborted = sum(run.status == "aborted" for run in runs)
        if aborted:
            self.drafts_aborted.labels(ladder).inc(aborted)
        self.cost.labels(ladder).observe(result.trace.cost_usd)
        for run in runs:
            self.model_latency.labels(ladder, run.model, run.status).observe(run.latency_ms / 1000)
        self.answers.labels(ladder, result.model).inc()


class _Tracing:
    """Writes a request's spans from its call log once the request is over."""

    def __init__(self, tracer_provider: Any = None) -> None:
        from opentelemetry import trace

        provider = tracer_provider or trace.get_tracer_provider()
        self.tracer = provider.get_tracer(TRACER_NAME)

    def observe(self, record: RequestRecord) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        request_model = f"cascade/{record.ladder}"
        result = record.result
        root = self.tracer.start_span(
            f"chat {request_model}",
            kind=SpanKind.INTERNAL,
            start_time=record.started_ns,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "cascade_router",
                "gen_ai.request.model": request_model,
                "cascade.ladder": record.ladder,
                "cascade.streamed": record.streamed,
            },
        )
        if result is not None:
            trace_ = result.trace
            root.set_attributes(
                {
                    "gen_ai.response.model": result.model,
                    "gen_ai.response.finish_reasons": [result.answer.finish_reason or "stop"],
                    "gen_ai.usage.input_tokens": trace_.prompt_tokens,
                    "gen_ai.usage.output_tokens": trace_.completion_tokens,
                    "cascade.strategy": trace_.strategy,
                    "cascade.models_run": trace_.models_run,
                    "cascade.cost_usd": trace_.cost_usd,
                    "cascade.decision": f"answer with {result.model}",
                    "cascade.reason": trace_.stop_reason,
                    "cascade.escalated": len(trace_.models_run) > 1,
                }
            )
        if record.error is not None:
            root.set_status(Status(StatusCode.ERROR, _error_text(record.error)))
            root.set_attribute("error.type", type(record.error).__name__)
        context = _context_of(root)
        for call in record.log.calls:
            model = call.model
            span = self.tracer.start_span(
                f"chat {model.spec.model}",
                context=context,
                kind=SpanKind.CLIENT,
                start_time=call.started_ns,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": _provider_of(model.spec.model),
                    "gen_ai.request.model": model.spec.model,
                    "cascade.model": model.label,
                    "cascade.decision": call.decision,
                },
            )
            run = call.run
            if run is not None:
                span.set_attributes(
                    {
                        "gen_ai.usage.input_tokens": run.prompt_tokens,
                        "gen_ai.usage.output_tokens": run.completion_tokens,
                        "cascade.status": run.status,
                        "cascade.reason": run.reason,
                        "cascade.cost_usd": run.cost_usd,
                    }
                )
                if run.ex_ante_quality is not None:  # None: a verification call
                    span.set_attribute("cascade.ex_ante_quality", run.ex_ante_quality)
                if run.verifies is not None:
                    span.set_attribute("cascade.verifies", run.verifies)
                if run.post_hoc_quality is not None:
                    span.set_attribute("cascade.post_hoc_quality", run.post_hoc_quality)
                if run.status == "failed":
                    span.set_status(Status(StatusCode.ERROR, run.error or run.reason))
                    span.set_attribute("error.type", (run.error or "error").split(":")[0])
            span.end(end_time=call.ended_ns or record.ended_ns)
        root.end(end_time=record.ended_ns)


def _context_of(span: Any) -> Any:
    from opentelemetry import trace

    return trace.set_span_in_context(span)


def _provider_of(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else "openai"


def _error_text(error: BaseException) -> str:
    """Exceptions that reach telemetry are the engine's, already redacted."""
    return f"{type(error).__name__}: {error}"[:500]


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tracing: _Tracing | None = None
        self.metrics: _Metrics | None = None


_state = _State()


def enable_tracing(tracer_provider: Any = None) -> None:
    """Write spans of every cascade request to ``tracer_provider`` (default: the global one)."""
    with _state.lock:
        _state.tracing = _Tracing(tracer_provider)


def enable_metrics(registry: Any = None) -> None:
    """Count cascade requests in ``registry`` (default: prometheus_client's, which LiteLLM
    Proxy's ``/metrics`` serves when its ``prometheus`` callback is on)."""
    with _state.lock:
        if _state.metrics is None or registry is not None:
            _state.metrics = _Metrics(registry)


def disable() -> None:
    """Stop writing spans and metrics (metrics already registered stay registered)."""
    with _state.lock:
        _state.tracing = None
        _state.metrics = None


def enabled() -> bool:
    return _state.tracing is not None or _state.metrics is not None


def configure_from_env() -> None:
    """Turn on what the environment asks for (how ``serve`` configures proxy workers)."""
    if os.environ.get(TRACING_ENV) == "1" and _state.tracing is None:
        enable_tracing()
    if os.environ.get(METRICS_ENV) == "1" and _state.metrics is None:
        enable_metrics()


def observe(record: RequestRecord) -> None:
    """Export one request; telemetry failures never fail the request."""
    for sink in (_state.tracing, _state.metrics):
        if sink is None:
            continue
        try:
            sink.observe(record)
        except Exception:  # an exporter's problem is not the caller's
            continue
